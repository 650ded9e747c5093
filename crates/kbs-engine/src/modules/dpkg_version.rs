//! Debian version ordering (`[epoch:]upstream[-revision]`, `~` sorting before everything), so
//! "1.36" resolves to the newest 1.36.x the repository offers, as dpkg itself would order them.

use std::cmp::Ordering;

/// Compares two Debian package versions like `dpkg --compare-versions`.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| compare_part(ua, ub))
        .then_with(|| compare_part(ra, rb))
}

fn split(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) if e.bytes().all(|b| b.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((u, r)) => (epoch, u, r),
        None => (epoch, rest, ""),
    }
}

/// Letters sort before non-letters, `~` before everything, even the end of the string.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(b'~') => -1,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

fn compare_part(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        // Non-digit prefix, character by character.
        loop {
            let ca = a.first().copied().filter(|c| !c.is_ascii_digit());
            let cb = b.first().copied().filter(|c| !c.is_ascii_digit());
            if ca.is_none() && cb.is_none() {
                break;
            }
            let (oa, ob) = (order(ca), order(cb));
            if oa != ob {
                return oa.cmp(&ob);
            }
            a = &a[1..];
            b = &b[1..];
        }
        // Numeric run.
        let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
        let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let va = std::str::from_utf8(&a[..na])
            .ok()
            .and_then(|s| s.parse::<u128>().ok())
            .unwrap_or(0);
        let vb = std::str::from_utf8(&b[..nb])
            .ok()
            .and_then(|s| s.parse::<u128>().ok())
            .unwrap_or(0);
        if va != vb {
            return va.cmp(&vb);
        }
        a = &a[na..];
        b = &b[nb..];
    }
    Ordering::Equal
}

/// Whether `version` is what `spec` asks for: empty = anything; otherwise the version itself or
/// anything continuing it with `.` or `-` (`1.36` → `1.36.4-1.1`, `1.36.4` → `1.36.4-2.1`,
/// `2` → `2.1.4-1`), with or without an epoch.
pub fn matches(spec: &str, version: &str) -> bool {
    if spec.is_empty() {
        return true;
    }
    let bare = version.split_once(':').map(|(_, r)| r).unwrap_or(version);
    [version, bare].iter().any(|v| {
        *v == spec
            || v.strip_prefix(spec)
                .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('-') || rest.starts_with('~'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn orders_like_dpkg() {
        for (a, b, o) in [
            ("1.36.4-1.1", "1.36.10-1.1", Less),
            ("1.36.4-2.1", "1.36.4-1.1", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1:1.0", "2.0", Greater),
            ("1.0a", "1.0", Greater),
            ("1.0", "1.0", Equal),
            ("2.1.4~ds1-1", "2.1.4-1", Less),
        ] {
            assert_eq!(compare(a, b), o, "{a} vs {b}");
        }
    }

    #[test]
    fn spec_matching() {
        assert!(matches("1.36", "1.36.4-1.1"));
        assert!(!matches("1.36", "1.360.0-1"));
        assert!(!matches("1.3", "1.36.4-1.1"));
        assert!(matches("1.36.4", "1.36.4-2.1"));
        assert!(matches("1.36.4-1.1", "1.36.4-1.1"));
        assert!(matches("2", "2.1.4-0ubuntu1"));
        assert!(matches("2", "1:2.0.1-1"));
        assert!(!matches("2", "1.7.24-1"));
        assert!(matches("", "anything"));
    }
}
