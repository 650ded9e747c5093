//! The base image every host boots from: Debian bookworm by debootstrap, prepared once for life in an
//! nspawn container on this kernel, cached as a tarball and kept extracted as the overlays' lower layer.
//!
//! Two cache levels, so that changing the preparation does not cost a new debootstrap:
//! `debootstrap-bookworm.tar` (raw, about 1 minute to make) and
//! `base-bookworm-v{PREP_VERSION}-{kernel}.tar` (prepared; the kernel matters for `modules.builtin`).
//! The extracted lower layer sits next to the tarball with a `.ready` stamp written last.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd;
use crate::error::{Error, Result};
use crate::paths;

/// Bump when [`prepare`] changes, so cached prepared images are rebuilt.
pub const PREP_VERSION: u32 = 2;

const INCLUDE: &str =
    "openssh-server,sudo,iproute2,systemd,systemd-sysv,dbus,kmod,procps,ca-certificates,curl,gnupg";
const MIRROR: &str = "http://deb.debian.org/debian";

/// Built-in kernel modules as `modprobe` expects them in `modules.builtin`: the kernel has no loadable
/// modules, and these are the ones Kubernetes hosts load (overlay, br_netfilter …). ip_vs and iscsi are
/// absent from this kernel, so they are not listed and `modprobe` fails for them as it should.
const BUILTIN_MODULES: &[&str] = &[
    "kernel/fs/overlayfs/overlay.ko",
    "kernel/fs/xfs/xfs.ko",
    "kernel/fs/fuse/fuse.ko",
    "kernel/drivers/block/loop.ko",
    "kernel/drivers/net/veth.ko",
    "kernel/drivers/net/vxlan/vxlan.ko",
    "kernel/net/bridge/bridge.ko",
    "kernel/net/bridge/br_netfilter.ko",
    "kernel/net/llc/llc.ko",
    "kernel/net/802/stp.ko",
    "kernel/net/ipv6/ipv6.ko",
    "kernel/net/netfilter/nf_conntrack.ko",
    "kernel/net/netfilter/nf_nat.ko",
    "kernel/net/netfilter/nf_tables.ko",
    "kernel/net/netfilter/nfnetlink.ko",
    "kernel/net/netfilter/x_tables.ko",
    "kernel/net/netfilter/xt_conntrack.ko",
    "kernel/net/netfilter/xt_comment.ko",
    "kernel/net/netfilter/xt_mark.ko",
    "kernel/net/netfilter/xt_multiport.ko",
    "kernel/net/netfilter/xt_nat.ko",
    "kernel/net/netfilter/xt_addrtype.ko",
    "kernel/net/netfilter/xt_MASQUERADE.ko",
    "kernel/net/netfilter/xt_set.ko",
    "kernel/net/netfilter/xt_statistic.ko",
    "kernel/net/netfilter/ipset/ip_set.ko",
    "kernel/net/ipv4/netfilter/ip_tables.ko",
    "kernel/net/ipv4/netfilter/iptable_filter.ko",
    "kernel/net/ipv4/netfilter/iptable_nat.ko",
    "kernel/net/ipv4/netfilter/iptable_mangle.ko",
    "kernel/net/ipv4/netfilter/nf_defrag_ipv4.ko",
    "kernel/net/ipv6/netfilter/ip6_tables.ko",
    "kernel/net/ipv6/netfilter/ip6table_filter.ko",
];

/// Returns the lower layer, building or unpacking it first if needed.
pub fn ensure_base() -> Result<PathBuf> {
    let kernel = kernel_release()?;
    let cache = paths::cache_dir();
    mkdir(&cache)?;
    let name = format!("base-bookworm-v{PREP_VERSION}-{kernel}");
    let lower = cache.join(&name);
    let ready = cache.join(format!("{name}.ready"));
    let tarball = cache.join(format!("{name}.tar"));
    if ready.exists() && lower.is_dir() {
        return Ok(lower);
    }
    if !tarball.exists() {
        let raw = ensure_debootstrap_tarball(&cache)?;
        let work = cache.join(format!("{name}.tmp"));
        remove_dir(&work)?;
        mkdir(&work)?;
        tracing::info!("preparing the base image from {}", raw.display());
        untar(&raw, &work)?;
        prepare(&work, &kernel)?;
        tar(&work, &tarball)?;
        remove_dir(&work)?;
    }
    let _ = fs::remove_file(&ready);
    remove_dir(&lower)?;
    mkdir(&lower)?;
    tracing::info!("unpacking the base image {}", tarball.display());
    untar(&tarball, &lower)?;
    fs::write(&ready, "").map_err(|e| Error::io("marking the base image ready", &ready, e))?;
    Ok(lower)
}

/// The dpkg status file of the base image: what every guest has installed before kbs touches it.
pub fn dpkg_status(lower: &Path) -> PathBuf {
    lower.join("var/lib/dpkg/status")
}

fn ensure_debootstrap_tarball(cache: &Path) -> Result<PathBuf> {
    let raw = cache.join("debootstrap-bookworm.tar");
    if raw.exists() {
        return Ok(raw);
    }
    let work = cache.join("debootstrap.tmp");
    remove_dir(&work)?;
    tracing::info!("building the Debian bookworm base image with debootstrap (about a minute)");
    cmd::run(
        "debootstrap of Debian bookworm",
        &format!(
            "check that {MIRROR} is reachable and /var/cache has 1 GiB free; the log is {}/debootstrap/debootstrap.log",
            work.display()
        ),
        Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={INCLUDE}"))
            .args(["bookworm"])
            .arg(&work)
            .arg(MIRROR),
    )?;
    tar(&work, &raw)?;
    remove_dir(&work)?;
    Ok(raw)
}

/// The one-time preparation of the image for life in a container on this kernel (see lab.md).
fn prepare(root: &Path, kernel: &str) -> Result<()> {
    // apt stays offline: no sources, no indices; kbs writes its own sources like on a real host.
    write(root, "etc/apt/sources.list", "", 0o644)?;
    clear_dir(&root.join("etc/apt/sources.list.d"))?;
    clear_dir(&root.join("var/lib/apt/lists"))?;
    mkdir(&root.join("var/lib/apt/lists/partial"))?;
    clear_dir(&root.join("var/cache/apt/archives"))?;
    mkdir(&root.join("var/cache/apt/archives/partial"))?;
    mkdir(&root.join("etc/apt/keyrings"))?;

    // Timers that would wake every guest for work the lab must not do (apt downloads, fstrim of the host's disk).
    for unit in [
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
        "fstrim.timer",
        "e2scrub_all.timer",
        "dpkg-db-backup.timer",
        "e2scrub_reap.service",
        // No hardware in a container; these would only fail or wait.
        "systemd-pstore.service",
        "getty@tty1.service",
        // nfs-common's: this kernel has no SUNRPC, the mount would fail and leave the guest degraded.
        "run-rpc_pipefs.mount",
    ] {
        mask(root, unit)?;
    }

    // Each guest gets its own machine-id (from nspawn's uuid) and its own SSH host keys at first boot.
    write(root, "etc/machine-id", "", 0o444)?;
    let _ = fs::remove_file(root.join("var/lib/dbus/machine-id"));
    for entry in read_dir(&root.join("etc/ssh"))? {
        if entry.starts_with("ssh_host_") {
            let path = root.join("etc/ssh").join(&entry);
            fs::remove_file(&path).map_err(|e| Error::io("removing the image's SSH host keys", &path, e))?;
        }
    }
    write(
        root,
        "etc/systemd/system/ssh.service.d/kbs-lab.conf",
        "# kbs-lab: host keys are made at first boot, so every guest has its own.\n\
         [Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n",
        0o644,
    )?;
    let _ = fs::remove_file(root.join("etc/resolv.conf"));
    write(root, "etc/resolv.conf", "# kbs-lab: guests have no DNS\n", 0o644)?;

    // The kernel has no loadable modules: tell modprobe which ones are built in.
    let modules = format!("lib/modules/{kernel}");
    write(
        root,
        &format!("{modules}/modules.builtin"),
        &(BUILTIN_MODULES.join("\n") + "\n"),
        0o644,
    )?;
    write(root, &format!("{modules}/modules.order"), "", 0o644)?;
    chroot(root, &["depmod", kernel])?;
    let names: Vec<&str> = BUILTIN_MODULES
        .iter()
        .filter_map(|p| p.rsplit('/').next())
        .filter_map(|f| f.strip_suffix(".ko"))
        .collect();
    let mut lsmod = String::from(
        "#!/bin/sh\n# kbs-lab: the kernel has no /proc/modules; list the built-in modules as loaded.\n\
         printf '%-24s %8s  %s\\n' Module Size 'Used by'\n",
    );
    for name in names {
        lsmod.push_str(&format!("printf '%-24s %8s  %s\\n' {name} 0 0\n"));
    }
    write(root, "usr/local/sbin/lsmod", &lsmod, 0o755)?;

    // /proc/sys is read-only except net.*: these files set kernel.* keys and would fail systemd-sysctl.
    for file in ["50-pid-max.conf", "99-protect-links.conf"] {
        symlink_force(Path::new("/dev/null"), &root.join("etc/sysctl.d").join(file))?;
    }

    // iscsid cannot run on this kernel; "active" is what Longhorn's checks look for.
    write(
        root,
        "etc/systemd/system/iscsid.service.d/kbs-lab.conf",
        "# kbs-lab: this kernel has no iSCSI; keep the service active without it.\n\
         [Service]\nType=simple\nPIDFile=\nExecStartPre=\nExecStart=\nExecStart=/bin/sleep infinity\nExecStop=\n",
        0o644,
    )?;

    chroot(root, &["systemctl", "enable", "systemd-networkd.service"])?;

    // A sudo user, so kbs' sudo paths can be tested (root logs in with the key too).
    chroot(root, &["useradd", "--create-home", "--shell", "/bin/bash", "kbs"])?;
    // "*" rather than the locked "!": sshd refuses key logins to locked accounts.
    chroot(root, &["usermod", "--password", "*", "kbs"])?;
    write(root, "etc/sudoers.d/kbs", "kbs ALL=(ALL) NOPASSWD:ALL\n", 0o440)?;
    mkdir(&root.join("root/.ssh"))?;
    set_mode(&root.join("root/.ssh"), 0o700)?;
    mkdir(&root.join("etc/kbs-lab"))?;
    Ok(())
}

fn kernel_release() -> Result<String> {
    let path = Path::new("/proc/sys/kernel/osrelease");
    let text = fs::read_to_string(path).map_err(|e| Error::io("reading the kernel release", path, e))?;
    Ok(text.trim().to_string())
}

fn chroot(root: &Path, args: &[&str]) -> Result<()> {
    cmd::run(
        &format!("preparing the base image: {}", args.join(" ")),
        "remove /var/cache/kbs-lab/base-bookworm-* and run kbs-lab up again",
        Command::new("chroot").arg(root).args(args),
    )?;
    Ok(())
}

fn tar(dir: &Path, tarball: &Path) -> Result<()> {
    let partial = tarball.with_extension("tar.partial");
    cmd::run(
        &format!("packing {}", tarball.display()),
        "free disk space under /var/cache and run kbs-lab up again",
        Command::new("tar")
            .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-C"])
            .arg(dir)
            .args(["-cpf"])
            .arg(&partial)
            .arg("."),
    )?;
    fs::rename(&partial, tarball).map_err(|e| Error::io("caching the image tarball", tarball, e))
}

fn untar(tarball: &Path, dir: &Path) -> Result<()> {
    cmd::run(
        &format!("unpacking {}", tarball.display()),
        &format!("free disk space, or delete {} to rebuild it", tarball.display()),
        Command::new("tar")
            .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-C"])
            .arg(dir)
            .args(["-xpf"])
            .arg(tarball),
    )?;
    Ok(())
}

fn mask(root: &Path, unit: &str) -> Result<()> {
    for wants in read_dir(&root.join("etc/systemd/system"))? {
        let _ = fs::remove_file(root.join("etc/systemd/system").join(wants).join(unit));
    }
    symlink_force(
        Path::new("/dev/null"),
        &root.join("etc/systemd/system").join(unit),
    )
}

/// Writes `rel` under `root` with `mode`, creating its parent directories.
pub fn write(root: &Path, rel: &str, content: &str, mode: u32) -> Result<()> {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        mkdir(parent)?;
    }
    fs::write(&path, content).map_err(|e| Error::io("writing a file", &path, e))?;
    set_mode(&path, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("setting a file mode", path, e))
}

pub fn mkdir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| Error::io("creating a directory", path, e))
}

fn remove_dir(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing a directory", path, e)),
    }
}

fn clear_dir(path: &Path) -> Result<()> {
    remove_dir(path)?;
    mkdir(path)
}

fn read_dir(path: &Path) -> Result<Vec<String>> {
    let entries = fs::read_dir(path).map_err(|e| Error::io("reading a directory", path, e))?;
    Ok(entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}

fn symlink_force(target: &Path, link: &Path) -> Result<()> {
    if let Some(parent) = link.parent() {
        mkdir(parent)?;
    }
    let _ = fs::remove_file(link);
    symlink(target, link).map_err(|e| Error::io("creating a symlink", link, e))
}
