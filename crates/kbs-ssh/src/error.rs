//! The one error type of the crate.
//!
//! Every variant names the host (the inventory name), says what failed and what the user can do about
//! it, because these messages end up verbatim in the CLI's per-host summary. None of them carries a
//! secret: passwords, passphrases and stdin contents never reach an error.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong talking to a host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// TCP connect or the SSH handshake failed before authentication (retried by `connect`).
    #[error("cannot connect to {host} ({addr}): {reason}; check that the host is up, the address and port are right and sshd is running")]
    Connect {
        host: String,
        addr: String,
        reason: String,
    },

    /// TCP connect plus SSH handshake did not finish in time (retried by `connect`).
    #[error("connecting to {host} ({addr}) timed out after {timeout:?}; check that the host is up and no firewall drops SSH, or raise the connect timeout")]
    ConnectTimeout {
        host: String,
        addr: String,
        timeout: Duration,
    },

    /// The bastion in front of the host could not be reached or logged into.
    #[error("cannot reach {host} through bastion {bastion}: {reason}")]
    Bastion {
        host: String,
        bastion: String,
        reason: String,
    },

    /// The server's host key is in no known_hosts file.
    /// `key` is the offered key's type and SHA-256 fingerprint (`ssh-ed25519 SHA256:...`).
    #[error("host key of {host} ({lookup}) is unknown: {key} is not in {files}; verify the fingerprint, then re-run with --accept-new-host-keys or add the key to known_hosts")]
    UnknownHostKey {
        host: String,
        lookup: String,
        key: String,
        files: String,
    },

    /// The server's host key differs from the recorded one: possible man-in-the-middle. Never bypassed.
    #[error("HOST KEY OF {host} ({lookup}) HAS CHANGED: the server offers {key}, but {file}:{line} records a different key; if the host was really reinstalled, remove that line and verify the new key; otherwise someone may be intercepting the connection")]
    HostKeyChanged {
        host: String,
        lookup: String,
        key: String,
        file: PathBuf,
        line: usize,
    },

    /// The key is marked `@revoked` in known_hosts.
    #[error("host key of {host} ({lookup}) {key} is marked @revoked at {file}:{line}; do not connect until the host has a new key")]
    HostKeyRevoked {
        host: String,
        lookup: String,
        key: String,
        file: PathBuf,
        line: usize,
    },

    /// A known_hosts file could not be read or written.
    #[error("known_hosts file {file} for {host}: {reason}")]
    KnownHosts {
        host: String,
        file: PathBuf,
        reason: String,
    },

    /// No offered key was accepted.
    #[error("authentication as {user}@{host} failed; tried: {tried}; the server accepts: {server_accepts}; add one of these public keys to ~{user}/.ssh/authorized_keys on the host, load the right key into ssh-agent, or point identity_file at it")]
    AuthFailed {
        host: String,
        user: String,
        tried: String,
        server_accepts: String,
    },

    /// A private key file could not be loaded.
    #[error("cannot use key {path} for {host}: {reason}")]
    Key {
        host: String,
        path: PathBuf,
        reason: String,
    },

    /// An established connection failed (channel open, exec, transfer).
    #[error("SSH session to {host} failed while {during}: {reason}; the connection may have dropped, re-run to retry")]
    Session {
        host: String,
        during: String,
        reason: String,
    },

    /// `sudo -n` was used but sudo wants a password.
    #[error("sudo on {host} needs a password for {user}; re-run with --ask-become-pass, or give {user} NOPASSWD sudo")]
    SudoPasswordRequired { host: String, user: String },

    /// The password given for sudo was rejected.
    #[error("sudo on {host} refused the password given with --ask-become-pass for {user}; check the password and re-run")]
    SudoWrongPassword { host: String, user: String },

    /// sudo refused for another reason (user not in sudoers, ...).
    #[error("sudo on {host} refused {user}: {message}; give {user} sudo rights or connect as another user")]
    SudoDenied {
        host: String,
        user: String,
        message: String,
    },

    /// A command exited non-zero (only from [`crate::Output::checked`]).
    #[error("command on {host} failed with {status}: {stderr}")]
    CommandFailed {
        host: String,
        status: crate::ExitStatus,
        stderr: String,
    },

    /// An upload could not be written.
    #[error("upload of {path} to {host} failed: {reason}")]
    Upload {
        host: String,
        path: String,
        reason: String,
    },

    /// Input given to this crate is unusable (empty host, bad path, ...).
    #[error("{host}: {reason}")]
    InvalidInput { host: String, reason: String },

    /// The ssh_config file could not be read or parsed.
    #[error("ssh config {path}: {reason}")]
    SshConfig { path: PathBuf, reason: String },
}

impl Error {
    /// Whether retrying the connection may help: only network-level failures before authentication.
    /// Auth and host-key failures are never retried: a retry cannot fix them and would only hammer
    /// the server (or, for host keys, hide an attack).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Connect { .. } | Error::ConnectTimeout { .. })
    }
}
