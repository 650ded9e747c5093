//! kubeadm's preflight checks, run against the guest's real state through [`HostProbe`].
//!
//! Names, messages, order and output format follow cmd/kubeadm/app/preflight/checks.go
//! (`InitNodeChecks`, `JoinNodeChecks`, `addCommonChecks`, `RunChecks`, `handleError`) and
//! checks_linux.go (`MemCheck`, `addExecChecks`). Warnings are printed as each check runs,
//! errors are collected and printed at the end, then kubeadm fails with
//! `error execution phase preflight: preflight checks failed`.
//!
//! Not simulated: `SystemVerification` (kernel config/cgroups: the lab's kernel is the
//! real machine's), `HTTPProxy`/`HTTPProxyCIDR` (the lab has no proxies), `ImagePull`
//! (no registry; images are "pulled" by the simulated containerd).

pub mod host;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::config::{InitConfig, JoinConfig};
use crate::gofmt::quote;
use crate::version::Version;

pub use host::RealHost;

/// kubeadm constants used by the checks.
pub const CONTROL_PLANE_NUM_CPU: usize = 2;
pub const CONTROL_PLANE_MEM_MB: u64 = 1700;
pub const KUBELET_PORT: u16 = 10250;
pub const KUBE_SCHEDULER_PORT: u16 = 10259;
pub const KUBE_CONTROLLER_MANAGER_PORT: u16 = 10257;
pub const ETCD_CLIENT_PORT: u16 = 2379;
pub const ETCD_PEER_PORT: u16 = 2380;
pub const IPV4_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
pub const MANIFESTS_DIR: &str = "/etc/kubernetes/manifests";

/// Whether a systemd unit exists and is enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    Missing,
    Disabled,
    Enabled,
}

/// Everything preflight reads from the host. The binary uses [`RealHost`]; tests use fakes.
pub trait HostProbe {
    /// Contents of a file (e.g. `/proc/sys/net/ipv4/ip_forward`, `/proc/swaps`).
    fn read_file(&self, path: &str) -> std::io::Result<Vec<u8>>;
    fn exists(&self, path: &str) -> bool;
    /// `Ok(true)` if the directory is missing or empty.
    fn dir_is_empty(&self, path: &str) -> std::io::Result<bool>;
    /// Would `net.Listen("tcp", ":port")` fail?
    fn port_in_use(&self, port: u16) -> bool;
    /// `systemctl is-enabled <name>`.
    fn service_state(&self, name: &str) -> ServiceState;
    /// `systemctl is-active <name>`.
    fn service_active(&self, name: &str) -> bool;
    /// CPUs this process may run on (Go runtime.NumCPU).
    fn num_cpu(&self) -> usize;
    /// Total RAM in MiB as the guest sees it.
    fn mem_total_mb(&self) -> u64;
    /// Output of `kubelet --version`, or why it could not be run.
    fn kubelet_version(&self) -> Result<String, String>;
    fn in_path(&self, executable: &str) -> bool;
    fn hostname_resolves(&self, name: &str) -> bool;
    fn is_root(&self) -> bool;
    /// Connect to the CRI socket at `path`; the error is the syscall's text
    /// (`no such file or directory`, `connection refused`).
    fn cri_connect(&self, path: &str) -> Result<(), String>;
    /// Open a TCP connection to `host:port` (10 s timeout); the error is Go's dial text
    /// (`dial tcp 10.61.0.10:6443: connect: connection refused`).
    fn tcp_dial(&self, hostport: &str) -> Result<(), String>;
}

/// One preflight check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    IsPrivilegedUser,
    NumCpu,
    Mem,
    KubernetesVersion { kubernetes: String },
    Firewalld { ports: Vec<u16> },
    Port(u16),
    FileAvailable(String),
    DirAvailable(String),
    FileContent { path: String, content: String },
    Cri { socket: String },
    Swap,
    InPath { executable: String, mandatory: bool },
    Hostname { node_name: String },
    KubeletVersion { kubernetes: Option<String> },
    ServiceKubelet,
}

fn path_label(prefix: &str, path: &str) -> String {
    format!("{prefix}-{}", path.replace('/', "-"))
}

impl Check {
    /// The name printed in `[ERROR Name]` and matched by `--ignore-preflight-errors`.
    pub fn name(&self) -> String {
        match self {
            Check::IsPrivilegedUser => "IsPrivilegedUser".into(),
            Check::NumCpu => "NumCPU".into(),
            Check::Mem => "Mem".into(),
            Check::KubernetesVersion { .. } => "KubernetesVersion".into(),
            Check::Firewalld { .. } => "Firewalld".into(),
            Check::Port(p) => format!("Port-{p}"),
            Check::FileAvailable(p) => path_label("FileAvailable", p),
            Check::DirAvailable(p) => path_label("DirAvailable", p),
            Check::FileContent { path, .. } => path_label("FileContent", path),
            Check::Cri { .. } => "CRI".into(),
            Check::Swap => "Swap".into(),
            Check::InPath { executable, .. } => path_label("FileExisting", executable),
            Check::Hostname { .. } => "Hostname".into(),
            Check::KubeletVersion { .. } => "KubeletVersion".into(),
            Check::ServiceKubelet => "Service-Kubelet".into(),
        }
    }

    /// Runs the check: (warnings, errors).
    pub fn run(&self, kubeadm: Version, host: &dyn HostProbe) -> (Vec<String>, Vec<String>) {
        let mut w = Vec::new();
        let mut e = Vec::new();
        match self {
            Check::IsPrivilegedUser => {
                if !host.is_root() {
                    e.push("user is not running as root".to_string());
                }
            }
            Check::NumCpu => {
                let n = host.num_cpu();
                if n < CONTROL_PLANE_NUM_CPU {
                    e.push(format!("the number of available CPUs {n} is less than the required {CONTROL_PLANE_NUM_CPU}"));
                }
            }
            Check::Mem => {
                let mb = host.mem_total_mb();
                if mb < CONTROL_PLANE_MEM_MB {
                    e.push(format!("the system RAM ({mb} MB) is less than the minimum {CONTROL_PLANE_MEM_MB} MB"));
                }
            }
            Check::KubernetesVersion { kubernetes } => match Version::parse(kubernetes) {
                None => e.push(format!(
                    "couldn't parse Kubernetes version {}: could not parse {} as version",
                    quote(kubernetes),
                    quote(kubernetes)
                )),
                Some(k8s) if (k8s.major, k8s.minor) > (kubeadm.major, kubeadm.minor) => w.push(format!(
                    "Kubernetes version is greater than kubeadm version. Please consider to upgrade kubeadm. Kubernetes version: {k8s}. Kubeadm version: {}.{}.x",
                    kubeadm.major, kubeadm.minor
                )),
                Some(_) => {}
            },
            Check::Firewalld { ports } => {
                if host.service_state("firewalld") != ServiceState::Missing && host.service_active("firewalld") {
                    let list: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
                    w.push(format!(
                        "firewalld is active, please ensure ports [{}] are open or your cluster may not function correctly",
                        list.join(" ")
                    ));
                }
            }
            Check::Port(p) => {
                if host.port_in_use(*p) {
                    e.push(format!("Port {p} is in use"));
                }
            }
            Check::FileAvailable(p) => {
                if host.exists(p) {
                    e.push(format!("{p} already exists"));
                }
            }
            Check::DirAvailable(p) => match host.dir_is_empty(p) {
                Ok(true) => {}
                Ok(false) => e.push(format!("{p} is not empty")),
                Err(err) => e.push(format!("unable to check if {p} is empty: {err}")),
            },
            Check::FileContent { path, content } => match host.read_file(path) {
                Err(_) => e.push(format!("{path} does not exist")),
                Ok(data) => {
                    let head = &data[..data.len().min(content.len())];
                    if head != content.as_bytes() {
                        e.push(format!("{path} contents are not set to {content}"));
                    }
                }
            },
            Check::Cri { socket } => {
                let path = socket.strip_prefix("unix://").unwrap_or(socket);
                if let Err(err) = host.cri_connect(path) {
                    e.push(format!(
                        "could not connect to the container runtime: failed to create new CRI runtime service: validate service connection: validate CRI v1 runtime API for endpoint {}: rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix {path}: connect: {err}\"",
                        quote(socket)
                    ));
                }
            }
            Check::Swap => {
                if let Ok(data) = host.read_file("/proc/swaps") {
                    // The header line is always there; any further line is an active swap area.
                    if String::from_utf8_lossy(&data).lines().count() > 1 {
                        w.push("swap is supported for cgroup v2 only. The kubelet must be properly configured to use swap. Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, or disable swap on the node".to_string());
                    }
                }
            }
            Check::InPath { executable, mandatory } => {
                if !host.in_path(executable) {
                    let msg = format!("{executable} not found in system path");
                    if *mandatory {
                        e.push(msg);
                    } else {
                        w.push(msg);
                    }
                }
            }
            Check::Hostname { node_name } => {
                if !host.hostname_resolves(node_name) {
                    w.push(format!("hostname \"{node_name}\" could not be reached"));
                    w.push(format!("hostname \"{node_name}\": lookup {node_name}: no such host"));
                }
            }
            Check::KubeletVersion { kubernetes } => kubelet_version_check(kubeadm, kubernetes.as_deref(), host, &mut e),
            Check::ServiceKubelet => match host.service_state("kubelet") {
                ServiceState::Missing => w.push("kubelet service does not exist".to_string()),
                ServiceState::Disabled => {
                    w.push("kubelet service is not enabled, please run 'systemctl enable kubelet.service'".to_string())
                }
                ServiceState::Enabled => {}
            },
        }
        (w, e)
    }
}

/// `KubeletVersionCheck`: kubelet no older than kubeadm's minimum (3 minors back, constants
/// `MinimumKubeletVersion`) and no newer than the control plane.
fn kubelet_version_check(
    kubeadm: Version,
    kubernetes: Option<&str>,
    host: &dyn HostProbe,
    e: &mut Vec<String>,
) {
    let out = match host.kubelet_version() {
        Ok(out) => out,
        Err(err) => {
            e.push(format!("couldn't get kubelet version: {err}"));
            return;
        }
    };
    let Some(kubelet) = Version::parse(&out) else {
        e.push(format!(
            "couldn't get kubelet version: Couldn't parse kubelet version {}",
            quote(out.trim())
        ));
        return;
    };
    let min = Version::new(kubeadm.major, kubeadm.minor.saturating_sub(3), 0);
    if kubelet < min {
        e.push(format!(
            "Kubelet version {} is lower than kubeadm can support. Please upgrade kubelet",
            quote(&kubelet.to_string())
        ));
        return;
    }
    if let Some(k8s) = kubernetes.and_then(Version::parse) {
        if kubelet.major > k8s.major || kubelet.minor > k8s.minor {
            e.push(format!(
                "the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: {} Control plane version: {}",
                quote(&kubelet.to_string()),
                quote(&k8s.to_string())
            ));
        }
    }
}

/// `addCommonChecks` (checks_linux.go `addExecChecks` for the executables).
fn common_checks(checks: &mut Vec<Check>, kubernetes: Option<String>, cri_socket: &str, node_name: &str) {
    checks.push(Check::Cri {
        socket: cri_socket.to_string(),
    });
    checks.push(Check::Swap);
    for (exe, mandatory) in [
        ("ip", true),
        ("iptables", true),
        ("mount", true),
        ("nsenter", true),
        ("ethtool", false),
        ("tc", false),
        ("touch", false),
    ] {
        checks.push(Check::InPath {
            executable: exe.to_string(),
            mandatory,
        });
    }
    checks.push(Check::Hostname {
        node_name: node_name.to_string(),
    });
    checks.push(Check::KubeletVersion { kubernetes });
    checks.push(Check::ServiceKubelet);
    checks.push(Check::Port(KUBELET_PORT));
}

fn ipv4_checks(checks: &mut Vec<Check>) {
    checks.push(Check::FileContent {
        path: IPV4_FORWARD.to_string(),
        content: "1".to_string(),
    });
}

/// `InitNodeChecks`; `secondary` = a control-plane join (common checks already ran).
pub fn init_checks(cfg: &InitConfig, secondary: bool) -> Vec<Check> {
    let bind_port = u16::try_from(cfg.init.local_api_endpoint.bind_port).unwrap_or(6443);
    let mut checks = vec![
        Check::NumCpu,
        Check::Mem,
        Check::KubernetesVersion {
            kubernetes: cfg.cluster.kubernetes_version.clone(),
        },
        Check::Firewalld {
            ports: vec![bind_port, KUBELET_PORT],
        },
        Check::Port(bind_port),
        Check::Port(KUBE_SCHEDULER_PORT),
        Check::Port(KUBE_CONTROLLER_MANAGER_PORT),
    ];
    for component in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "etcd",
    ] {
        checks.push(Check::FileAvailable(format!("{MANIFESTS_DIR}/{component}.yaml")));
    }
    if !secondary {
        common_checks(
            &mut checks,
            Some(cfg.cluster.kubernetes_version.clone()),
            &cfg.init.node_registration.cri_socket,
            &cfg.init.node_registration.name,
        );
        ipv4_checks(&mut checks);
    }
    if let Some(local) = &cfg.cluster.etcd.local {
        checks.push(Check::Port(ETCD_CLIENT_PORT));
        checks.push(Check::Port(ETCD_PEER_PORT));
        checks.push(Check::DirAvailable(local.data_dir.clone()));
    }
    checks
}

/// `JoinNodeChecks`.
pub fn join_checks(cfg: &JoinConfig) -> Vec<Check> {
    let j = &cfg.join;
    let mut checks = vec![
        Check::FileAvailable("/etc/kubernetes/kubelet.conf".to_string()),
        Check::FileAvailable("/etc/kubernetes/bootstrap-kubelet.conf".to_string()),
    ];
    common_checks(
        &mut checks,
        None,
        &j.node_registration.cri_socket,
        &j.node_registration.name,
    );
    if j.control_plane.is_none() {
        checks.push(Check::FileAvailable(j.ca_cert_path.clone()));
    }
    if let Some(bt) = &j.discovery.bootstrap_token {
        if let Ok((host, _)) = crate::config::validate::split_host_port(&bt.api_server_endpoint) {
            if crate::config::validate::parse_ip_sloppy(&host).is_some_and(|ip| ip.is_ipv4()) {
                ipv4_checks(&mut checks);
            }
        }
    }
    checks
}

/// The checks a control-plane join runs after [`join_checks`] ("Running pre-flight checks
/// before initializing the new control plane instance"): `InitNodeChecks` as a secondary
/// control plane, with the joining node's API endpoint.
pub fn join_control_plane_checks(cfg: &JoinConfig, kubernetes_version: &str) -> Vec<Check> {
    let cp = cfg.join.control_plane.clone().unwrap_or_default();
    let init = crate::config::InitConfiguration {
        local_api_endpoint: cp.local_api_endpoint,
        ..Default::default()
    };
    let mut cluster = crate::config::ClusterConfiguration {
        kubernetes_version: kubernetes_version.to_string(),
        ..Default::default()
    };
    cluster.etcd.local = Some(crate::config::LocalEtcd {
        data_dir: crate::config::validate::DEFAULT_ETCD_DATA_DIR.to_string(),
        ..Default::default()
    });
    let cfg = InitConfig {
        init,
        cluster,
        kubelet: None,
        warnings: vec![],
    };
    init_checks(&cfg, true)
}

/// kubeadm `ValidateIgnorePreflightErrors`: flag values and `ignorePreflightErrors`,
/// lower-cased; `all` may not be combined with names.
pub fn ignore_set(from_cli: &[String], from_config: &[String]) -> Result<BTreeSet<String>, String> {
    let set: BTreeSet<String> = from_config
        .iter()
        .chain(from_cli.iter())
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if set.contains("all") && set.len() > 1 {
        let joined: Vec<&str> = set.iter().map(String::as_str).collect();
        return Err(format!(
            "ignore-preflight-errors: Invalid value: {}: don't specify individual checks if 'all' is used",
            quote(&joined.join(","))
        ));
    }
    Ok(set)
}

/// What a preflight run printed and whether it failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Text kubeadm writes to stderr: warnings, then (on failure) the error block.
    pub output: String,
    pub failed: bool,
}

/// The error kubeadm returns once the error block is printed.
pub const PREFLIGHT_FAILED: &str = "preflight checks failed";

/// kubeadm `RunChecks` + `handleError`.
pub fn run_checks(
    checks: &[Check],
    ignore: &BTreeSet<String>,
    kubeadm: Version,
    host: &dyn HostProbe,
) -> Report {
    let mut output = String::new();
    let mut errors = String::new();
    for check in checks {
        let name = check.name();
        let (mut warnings, mut errs) = check.run(kubeadm, host);
        if ignore.contains("all") || ignore.contains(&name.to_lowercase()) {
            warnings.append(&mut errs);
        }
        for w in warnings {
            let _ = writeln!(output, "\t[WARNING {name}]: {w}");
        }
        for e in errs {
            let _ = writeln!(errors, "\t[ERROR {name}]: {e}");
        }
    }
    let failed = !errors.is_empty();
    if failed {
        let _ = write!(
            output,
            "[preflight] Some fatal errors occurred:\n{errors}[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`\n"
        );
    }
    Report { output, failed }
}

#[cfg(test)]
pub(crate) mod tests;
