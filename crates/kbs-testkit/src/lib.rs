//! Test harness for kbs: real OpenSSH servers on loopback, client keys, known_hosts files, an
//! ssh-agent, local sudo users and a silent TCP listener.
//!
//! Everything lives in temp dirs and on 127.0.0.1 and is torn down on drop (child processes are
//! killed by handle). Nothing here talks to anything but loopback.
//!
//! ```no_run
//! use kbs_testkit::{ClientKey, KeyType, SshdFleet, SshdOptions, TempDir};
//!
//! let dir = TempDir::new().unwrap();
//! let key = ClientKey::generate(dir.path(), KeyType::Ed25519, None);
//! let fleet = SshdFleet::start(4, &SshdOptions::new().authorize(&key));
//! let known_hosts = dir.path().join("known_hosts");
//! fleet.write_known_hosts(&known_hosts, false);
//! for sshd in fleet.iter() {
//!     println!("sshd on 127.0.0.1:{}", sshd.port());
//! }
//! ```
//!
//! Tests that need root (sshd, users, sudo) call [`require_root`], which fails the test with a clear
//! message instead of skipping it.
//!
//! From another crate of the workspace, add it as a dev-dependency:
//! ```toml
//! [dev-dependencies]
//! kbs-testkit = { path = "../kbs-testkit" }
//! ```

mod agent;
mod keys;
mod known_hosts;
mod silent;
mod sshd;
mod users;

use std::path::Path;
use std::process::Command;

pub use agent::SshAgent;
pub use keys::{ClientKey, KeyType};
pub use known_hosts::{write_known_hosts, KnownHostsEntry};
pub use silent::SilentListener;
pub use sshd::{Sshd, SshdFleet, SshdOptions};
pub use tempfile::TempDir;
pub use users::{ensure_test_users, TestUsers};

/// Fail (not skip) unless running as root: sshd, test users and sudo need it.
pub fn require_root() {
    // `id -u` spares a libc dependency for one call.
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    assert_eq!(
        uid.as_deref().unwrap_or("?"),
        "0",
        "this test starts sshd and creates users: run it as root (e.g. in the CI container or with sudo -E cargo test)"
    );
}

/// Run a command, panicking with its stderr if it fails (testkit setup errors are test failures).
pub(crate) fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Read a file to a string, panicking with the path on error.
pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
