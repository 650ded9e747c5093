//! The real machine's own packages: what the lab needs installed, installed when missing.
//!
//! apt runs with the lab's own source list and index directory (Debian's mirror only), so the host's other
//! apt sources are never contacted and its `/var/lib/apt/lists` is left alone. `systemd-container` is pinned
//! to the host's installed systemd version: an upgrade of the host's systemd would be pulled in otherwise.

use std::fs;
use std::process::Command;

use crate::cmd;
use crate::error::{Error, Result};
use crate::paths;

/// Packages the lab uses on the real machine.
pub const HOST_PACKAGES: &[&str] = &[
    "debootstrap",
    "systemd-container",
    "haproxy",
    "dpkg-dev",
    "gpg",
    "iptables",
    "iproute2",
    "openssh-client",
    "tar",
];

/// The suites the lab fetches from: the same ones a Debian 12 host has.
const SOURCES: &str = "deb http://deb.debian.org/debian bookworm main\n\
deb http://deb.debian.org/debian bookworm-updates main\n\
deb http://deb.debian.org/debian-security bookworm-security main\n";

/// apt-get options that confine apt to Debian's mirror and the lab's own index directory.
pub fn lab_apt_options() -> Result<Vec<String>> {
    let dir = paths::cache_dir().join("apt");
    let lists = dir.join("lists");
    let parts = dir.join("sources.list.d");
    fs::create_dir_all(lists.join("partial"))
        .map_err(|e| Error::io("preparing the lab's apt directory", &lists, e))?;
    fs::create_dir_all(&parts).map_err(|e| Error::io("preparing the lab's apt directory", &parts, e))?;
    let list = dir.join("sources.list");
    fs::write(&list, SOURCES).map_err(|e| Error::io("writing the lab's apt sources", &list, e))?;
    Ok(vec![
        "-o".into(),
        format!("Dir::Etc::SourceList={}", list.display()),
        "-o".into(),
        format!("Dir::Etc::SourceParts={}", parts.display()),
        "-o".into(),
        format!("Dir::State::Lists={}", lists.display()),
        "-o".into(),
        "APT::Get::List-Cleanup=0".into(),
    ])
}

/// Refreshes the lab's apt indices from Debian's mirror, once per process.
pub fn apt_update() -> Result<()> {
    static DONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    if DONE.get().is_some() {
        return Ok(());
    }
    tracing::info!("refreshing the package lists from deb.debian.org (apt-get update)");
    cmd::run(
        "apt-get update (Debian's mirror)",
        "check that http://deb.debian.org is reachable and /var has free space",
        Command::new("apt-get").args(lab_apt_options()?).arg("update"),
    )?;
    let _ = DONE.set(());
    Ok(())
}

/// The installed version of `package`, if it is installed.
pub fn installed_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status} ${Version}", package])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.strip_prefix("installed ")?;
    Some(version.trim().to_string())
}

/// Installs whichever of [`HOST_PACKAGES`] are missing, saying so. Returns the packages installed.
pub fn ensure_host_packages() -> Result<Vec<String>> {
    let missing: Vec<&str> = HOST_PACKAGES
        .iter()
        .copied()
        .filter(|package| installed_version(package).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let systemd = installed_version("systemd").ok_or_else(|| {
        Error::new(
            "checking the host's systemd",
            "the systemd package is not installed",
            "the lab needs a Debian 12 host with the systemd package installed",
        )
    })?;
    tracing::info!("installing missing host packages: {}", missing.join(" "));
    apt_update()?;
    let mut specs: Vec<String> = Vec::new();
    for package in &missing {
        if *package == "systemd-container" {
            // Same version as the host's systemd, or apt would upgrade systemd itself.
            specs.push(format!("systemd-container={systemd}"));
        } else {
            specs.push(package.to_string());
        }
    }
    cmd::run(
        "installing the lab's host packages",
        &format!(
            "install them by hand (apt-get install {}) and run kbs-lab up again",
            specs.join(" ")
        ),
        Command::new("apt-get")
            .args(lab_apt_options()?)
            .args(["install", "-y", "--no-install-recommends"])
            .args(&specs)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(missing.iter().map(|p| p.to_string()).collect())
}
