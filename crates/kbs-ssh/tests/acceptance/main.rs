//! Acceptance tests of the transport against real OpenSSH servers on loopback (see kbs-testkit).
//! They need root (sshd, test users, sudo) and fail, not skip, without it.

mod auth;
mod bastion;
mod exec;
mod host_keys;
mod sudo;
mod timeouts;
mod upload;

use std::path::PathBuf;
use std::time::Duration;

use kbs_ssh::{ConnectOptions, Connection, Target};
use kbs_testkit::{ClientKey, KeyType, Sshd, SshdOptions, TempDir};

/// Held by the load-heavy test (100 servers) and by tests that assert on elapsed time, so the
/// former cannot starve the latter on a 2-core machine.
pub static TIMING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One server, one authorized ed25519 key, a known_hosts file trusting the server.
pub struct Env {
    pub dir: TempDir,
    pub key: ClientKey,
    pub sshd: Sshd,
    pub known_hosts: PathBuf,
}

#[allow(clippy::new_without_default)] // starts an sshd: not a "default" value
impl Env {
    pub fn new() -> Env {
        Env::with(|o| o)
    }
}

impl Env {
    /// Like `new`, with sshd options adjusted by `f`.
    pub fn with(f: impl FnOnce(SshdOptions) -> SshdOptions) -> Env {
        let dir = TempDir::new().unwrap();
        let key = ClientKey::generate(dir.path(), KeyType::Ed25519, None);
        let sshd = Sshd::start(&f(SshdOptions::new().authorize(&key)));
        let known_hosts = dir.path().join("known_hosts");
        kbs_testkit::write_known_hosts(&known_hosts, &[sshd.known_hosts_entry()], false);
        Env {
            dir,
            key,
            sshd,
            known_hosts,
        }
    }

    pub fn target(&self, user: &str) -> Target {
        target_for(&self.sshd, user, &self.key)
    }

    pub fn opts(&self) -> ConnectOptions {
        opts(&self.known_hosts)
    }

    pub async fn connect(&self, user: &str) -> Connection {
        Connection::connect(&self.target(user), &self.opts())
            .await
            .unwrap_or_else(|e| panic!("connect as {user}: {e}\nsshd log:\n{}", self.sshd.log()))
    }
}

pub fn target_for(sshd: &Sshd, user: &str, key: &ClientKey) -> Target {
    let mut t = Target::new(format!("host-{}", sshd.port()), sshd.host(), user);
    t.port = sshd.port();
    t.identity_files = vec![key.path.clone()];
    t.use_agent = false;
    t
}

pub fn opts(known_hosts: &std::path::Path) -> ConnectOptions {
    let mut o = ConnectOptions::new();
    o.known_hosts = vec![known_hosts.to_path_buf()];
    o.connect_timeout = Duration::from_secs(10);
    o.retries = 0;
    o
}
