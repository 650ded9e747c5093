//! The lab's apt repositories, served over HTTP by `server.rs` from [`paths::repo_dir`]:
//!
//! ```text
//! repo/core:/stable:/v1.35/deb/   flat repositories like pkgs.k8s.io, one per minor (suite "/"):
//! repo/core:/stable:/v1.36/deb/     *.deb, Packages, Release, Release.gpg, InRelease, Release.key
//! repo/core:/stable:/v1.37/deb/
//! repo/debian/                    Debian mirror: dists/bookworm/{Release,InRelease}, main/binary-amd64,
//!                                   pool/main/*.deb (what kbs installs that the base image lacks)
//! repo/manifests/                 add-on manifests, served as /manifests/...
//! repo/kbs-lab.asc                the lab's public signing key (also each minor's Release.key)
//! ```
//!
//! Everything is signed by one lab key made by gpg (no passphrase) and cached in /var/cache/kbs-lab/gnupg.
//! kbs-sim adds its packages with [`add_debs`] (or `kbs-lab repo add --minor 1.36 FILE.deb…`): the files are
//! copied into the minor's directory and the index is rebuilt and re-signed. Dropping .deb files into that
//! directory by hand and calling [`index_minor`] (`kbs-lab repo index`) does the same.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cmd;
use crate::error::{Error, Result};
use crate::hostpkgs;
use crate::image::mkdir;
use crate::lock::FileLock;
use crate::paths;

/// The Kubernetes minors the lab serves, like pkgs.k8s.io's per-minor repositories.
pub const MINORS: &[&str] = &["1.35", "1.36", "1.37"];

/// Debian packages kbs' host preparation installs that the base image lacks; their dependency closure
/// against the base image is mirrored.
pub const DEBIAN_PACKAGES: &[&str] = &[
    "open-iscsi",
    "nfs-common",
    "haproxy",
    "conntrack",
    "socat",
    "ethtool",
    "iptables",
    "ipset",
    "ebtables",
    "apt-transport-https",
    "jq",
];

const KEY_UID: &str = "kbs-lab repository <kbs-lab@kbs.invalid>";

/// The directory of a minor's flat repository: `repo/core:/stable:/v1.XX/deb`.
pub fn minor_dir(minor: &str) -> PathBuf {
    paths::repo_dir().join(format!("core:/stable:/v{minor}/deb"))
}

/// The URL guests use for a minor's repository.
pub fn minor_url(minor: &str) -> String {
    format!("http://{}/core:/stable:/v{minor}/deb/", paths::BRIDGE_ADDRESS)
}

pub fn manifests_dir() -> PathBuf {
    paths::repo_dir().join("manifests")
}

fn gnupg_home() -> PathBuf {
    paths::cache_dir().join("gnupg")
}

fn gpg() -> Command {
    let mut cmd = Command::new("gpg");
    cmd.arg("--homedir").arg(gnupg_home()).args([
        "--batch",
        "--yes",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
    ]);
    cmd
}

/// The lab key's fingerprint, making the key first if there is none.
pub fn signing_key() -> Result<String> {
    let home = gnupg_home();
    mkdir(&home)?;
    fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .map_err(|e| Error::io("protecting the lab's gnupg directory", &home, e))?;
    if let Some(fpr) = fingerprint()? {
        return Ok(fpr);
    }
    tracing::info!("making the lab's repository signing key");
    cmd::run(
        "making the lab's signing key",
        "delete /var/cache/kbs-lab/gnupg and run kbs-lab up again",
        gpg().args(["--quick-gen-key", KEY_UID, "ed25519", "sign", "never"]),
    )?;
    stop_agent();
    fingerprint()?.ok_or_else(|| {
        Error::new(
            "making the lab's signing key",
            "gpg made no key",
            "delete /var/cache/kbs-lab/gnupg and run kbs-lab up again",
        )
    })
}

fn fingerprint() -> Result<Option<String>> {
    let out = cmd::run(
        "reading the lab's signing key",
        "delete /var/cache/kbs-lab/gnupg and run kbs-lab up again",
        gpg().args(["--with-colons", "--list-secret-keys"]),
    );
    stop_agent();
    let out = out?;
    Ok(out
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .map(str::to_string))
}

/// gpg starts an agent for signing; the lab leaves nothing running, so it is stopped after each use.
pub fn stop_agent() {
    let _ = Command::new("gpgconf")
        .arg("--homedir")
        .arg(gnupg_home())
        .args(["--kill", "gpg-agent"])
        .output();
}

/// The public key, binary (`armor` false: for `signed-by` files) or ASCII-armoured (`Release.key`).
pub fn public_key(armor: bool) -> Result<Vec<u8>> {
    let fpr = signing_key()?;
    let mut cmd = gpg();
    if armor {
        cmd.arg("--armor");
    }
    let out = cmd::output(
        "exporting the lab's signing key",
        "delete /var/cache/kbs-lab/gnupg and run kbs-lab up again",
        cmd.args(["--export", &fpr]),
    )?;
    if !out.status.success() || out.stdout.is_empty() {
        return Err(Error::new(
            "exporting the lab's signing key",
            cmd::failure_text(&cmd, &out),
            "delete /var/cache/kbs-lab/gnupg and run kbs-lab up again",
        ));
    }
    stop_agent();
    Ok(out.stdout)
}

/// Makes every repository present, indexed and signed; fetches the Debian packages on first use.
/// `base_status` is the base image's dpkg status file (what guests already have).
pub fn ensure_all(base_status: &Path) -> Result<()> {
    let root = paths::repo_dir();
    mkdir(&root)?;
    mkdir(&manifests_dir())?;
    // The add-on manifests kbs would download, so the lab never needs the internet.
    crate::addon_manifests::publish(&manifests_dir())?;
    let armored = public_key(true)?;
    let asc = root.join("kbs-lab.asc");
    fs::write(&asc, &armored).map_err(|e| Error::io("publishing the lab key", &asc, e))?;
    for minor in MINORS {
        index_minor(minor)?;
    }
    ensure_debian(base_status)
}

/// Copies `debs` into `minor`'s repository and re-indexes and re-signs it.
pub fn add_debs(minor: &str, debs: &[PathBuf]) -> Result<()> {
    let dir = checked_minor_dir(minor)?;
    mkdir(&dir)?;
    for deb in debs {
        let name = deb.file_name().ok_or_else(|| {
            Error::new(
                "adding a package to the lab repository",
                format!("{} is not a file", deb.display()),
                "pass .deb files",
            )
        })?;
        let target = dir.join(name);
        fs::copy(deb, &target)
            .map_err(|e| Error::io(format!("adding {} to v{minor}", deb.display()), deb, e))?;
    }
    index_minor(minor)
}

fn checked_minor_dir(minor: &str) -> Result<PathBuf> {
    let ok = minor.split('.').count() == 2
        && minor
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !ok {
        return Err(Error::new(
            "choosing the lab repository",
            format!("{minor:?} is not a Kubernetes minor"),
            "give a minor such as 1.36",
        ));
    }
    Ok(minor_dir(minor))
}

/// (Re)builds `Packages`, `Release`, `InRelease`, `Release.gpg` and `Release.key` of a minor's flat
/// repository from the .deb files in it, if they changed since the last index.
pub fn index_minor(minor: &str) -> Result<()> {
    let dir = checked_minor_dir(minor)?;
    mkdir(&dir)?;
    reindex_if_changed(&dir, &dir, |fpr| {
        let packages = scan_packages(&dir, ".")?;
        write_file(&dir.join("Packages"), packages.as_bytes())?;
        let release = release_text(
            &format!("Origin: kbs-lab\nLabel: kbs-lab v{minor}\nArchitectures: amd64 arm64\n"),
            &dir,
            &["Packages"],
        )?;
        write_file(&dir.join("Release"), release.as_bytes())?;
        sign(&dir, fpr)?;
        write_file(&dir.join("Release.key"), &public_key(true)?)
    })
}

/// Runs `build` (given the key fingerprint) under the index lock unless neither the .deb files in `debs`
/// nor the signing key changed since the last index of `release_dir` (stamp file `.kbs-lab-index`).
fn reindex_if_changed(debs: &Path, release_dir: &Path, build: impl FnOnce(&str) -> Result<()>) -> Result<()> {
    let _lock = FileLock::acquire(&paths::repo_dir().join(".index.lock"), "the lab repository index")?;
    let fpr = signing_key()?;
    let stamp = content_stamp(debs, &fpr)?;
    let stamp_file = release_dir.join(".kbs-lab-index");
    if fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str())
        && release_dir.join("InRelease").exists()
    {
        return Ok(());
    }
    build(&fpr)?;
    write_file(&stamp_file, stamp.as_bytes())
}

/// A fingerprint of the repository's inputs: signing key and every .deb's name, size and mtime.
fn content_stamp(dir: &Path, fpr: &str) -> Result<String> {
    let mut lines = vec![format!("key {fpr}")];
    for deb in debs_in(dir)? {
        let meta = fs::metadata(&deb).map_err(|e| Error::io("reading the lab repository", &deb, e))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        lines.push(format!("{} {} {mtime}", deb.display(), meta.len()));
    }
    Ok(lines.join("\n") + "\n")
}

fn debs_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io("reading the lab repository", dir, e))?;
    let mut debs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    debs.sort();
    Ok(debs)
}

/// `dpkg-scanpackages --multiversion SUBDIR` run in `dir`: Filename fields are relative to `dir`.
fn scan_packages(dir: &Path, subdir: &str) -> Result<String> {
    cmd::run(
        &format!("indexing {}", dir.display()),
        "check the .deb files there (dpkg-deb --info FILE); remove broken ones and retry",
        Command::new("dpkg-scanpackages")
            .args(["--multiversion", subdir])
            .current_dir(dir),
    )
}

/// A Release file: `head`, a Date, and SHA256 lines for `files` (relative to `dir`).
fn release_text(head: &str, dir: &Path, files: &[&str]) -> Result<String> {
    let mut text = head.to_string();
    text.push_str(&format!("Date: {}\nSHA256:\n", rfc2822_now()));
    for file in files {
        let path = dir.join(file);
        let out = cmd::run(
            &format!("hashing {}", path.display()),
            "check the file exists and retry",
            Command::new("sha256sum").arg(&path),
        )?;
        let hash = out.split_whitespace().next().unwrap_or_default();
        let size = fs::metadata(&path)
            .map_err(|e| Error::io("hashing an index", &path, e))?
            .len();
        text.push_str(&format!(" {hash} {size:>16} {file}\n"));
    }
    Ok(text)
}

fn sign(dir: &Path, fpr: &str) -> Result<()> {
    let release = dir.join("Release");
    let hint = "delete /var/cache/kbs-lab/gnupg and run kbs-lab up again";
    let result = cmd::run(
        &format!("signing {}", release.display()),
        hint,
        gpg()
            .args([
                "--local-user",
                fpr,
                "--digest-algo",
                "SHA256",
                "--clearsign",
                "--output",
            ])
            .arg(dir.join("InRelease"))
            .arg(&release),
    )
    .and_then(|_| {
        cmd::run(
            &format!("signing {}", release.display()),
            hint,
            gpg()
                .args([
                    "--local-user",
                    fpr,
                    "--digest-algo",
                    "SHA256",
                    "--armor",
                    "--detach-sign",
                    "--output",
                ])
                .arg(dir.join("Release.gpg"))
                .arg(&release),
        )
    });
    stop_agent();
    result.map(|_| ())
}

fn write_file(path: &Path, content: &[u8]) -> Result<()> {
    let tmp = path.with_extension("kbs-lab-tmp");
    fs::write(&tmp, content).map_err(|e| Error::io("writing the lab repository", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| Error::io("writing the lab repository", path, e))
}

/// The Debian mirror: downloads the closure of [`DEBIAN_PACKAGES`] against the base image once (cached in
/// /var/cache/kbs-lab/debian-debs), links it into `repo/debian/pool/main` and indexes and signs it.
fn ensure_debian(base_status: &Path) -> Result<()> {
    let cache = paths::cache_dir().join("debian-debs");
    let wanted = DEBIAN_PACKAGES.join(" ") + "\n";
    let stamp = cache.join(".packages");
    if fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        download_debian(&cache, base_status)?;
        write_file(&stamp, wanted.as_bytes())?;
    }
    let mirror = paths::repo_dir().join("debian");
    let pool = mirror.join("pool/main");
    mkdir(&pool)?;
    for deb in debs_in(&cache)? {
        let Some(name) = deb.file_name() else { continue };
        let target = pool.join(name);
        if !target.exists() {
            fs::hard_link(&deb, &target)
                .or_else(|_| fs::copy(&deb, &target).map(|_| ()))
                .map_err(|e| Error::io("filling the Debian mirror", &target, e))?;
        }
    }
    let dist = mirror.join("dists/bookworm");
    mkdir(&dist)?;
    reindex_if_changed(&pool, &dist, |fpr| {
        let binary = dist.join("main/binary-amd64");
        mkdir(&binary)?;
        let packages = scan_packages(&mirror, "pool/main")?;
        write_file(&binary.join("Packages"), packages.as_bytes())?;
        let release = release_text(
            "Origin: kbs-lab\nLabel: kbs-lab Debian mirror\nSuite: bookworm\nCodename: bookworm\n\
             Architectures: amd64\nComponents: main\n",
            &dist,
            &["main/binary-amd64/Packages"],
        )?;
        write_file(&dist.join("Release"), release.as_bytes())?;
        sign(&dist, fpr)
    })
}

fn download_debian(cache: &Path, base_status: &Path) -> Result<()> {
    tracing::info!(
        "fetching Debian packages for the lab mirror: {}",
        DEBIAN_PACKAGES.join(" ")
    );
    let _ = fs::remove_dir_all(cache);
    mkdir(&cache.join("partial"))?;
    hostpkgs::apt_update()?;
    cmd::run(
        "fetching the Debian packages of the lab mirror",
        "check that http://deb.debian.org is reachable and /var/cache has free space, then run kbs-lab up again",
        Command::new("apt-get")
            .args(hostpkgs::lab_apt_options()?)
            .arg("-o")
            .arg(format!("Dir::State::status={}", base_status.display()))
            .arg("-o")
            .arg(format!("Dir::Cache::archives={}", cache.display()))
            // apt must not overwrite the host's package caches with ones computed for the guest's status.
            .args(["-o", "Dir::Cache::pkgcache=", "-o", "Dir::Cache::srcpkgcache=", "-o", "Debug::NoLocking=1"])
            .args(["install", "--download-only", "-y"])
            .args(DEBIAN_PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let _ = fs::remove_dir_all(cache.join("partial"));
    let _ = fs::remove_file(cache.join("lock"));
    Ok(())
}

/// `Sun, 22 Nov 2026 03:04:05 UTC`, as apt expects in a Release file's Date.
fn rfc2822_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} UTC",
        WEEKDAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
