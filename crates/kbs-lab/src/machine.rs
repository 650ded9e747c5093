//! One lab host: its overlay root, the files that make it itself (hostname, address, keys, apt source),
//! and the wrapper process that boots it with systemd-nspawn and boots it again after a guest `reboot`.

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cmd;
use crate::error::{Error, Result};
use crate::image::{mkdir, write};
use crate::paths::{self, BRIDGE, BRIDGE_ADDRESS, PREFIX_LEN};
use crate::process;

/// A lab host as the state file and the library's users see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// `host01` …
    pub name: String,
    pub address: Ipv4Addr,
}

impl Host {
    pub fn new(index: usize, count: usize) -> Host {
        Host {
            name: paths::host_name(index, count),
            address: paths::host_address(index),
        }
    }

    /// The merged overlay the guest runs on; the guest's files can be read and written through it.
    pub fn root(&self) -> PathBuf {
        paths::host_root(&self.name)
    }
}

/// What every guest gets besides its own identity.
pub struct GuestFiles<'a> {
    pub hosts: &'a [Host],
    /// `ssh-ed25519 AAAA… kbs-lab` for root's and kbs' authorized_keys.
    pub authorized_key: &'a str,
    /// The lab's public signing key, binary, for apt's `signed-by`.
    pub keyring: &'a [u8],
}

/// Mounts the host's overlay (lower = the base image) and writes its identity into it.
pub fn create(host: &Host, lower: &Path, files: &GuestFiles) -> Result<()> {
    let dir = paths::host_dir(&host.name);
    let (upper, work, root) = (dir.join("upper"), dir.join("work"), dir.join("root"));
    for d in [&upper, &work, &root] {
        mkdir(d)?;
    }
    cmd::run(
        &format!("mounting the overlay root of {}", host.name),
        "check that the kernel has overlayfs and /var/lib has free space; run kbs-lab down, then up again",
        Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                upper.display(),
                work.display()
            ))
            .arg(&root),
    )?;
    // Written through the merged view so the overlay copies up directories with their owners and modes.
    write(&root, "etc/hostname", &format!("{}\n", host.name), 0o644)?;
    write(&root, "etc/hosts", &etc_hosts(files.hosts), 0o644)?;
    write(
        &root,
        "etc/systemd/network/10-kbs-lab.network",
        &network_file(host),
        0o644,
    )?;
    write(&root, "root/.ssh/authorized_keys", files.authorized_key, 0o600)?;
    write(
        &root,
        "home/kbs/.ssh/authorized_keys",
        files.authorized_key,
        0o600,
    )?;
    let (uid, gid) = user_ids(&root, "kbs")?;
    for rel in ["home/kbs/.ssh", "home/kbs/.ssh/authorized_keys"] {
        let path = root.join(rel);
        chown(&path, Some(uid), Some(gid))
            .map_err(|e| Error::io("giving the kbs user its SSH files", &path, e))?;
    }
    let keyring = root.join(paths::GUEST_KEYRING.trim_start_matches('/'));
    if let Some(parent) = keyring.parent() {
        mkdir(parent)?;
    }
    fs::write(&keyring, files.keyring)
        .map_err(|e| Error::io("installing the lab key in a guest", &keyring, e))?;
    write(
        &root,
        "etc/apt/sources.list.d/kbs-lab-debian.list",
        &format!(
            "# kbs-lab: the Debian mirror of the lab (packages kbs installs that the image lacks)\n\
             deb [signed-by={}] http://{BRIDGE_ADDRESS}/debian bookworm main\n",
            paths::GUEST_KEYRING
        ),
        0o644,
    )?;
    write(
        &root,
        paths::GUEST_CLOCK_OFFSET.trim_start_matches('/'),
        "0\n",
        0o644,
    )?;
    Ok(())
}

/// `/etc/hosts`: localhost and every lab host, so names resolve without DNS.
fn etc_hosts(hosts: &[Host]) -> String {
    let mut text = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    text.push_str(&format!("{BRIDGE_ADDRESS}\tkbs-lab-repo\n"));
    for h in hosts {
        text.push_str(&format!("{}\t{}\n", h.address, h.name));
    }
    text
}

fn network_file(host: &Host) -> String {
    // No Gateway= and no DNS=: the guest reaches only the bridge (network rule).
    // IgnoreCarrierLoss keeps the address while a `cut` has the link down.
    format!(
        "[Match]\nName=host0\n\n[Network]\nAddress={}/{PREFIX_LEN}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n\
         ConfigureWithoutCarrier=yes\nIgnoreCarrierLoss=yes\n",
        host.address
    )
}

fn user_ids(root: &Path, user: &str) -> Result<(u32, u32)> {
    let path = root.join("etc/passwd");
    let text = fs::read_to_string(&path).map_err(|e| Error::io("reading the guest's users", &path, e))?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == user)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| {
            Error::new(
                "reading the guest's users",
                format!("no user {user} in {}", path.display()),
                "the base image is stale: remove /var/cache/kbs-lab/base-bookworm-* and run kbs-lab up again",
            )
        })
}

/// The wrapper: joins nothing itself (process.rs did), boots the guest, boots it again after a guest
/// `reboot` (nspawn exits 133), and on SIGTERM asks nspawn to shut the guest down.
fn wrapper_script(host: &Host) -> String {
    let root = host.root();
    format!(
        r#"#!/bin/sh
# kbs-lab: runs {name} until it powers off; a reboot inside the guest makes systemd-nspawn exit 133.
child=
trap 'if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; wait "$child"; fi; exit 0' TERM INT HUP
while :; do
    systemd-nspawn --boot -D {root} -M {name} --hostname={name} --network-bridge={BRIDGE} \
        --register=no --keep-unit --console=read-only &
    child=$!
    wait "$child"
    rc=$?
    [ "$rc" -eq 133 ] || exit "$rc"
    echo "kbs-lab: {name} rebooted; booting it again"
done
"#,
        name = host.name,
        root = root.display()
    )
}

pub fn log_file(name: &str) -> PathBuf {
    paths::run_dir().join("hosts").join(format!("{name}.log"))
}

/// Boots the host in the background; returns the wrapper's PID.
pub fn start(host: &Host) -> Result<i32> {
    let dir = paths::run_dir().join("hosts");
    mkdir(&dir)?;
    let script = dir.join(format!("{}.sh", host.name));
    let mut file =
        fs::File::create(&script).map_err(|e| Error::io("writing a host's wrapper", &script, e))?;
    file.write_all(wrapper_script(host).as_bytes())
        .map_err(|e| Error::io("writing a host's wrapper", &script, e))?;
    process::spawn_detached(
        &host.name,
        &["sh".to_string(), script.display().to_string()],
        &log_file(&host.name),
    )
}

/// Waits until the guest's sshd accepts connections; returns its ed25519 host key (`type base64`), read
/// from the guest's root, where `ssh-keygen -A` made it at boot.
pub fn wait_for_ssh(host: &Host, pid: i32, deadline: Instant) -> Result<String> {
    let addr = SocketAddr::from((host.address, 22));
    let key = host.root().join("etc/ssh/ssh_host_ed25519_key.pub");
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok() {
            if let Ok(text) = fs::read_to_string(&key) {
                let mut fields = text.split_whitespace();
                if let (Some(kind), Some(blob)) = (fields.next(), fields.next()) {
                    return Ok(format!("{kind} {blob}"));
                }
            }
        }
        if !process::alive(pid) {
            return Err(Error::new(
                format!("booting {}", host.name),
                format!(
                    "systemd-nspawn exited; its output is in {}",
                    log_file(&host.name).display()
                ),
                "read that log; run kbs-lab down, then kbs-lab up again",
            ));
        }
        if Instant::now() > deadline {
            return Err(Error::new(
                format!("waiting for SSH on {} ({addr})", host.name),
                "sshd did not answer in time",
                format!(
                    "read {} and `kbs-lab ssh {}`; on a loaded machine start fewer hosts",
                    log_file(&host.name).display(),
                    host.name
                ),
            ));
        }
        sleep(Duration::from_millis(200));
    }
}

/// Overlay mounts under the lab's host directory, deepest first (what a crash may have left mounted).
pub fn lab_mounts() -> Vec<PathBuf> {
    let hosts = paths::hosts_dir();
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .filter(|p| p.starts_with(&hosts))
        .collect();
    mounts.sort();
    mounts.dedup();
    mounts.reverse();
    mounts
}

fn unescape_mount_path(field: &str) -> PathBuf {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let mut out = Vec::new();
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            if let Ok(v) = u8::from_str_radix(&field[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(String::from_utf8_lossy(&out).into_owned())
}

pub fn unmount(path: &Path) -> Result<()> {
    let out = cmd::output(
        &format!("unmounting {}", path.display()),
        "",
        Command::new("umount").arg(path),
    )?;
    if out.status.success() {
        return Ok(());
    }
    // Something still holds it (a shell cd'ed into it): detach it now, the kernel frees it when released.
    cmd::run(
        &format!("unmounting {}", path.display()),
        "find what uses it with `fuser -vm PATH`, stop that, and run kbs-lab down again",
        Command::new("umount").arg("--lazy").arg(path),
    )?;
    Ok(())
}
