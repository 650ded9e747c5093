//! The engine's view of a host: run a script, write a file. [`SshTransport`] maps it onto one
//! `kbs_ssh::Connection`; tests use [`crate::testing::FakeTransport`], which records scripts and
//! answers with canned outputs, so no module ever runs against the developer's own machine.
//!
//! [`Remote`] wraps a transport and counts round trips (every exec and upload is one), which the
//! summary reports for benchmarks.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use kbs_ssh::{Command, Connection, Owner, Privilege};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A POSIX sh script to run on the host. The text shows up in process lists and debug logs:
/// secrets go on `stdin` only.
#[derive(Debug, Clone)]
pub struct Script {
    pub text: String,
    pub stdin: Option<Vec<u8>>,
    /// Run as root (sudo unless logged in as root). Host preparation needs it for nearly everything.
    pub privileged: bool,
}

impl Script {
    /// A privileged script without stdin.
    pub fn root(text: impl Into<String>) -> Self {
        Script {
            text: text.into(),
            stdin: None,
            privileged: true,
        }
    }
}

/// How a script ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecResult {
    /// `None` when killed by a signal.
    pub code: Option<u32>,
    pub stdout: String,
    pub stderr: String,
}

impl ExecResult {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last lines of stderr (or stdout when stderr is empty): what a person needs to see.
    pub fn tail(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let lines: Vec<&str> = text.trim_end().lines().collect();
        let start = lines.len().saturating_sub(8);
        lines[start..].join("\n")
    }
}

/// A file to write atomically (temp file in the same directory, then rename).
#[derive(Clone)]
pub struct Upload {
    pub path: String,
    pub contents: Vec<u8>,
    pub mode: u32,
    pub owner: Option<(String, String)>,
}

impl std::fmt::Debug for Upload {
    // Contents may be a secret: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("path", &self.path)
            .field("bytes", &self.contents.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .field("owner", &self.owner)
            .finish()
    }
}

/// The connection failed or refused (not a non-zero exit, which is an [`ExecResult`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    pub message: String,
    pub hint: Option<String>,
}

/// What the engine needs from a host connection.
pub trait Transport: Send + Sync {
    fn exec<'a>(&'a self, script: &'a Script) -> BoxFuture<'a, Result<ExecResult, TransportError>>;
    fn upload<'a>(&'a self, file: &'a Upload) -> BoxFuture<'a, Result<(), TransportError>>;
}

/// [`Transport`] over a shared kbs-ssh connection, escalating with `privilege` for privileged scripts.
pub struct SshTransport {
    conn: Arc<Connection>,
    privilege: Privilege,
}

impl SshTransport {
    pub fn new(conn: Arc<Connection>, privilege: Privilege) -> Self {
        SshTransport { conn, privilege }
    }
}

fn ssh_error(e: kbs_ssh::Error) -> TransportError {
    let hint = match &e {
        kbs_ssh::Error::SudoPasswordRequired { .. } => {
            Some("give the sudo password (--ask-become-pass) or allow NOPASSWD sudo for this user".into())
        }
        kbs_ssh::Error::SudoWrongPassword { .. } => Some("check the sudo password".into()),
        _ if e.is_retryable() => Some("check that the host is up and reachable, then re-run kbs".into()),
        _ => None,
    };
    TransportError {
        message: e.to_string(),
        hint,
    }
}

impl Transport for SshTransport {
    fn exec<'a>(&'a self, script: &'a Script) -> BoxFuture<'a, Result<ExecResult, TransportError>> {
        Box::pin(async move {
            let privilege = if script.privileged {
                self.privilege.clone()
            } else {
                Privilege::None
            };
            let out = self
                .conn
                .exec(&Command {
                    script: script.text.clone(),
                    stdin: script.stdin.clone(),
                    privilege,
                })
                .await
                .map_err(ssh_error)?;
            Ok(ExecResult {
                code: out.status.code,
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        })
    }

    fn upload<'a>(&'a self, file: &'a Upload) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            let owner = file.owner.as_ref().map(|(u, g)| Owner::new(u, g));
            self.conn
                .upload(
                    &file.contents,
                    &file.path,
                    file.mode,
                    owner.as_ref(),
                    &self.privilege,
                )
                .await
                .map_err(ssh_error)
        })
    }
}

/// A host kbs could not connect to: every call fails with the connection error, so the engine
/// reports it like any other host failure (at "gather facts") and the other hosts go on.
pub struct Unreachable(pub TransportError);

impl Transport for Unreachable {
    fn exec<'a>(&'a self, _script: &'a Script) -> BoxFuture<'a, Result<ExecResult, TransportError>> {
        Box::pin(async move { Err(self.0.clone()) })
    }

    fn upload<'a>(&'a self, _file: &'a Upload) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move { Err(self.0.clone()) })
    }
}

impl From<kbs_ssh::Error> for Unreachable {
    fn from(e: kbs_ssh::Error) -> Self {
        Unreachable(ssh_error(e))
    }
}

/// A host's transport plus its round-trip counter.
pub struct Remote {
    transport: Arc<dyn Transport>,
    round_trips: AtomicU32,
}

impl Remote {
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Remote {
            transport,
            round_trips: AtomicU32::new(0),
        }
    }

    pub async fn exec(&self, script: &Script) -> Result<ExecResult, TransportError> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        self.transport.exec(script).await
    }

    pub async fn upload(&self, file: &Upload) -> Result<(), TransportError> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        self.transport.upload(file).await
    }

    pub fn round_trips(&self) -> u32 {
        self.round_trips.load(Ordering::Relaxed)
    }
}

/// Quote a string as one POSIX sh word.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_words_and_escapes_the_rest() {
        assert_eq!(sh_quote("/etc/fstab"), "/etc/fstab");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
        assert_eq!(sh_quote(""), "''");
    }

    #[test]
    fn tail_prefers_stderr_and_keeps_the_last_lines() {
        let r = ExecResult {
            code: Some(1),
            stdout: "out".into(),
            stderr: (1..=20).map(|i| format!("line {i}\n")).collect(),
        };
        assert!(r.tail().starts_with("line 13"));
        assert!(r.tail().ends_with("line 20"));
    }
}
