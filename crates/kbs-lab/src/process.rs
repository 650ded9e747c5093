//! Long-lived lab processes (host wrappers, the repository server): started detached in their own
//! cgroup, recorded by PID, stopped by that PID and then by the PIDs their cgroup lists. Never by name.

use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::cgroups;
use crate::cmd;
use crate::error::{Error, Result};

/// Joins the cgroups given in `KBS_LAB_CGROUPS`, then execs the program: the process is in its own
/// cgroup before it starts anything.
const JOIN_AND_EXEC: &str =
    r#"for d in $KBS_LAB_CGROUPS; do echo $$ > "$d/cgroup.procs" || exit 97; done; exec "$@""#;

/// Starts `argv` in the background in a new session and in the cgroup `name`, output appended to `log`.
/// Returns its PID. The process is a grandchild: the calling process never has to reap it.
pub fn spawn_detached(name: &str, argv: &[String], log: &Path) -> Result<i32> {
    let dirs = cgroups::create(name)?;
    let joined: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let out = cmd::run(
        &format!("starting {name}"),
        "check the log in /run/kbs-lab and run kbs-lab up again",
        Command::new("sh")
            .arg("-c")
            .arg(r#"setsid sh -c "$JOIN" sh "$@" </dev/null >>"$LOG" 2>&1 & echo $!"#)
            .arg("sh")
            .args(argv)
            .env("JOIN", JOIN_AND_EXEC)
            .env("LOG", log)
            .env("KBS_LAB_CGROUPS", joined.join(" ")),
    )?;
    out.trim().parse::<i32>().map_err(|e| {
        Error::new(
            format!("starting {name}"),
            format!("unexpected PID {out:?}: {e}"),
            "run kbs-lab down, then kbs-lab up again",
        )
    })
}

/// Whether `pid` names a live process (not a zombie).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Stops the process tree in cgroup `name`: SIGTERM to `pid` (if given and alive), up to `grace` for the
/// whole cgroup to empty, then SIGKILL to whatever the cgroup still lists.
pub fn stop(name: &str, pid: Option<i32>, grace: Duration) -> Result<()> {
    if let Some(pid) = pid.filter(|pid| *pid > 1 && alive(*pid) && cgroups::pids(name).contains(pid)) {
        // SAFETY: kill(2) with a PID we recorded and just found in our own cgroup.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && !cgroups::pids(name).is_empty() {
            sleep(Duration::from_millis(100));
        }
    }
    cgroups::kill_all(name, Duration::from_secs(10))
}
