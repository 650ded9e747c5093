//! Go formatting the kubeadm messages depend on: `%q` quoting, `%#v` of string
//! slices and maps, and field-error aggregation (k8s.io/apimachinery `field.ErrorList`).

/// Go's `%q` for a string: double quotes, backslash escapes for `"` `\` and controls.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%#v` of a `[]string`: `[]string{"a", "b"}`.
pub fn string_slice(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[]string{{{}}}", inner.join(", "))
}

/// Go's `%#v` of a `map[string]bool` (Go prints map keys sorted).
pub fn bool_map(map: &std::collections::BTreeMap<String, bool>) -> String {
    let inner: Vec<String> = map.iter().map(|(k, v)| format!("{}:{}", quote(k), v)).collect();
    format!("map[string]bool{{{}}}", inner.join(", "))
}

/// One `field.Error`, already rendered as apimachinery prints it
/// (`path: Invalid value: "x": detail`, `path: Required value: detail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError(pub String);

impl FieldError {
    /// `field.Invalid` with a string value.
    pub fn invalid(path: &str, value: &str, detail: &str) -> FieldError {
        FieldError(format!("{path}: Invalid value: {}: {detail}", quote(value)))
    }
    /// `field.Invalid` with a value already in Go `%#v`/`%v` form.
    pub fn invalid_raw(path: &str, value: &str, detail: &str) -> FieldError {
        FieldError(format!("{path}: Invalid value: {value}: {detail}"))
    }
    /// `field.Required`.
    pub fn required(path: &str, detail: &str) -> FieldError {
        FieldError(format!("{path}: Required value: {detail}"))
    }
}

/// `field.ErrorList.ToAggregate().Error()`: duplicates dropped, one error bare, several
/// as `[a, b]`. `None` for an empty list.
pub fn aggregate(errors: &[FieldError]) -> Option<String> {
    let mut seen: Vec<&str> = Vec::new();
    for e in errors {
        if !seen.contains(&e.0.as_str()) {
            seen.push(&e.0);
        }
    }
    match seen.len() {
        0 => None,
        1 => Some(seen[0].to_string()),
        _ => Some(format!("[{}]", seen.join(", "))),
    }
}

/// Go's `hex.DecodeString`, with its error texts.
pub fn hex_decode(s: &str) -> Result<Vec<u8>, String> {
    let bytes = s.as_bytes();
    let val = |b: u8| -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    };
    let invalid = |b: u8| {
        format!(
            "encoding/hex: invalid byte: U+{:04X} {}",
            b,
            go_rune_quote(b as char)
        )
    };
    let mut out = Vec::with_capacity(bytes.len() / 2);
    let mut i = 0;
    while i + 1 < bytes.len() {
        let hi = val(bytes[i]).ok_or_else(|| invalid(bytes[i]))?;
        let lo = val(bytes[i + 1]).ok_or_else(|| invalid(bytes[i + 1]))?;
        out.push(hi << 4 | lo);
        i += 2;
    }
    if bytes.len() % 2 == 1 {
        let last = bytes[bytes.len() - 1];
        if val(last).is_none() {
            return Err(invalid(last));
        }
        return Err("encoding/hex: odd length hex string".to_string());
    }
    Ok(out)
}

fn go_rune_quote(c: char) -> String {
    format!("'{c}'")
}

/// Lower-case hex, as Go's `hex.EncodeToString`.
pub fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_quote_and_aggregate() {
        assert_eq!(quote(r"a\b"), r#""a\\b""#);
        let e1 = FieldError::invalid("a", "x", "bad");
        let e2 = FieldError::required("b", "missing");
        assert_eq!(
            aggregate(std::slice::from_ref(&e1)).unwrap(),
            r#"a: Invalid value: "x": bad"#
        );
        assert_eq!(
            aggregate(&[e1.clone(), e2, e1]).unwrap(),
            r#"[a: Invalid value: "x": bad, b: Required value: missing]"#
        );
        assert_eq!(aggregate(&[]), None);
    }

    #[test]
    fn hex_errors_match_go() {
        assert_eq!(hex_decode("0aff").unwrap(), vec![0x0a, 0xff]);
        assert_eq!(
            hex_decode("abc").unwrap_err(),
            "encoding/hex: odd length hex string"
        );
        assert_eq!(
            hex_decode("zz").unwrap_err(),
            "encoding/hex: invalid byte: U+007A 'z'"
        );
    }
}
