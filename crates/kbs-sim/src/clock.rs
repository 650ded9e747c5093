//! The lab clock: every "now" in kbs-sim goes through [`Clock::now`].
//!
//! The lab shifts a host's time by writing an integer number of seconds to
//! `/etc/kbs-lab/clock-offset` (absent or unreadable = 0). Tests expire bootstrap tokens
//! and uploaded certificates by moving this offset instead of waiting hours.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Where the lab writes a host's clock offset.
pub const CLOCK_OFFSET_FILE: &str = "/etc/kbs-lab/clock-offset";

/// A clock that reads its offset from a file on every call, so a running simulated
/// component (API server, kubelet) sees a changed offset without a restart.
#[derive(Debug, Clone)]
pub struct Clock {
    offset_file: PathBuf,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::with_offset_file(CLOCK_OFFSET_FILE)
    }
}

impl Clock {
    /// A clock whose offset comes from `path` (tests use a temporary file).
    pub fn with_offset_file(path: impl Into<PathBuf>) -> Self {
        Clock {
            offset_file: path.into(),
        }
    }

    /// The current offset in seconds; a missing or malformed file counts as 0 so a lab
    /// without clock control behaves like a normal host.
    pub fn offset_seconds(&self) -> i64 {
        read_offset(&self.offset_file)
    }

    /// Real time plus the lab offset.
    pub fn now(&self) -> SystemTime {
        shift(SystemTime::now(), self.offset_seconds())
    }
}

fn read_offset(path: &Path) -> i64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0)
}

/// `t` moved by `seconds` (negative = into the past), saturating at the epoch.
pub fn shift(t: SystemTime, seconds: i64) -> SystemTime {
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        t.checked_add(magnitude).unwrap_or(t)
    } else {
        t.checked_sub(magnitude).unwrap_or(SystemTime::UNIX_EPOCH)
    }
}

/// Seconds since the Unix epoch (0 for times before it).
pub fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// RFC 3339 UTC timestamp (`2026-11-22T02:47:26Z`), the form Kubernetes uses for
/// `expiration` in bootstrap token secrets.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = unix_seconds(t);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(dt) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            dt.year(),
            dt.month() as u8,
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        ),
        Err(_) => "1970-01-01T00:00:00Z".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_file_means_no_offset() {
        let clock = Clock::with_offset_file("/nonexistent/kbs-lab/clock-offset");
        assert_eq!(clock.offset_seconds(), 0);
    }

    #[test]
    fn offset_file_moves_now() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clock-offset");
        std::fs::write(&file, "7200\n").unwrap();
        let clock = Clock::with_offset_file(&file);
        assert_eq!(clock.offset_seconds(), 7200);
        let delta = clock.now().duration_since(SystemTime::now()).unwrap();
        assert!(delta.as_secs() >= 7199 && delta.as_secs() <= 7201, "{delta:?}");
        std::fs::write(&file, "garbage").unwrap();
        assert_eq!(clock.offset_seconds(), 0);
        std::fs::write(&file, "-60").unwrap();
        assert_eq!(clock.offset_seconds(), -60);
    }

    #[test]
    fn rfc3339_format() {
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 + 61)),
            "1970-01-02T00:01:01Z"
        );
    }
}
