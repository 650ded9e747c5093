//! The syntax of single values: names, addresses, subnets, taints, labels and durations.
//!
//! Each check returns the parsed value or a message saying what is wrong with the text;
//! the decoder adds the position.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::model::{Taint, TaintEffect};
use crate::suggest;

/// What is wrong with a value, and what to write instead.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Problem {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

/// RFC 1123 label as Kubernetes uses it: lowercase letters, digits and `-`, alphanumeric at both
/// ends, at most 63 characters.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain (node names): dot-separated labels, at most 253 characters.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A host name to connect to: like a subdomain, but any letter case.
fn is_hostname(s: &str) -> bool {
    is_dns_subdomain(&s.to_ascii_lowercase())
}

/// An IP address or DNS name, for `address` fields.
pub(crate) fn address(text: &str, what: &str) -> Result<(), Problem> {
    if text.parse::<IpAddr>().is_ok() || (is_hostname(text) && !looks_like_ipv4(text)) {
        Ok(())
    } else {
        Err(Problem::new(
            format!("{what} `{text}` is neither an IP address nor a DNS name"),
            "write an address like 192.168.61.11 or a name like host01.example.com",
        ))
    }
}

/// `300.1.1.1` is a malformed IP, not a DNS name.
fn looks_like_ipv4(text: &str) -> bool {
    text.split('.')
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

pub(crate) fn ip(text: &str, what: &str) -> Result<IpAddr, Problem> {
    text.parse().map_err(|_| {
        Problem::new(
            format!("{what} `{text}` is not a valid IP address"),
            "write an address like 192.168.61.11",
        )
    })
}

/// A CIDR whose address is the network itself (`10.0.0.0/8`, not `10.0.0.1/8`).
pub(crate) fn cidr(text: &str, what: &str) -> Result<IpNet, Problem> {
    let net: IpNet = text.parse().map_err(|_| {
        Problem::new(
            format!("{what} `{text}` is not a valid CIDR"),
            "write a network address and prefix length, e.g. 172.31.0.0/16",
        )
    })?;
    if net.trunc() != net {
        return Err(Problem::new(
            format!("{what} `{text}` has host bits set"),
            format!("did you mean `{}`?", net.trunc()),
        ));
    }
    Ok(net)
}

/// `key[=value]:Effect`, as `kubectl taint` writes it.
pub(crate) fn taint(text: &str) -> Result<Taint, Problem> {
    let form_hint = "write key[=value]:Effect, e.g. dedicated=db:NoSchedule";
    let Some((key_value, effect)) = text.rsplit_once(':') else {
        return Err(Problem::new(
            format!("taint `{text}` has no `:Effect`"),
            form_hint,
        ));
    };
    let (key, value) = match key_value.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (key_value, None),
    };
    if !is_label_key(key) {
        return Err(Problem::new(
            format!("taint `{text}` has an invalid key `{key}`"),
            form_hint,
        ));
    }
    if let Some(value) = value {
        if !is_label_value(value) {
            return Err(Problem::new(
                format!("taint `{text}` has an invalid value `{value}`"),
                form_hint,
            ));
        }
    }
    let Some(effect_kind) = TaintEffect::ALL.into_iter().find(|e| e.as_str() == effect) else {
        let names = TaintEffect::ALL.map(|e| e.as_str());
        let suggestion = suggest::did_you_mean(effect, names);
        return Err(Problem::new(
            format!(
                "taint `{text}` has an unknown effect `{effect}`{}",
                suggest::suffix(suggestion.as_deref())
            ),
            format!("the effect is one of {}", names.join(", ")),
        ));
    };
    Ok(Taint {
        key: key.to_string(),
        value: value.map(str::to_string),
        effect: effect_kind,
    })
}

/// A label or taint key: `[prefix/]name`, prefix a DNS subdomain, name a label-ish word.
pub(crate) fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

/// A label value: up to 63 of letters, digits, `-`, `_`, `.`, alphanumeric at both ends; may be empty.
pub(crate) fn is_label_value(value: &str) -> bool {
    let alnum_ends = |s: &str| {
        s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    value.is_empty()
        || (value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && alnum_ends(value))
}

/// `500ms`, `10s`, `2m`, `1h`, or a sum such as `1m30s`.
pub(crate) fn duration(text: &str) -> Result<Duration, Problem> {
    let bad = || {
        Problem::new(
            format!("duration `{text}` is not valid"),
            "write a number with a unit: ms, s, m or h, e.g. 10s or 1m30s",
        )
    };
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let unit_len = rest[digits..].bytes().take_while(u8::is_ascii_alphabetic).count();
        if digits == 0 || unit_len == 0 {
            return Err(bad());
        }
        let amount: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let part = match &rest[digits..digits + unit_len] {
            "ms" => Duration::from_millis(amount),
            "s" => Duration::from_secs(amount),
            "m" => Duration::from_secs(amount.saturating_mul(60)),
            "h" => Duration::from_secs(amount.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(part);
        rest = &rest[digits + unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns_label("host01"));
        assert!(!is_dns_label("Host01") && !is_dns_label("-a") && !is_dns_label("a_b") && !is_dns_label(""));
        assert!(is_dns_subdomain("host01.example.com"));
        assert!(!is_dns_subdomain("host01..example"));
        assert!(address("Host01.Example.com", "address").is_ok());
        assert!(address("300.1.1.1", "address").is_err());
        assert!(address("fd00::1", "address").is_ok());
    }

    #[test]
    fn durations() {
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "10", "s", "10 s", "1d", "-1s"] {
            assert!(duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn taints() {
        let t = taint("dedicated=db:NoSchedule").map(|t| t.to_string());
        assert_eq!(t, Ok("dedicated=db:NoSchedule".to_string()));
        assert_eq!(taint("example.com/gpu:NoExecute").map(|t| t.value), Ok(None));
        assert!(taint("gpu").is_err() && taint("=x:NoSchedule").is_err() && taint("a:Never").is_err());
    }

    #[test]
    fn cidrs() {
        assert!(cidr("10.96.0.0/12", "x").is_ok());
        assert_eq!(
            cidr("10.96.0.1/12", "x").map_err(|p| p.hint),
            Err(Some("did you mean `10.96.0.0/12`?".into()))
        );
        assert!(cidr("10.96.0.0", "x").is_err());
    }
}
