//! Which Kubernetes version this simulated kubeadm is.
//!
//! One binary is packaged as several kubeadm versions (1.35.x, 1.36.x, 1.37.x), so the
//! version is read at run time: `KBS_SIM_VERSION` in the environment (tests, ad-hoc runs),
//! else the file the .deb installs at [`VERSION_FILE`], else the build-time
//! `KBS_SIM_VERSION`, else [`DEFAULT_VERSION`].

use std::fmt;

/// Installed by each kbs-sim package: one line such as `1.36.4`.
pub const VERSION_FILE: &str = "/usr/share/kbs-sim/version";
/// Used when nothing else says which version this is.
pub const DEFAULT_VERSION: &str = "1.36.0";

/// A `major.minor.patch` Kubernetes version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version { major, minor, patch }
    }

    /// Parses `1.36.4`, `v1.36.4`, `Kubernetes v1.36.4` (kubelet --version) and
    /// `1.36.4-1.1` (a Debian package version); `None` if it is none of those.
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim();
        let s = s.strip_prefix("Kubernetes ").unwrap_or(s);
        let s = s.strip_prefix('v').unwrap_or(s);
        let core = s.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Version { major, minor, patch })
    }

    /// The version this process simulates (see the module doc for the lookup order).
    pub fn current() -> Version {
        let from_env = std::env::var("KBS_SIM_VERSION").ok();
        let from_file = || std::fs::read_to_string(VERSION_FILE).ok();
        let from_build = option_env!("KBS_SIM_VERSION").map(str::to_string);
        from_env
            .and_then(|v| Version::parse(&v))
            .or_else(|| from_file().and_then(|v| Version::parse(&v)))
            .or_else(|| from_build.and_then(|v| Version::parse(&v)))
            .or_else(|| Version::parse(DEFAULT_VERSION))
            .unwrap_or(Version::new(1, 36, 0))
    }

    /// `v1.36.4`, kubeadm's GitVersion.
    pub fn git_version(&self) -> String {
        format!("v{self}")
    }
}

impl fmt::Display for Version {
    /// Without the `v`, as k8s.io/apimachinery's version.String() prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_tools_print() {
        assert_eq!(Version::parse("v1.36.4"), Some(Version::new(1, 36, 4)));
        assert_eq!(
            Version::parse("Kubernetes v1.35.2\n"),
            Some(Version::new(1, 35, 2))
        );
        assert_eq!(Version::parse("1.37.0-1.1"), Some(Version::new(1, 37, 0)));
        assert_eq!(Version::parse("1.36"), Some(Version::new(1, 36, 0)));
        assert_eq!(Version::parse("banana"), None);
        assert_eq!(Version::parse("1.2.3.4"), None);
    }
}
