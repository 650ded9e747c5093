//! The Kubernetes version an inventory asks for, and the minors kbs supports.

use std::fmt;

/// The Kubernetes minors kbs can install (`1.MM`). The one place to change when a minor is added
/// or reaches end of life.
pub const SUPPORTED_MINORS: [u32; 3] = [35, 36, 37];

/// `1.MM` (latest patch of that minor, resolved at run time) or `1.MM.P` (exactly that patch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubernetesVersion {
    pub minor: u32,
    pub patch: Option<u32>,
}

impl KubernetesVersion {
    /// The supported minors as the user writes them, e.g. `1.35, 1.36, 1.37`.
    pub fn supported_list() -> String {
        SUPPORTED_MINORS
            .iter()
            .map(|m| format!("1.{m}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Parses `1.MM` or `1.MM.P`; the message says what was wrong. Does not check support.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let malformed = || format!("Kubernetes version `{text}` is not of the form 1.MM or 1.MM.P");
        let mut parts = text.split('.');
        let (Some(major), Some(minor)) = (parts.next(), parts.next()) else {
            return Err(malformed());
        };
        let patch = parts.next();
        if parts.next().is_some() || major != "1" {
            return Err(malformed());
        }
        let number = |s: &str| -> Option<u32> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let minor = number(minor).ok_or_else(malformed)?;
        let patch = match patch {
            None => None,
            Some(p) => Some(number(p).ok_or_else(malformed)?),
        };
        Ok(KubernetesVersion { minor, patch })
    }

    pub fn is_supported(&self) -> bool {
        SUPPORTED_MINORS.contains(&self.minor)
    }
}

impl fmt::Display for KubernetesVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.patch {
            Some(patch) => write!(f, "1.{}.{patch}", self.minor),
            None => write!(f, "1.{}", self.minor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::KubernetesVersion;

    #[test]
    fn parses_minor_and_patch_forms_only() {
        assert_eq!(
            KubernetesVersion::parse("1.36"),
            Ok(KubernetesVersion {
                minor: 36,
                patch: None
            })
        );
        assert_eq!(
            KubernetesVersion::parse("1.36.4"),
            Ok(KubernetesVersion {
                minor: 36,
                patch: Some(4)
            })
        );
        for bad in ["1", "v1.36", "2.36", "1.36.4.1", "1.x", "1.36.", "1..36"] {
            assert!(KubernetesVersion::parse(bad).is_err(), "{bad} should not parse");
        }
        assert_eq!(
            KubernetesVersion::parse("1.37.2").map(|v| v.to_string()),
            Ok("1.37.2".to_string())
        );
    }
}
