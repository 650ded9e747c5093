//! The Kubernetes packages of the lab's repositories, built from the kbs-sim binary.
//!
//! Real pkgs.k8s.io serves kubeadm, kubelet, kubectl, cri-tools and kubernetes-cni per minor, with
//! versions like `1.36.4-1.1` and the occasional rebuild (`1.36.4-2.1`); kbs must resolve and pin
//! those exact strings. The lab serves the same package names, versions and dependencies, and the
//! containerd 2.x that kbs installs from the same repository. Every tool is the one kbs-sim build:
//! `kbs-sim-runtime` ships it once, each tool package links its name to it and records its own
//! version in `/usr/share/kbs-sim/<tool>.version` (so kubeadm and kubelet can differ on one host,
//! as in a half-done upgrade).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd;
use crate::error::{Error, Result};
use crate::paths;
use crate::repo;

/// Kubernetes releases per minor, with their Debian revisions; the last is the newest.
pub const RELEASES: &[(&str, &[&str])] = &[
    ("1.35", &["1.35.6-1.1", "1.35.7-1.1"]),
    ("1.36", &["1.36.3-1.1", "1.36.4-1.1", "1.36.4-2.1"]),
    ("1.37", &["1.37.0-1.1", "1.37.1-1.1"]),
];
const CNI_VERSION: &str = "1.7.1-1.1";
const CONTAINERD_VERSION: &str = "2.1.4-1";
const RUNTIME_PACKAGE: &str = "kbs-sim-runtime";
const RUNTIME_BINARY: &str = "/usr/lib/kbs-sim/kbs-sim";

/// Names of every package this module builds, so stale builds can be removed from a repository.
const PACKAGE_NAMES: &[&str] = &[
    RUNTIME_PACKAGE,
    "kubeadm",
    "kubelet",
    "kubectl",
    "cri-tools",
    "kubernetes-cni",
    "containerd",
];

/// Builds the packages from `sim_binary` (once per distinct binary) and publishes them in every
/// minor's repository, replacing earlier builds.
pub fn publish(sim_binary: &Path) -> Result<()> {
    let runtime_version = runtime_version(sim_binary)?;
    let out = paths::cache_dir().join("sim-debs").join(&runtime_version);
    for (minor, releases) in RELEASES {
        let minor_out = out.join(minor);
        if !minor_out.join(".complete").exists() {
            build_minor(sim_binary, &runtime_version, minor, releases, &minor_out)?;
        }
        let debs = list_debs(&minor_out)?;
        remove_stale(minor, &debs)?;
        repo::add_debs(minor, &debs)?;
    }
    Ok(())
}

/// Where the kbs-sim binary is: given, `KBS_SIM_BIN`, next to this program (or the test binary's
/// target directory), or on PATH. `None` when there is none.
pub fn find_sim_binary(given: Option<&Path>) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = given.map(Path::to_path_buf).into_iter().collect();
    if let Some(path) = std::env::var_os("KBS_SIM_BIN") {
        candidates.push(PathBuf::from(path));
    }
    if let Ok(exe) = std::env::current_exe() {
        // Test binaries live in target/<profile>/deps, next to target/<profile>/kbs-sim.
        for dir in exe.ancestors().skip(1).take(2) {
            candidates.push(dir.join("kbs-sim"));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("kbs-sim")));
    }
    candidates.into_iter().find(|p| p.is_file())
}

/// `0.1.0+<12 hex of the binary's SHA-256>`: a new build is a new version, so apt upgrades it.
fn runtime_version(sim_binary: &Path) -> Result<String> {
    let out = cmd::run(
        "fingerprinting the kbs-sim binary",
        "check that the file is readable",
        Command::new("sha256sum").arg(sim_binary),
    )?;
    let digest: String = out.chars().take(12).collect();
    Ok(format!("{}+{digest}", env!("CARGO_PKG_VERSION")))
}

fn build_minor(
    sim_binary: &Path,
    runtime_version: &str,
    minor: &str,
    releases: &[&str],
    out: &Path,
) -> Result<()> {
    let _ = fs::remove_dir_all(out);
    mkdir(out)?;
    let runtime_dep = format!("{RUNTIME_PACKAGE} (= {runtime_version})");
    let staging = out.join(".staging");

    let mut runtime = Package::new(
        RUNTIME_PACKAGE,
        runtime_version,
        "kbs-sim: the simulated Kubernetes tools of the kbs lab",
    );
    runtime.binary(sim_binary, RUNTIME_BINARY);
    runtime.build(&staging, out)?;

    let cri_tools_version = format!("{minor}.0-1.1");
    let mut cri_tools = Package::new(
        "cri-tools",
        &cri_tools_version,
        "Command-line utility for interacting with a container runtime",
    );
    cri_tools.depends(&runtime_dep).tool("crictl", &cri_tools_version);
    cri_tools.build(&staging, out)?;

    let mut cni = Package::new(
        "kubernetes-cni",
        CNI_VERSION,
        "Binaries required to provision kubernetes container networking",
    );
    cni.depends(&runtime_dep).directory("/opt/cni/bin");
    cni.build(&staging, out)?;

    let mut containerd = Package::new(
        "containerd",
        CONTAINERD_VERSION,
        "An open and reliable container runtime",
    );
    containerd
        .depends(&runtime_dep)
        .tool("containerd", CONTAINERD_VERSION)
        .file(
            "/usr/lib/systemd/system/containerd.service",
            CONTAINERD_UNIT,
            0o644,
        )
        .postinst(ENABLE_AND_START_CONTAINERD);
    containerd.build(&staging, out)?;

    for release in releases {
        let mut kubelet = Package::new("kubelet", release, "Node agent for Kubernetes clusters");
        kubelet
            .depends("iptables (>= 1.4.21), kubernetes-cni (>= 1.2.0), iproute2, mount")
            .depends(&runtime_dep)
            .tool("kubelet", release)
            .file("/usr/lib/systemd/system/kubelet.service", KUBELET_UNIT, 0o644)
            .postinst(DAEMON_RELOAD);
        kubelet.build(&staging, out)?;

        let mut kubeadm = Package::new(
            "kubeadm",
            release,
            "Command-line utility for administering a Kubernetes cluster",
        );
        kubeadm
            .depends("cri-tools (>= 1.30.0)")
            .depends(&runtime_dep)
            .tool("kubeadm", release)
            .file(
                "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
                KUBEADM_DROP_IN,
                0o644,
            )
            .postinst(DAEMON_RELOAD);
        kubeadm.build(&staging, out)?;

        let mut kubectl = Package::new(
            "kubectl",
            release,
            "Command-line utility for interacting with a Kubernetes cluster",
        );
        kubectl.depends(&runtime_dep).tool("kubectl", release);
        kubectl.build(&staging, out)?;
    }
    let _ = fs::remove_dir_all(&staging);
    fs::write(out.join(".complete"), "").map_err(|e| Error::io("marking the package build complete", out, e))
}

fn list_debs(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io("listing built packages", dir, e))?;
    let mut debs: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .collect();
    debs.sort();
    Ok(debs)
}

/// Removes earlier builds of these packages from a minor's repository (a new kbs-sim binary gives
/// every package a new runtime dependency).
fn remove_stale(minor: &str, keep: &[PathBuf]) -> Result<()> {
    let dir = repo::minor_dir(minor);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(());
    };
    let keep: Vec<_> = keep.iter().filter_map(|p| p.file_name()).collect();
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let Some(name) = path.file_name() else { continue };
        let ours = name.to_str().is_some_and(|n| {
            n.ends_with(".deb") && PACKAGE_NAMES.iter().any(|p| n.starts_with(&format!("{p}_")))
        });
        if ours && !keep.contains(&name) {
            fs::remove_file(&path).map_err(|e| Error::io("removing an old package build", &path, e))?;
        }
    }
    Ok(())
}

/// One binary package being assembled.
struct Package {
    name: String,
    version: String,
    description: String,
    depends: Vec<String>,
    /// (absolute path in the package, content, mode)
    files: Vec<(String, Vec<u8>, u32)>,
    /// (absolute link path, target)
    links: Vec<(String, String)>,
    directories: Vec<String>,
    binary: Option<(PathBuf, String)>,
    postinst: Option<&'static str>,
}

impl Package {
    fn new(name: &str, version: &str, description: &str) -> Package {
        Package {
            name: name.into(),
            version: version.into(),
            description: description.into(),
            depends: Vec::new(),
            files: Vec::new(),
            links: Vec::new(),
            directories: Vec::new(),
            binary: None,
            postinst: None,
        }
    }

    fn depends(&mut self, depends: &str) -> &mut Self {
        self.depends.push(depends.into());
        self
    }

    /// `/usr/bin/<tool>` → the kbs-sim binary, and the version that tool reports.
    fn tool(&mut self, tool: &str, package_version: &str) -> &mut Self {
        self.links
            .push((format!("/usr/bin/{tool}"), RUNTIME_BINARY.into()));
        let upstream = package_version.split('-').next().unwrap_or(package_version);
        self.file(
            &format!("/usr/share/kbs-sim/{tool}.version"),
            &format!("{upstream}\n"),
            0o644,
        )
    }

    fn file(&mut self, path: &str, content: &str, mode: u32) -> &mut Self {
        self.files.push((path.into(), content.as_bytes().to_vec(), mode));
        self
    }

    fn directory(&mut self, path: &str) -> &mut Self {
        self.directories.push(path.into());
        self
    }

    fn binary(&mut self, source: &Path, path: &str) -> &mut Self {
        self.binary = Some((source.to_path_buf(), path.into()));
        self
    }

    fn postinst(&mut self, script: &'static str) -> &mut Self {
        self.postinst = Some(script);
        self
    }

    fn build(&self, staging: &Path, out: &Path) -> Result<()> {
        let root = staging.join(&self.name);
        let _ = fs::remove_dir_all(&root);
        mkdir(&root.join("DEBIAN"))?;
        for (path, content, mode) in &self.files {
            write(&root, path, content, *mode)?;
        }
        for dir in &self.directories {
            mkdir(&root.join(dir.trim_start_matches('/')))?;
        }
        for (link, target) in &self.links {
            let at = root.join(link.trim_start_matches('/'));
            mkdir_parent(&at)?;
            symlink(target, &at).map_err(|e| Error::io("linking a tool to kbs-sim", &at, e))?;
        }
        if let Some((source, path)) = &self.binary {
            let at = root.join(path.trim_start_matches('/'));
            mkdir_parent(&at)?;
            // Debug info is most of a debug build's size and useless on the guests.
            cmd::run(
                "stripping the kbs-sim binary for packaging",
                "install binutils (apt-get install binutils)",
                Command::new("strip")
                    .arg("--strip-debug")
                    .arg("-o")
                    .arg(&at)
                    .arg(source),
            )?;
        }
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: amd64\nMaintainer: kbs lab <kbs-lab@kbs.invalid>\n\
             Section: admin\nPriority: optional\n",
            self.name, self.version
        );
        if !self.depends.is_empty() {
            control.push_str(&format!("Depends: {}\n", self.depends.join(", ")));
        }
        control.push_str(&format!(
            "Description: {}\n (simulated for the kbs lab by kbs-sim)\n",
            self.description
        ));
        write(&root, "/DEBIAN/control", control.as_bytes(), 0o644)?;
        if let Some(script) = self.postinst {
            write(&root, "/DEBIAN/postinst", script.as_bytes(), 0o755)?;
        }
        let deb = out.join(format!("{}_{}_amd64.deb", self.name, self.version));
        cmd::run(
            &format!("building the {} package", self.name),
            "install dpkg-dev (apt-get install dpkg-dev)",
            Command::new("dpkg-deb")
                .args(["--root-owner-group", "-Zgzip", "-z1", "--build"])
                .arg(&root)
                .arg(&deb),
        )?;
        Ok(())
    }
}

fn write(root: &Path, path: &str, content: &[u8], mode: u32) -> Result<()> {
    let at = root.join(path.trim_start_matches('/'));
    mkdir_parent(&at)?;
    fs::write(&at, content).map_err(|e| Error::io("writing a package file", &at, e))?;
    fs::set_permissions(&at, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("setting a package file's mode", &at, e))
}

fn mkdir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io("creating a directory", dir, e))
}

fn mkdir_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) => mkdir(parent),
        None => Ok(()),
    }
}

/// pkgs.k8s.io's kubelet unit: it restarts every 10 s until kubeadm has written its config.
const KUBELET_UNIT: &str = "[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
";

/// kubeadm's drop-in, as the kubeadm package installs it.
const KUBEADM_DROP_IN: &str = "# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
# This is a file that \"kubeadm init\" and \"kubeadm join\" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
";

const CONTAINERD_UNIT: &str = "[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target local-fs.target

[Service]
ExecStart=/usr/bin/containerd
Restart=always
RestartSec=5
KillMode=process

[Install]
WantedBy=multi-user.target
";

const DAEMON_RELOAD: &str =
    "#!/bin/sh\nset -e\nif [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n";

/// Like Debian's containerd package: enabled and started on install.
const ENABLE_AND_START_CONTAINERD: &str = "#!/bin/sh\nset -e\nif [ -d /run/systemd/system ]; then\n  \
    systemctl daemon-reload || true\n  systemctl enable containerd.service >/dev/null 2>&1 || true\n  \
    systemctl start containerd.service || true\nfi\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn dpkg_deb(args: &[&str], deb: &Path) -> String {
        let out = Command::new("dpkg-deb")
            .args(args)
            .arg(deb)
            .output()
            .expect("run dpkg-deb");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn a_minor_gets_every_package_with_real_names_versions_and_dependencies() {
        let dir = tempfile::tempdir().unwrap();
        // Any ELF file stands in for the kbs-sim build here; what is checked is the packaging.
        let binary = dir.path().join("kbs-sim");
        fs::copy("/bin/true", &binary).unwrap();
        let out = dir.path().join("1.36");
        build_minor(&binary, "0.1.0+abc", "1.36", &["1.36.3-1.1", "1.36.4-2.1"], &out).unwrap();

        let names: Vec<String> = list_debs(&out)
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "containerd_2.1.4-1_amd64.deb",
                "cri-tools_1.36.0-1.1_amd64.deb",
                "kbs-sim-runtime_0.1.0+abc_amd64.deb",
                "kubeadm_1.36.3-1.1_amd64.deb",
                "kubeadm_1.36.4-2.1_amd64.deb",
                "kubectl_1.36.3-1.1_amd64.deb",
                "kubectl_1.36.4-2.1_amd64.deb",
                "kubelet_1.36.3-1.1_amd64.deb",
                "kubelet_1.36.4-2.1_amd64.deb",
                "kubernetes-cni_1.7.1-1.1_amd64.deb",
            ]
        );

        let kubelet = out.join("kubelet_1.36.4-2.1_amd64.deb");
        assert_eq!(
            dpkg_deb(&["-f"], &kubelet)
                .lines()
                .find(|l| l.starts_with("Depends:")),
            Some(
                "Depends: iptables (>= 1.4.21), kubernetes-cni (>= 1.2.0), iproute2, mount, \
                 kbs-sim-runtime (= 0.1.0+abc)"
            )
        );
        let contents = dpkg_deb(&["-c"], &kubelet);
        assert!(
            contents.contains("./usr/bin/kubelet -> /usr/lib/kbs-sim/kbs-sim"),
            "{contents}"
        );
        assert!(
            contents.contains("./usr/lib/systemd/system/kubelet.service"),
            "{contents}"
        );

        let extracted = dir.path().join("kubeadm");
        let status = Command::new("dpkg-deb")
            .arg("-x")
            .arg(out.join("kubeadm_1.36.4-2.1_amd64.deb"))
            .arg(&extracted)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            fs::read_to_string(extracted.join("usr/share/kbs-sim/kubeadm.version")).unwrap(),
            "1.36.4\n",
            "the tool reports the upstream version, without the Debian revision"
        );
        let drop_in =
            fs::read_to_string(extracted.join("usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf"))
                .unwrap();
        assert!(
            drop_in.contains("EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env"),
            "{drop_in}"
        );
    }
}
