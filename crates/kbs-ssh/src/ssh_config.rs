//! Reading OpenSSH client config (`~/.ssh/config`) for one host alias, so inventories can say
//! `host01` and let the user's ssh_config supply address, user, port, keys and jump host. The CLI
//! merges the entry *under* inventory values: the inventory wins.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use ssh2_config::{ParseRule, SshConfig};

use crate::Error;

/// What ssh_config says about one host alias; `None`/empty where it says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshConfigEntry {
    pub host_name: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<PathBuf>,
    /// ProxyJump hops as written (`[user@]host[:port]`), first hop first.
    pub proxy_jump: Vec<String>,
}

/// Look `host_alias` up in the ssh_config file at `path`. A missing file is an empty entry;
/// an unreadable or malformed one is an error. Unknown keywords are ignored, like OpenSSH's
/// `IgnoreUnknown` would.
pub fn lookup(path: &Path, host_alias: &str) -> Result<SshConfigEntry, Error> {
    let fail = |reason: String| Error::SshConfig {
        path: path.to_path_buf(),
        reason,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SshConfigEntry::default()),
        Err(e) => return Err(fail(e.to_string())),
    };
    let config = SshConfig::default()
        .parse(
            &mut BufReader::new(file),
            ParseRule::ALLOW_UNKNOWN_FIELDS | ParseRule::ALLOW_UNSUPPORTED_FIELDS,
        )
        .map_err(|e| fail(e.to_string()))?;
    let params = config.query(host_alias);
    Ok(SshConfigEntry {
        host_name: params.host_name,
        user: params.user,
        port: params.port,
        identity_files: params.identity_file.unwrap_or_default(),
        proxy_jump: params
            .proxy_jump
            .unwrap_or_default()
            .into_iter()
            .filter(|j| !j.eq_ignore_ascii_case("none"))
            .collect(),
    })
}

/// The default ssh_config path, `~/.ssh/config`.
pub fn default_path() -> Option<PathBuf> {
    crate::options::home_dir().map(|h| h.join(".ssh").join("config"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_host_block_and_defaults() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        write!(
            f,
            "Host host01\n  HostName 192.168.61.11\n  User ubuntu\n  Port 2222\n  IdentityFile /keys/id_ed25519\n  ProxyJump admin@bastion:22\n  ForwardX11 no\n\nHost *\n  User fallback\n"
        )
        .unwrap();
        let e = lookup(f.path(), "host01").unwrap();
        assert_eq!(e.host_name.as_deref(), Some("192.168.61.11"));
        assert_eq!(e.user.as_deref(), Some("ubuntu"));
        assert_eq!(e.port, Some(2222));
        assert_eq!(e.identity_files, vec![PathBuf::from("/keys/id_ed25519")]);
        assert_eq!(e.proxy_jump, vec!["admin@bastion:22".to_string()]);
        let other = lookup(f.path(), "host02").unwrap();
        assert_eq!(other.user.as_deref(), Some("fallback"));
        assert_eq!(other.host_name, None);
        assert_eq!(
            lookup(Path::new("/nonexistent/kbs/config"), "x").unwrap(),
            SshConfigEntry::default()
        );
    }
}
