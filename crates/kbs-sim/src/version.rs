//! Which Kubernetes version this simulated kubeadm is.
//!
//! One binary is packaged as several versions (1.35.x, 1.36.x, 1.37.x) of several tools,
//! and a host may hold kubeadm and kubelet at different versions (version skew is a
//! preflight check), so each tool reads its version at run time, first found wins:
//! `KBS_SIM_<TOOL>_VERSION`, `KBS_SIM_VERSION` (tests, ad-hoc runs), the file its .deb
//! installs at `/usr/share/kbs-sim/<tool>.version`, the shared [`VERSION_FILE`], the
//! build-time `KBS_SIM_VERSION`, [`DEFAULT_VERSION`].

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

    /// The version of kubeadm this process simulates.
    pub fn current() -> Version {
        Version::current_for("kubeadm")
    }

    /// The version `tool` (kubeadm, kubelet, kubectl) simulates; see the module doc.
    pub fn current_for(tool: &str) -> Version {
        let env = |name: String| std::env::var(name).ok();
        let file = |path: String| std::fs::read_to_string(path).ok();
        let candidates = [
            env(format!(
                "KBS_SIM_{}_VERSION",
                tool.to_uppercase().replace('-', "_")
            )),
            env("KBS_SIM_VERSION".to_string()),
            file(format!("/usr/share/kbs-sim/{tool}.version")),
            file(VERSION_FILE.to_string()),
            option_env!("KBS_SIM_VERSION").map(str::to_string),
        ];
        candidates
            .iter()
            .flatten()
            .find_map(|v| Version::parse(v))
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
