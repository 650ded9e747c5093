//! The inventory as the rest of kbs sees it: validated, defaults applied, paths resolved.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;

use crate::ssh::SshSettings;
use crate::version::KubernetesVersion;

/// A whole inventory file. Built only by loading, so every value in it passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    pub cluster: Cluster,
    /// Cluster-wide SSH defaults, the lowest inventory layer.
    pub ssh: SshSettings,
    /// Named groups of SSH settings that hosts opt into.
    pub groups: BTreeMap<String, Group>,
    /// Hosts in file order.
    pub hosts: Vec<Host>,
    pub addons: Addons,
    /// The file this inventory came from, as the user named it.
    pub source_path: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// DNS-1123 label; default `kubernetes` (kubeadm's own default).
    pub name: String,
    /// `None`: kbs picks the newest supported minor that every enabled add-on supports.
    pub kubernetes_version: Option<KubernetesVersion>,
    pub pod_subnet: IpNet,
    /// Default `10.96.0.0/12`.
    pub service_subnet: IpNet,
    /// The hosts' L2 subnet; required for kube-vip.
    pub host_subnet: Option<IpNet>,
    /// Whether control planes also run workloads (no control-plane taint). Default false.
    pub control_plane_schedulable: bool,
    /// Run on cgroup v1 hosts although the kubelet refuses them by default since 1.35 (kbs then
    /// sets the kubelet's `failCgroupV1: false`). Default false.
    pub allow_cgroup_v1: bool,
    pub endpoint: Endpoint,
    /// Base URL of a pkgs.k8s.io mirror (no trailing `/`); `None` means pkgs.k8s.io itself.
    pub package_repository: Option<String>,
}

/// How clients reach the API servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub mode: EndpointMode,
    /// kube-vip: the VIP; external: IP or DNS name; haproxy: optional; none: always `None`.
    pub address: Option<String>,
    /// Default 6443.
    pub port: u16,
    /// kube-vip only: the interface that carries the VIP; `None` lets kbs find it from the host's facts.
    pub interface: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndpointMode {
    /// kube-vip static pods on every control plane hold a VIP (ARP).
    KubeVip,
    /// HAProxy on the `lb` hosts balances the API servers.
    Haproxy,
    /// A load balancer kbs does not manage.
    External,
    /// The first control plane's own address; a single control plane only.
    None,
}

impl EndpointMode {
    pub const ALL: [EndpointMode; 4] = [
        EndpointMode::KubeVip,
        EndpointMode::Haproxy,
        EndpointMode::External,
        EndpointMode::None,
    ];

    /// The spelling used in the inventory.
    pub fn as_str(&self) -> &'static str {
        match self {
            EndpointMode::KubeVip => "kube-vip",
            EndpointMode::Haproxy => "haproxy",
            EndpointMode::External => "external",
            EndpointMode::None => "none",
        }
    }
}

impl fmt::Display for EndpointMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the API is reached: `host:port` for kubeadm's `controlPlaneEndpoint` and kubeconfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiEndpoint {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for ApiEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    pub ssh: SshSettings,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// DNS-1123 subdomain; becomes the node name.
    pub name: String,
    /// Where kbs connects: an IP or DNS name.
    pub address: String,
    pub roles: Vec<Role>,
    /// The node's cluster IP: as written, else `address` when that is an IP, else `None`
    /// (kbs learns it from the host).
    pub node_ip: Option<IpAddr>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    /// Groups in listed order; later ones win when merging SSH settings.
    pub groups: Vec<String>,
    /// Host-level SSH overrides, the highest inventory layer.
    pub ssh: SshSettings,
}

impl Host {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    ControlPlane,
    Worker,
    /// Runs HAProxy for `endpoint.mode: haproxy`.
    Lb,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::ControlPlane, Role::Worker, Role::Lb];

    /// The spelling used in the inventory.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
            Role::Lb => "lb",
        }
    }

    pub(crate) fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node taint, written `key[=value]:Effect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    pub effect: TaintEffect,
}

impl fmt::Display for Taint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)?;
        if let Some(value) = &self.value {
            write!(f, "={value}")?;
        }
        write!(f, ":{}", self.effect)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub const ALL: [TaintEffect; 3] = [
        TaintEffect::NoSchedule,
        TaintEffect::PreferNoSchedule,
        TaintEffect::NoExecute,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

impl fmt::Display for TaintEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The add-ons kbs installs. An add-on listed under `addons:` is enabled unless it says
/// `enabled: false`; one not listed is not installed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addons {
    pub calico: Addon,
    pub longhorn: Addon,
    pub ingress: IngressAddon,
    pub metrics_server: Addon,
    /// Where the add-ons' manifests come from (`addons.manifests`).
    pub manifests: ManifestSource,
}

/// Where kbs fetches add-on manifests from. Whatever the source, each file is checked against
/// its SHA-256 (from the inventory or the lock file) before anything is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ManifestSource {
    /// The upstream URLs of kbs' version table.
    #[default]
    Upstream,
    /// An http(s) base URL (no trailing `/`) serving `BASE/<upstream host>/<upstream path>`.
    Mirror(String),
    /// A local directory laid out as `DIR/<upstream host>/<upstream path>`, read on the machine
    /// running kbs and uploaded over SSH (air-gapped sites). Absolute, resolved like `identityFile`.
    Directory(PathBuf),
}

/// A manifest's expected SHA-256: the file name (last path segment of its URL) and 64 lowercase hex digits.
pub type Checksums = BTreeMap<String, String>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addon {
    pub enabled: bool,
    /// A pinned version; `None` uses the version kbs' matrix pairs with the Kubernetes minor.
    pub version: Option<String>,
    /// Expected SHA-256 per manifest file name; wins over the lock file.
    pub sha256: Checksums,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngressAddon {
    pub enabled: bool,
    pub version: Option<String>,
    pub sha256: Checksums,
    /// `None`: kbs' default controller.
    pub controller: Option<IngressController>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IngressController {
    /// Retired upstream (2026-03); kept for the book's exact setup.
    IngressNginx,
    Traefik,
}

impl IngressController {
    pub const ALL: [IngressController; 2] = [IngressController::IngressNginx, IngressController::Traefik];

    pub fn as_str(&self) -> &'static str {
        match self {
            IngressController::IngressNginx => "ingress-nginx",
            IngressController::Traefik => "traefik",
        }
    }
}

impl fmt::Display for IngressController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Inventory {
    /// The host with this name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|host| host.name == name)
    }

    /// Control planes in file order; the first is the one `kubeadm init` runs on.
    pub fn control_planes(&self) -> impl Iterator<Item = &Host> {
        self.with_role(Role::ControlPlane)
    }

    pub fn workers(&self) -> impl Iterator<Item = &Host> {
        self.with_role(Role::Worker)
    }

    pub fn lbs(&self) -> impl Iterator<Item = &Host> {
        self.with_role(Role::Lb)
    }

    fn with_role(&self, role: Role) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(move |host| host.has_role(role))
    }

    /// The SSH settings for `host`: host, then its groups (later listed wins), then cluster.
    /// Fields nobody set stay `None` for the `~/.ssh/config` layer to fill.
    pub fn ssh_settings(&self, host: &Host) -> SshSettings {
        let from_groups = host
            .groups
            .iter()
            .rev()
            .filter_map(|name| self.groups.get(name))
            .fold(SshSettings::default(), |merged, group| merged.or(&group.ssh));
        host.ssh.or(&from_groups).or(&self.ssh)
    }

    /// Where clients reach the API: the endpoint's address, else (haproxy) the first lb host, else
    /// (none) the first control plane. `None` only if there is no host to point at.
    pub fn api_endpoint(&self) -> Option<ApiEndpoint> {
        let endpoint = &self.cluster.endpoint;
        let host = match (&endpoint.address, endpoint.mode) {
            (Some(address), _) => address.clone(),
            (None, EndpointMode::Haproxy) => self.lbs().next()?.address.clone(),
            (None, _) => {
                let first = self.control_planes().next()?;
                first
                    .node_ip
                    .map(|ip| ip.to_string())
                    .unwrap_or_else(|| first.address.clone())
            }
        };
        Some(ApiEndpoint {
            host,
            port: endpoint.port,
        })
    }
}
