//! The per-host run lock: two `kbs apply` runs must not work on one host at once (two apt-get
//! runs, two `kubeadm join`s). The lock is a directory, `/run/kbs.lock` (mkdir is atomic, and /run
//! is emptied at boot), holding who took it. Taking it rides along with the facts script, so it
//! costs no extra round trip; releasing it costs one at the end of the run.
//!
//! A lock left by a kbs that died is taken over when it names this machine and a PID that no
//! longer runs here; any other holder stops the host with a message naming it.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::transport::sh_quote;

pub const LOCK_DIR: &str = "/run/kbs.lock";

/// What the host said about its lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    Acquired,
    /// Held by the described owner.
    Held(String),
}

/// This run's identity as a lock owner.
#[derive(Debug, Clone)]
pub struct RunLock {
    pid: u32,
    machine: String,
    owner: String,
}

impl RunLock {
    pub fn new() -> Self {
        let pid = std::process::id();
        let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        RunLock::with(pid, machine, now.as_secs(), now.subsec_nanos())
    }

    fn with(pid: u32, machine: String, since: u64, nonce: u32) -> Self {
        let owner = format!("kbs pid={pid} machine={machine} since={since} run={nonce:08x}");
        RunLock { pid, machine, owner }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Prints `lock=acquired` or `lock=held OWNER`; appended to the facts script.
    pub fn acquire_snippet(&self) -> String {
        format!(
            "if mkdir {dir} 2>/dev/null; then printf '%s\\n' {owner} > {dir}/owner; echo lock=acquired; \
             else echo \"lock=held $(cat {dir}/owner 2>/dev/null)\"; fi\n",
            dir = LOCK_DIR,
            owner = sh_quote(&self.owner)
        )
    }

    /// Replaces a stale lock with ours.
    pub fn takeover_script(&self) -> String {
        format!("rm -rf {LOCK_DIR}\n{}", self.acquire_snippet())
    }

    /// Removes the lock only if it is still ours.
    pub fn release_script(&self) -> String {
        format!(
            "if [ \"$(cat {LOCK_DIR}/owner 2>/dev/null)\" = {} ]; then rm -rf {LOCK_DIR}; fi",
            sh_quote(&self.owner)
        )
    }

    pub fn parse(output: &str) -> Option<LockState> {
        let line = output.lines().rev().find_map(|l| l.strip_prefix("lock="))?;
        Some(if line.trim() == "acquired" {
            LockState::Acquired
        } else {
            LockState::Held(line.trim_start_matches("held").trim().to_string())
        })
    }

    /// A lock from a kbs on this machine whose process is gone.
    pub fn is_stale(&self, owner: &str) -> bool {
        let field = |key: &str| {
            owner
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key).map(str::to_string))
        };
        let (Some(machine), Some(pid)) = (
            field("machine="),
            field("pid=").and_then(|p| p.parse::<u32>().ok()),
        ) else {
            return false;
        };
        machine == self.machine && pid != self.pid && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    }
}

impl Default for RunLock {
    fn default() -> Self {
        RunLock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_acquired_and_held() {
        assert_eq!(
            RunLock::parse("os_id=x\nlock=acquired\n"),
            Some(LockState::Acquired)
        );
        assert_eq!(
            RunLock::parse("lock=held kbs pid=7 machine=m since=1 run=0\n"),
            Some(LockState::Held("kbs pid=7 machine=m since=1 run=0".into()))
        );
        assert_eq!(RunLock::parse("os_id=x\n"), None);
    }

    #[test]
    fn stale_only_for_a_dead_kbs_on_this_machine() {
        let me = RunLock::with(std::process::id(), "laptop".into(), 1, 2);
        // A PID far above pid_max cannot be running.
        assert!(me.is_stale("kbs pid=2147483000 machine=laptop since=1 run=0"));
        assert!(!me.is_stale("kbs pid=2147483000 machine=other since=1 run=0"));
        assert!(!me.is_stale(&format!(
            "kbs pid={} machine=laptop since=1 run=0",
            std::process::id()
        )));
        assert!(!me.is_stale("garbage"));
    }

    #[test]
    fn release_checks_the_owner() {
        let me = RunLock::with(12, "laptop".into(), 1, 2);
        assert_eq!(
            me.release_script(),
            "if [ \"$(cat /run/kbs.lock/owner 2>/dev/null)\" = 'kbs pid=12 machine=laptop since=1 run=00000002' ]; then rm -rf /run/kbs.lock; fi"
        );
    }
}
