//! SSH settings as the inventory states them, and how the layers (cluster, groups, host) merge.
//!
//! Every field stays an `Option` even after merging: a later layer (the user's `~/.ssh/config`)
//! fills what the inventory leaves open, and only then do defaults apply.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// SSH settings at one layer (cluster, group or host), or merged across layers.
///
/// Paths are already resolved: `~` expanded, relative paths made relative to the inventory's directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshSettings {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    pub known_hosts_file: Option<PathBuf>,
    pub bastion: Option<Bastion>,
    /// Run privileged steps through `sudo`; see [`SshSettings::uses_sudo`] for the default.
    pub sudo: Option<bool>,
    pub connect_timeout: Option<Duration>,
}

impl SshSettings {
    /// These settings, with every field they leave open taken from `fallback`.
    ///
    /// `host.or(&group).or(&cluster)` is the inventory's precedence; the SSH layer then calls
    /// `merged.or(&from_ssh_config)` so explicit inventory values beat `~/.ssh/config`.
    pub fn or(&self, fallback: &SshSettings) -> SshSettings {
        SshSettings {
            user: self.user.clone().or_else(|| fallback.user.clone()),
            port: self.port.or(fallback.port),
            identity_file: self
                .identity_file
                .clone()
                .or_else(|| fallback.identity_file.clone()),
            known_hosts_file: self
                .known_hosts_file
                .clone()
                .or_else(|| fallback.known_hosts_file.clone()),
            bastion: self.bastion.clone().or_else(|| fallback.bastion.clone()),
            sudo: self.sudo.or(fallback.sudo),
            connect_timeout: self.connect_timeout.or(fallback.connect_timeout),
        }
    }

    /// Whether privileged steps go through sudo: as set, else yes unless the user is `root`.
    ///
    /// Call it on the fully merged settings (after `~/.ssh/config`), since the user may come from there.
    pub fn uses_sudo(&self) -> bool {
        self.sudo.unwrap_or(self.user.as_deref() != Some("root"))
    }
}

/// A jump host, written `[user@]host[:port]` (IPv6 as `[addr]:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bastion {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl Bastion {
    /// Parses `[user@]host[:port]`; the error says what part is wrong.
    pub(crate) fn parse(text: &str) -> Result<Bastion, String> {
        let (user, rest) = match text.rsplit_once('@') {
            Some((user, rest)) => {
                if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c == '@') {
                    return Err(format!("bastion `{text}` has an invalid user before `@`"));
                }
                (Some(user.to_string()), rest)
            }
            None => (None, text),
        };
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let Some((host, after)) = bracketed.split_once(']') else {
                return Err(format!("bastion `{text}` opens `[` without closing `]`"));
            };
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(format!("bastion `{text}` has text after `]` that is not `:port`")),
                },
            }
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || c == '/' || c == '[' || c == ']')
        {
            return Err(format!("bastion `{text}` has no valid host"));
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(port) if port > 0 && p.bytes().all(|b| b.is_ascii_digit()) => Some(port),
                _ => return Err(format!("bastion `{text}` has an invalid port `{p}`")),
            },
        };
        Ok(Bastion {
            user,
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Bastion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Bastion;

    #[test]
    fn bastion_forms() {
        let b = |user: Option<&str>, host: &str, port: Option<u16>| Bastion {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
        };
        assert_eq!(Bastion::parse("jump"), Ok(b(None, "jump", None)));
        assert_eq!(
            Bastion::parse("admin@jump.example:2222"),
            Ok(b(Some("admin"), "jump.example", Some(2222)))
        );
        assert_eq!(Bastion::parse("[fd00::1]:22"), Ok(b(None, "fd00::1", Some(22))));
        for bad in [
            "",
            "@jump",
            "jump:",
            "jump:0",
            "jump:99999",
            "a b",
            "[fd00::1",
            "jump:22:33",
        ] {
            assert!(Bastion::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(
            Bastion::parse("u@[fd00::1]:22").map(|b| b.to_string()),
            Ok("u@[fd00::1]:22".to_string())
        );
    }
}
