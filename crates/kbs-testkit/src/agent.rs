//! A private ssh-agent (`ssh-agent -D -a SOCK`) holding chosen keys.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{run, ClientKey};

/// A running ssh-agent; killed on drop.
pub struct SshAgent {
    _dir: TempDir,
    socket: PathBuf,
    child: Child,
}

impl SshAgent {
    pub fn start() -> SshAgent {
        let dir = TempDir::new().expect("temp dir for ssh-agent");
        let socket = dir.path().join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ssh-agent");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "ssh-agent did not create {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        SshAgent {
            _dir: dir,
            socket,
            child,
        }
    }

    /// The value for `SSH_AUTH_SOCK`.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Load an unencrypted key into the agent.
    pub fn add(&self, key: &ClientKey) {
        run(Command::new("ssh-add")
            .arg("-q")
            .arg(&key.path)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stdin(Stdio::null()));
    }
}

impl Drop for SshAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
