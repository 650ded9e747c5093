//! The real machine's inotify limits. Every guest's systemd, journald, networkd and logind take inotify
//! instances from the same per-user budget (all guests are uid 0 of the host), and the default of 128
//! runs out at about 20 hosts: guests then fail to boot with "Failed to create inotify object". `up` raises
//! the limits for the size asked, records the old values under /run/kbs-lab, and `down` puts them back.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::paths;

/// (sysctl file, value needed per host, floor regardless of lab size)
const LIMITS: &[(&str, u64, u64)] = &[
    ("/proc/sys/fs/inotify/max_user_instances", 16, 512),
    ("/proc/sys/fs/inotify/max_user_watches", 4096, 65_536),
];

fn saved_file() -> PathBuf {
    paths::run_dir().join("host-limits")
}

fn read(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Raises the limits that are too low for `hosts` guests; returns what was changed as `(file, old, new)`.
pub fn raise(hosts: usize) -> Result<Vec<(String, u64, u64)>> {
    let mut changed = Vec::new();
    let mut saved = String::new();
    for (file, per_host, floor) in LIMITS {
        let path = Path::new(file);
        let Some(current) = read(path) else { continue };
        let wanted = (per_host * hosts as u64).max(*floor);
        if current >= wanted {
            continue;
        }
        fs::write(path, wanted.to_string()).map_err(|e| {
            Error::new(
                format!("raising {file} for {hosts} hosts"),
                e,
                format!(
                    "set it by hand (sysctl -w {}={wanted}) or start fewer hosts",
                    sysctl_name(file)
                ),
            )
        })?;
        saved.push_str(&format!("{file} {current}\n"));
        changed.push((sysctl_name(file), current, wanted));
    }
    if !saved.is_empty() {
        let path = saved_file();
        fs::create_dir_all(paths::run_dir()).map_err(|e| Error::io("recording the host limits", &path, e))?;
        fs::write(&path, saved).map_err(|e| Error::io("recording the host limits", &path, e))?;
    }
    Ok(changed)
}

/// Puts back the limits `raise` changed (called by teardown, before the runtime directory goes).
pub fn restore() {
    let Ok(text) = fs::read_to_string(saved_file()) else {
        return;
    };
    for line in text.lines() {
        if let Some((file, value)) = line.split_once(' ') {
            if LIMITS.iter().any(|(known, _, _)| *known == file) {
                let _ = fs::write(file, value);
            }
        }
    }
    let _ = fs::remove_file(saved_file());
}

fn sysctl_name(file: &str) -> String {
    file.trim_start_matches("/proc/sys/").replace('/', ".")
}
