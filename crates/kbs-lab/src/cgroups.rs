//! One cgroup per lab process tree (`kbslab/hostNN`, `kbslab/serve`), so every guest is accounted and
//! removed on its own. On a hybrid cgroup v1 host it is created in the named `systemd` hierarchy (the
//! guest's systemd needs it), the `unified` one and `memory` (for the per-host figures); on a pure cgroup
//! v2 host in the single hierarchy. The process joins them itself before it execs (see `process.rs`).

use std::fs;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

const ROOT: &str = "/sys/fs/cgroup";
const PARENT: &str = "kbslab";

/// The hierarchies the lab uses on this machine.
fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    ["systemd", "unified", "memory"]
        .iter()
        .map(|h| root.join(h))
        .filter(|p| p.is_dir())
        .collect()
}

/// The directories of `name` in every hierarchy (they need not exist).
pub fn dirs(name: &str) -> Vec<PathBuf> {
    hierarchies()
        .into_iter()
        .map(|h| h.join(PARENT).join(name))
        .collect()
}

pub fn create(name: &str) -> Result<Vec<PathBuf>> {
    let dirs = dirs(name);
    if dirs.is_empty() {
        return Err(Error::new(
            format!("creating the cgroup of {name}"),
            format!("no cgroup hierarchy is mounted under {ROOT}"),
            "mount the cgroup file systems (cgroup2 on /sys/fs/cgroup/unified, systemd and memory v1 hierarchies)",
        ));
    }
    for dir in &dirs {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating the cgroup of {name}"), dir, e))?;
    }
    Ok(dirs)
}

/// Names of the lab's cgroups present in any hierarchy (what a crashed lab left behind).
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for h in hierarchies() {
        if let Ok(entries) = fs::read_dir(h.join(PARENT)) {
            for entry in entries.flatten() {
                if entry.path().is_dir() {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Every process in `name`'s cgroups, sub-cgroups included.
pub fn pids(name: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for dir in dirs(name) {
        collect_pids(&dir, &mut pids);
    }
    pids.sort();
    pids.dedup();
    pids
}

fn collect_pids(dir: &Path, pids: &mut Vec<i32>) {
    if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    for sub in subdirs(dir) {
        collect_pids(&sub, pids);
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILLs every process of the cgroup by the PIDs the kernel lists for it, until none is left.
pub fn kill_all(name: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let pids = pids(name);
        if pids.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::new(
                format!("stopping {name}"),
                format!("processes {pids:?} survive SIGKILL"),
                "they may be stuck in the kernel (D state); check `ps -o pid,stat,cmd -p PID` and retry kbs-lab down",
            ));
        }
        for pid in pids {
            // SAFETY: kill(2) with a PID the kernel listed in our own cgroup; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        sleep(Duration::from_millis(50));
    }
}

/// Removes the cgroup directories of `name`, deepest first (the guest's systemd makes sub-cgroups).
pub fn remove(name: &str) -> Result<()> {
    for dir in dirs(name) {
        remove_tree(&dir).map_err(|e| Error::io(format!("removing the cgroup of {name}"), &dir, e))?;
    }
    Ok(())
}

/// Removes the `kbslab` parents once no lab cgroup is left under them.
pub fn remove_parent() {
    for h in hierarchies() {
        let _ = fs::remove_dir(h.join(PARENT));
    }
}

fn remove_tree(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for sub in subdirs(dir) {
        remove_tree(&sub)?;
    }
    // A cgroup whose last process just exited can stay busy for a moment.
    let mut tries = 0;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) if tries < 40 => {
                tries += 1;
                sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Memory charged to `name` in bytes: `memory.usage_in_bytes` (v1) or `memory.current` (v2).
pub fn memory_usage(name: &str) -> Option<u64> {
    for dir in dirs(name) {
        for file in ["memory.usage_in_bytes", "memory.current"] {
            if let Ok(text) = fs::read_to_string(dir.join(file)) {
                if let Ok(bytes) = text.trim().parse() {
                    return Some(bytes);
                }
            }
        }
    }
    None
}
