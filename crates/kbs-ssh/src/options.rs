//! What to connect to ([`Target`]) and how ([`ConnectOptions`]).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;

use crate::Secret;

/// One SSH endpoint: a cluster host or a bastion.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Name used in messages (the inventory host name).
    pub name: String,
    /// Address or DNS name to connect to; also the name looked up in known_hosts.
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Private key files to try after the agent's keys. Empty means OpenSSH's defaults
    /// (`~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`, those that exist).
    pub identity_files: Vec<PathBuf>,
    /// Try the keys of the ssh-agent at `SSH_AUTH_SOCK` first.
    pub use_agent: bool,
    /// Jump host to reach this target through (ProxyJump).
    pub bastion: Option<Box<Target>>,
}

impl Target {
    /// A target with port 22, agent enabled, default key files and no bastion.
    pub fn new(name: impl Into<String>, host: impl Into<String>, user: impl Into<String>) -> Self {
        Target {
            name: name.into(),
            host: host.into(),
            port: 22,
            user: user.into(),
            identity_files: Vec::new(),
            use_agent: true,
            bastion: None,
        }
    }

    /// `host` or `host:port` as shown in messages.
    pub(crate) fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Asks the user for a key passphrase (the CLI implements it with a TTY prompt).
///
/// Called at most once per key file and run; return `None` to skip the key.
pub trait PassphrasePrompt: Send + Sync {
    fn passphrase(&self, key_file: &Path) -> Option<Secret>;
}

/// How to connect. Clone it freely: clones share the decrypted-key cache, so an encrypted key is
/// unlocked (and its passphrase asked for) once per run, not once per host, and the bastion
/// sessions, so all hosts behind one bastion tunnel through a single connection to it.
#[derive(Clone)]
pub struct ConnectOptions {
    /// Bound on TCP connect plus SSH handshake, per attempt.
    pub connect_timeout: Duration,
    /// SSH keepalive interval; the session drops after 3 unanswered keepalives.
    pub keepalive_interval: Option<Duration>,
    /// Extra attempts after a connection failure (never after an auth or host-key failure),
    /// with exponential backoff starting at [`ConnectOptions::retry_backoff`].
    pub retries: u32,
    /// First retry delay; doubled for each further attempt.
    pub retry_backoff: Duration,
    /// known_hosts files to check, in order; new keys are learned into the first.
    pub known_hosts: Vec<PathBuf>,
    /// Learn unknown host keys (OpenSSH `StrictHostKeyChecking=accept-new`). Changed keys are still refused.
    pub accept_new_host_keys: bool,
    /// Passphrase for encrypted key files. When `None`, `KBS_KEY_PASSPHRASE` is read, then `prompt` asked.
    pub key_passphrase: Option<Secret>,
    /// Interactive passphrase prompt, if the caller has a TTY.
    pub prompt: Option<Arc<dyn PassphrasePrompt>>,
    /// Most session channels open at once on one connection. OpenSSH's `MaxSessions` defaults to 10;
    /// beyond it the server refuses channels, so concurrent execs queue here instead.
    pub max_channels: usize,
    pub(crate) keys: KeyCache,
    pub(crate) bastions: crate::bastion::BastionPool,
}

impl ConnectOptions {
    /// Defaults: 10 s connect timeout, 15 s keepalive, 2 retries from 500 ms (an unreachable host
    /// thus fails after about 3 × 10 s + 1.5 s), `~/.ssh/known_hosts` then
    /// `/etc/ssh/ssh_known_hosts`, unknown host keys refused, 8 channels per connection.
    pub fn new() -> Self {
        // Like OpenSSH: the user's file (where new keys are learned), then the system-wide one.
        let mut known_hosts: Vec<PathBuf> = home_dir()
            .map(|h| vec![h.join(".ssh").join("known_hosts")])
            .unwrap_or_default();
        known_hosts.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
        ConnectOptions {
            connect_timeout: Duration::from_secs(10),
            keepalive_interval: Some(Duration::from_secs(15)),
            retries: 2,
            retry_backoff: Duration::from_millis(500),
            known_hosts,
            accept_new_host_keys: false,
            key_passphrase: None,
            prompt: None,
            max_channels: 8,
            keys: KeyCache::default(),
            bastions: Default::default(),
        }
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("retries", &self.retries)
            .field("retry_backoff", &self.retry_backoff)
            .field("known_hosts", &self.known_hosts)
            .field("accept_new_host_keys", &self.accept_new_host_keys)
            .field("key_passphrase", &self.key_passphrase)
            .field("prompt", &self.prompt.as_ref().map(|_| "<prompt>"))
            .field("max_channels", &self.max_channels)
            .finish()
    }
}

/// The result of loading one key file: the key, `None` for an absent default key file, or why it
/// cannot be used.
pub(crate) type KeyOutcome = Result<Option<Arc<PrivateKey>>, String>;

/// Loaded private keys by file, shared by clones of one [`ConnectOptions`].
#[derive(Clone, Default)]
pub(crate) struct KeyCache(pub(crate) Arc<tokio::sync::Mutex<HashMap<PathBuf, KeyOutcome>>>);

pub(crate) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}
