//! Faults a test can inject into a lab host, and the per-host clock offset.
//!
//! - `down` / `up`: power the guest off (the wrapper is stopped; the overlay, so the disk, stays) and on.
//! - `cut` / `heal`: the guest's bridge port goes down / up; the guest keeps its address.
//! - `sshd-restart`: `systemctl restart ssh` in the guest (sessions in flight survive, as on a real host).
//! - `dpkg-lock SECONDS`: a process in the guest holds `/var/lib/dpkg/lock-frontend` with an fcntl lock,
//!   the kind apt and dpkg take (flock(1) would not block them), for that long.
//! - clock: [`crate::paths::GUEST_CLOCK_OFFSET`] (`/etc/kbs-lab/clock-offset`) holds the guest's offset in
//!   seconds; kbs-sim adds it to the real time. The kernel clock is shared and never changed.

use std::fmt;
use std::str::FromStr;

use crate::error::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Down,
    Up,
    Cut,
    Heal,
    SshdRestart,
    DpkgLock { seconds: u64 },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Down => write!(f, "down"),
            Fault::Up => write!(f, "up"),
            Fault::Cut => write!(f, "cut"),
            Fault::Heal => write!(f, "heal"),
            Fault::SshdRestart => write!(f, "sshd-restart"),
            Fault::DpkgLock { seconds } => write!(f, "dpkg-lock {seconds}"),
        }
    }
}

impl Fault {
    /// Parses `down`, `up`, `cut`, `heal`, `sshd-restart`, or `dpkg-lock` with its seconds.
    pub fn parse(kind: &str, seconds: Option<&str>) -> Result<Fault, Error> {
        let bad = || {
            Error::new(
                "reading the fault",
                format!("unknown fault {kind:?}"),
                "use one of: down, up, cut, heal, sshd-restart, dpkg-lock SECONDS",
            )
        };
        Ok(match kind {
            "down" => Fault::Down,
            "up" => Fault::Up,
            "cut" => Fault::Cut,
            "heal" => Fault::Heal,
            "sshd-restart" => Fault::SshdRestart,
            "dpkg-lock" => {
                let seconds = seconds.and_then(|s| s.parse().ok()).ok_or_else(|| {
                    Error::new(
                        "reading the fault",
                        "dpkg-lock needs a number of seconds",
                        "e.g. kbs-lab fault host02 dpkg-lock 30",
                    )
                })?;
                Fault::DpkgLock { seconds }
            }
            _ => return Err(bad()),
        })
    }
}

/// Where the dpkg lock holder is installed in the guest.
pub const DPKG_LOCK_PROGRAM: &str = "/usr/local/sbin/kbs-lab-dpkg-lock";

/// The guest-side program holding the dpkg frontend lock with an fcntl write lock, like apt's.
/// `--held` instead exits 0 if someone else holds the lock now.
pub const DPKG_LOCK_SCRIPT: &str = r#"#!/usr/bin/perl
# kbs-lab: holds the dpkg frontend lock for ARGV[0] seconds, the way apt does (fcntl, not flock).
use strict;
use Fcntl qw(F_SETLK F_SETLKW F_WRLCK SEEK_SET O_RDWR O_CREAT);
my $arg = shift // 30;
my $lock = pack("s s x4 q q l x4", F_WRLCK, SEEK_SET, 0, 0, 0);
sysopen(my $fh, "/var/lib/dpkg/lock-frontend", O_RDWR | O_CREAT, 0640) or die "open: $!";
if ($arg eq "--held") { exit(fcntl($fh, F_SETLK, $lock) ? 1 : 0); }
fcntl($fh, F_SETLKW, $lock) or die "lock: $!";
sleep $arg;
"#;

/// A clock change: `+2h`, `-30m`, `+1d12h`, `90` (seconds), `+45s`. Returns seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockDelta(pub i64);

impl FromStr for ClockDelta {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::new(
                "reading the clock change",
                format!("{s:?} is not a duration"),
                "write it like +2h, -30m, +1d12h, +90s or 90 (seconds)",
            )
        };
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => (1, s),
        };
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total: i64 = 0;
        let mut number = String::new();
        for c in rest.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return Err(bad()),
            };
            let n: i64 = number.parse().map_err(|_| bad())?;
            total = total
                .checked_add(n.checked_mul(unit).ok_or_else(bad)?)
                .ok_or_else(bad)?;
            number.clear();
        }
        if !number.is_empty() {
            total = total
                .checked_add(number.parse::<i64>().map_err(|_| bad())?)
                .ok_or_else(bad)?;
        }
        Ok(ClockDelta(sign * total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!("+2h".parse::<ClockDelta>().unwrap(), ClockDelta(7200));
        assert_eq!("-30m".parse::<ClockDelta>().unwrap(), ClockDelta(-1800));
        assert_eq!("+1d12h".parse::<ClockDelta>().unwrap(), ClockDelta(129_600));
        assert_eq!("90".parse::<ClockDelta>().unwrap(), ClockDelta(90));
        assert!("+2x".parse::<ClockDelta>().is_err());
        assert!("+".parse::<ClockDelta>().is_err());
    }

    #[test]
    fn faults_parse() {
        assert_eq!(
            Fault::parse("dpkg-lock", Some("5")).unwrap(),
            Fault::DpkgLock { seconds: 5 }
        );
        assert!(Fault::parse("dpkg-lock", None).is_err());
        assert!(Fault::parse("explode", None).is_err());
    }
}
