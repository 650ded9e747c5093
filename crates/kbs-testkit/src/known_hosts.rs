//! known_hosts files for tests, plain or hashed the way `ssh-keygen -H` does it.

use std::path::Path;
use std::process::Command;

use crate::run;

/// One known_hosts line: who (`host` or `[host]:port`) and the key (`ssh-ed25519 AAAA...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHostsEntry {
    pub host: String,
    pub key: String,
}

impl KnownHostsEntry {
    /// Entry for `host` on `port`, written `[host]:port` off port 22 like OpenSSH.
    pub fn new(host: &str, port: u16, key: &str) -> Self {
        let host = if port == 22 {
            host.to_string()
        } else {
            format!("[{host}]:{port}")
        };
        // Keep "type base64", drop any comment.
        let key = key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        KnownHostsEntry { host, key }
    }
}

/// Write `entries` to `path` (replacing it), hashing the host names with `ssh-keygen -H` if `hashed`.
pub fn write_known_hosts(path: &Path, entries: &[KnownHostsEntry], hashed: bool) {
    let text: String = entries
        .iter()
        .map(|e| format!("{} {}\n", e.host, e.key))
        .collect();
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    if hashed {
        run(Command::new("ssh-keygen").arg("-q").arg("-H").arg("-f").arg(path));
        let mut old = path.as_os_str().to_owned();
        old.push(".old");
        let _ = std::fs::remove_file(old);
    }
}
