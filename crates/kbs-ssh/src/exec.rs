//! Running commands: one session channel per command, multiplexed on the host's connection.
//!
//! Stdin is written while output is read (two halves of the channel driven together), so a command
//! that echoes a large input never deadlocks on SSH flow control. The channel is read until it
//! closes, because the exit status may arrive after EOF.

use std::fmt;
use std::time::Duration;

use russh::ChannelMsg;
use tracing::debug;

use crate::sudo::{self, Privilege};
use crate::{Connection, Error};

/// A shell script to run on the host (POSIX `sh -c`), with optional stdin and privilege.
#[derive(Debug, Clone, Default)]
pub struct Command {
    /// Script text. It appears in the remote process list and in debug logs: never put secrets in
    /// it; pass them on `stdin`.
    pub script: String,
    /// Bytes for the command's standard input (never logged).
    pub stdin: Option<Vec<u8>>,
    pub privilege: Privilege,
}

impl Command {
    /// A script run as the login user with no stdin.
    pub fn new(script: impl Into<String>) -> Self {
        Command {
            script: script.into(),
            ..Default::default()
        }
    }

    /// Feed `stdin` to the command.
    pub fn stdin(mut self, stdin: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(stdin.into());
        self
    }

    /// Run with this privilege.
    pub fn privilege(mut self, privilege: Privilege) -> Self {
        self.privilege = privilege;
        self
    }
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code, if the command exited normally.
    pub code: Option<u32>,
    /// Signal name, if it was killed by one.
    pub signal: Option<String>,
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.code, &self.signal) {
            (Some(c), _) => write!(f, "exit status {c}"),
            (None, Some(s)) => write!(f, "signal {s}"),
            (None, None) => f.write_str("no exit status"),
        }
    }
}

/// Everything a finished command produced.
#[derive(Debug, Clone)]
pub struct Output {
    /// The host's name, for error messages.
    pub host: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    /// `Ok(self)` if the command exited 0, otherwise [`Error::CommandFailed`] with the end of stderr.
    pub fn checked(self) -> Result<Output, Error> {
        if self.status.success() {
            return Ok(self);
        }
        let text = String::from_utf8_lossy(&self.stderr);
        let tail: String = text
            .trim_end()
            .chars()
            .rev()
            .take(2000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(Error::CommandFailed {
            host: self.host,
            status: self.status,
            stderr: tail,
        })
    }

    /// Stdout as text (lossy UTF-8).
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A piece of output as it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'a> {
    Stdout(&'a [u8]),
    Stderr(&'a [u8]),
}

/// How much of stderr's start is kept to recognise sudo's failure marker.
const STDERR_HEAD: usize = 4096;

impl Connection {
    /// Open a session channel, riding out the server's brief refusals. sshd frees a session slot
    /// only at the end of its event-loop pass, so a channel opened right after another closed can
    /// be refused for `MaxSessions` even though our count is below it; a server configured with a
    /// lower `MaxSessions` than [`crate::ConnectOptions::max_channels`] refuses the same way.
    async fn open_session_channel(&self) -> Result<russh::Channel<russh::client::Msg>, Error> {
        let mut delay = Duration::from_millis(10);
        let mut refusals = 0;
        loop {
            match self.handle.channel_open_session().await {
                Ok(channel) => return Ok(channel),
                Err(russh::Error::ChannelOpenFailure(
                    russh::ChannelOpenFailure::ConnectFailed | russh::ChannelOpenFailure::ResourceShortage,
                )) if refusals < 9 => {
                    refusals += 1;
                    debug!(host = %self.name, refusals, "server refused a channel, retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    return Err(self.session_error(
                        "opening a channel",
                        format!("{e}; if the server's MaxSessions is low, lower the per-host channel limit"),
                    ))
                }
            }
        }
    }

    /// Run a command and collect its output. A non-zero exit is not an error here (see
    /// [`Output::checked`]); sudo failures and broken connections are.
    pub async fn exec(&self, command: &Command) -> Result<Output, Error> {
        self.collect(&command.script, command.stdin.as_deref(), &command.privilege)
            .await
    }

    /// `exec` with borrowed stdin, so uploads are not copied (nor left in an unzeroed copy).
    pub(crate) async fn collect(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
        privilege: &Privilege,
    ) -> Result<Output, Error> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let status = self
            .run(script, stdin, privilege, |chunk| match chunk {
                Chunk::Stdout(d) => stdout.extend_from_slice(d),
                Chunk::Stderr(d) => stderr.extend_from_slice(d),
            })
            .await?;
        Ok(Output {
            host: self.name.clone(),
            status,
            stdout,
            stderr,
        })
    }

    /// Run a command, handing each output chunk to `on_chunk` as it arrives; returns the exit status.
    pub async fn exec_streaming(
        &self,
        command: &Command,
        on_chunk: impl FnMut(Chunk<'_>) + Send,
    ) -> Result<ExitStatus, Error> {
        self.run(
            &command.script,
            command.stdin.as_deref(),
            &command.privilege,
            on_chunk,
        )
        .await
    }

    /// The one exec path: open a channel, start the (sudo-wrapped) script, feed stdin, read to close.
    async fn run(
        &self,
        script: &str,
        stdin: Option<&[u8]>,
        privilege: &Privilege,
        mut on_chunk: impl FnMut(Chunk<'_>) + Send,
    ) -> Result<ExitStatus, Error> {
        // Closed only when the runtime shuts down; then the session is gone too.
        let _permit = self
            .channels
            .acquire()
            .await
            .map_err(|e| self.session_error("waiting for a free channel", e))?;
        let channel = self.open_session_channel().await?;
        // Logged in as root, sudo adds nothing (and minimal images may not even have it).
        let privilege = if self.user == "root" {
            &Privilege::None
        } else {
            privilege
        };
        let (line, prefix) = sudo::wrap(script, privilege);
        let sudo = !matches!(privilege, Privilege::None);
        let started = std::time::Instant::now();
        debug!(host = %self.name, sudo, %script, "exec");
        channel
            .exec(true, line)
            .await
            .map_err(|e| self.session_error("starting a command", e))?;
        let (mut read, write) = channel.split();

        let writer = async move {
            if let Some(p) = &prefix {
                write.data(&p[..]).await?;
            }
            if let Some(input) = stdin {
                write.data(input).await?;
            }
            write.eof().await
        };

        let reader = async {
            let mut code = None;
            let mut signal = None;
            let mut refused = false;
            let mut head: Vec<u8> = Vec::new();
            let mut seen_stderr = false;
            let mut swallow_stderr = false;
            while let Some(msg) = read.wait().await {
                match msg {
                    ChannelMsg::Data { data } => on_chunk(Chunk::Stdout(&data)),
                    ChannelMsg::ExtendedData { data, ext: 1 } => {
                        if head.len() < STDERR_HEAD {
                            let take = (STDERR_HEAD - head.len()).min(data.len());
                            head.extend_from_slice(&data[..take]);
                        }
                        // The wrapper's marker is kbs-internal; callers get the typed error instead.
                        if sudo && !seen_stderr && data.starts_with(sudo::MARKER.as_bytes()) {
                            swallow_stderr = true;
                        }
                        seen_stderr = true;
                        if !swallow_stderr {
                            on_chunk(Chunk::Stderr(&data));
                        }
                    }
                    ChannelMsg::ExitStatus { exit_status } => code = Some(exit_status),
                    ChannelMsg::ExitSignal { signal_name, .. } => signal = Some(format!("{signal_name:?}")),
                    ChannelMsg::Failure => {
                        // The server will not close a channel whose exec it refused.
                        refused = true;
                        break;
                    }
                    _ => {}
                }
            }
            (code, signal, refused, head)
        };

        // Drive both; once the channel is closed the writer is abandoned: a command that exits
        // without reading all its stdin would otherwise leave it waiting for window space forever.
        let mut writer = std::pin::pin!(writer);
        let mut reader = std::pin::pin!(reader);
        let mut writing = true;
        let (code, signal, refused, head) = loop {
            tokio::select! {
                written = &mut writer, if writing => {
                    writing = false;
                    if let Err(e) = written {
                        debug!(host = %self.name, "stdin not fully sent: {e}");
                    }
                }
                done = &mut reader => break done,
            }
        };
        if refused {
            return Err(self.session_error("starting a command", "the server refused to run it"));
        }
        let status = ExitStatus { code, signal };
        if status.code.is_none() && status.signal.is_none() {
            return Err(self.session_error(
                "running a command",
                "the channel closed without an exit status (connection lost?)",
            ));
        }
        if sudo && status.code == Some(125) {
            if let Some(e) = sudo::classify(&head, &self.name, &self.user, privilege) {
                return Err(e);
            }
        }
        debug!(host = %self.name, %status, elapsed_ms = started.elapsed().as_millis() as u64, "exec done");
        Ok(status)
    }
}
