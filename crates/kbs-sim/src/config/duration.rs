//! Go's `time.ParseDuration`, for metav1.Duration fields (`ttl: 24h0m0s`).

use std::time::Duration;

/// Parses `1h30m`, `90s`, `1.5h`, `500ms`, `0`; the error is Go's `time: invalid duration "x"`.
/// Negative durations are accepted by Go but make no sense for kubeadm's fields; they are
/// clamped to zero.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {}", crate::gofmt::quote(s));
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(invalid());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| invalid())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => {
                return Err(format!(
                    "time: missing unit in duration {}",
                    crate::gofmt::quote(s)
                ))
            }
            other => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    crate::gofmt::quote(other),
                    crate::gofmt::quote(s)
                ))
            }
        };
        total += n * scale;
    }
    if neg {
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_secs_f64(total))
}

/// Go's `time.Duration.String()` for the values kubeadm prints (`4m0s`, `1.5s`, `2h0m0s`, `250ms`).
pub fn format_go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return if ms == 0 { "0s".into() } else { format!("{ms}ms") };
    }
    let h = ms / 3_600_000;
    let m = (ms / 60_000) % 60;
    let s = (ms % 60_000) as f64 / 1000.0;
    let secs = {
        let t = format!("{s:.3}");
        let t = t.trim_end_matches('0').trim_end_matches('.').to_string();
        format!("{t}s")
    };
    if h > 0 {
        format!("{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{m}m{secs}")
    } else {
        secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("24h0m0s").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_go_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_go_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(
            parse_go_duration("abc").unwrap_err(),
            "time: invalid duration \"abc\""
        );
        assert_eq!(
            parse_go_duration("10").unwrap_err(),
            "time: missing unit in duration \"10\""
        );
        assert_eq!(
            parse_go_duration("5d").unwrap_err(),
            "time: unknown unit \"d\" in duration \"5d\""
        );
    }
}

#[cfg(test)]
mod format_tests {
    #[test]
    fn go_duration_strings() {
        use std::time::Duration;
        assert_eq!(super::format_go_duration(Duration::from_secs(240)), "4m0s");
        assert_eq!(super::format_go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(super::format_go_duration(Duration::from_millis(250)), "250ms");
    }
}
