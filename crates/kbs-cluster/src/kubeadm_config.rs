//! The kubeadm config file each host gets, from the inventory and the run's secrets:
//! `kubeadm.k8s.io/v1beta4` only (v1beta3 is gone in kubeadm 1.36).
//!
//! - the first control plane: InitConfiguration + ClusterConfiguration + KubeletConfiguration
//!   (`kubeadm init --config F --upload-certs`; the certificate key is in the file, never a flag);
//! - the other control planes: JoinConfiguration with `controlPlane`;
//! - workers: JoinConfiguration without it.
//!
//! The kinds are typed structs serialized with serde_yaml rather than templates: every value
//! (labels, taints, addresses) is quoted correctly by construction, and a field kubeadm does not
//! know cannot be typed by accident. `kbs_sim::config` checks the output as strictly as
//! `kubeadm config validate` (tests/kubeadm_config.rs).
//!
//! Joins pin the cluster CA (`caCertHashes`); `unsafeSkipCAVerification` is never written.
//!
//! ```
//! use kbs_cluster::{kubeadm_config, ConfigInput, KubeadmRole, Secrets};
//! let inventory = kbs_inventory::Inventory::from_str(
//!     "cluster:\n  podSubnet: 172.31.0.0/16\nhosts:\n  - name: host01\n    address: 192.168.61.11\n    roles: [control-plane]\n  - name: host02\n    address: 192.168.61.12\n    roles: [worker]\n",
//!     std::path::Path::new("inventory.yaml"),
//! ).unwrap().inventory;
//! let secrets = Secrets::mint().unwrap();
//! // Before init the CA pin is unknown: the init config needs none.
//! let init = kubeadm_config(&inventory, "host01", &ConfigInput::new("v1.37.1", &secrets, None)).unwrap();
//! assert_eq!(init.role, KubeadmRole::Init);
//! assert!(init.text.expose().contains("kind: InitConfiguration"));
//! // After init: kbs_cluster::ca_cert_hash(&ca_pem) of /etc/kubernetes/pki/ca.crt.
//! let pin = format!("sha256:{}", "0".repeat(64));
//! let join = kubeadm_config(&inventory, "host02", &ConfigInput::new("v1.37.1", &secrets, Some(pin))).unwrap();
//! assert!(join.text.expose().contains("caCertHashes:"));
//! assert_eq!(format!("{:?}", join.text), "[redacted]");
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;

use kbs_inventory::{EndpointMode, Host, Inventory, Role};
use kbs_ssh::Secret;
use serde::Serialize;

use crate::secrets::Secrets;

pub const KUBEADM_API: &str = "kubeadm.k8s.io/v1beta4";
pub const KUBELET_API: &str = "kubelet.config.k8s.io/v1beta1";
/// containerd's CRI socket, as `/etc/crictl.yaml` names it.
pub const CRI_SOCKET: &str = "unix:///run/containerd/containerd.sock";
/// Where every API server listens (kubeadm's default `bindPort`).
pub const API_SERVER_PORT: u16 = 6443;
/// Where `kbs apply` writes a host's kubeadm config (0600; it holds the token and certificate key).
pub const KUBEADM_CONFIG_PATH: &str = "/etc/kubernetes/kubeadm-kbs.yaml";
/// The init token lives as long as the uploaded certificates (2 h): the run joins every host
/// right after init, and `kbs join` later mints a fresh token.
pub const BOOTSTRAP_TOKEN_TTL: &str = "2h0m0s";
/// The taint kubeadm puts on control planes when `nodeRegistration.taints` is omitted.
pub const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";
/// What `kbs render` prints instead of a secret.
pub const REDACTED: &str = "<redacted>";
/// What `kbs render` prints for the CA pin, which exists only after `kubeadm init`.
pub const CA_HASH_PLACEHOLDER: &str = "sha256:<computed from the cluster CA after init>";

/// What a host does in `kubeadm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeadmRole {
    /// The first control plane in the inventory: `kubeadm init`.
    Init,
    /// Another control plane: `kubeadm join --control-plane` (one at a time).
    JoinControlPlane,
    /// `kubeadm join` as a worker.
    Worker,
}

impl KubeadmRole {
    /// `None` for hosts that run no kubelet (`lb` only).
    pub fn of(inventory: &Inventory, host: &Host) -> Option<KubeadmRole> {
        if host.has_role(Role::ControlPlane) {
            let first = inventory.control_planes().next().map(|h| h.name.as_str());
            Some(if first == Some(host.name.as_str()) {
                KubeadmRole::Init
            } else {
                KubeadmRole::JoinControlPlane
            })
        } else if host.has_role(Role::Worker) {
            Some(KubeadmRole::Worker)
        } else {
            None
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            KubeadmRole::Init => "init",
            KubeadmRole::JoinControlPlane => "join-control-plane",
            KubeadmRole::Worker => "worker",
        }
    }
}

/// The values of one run that are not in the inventory.
#[derive(Debug, Clone)]
pub struct ConfigInput {
    /// `v1.36.4`: the patch resolved on the hosts (or pinned in the inventory).
    pub kubernetes_version: String,
    pub token: Secret,
    pub certificate_key: Secret,
    /// `sha256:<hex>` of the cluster CA ([`crate::secrets::ca_cert_hash`]); needed by joins only.
    pub ca_cert_hash: Option<String>,
    /// Node IPs learned from the hosts' facts, for hosts whose inventory entry has no IP.
    pub node_ips: BTreeMap<String, IpAddr>,
}

impl ConfigInput {
    pub fn new(
        kubernetes_version: impl Into<String>,
        secrets: &Secrets,
        ca_cert_hash: Option<String>,
    ) -> Self {
        ConfigInput {
            kubernetes_version: kubernetes_version.into(),
            token: secrets.token().clone(),
            certificate_key: secrets.certificate_key().clone(),
            ca_cert_hash,
            node_ips: BTreeMap::new(),
        }
    }

    /// `kbs render` without `--show-secrets`: placeholders instead of secrets and the CA pin.
    pub fn redacted(kubernetes_version: impl Into<String>) -> Self {
        ConfigInput {
            kubernetes_version: kubernetes_version.into(),
            token: Secret::new(REDACTED),
            certificate_key: Secret::new(REDACTED),
            ca_cert_hash: Some(CA_HASH_PLACEHOLDER.into()),
            node_ips: BTreeMap::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no host {0} in the inventory")]
    UnknownHost(String),
    #[error("{0} has neither the control-plane nor the worker role, so it gets no kubeadm config")]
    NoKubeadmRole(String),
    #[error("the node IP of {0} is not known: set `nodeIp` in the inventory (its address is a name)")]
    NodeIpUnknown(String),
    #[error("the inventory has no API endpoint (no control plane)")]
    NoEndpoint,
    #[error("joining {0} needs the cluster CA's hash, known only after `kubeadm init`")]
    CaHashMissing(String),
    #[error("cannot write the kubeadm config as YAML: {0}")]
    Yaml(String),
}

/// A host's kubeadm config. The text holds the token and certificate key, so it is a
/// [`Secret`]: write it 0600 with the engine's `file` module and `sensitive: true`.
#[derive(Debug, Clone)]
pub struct KubeadmConfig {
    pub host: String,
    pub role: KubeadmRole,
    pub text: Secret,
}

/// The kubeadm config for `host_name`, in the role the inventory gives it.
pub fn kubeadm_config(
    inventory: &Inventory,
    host_name: &str,
    input: &ConfigInput,
) -> Result<KubeadmConfig, ConfigError> {
    let host = inventory
        .host(host_name)
        .ok_or_else(|| ConfigError::UnknownHost(host_name.to_string()))?;
    let role =
        KubeadmRole::of(inventory, host).ok_or_else(|| ConfigError::NoKubeadmRole(host.name.clone()))?;
    kubeadm_config_as(inventory, host_name, role, input)
}

/// The kubeadm config for `host_name` in `role`: the first control plane joins instead of
/// initialising when the cluster already runs (it was reset, or another one did `init`).
pub fn kubeadm_config_as(
    inventory: &Inventory,
    host_name: &str,
    role: KubeadmRole,
    input: &ConfigInput,
) -> Result<KubeadmConfig, ConfigError> {
    let host = inventory
        .host(host_name)
        .ok_or_else(|| ConfigError::UnknownHost(host_name.to_string()))?;
    let text = match role {
        KubeadmRole::Init => {
            let docs = [
                to_yaml(&init_configuration(inventory, host, input)?)?,
                to_yaml(&cluster_configuration(inventory, input)?)?,
                to_yaml(&kubelet_configuration(inventory))?,
            ];
            docs.join("---\n")
        }
        KubeadmRole::JoinControlPlane | KubeadmRole::Worker => {
            to_yaml(&join_configuration(inventory, host, role, input)?)?
        }
    };
    Ok(KubeadmConfig {
        host: host.name.clone(),
        role,
        text: Secret::new(text),
    })
}

fn to_yaml(value: &impl Serialize) -> Result<String, ConfigError> {
    serde_yaml::to_string(value).map_err(|e| ConfigError::Yaml(e.to_string()))
}

/// `kubernetesVersion` from the kubeadm package version resolved on the hosts:
/// `1.36.4-1.1` → `v1.36.4` (`None` if it is not `1.MM.P[-REV]`).
pub fn kubernetes_version_from_package(package_version: &str) -> Option<String> {
    let core = package_version.trim().split(['-', '+', '~']).next()?;
    let parts: Vec<&str> = core.split('.').collect();
    let numeric = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    (parts.len() == 3 && parts.iter().all(|p| numeric(p))).then(|| format!("v{core}"))
}

/// Whether the API server must allow NodePorts 80 and 443: the ingress add-on exposes its
/// controller on them, as the book does (`service-node-port-range: 80-32767`).
pub fn needs_low_node_ports(inventory: &Inventory) -> bool {
    inventory.addons.ingress.enabled
}

/// The node IP of `host`: the inventory's, else the one learned from its facts.
pub fn node_ip(host: &Host, input: &ConfigInput) -> Result<IpAddr, ConfigError> {
    host.node_ip
        .or_else(|| input.node_ips.get(&host.name).copied())
        .ok_or_else(|| ConfigError::NodeIpUnknown(host.name.clone()))
}

/// Names and addresses the API server certificate must hold besides kubeadm's own defaults: the
/// endpoint's address, every lb host (haproxy), every control plane's name and node IP.
pub fn cert_sans(inventory: &Inventory, input: &ConfigInput) -> Result<Vec<String>, ConfigError> {
    let mut sans = Vec::new();
    let mut add = |s: String| {
        if !sans.contains(&s) {
            sans.push(s);
        }
    };
    if let Some(endpoint) = inventory.api_endpoint() {
        add(endpoint.host);
    }
    if inventory.cluster.endpoint.mode == EndpointMode::Haproxy {
        for lb in inventory.lbs() {
            add(lb.address.clone());
        }
    }
    for cp in inventory.control_planes() {
        add(cp.name.clone());
        add(node_ip(cp, input)?.to_string());
    }
    Ok(sans)
}

// ---- kubeadm.k8s.io/v1beta4 (kubernetes.io/docs/reference/config-api/kubeadm-config.v1beta4/) ----

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InitConfiguration {
    api_version: &'static str,
    kind: &'static str,
    bootstrap_tokens: Vec<BootstrapToken>,
    certificate_key: String,
    #[serde(rename = "localAPIEndpoint")]
    local_api_endpoint: ApiEndpoint,
    node_registration: NodeRegistration,
    timeouts: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BootstrapToken {
    token: String,
    description: &'static str,
    ttl: &'static str,
    usages: [&'static str; 2],
    groups: [&'static str; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiEndpoint {
    advertise_address: String,
    bind_port: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeRegistration {
    name: String,
    cri_socket: &'static str,
    /// v1beta4: a list of `{name, value}`, not a map.
    kubelet_extra_args: Vec<Arg>,
    /// `None` = omitted, so kubeadm adds the control-plane taint; `Some([])` = none at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    taints: Option<Vec<TaintSpec>>,
}

#[derive(Serialize)]
struct Arg {
    name: &'static str,
    value: String,
}

#[derive(Serialize)]
struct TaintSpec {
    key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    effect: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfiguration {
    api_version: &'static str,
    kind: &'static str,
    cluster_name: String,
    kubernetes_version: String,
    control_plane_endpoint: String,
    networking: Networking,
    api_server: ApiServer,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Networking {
    pod_subnet: String,
    service_subnet: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiServer {
    #[serde(rename = "certSANs")]
    cert_sans: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extra_args: Vec<Arg>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KubeletConfiguration {
    api_version: &'static str,
    kind: &'static str,
    /// containerd runs with `SystemdCgroup = true`; the two must match.
    cgroup_driver: &'static str,
    /// CA-signed serving certificates (metrics-server); kbs approves the CSRs it can vouch for.
    #[serde(rename = "serverTLSBootstrap")]
    server_tls_bootstrap: bool,
    /// `false` only when the inventory allows cgroup v1 hosts: the kubelet refuses them by
    /// default since 1.35.
    #[serde(rename = "failCgroupV1", skip_serializing_if = "Option::is_none")]
    fail_cgroup_v1: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinConfiguration {
    api_version: &'static str,
    kind: &'static str,
    discovery: Discovery,
    #[serde(skip_serializing_if = "Option::is_none")]
    control_plane: Option<JoinControlPlane>,
    node_registration: NodeRegistration,
    timeouts: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Discovery {
    bootstrap_token: BootstrapTokenDiscovery,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BootstrapTokenDiscovery {
    api_server_endpoint: String,
    token: String,
    ca_cert_hashes: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinControlPlane {
    #[serde(rename = "localAPIEndpoint")]
    local_api_endpoint: ApiEndpoint,
    certificate_key: String,
}

fn init_configuration(
    inventory: &Inventory,
    host: &Host,
    input: &ConfigInput,
) -> Result<InitConfiguration, ConfigError> {
    Ok(InitConfiguration {
        api_version: KUBEADM_API,
        kind: "InitConfiguration",
        bootstrap_tokens: vec![BootstrapToken {
            token: input.token.expose().to_string(),
            description: "kbs: joins of this run",
            ttl: BOOTSTRAP_TOKEN_TTL,
            usages: ["signing", "authentication"],
            groups: ["system:bootstrappers:kubeadm:default-node-token"],
        }],
        certificate_key: input.certificate_key.expose().to_string(),
        local_api_endpoint: ApiEndpoint {
            advertise_address: node_ip(host, input)?.to_string(),
            bind_port: API_SERVER_PORT,
        },
        node_registration: node_registration(inventory, host, input)?,
        timeouts: BTreeMap::from([("controlPlaneComponentHealthCheck", "4m0s")]),
    })
}

fn cluster_configuration(
    inventory: &Inventory,
    input: &ConfigInput,
) -> Result<ClusterConfiguration, ConfigError> {
    let c = &inventory.cluster;
    let mut extra_args = Vec::new();
    if needs_low_node_ports(inventory) {
        extra_args.push(Arg {
            name: "service-node-port-range",
            value: "80-32767".into(),
        });
    }
    Ok(ClusterConfiguration {
        api_version: KUBEADM_API,
        kind: "ClusterConfiguration",
        cluster_name: c.name.clone(),
        kubernetes_version: input.kubernetes_version.clone(),
        control_plane_endpoint: inventory
            .api_endpoint()
            .ok_or(ConfigError::NoEndpoint)?
            .to_string(),
        networking: Networking {
            pod_subnet: c.pod_subnet.to_string(),
            service_subnet: c.service_subnet.to_string(),
        },
        api_server: ApiServer {
            cert_sans: cert_sans(inventory, input)?,
            extra_args,
        },
    })
}

fn kubelet_configuration(inventory: &Inventory) -> KubeletConfiguration {
    KubeletConfiguration {
        api_version: KUBELET_API,
        kind: "KubeletConfiguration",
        cgroup_driver: "systemd",
        server_tls_bootstrap: true,
        fail_cgroup_v1: inventory.cluster.allow_cgroup_v1.then_some(false),
    }
}

fn join_configuration(
    inventory: &Inventory,
    host: &Host,
    role: KubeadmRole,
    input: &ConfigInput,
) -> Result<JoinConfiguration, ConfigError> {
    let ca_cert_hash = input
        .ca_cert_hash
        .clone()
        .ok_or_else(|| ConfigError::CaHashMissing(host.name.clone()))?;
    let control_plane = match role {
        KubeadmRole::JoinControlPlane => Some(JoinControlPlane {
            local_api_endpoint: ApiEndpoint {
                advertise_address: node_ip(host, input)?.to_string(),
                bind_port: API_SERVER_PORT,
            },
            certificate_key: input.certificate_key.expose().to_string(),
        }),
        _ => None,
    };
    Ok(JoinConfiguration {
        api_version: KUBEADM_API,
        kind: "JoinConfiguration",
        discovery: Discovery {
            bootstrap_token: BootstrapTokenDiscovery {
                api_server_endpoint: inventory
                    .api_endpoint()
                    .ok_or(ConfigError::NoEndpoint)?
                    .to_string(),
                token: input.token.expose().to_string(),
                ca_cert_hashes: vec![ca_cert_hash],
            },
        },
        control_plane,
        node_registration: node_registration(inventory, host, input)?,
        timeouts: BTreeMap::from([("discovery", "5m0s"), ("tlsBootstrap", "5m0s")]),
    })
}

fn node_registration(
    inventory: &Inventory,
    host: &Host,
    input: &ConfigInput,
) -> Result<NodeRegistration, ConfigError> {
    let mut kubelet_extra_args = vec![Arg {
        name: "node-ip",
        value: node_ip(host, input)?.to_string(),
    }];
    let labels: Vec<String> = host
        .labels
        .iter()
        .filter(|(k, _)| kubelet_may_self_set(k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if !labels.is_empty() {
        kubelet_extra_args.push(Arg {
            name: "node-labels",
            value: labels.join(","),
        });
    }
    Ok(NodeRegistration {
        name: host.name.clone(),
        cri_socket: CRI_SOCKET,
        kubelet_extra_args,
        taints: taints(inventory, host),
    })
}

/// Labels in the `kubernetes.io` / `k8s.io` namespaces that a kubelet may still set on its own
/// Node (k8s.io/kubelet/pkg/apis `kubeletLabels`).
const KUBELET_SELF_LABELS: &[&str] = &[
    "kubernetes.io/hostname",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
];

/// Whether the kubelet may set label `key` itself (`--node-labels`). It refuses to start with
/// other `kubernetes.io`/`k8s.io` labels (such as `node-role.kubernetes.io/worker`), and the
/// NodeRestriction admission plugin rejects `node-restriction.kubernetes.io/` ones.
pub fn kubelet_may_self_set(key: &str) -> bool {
    let namespace = key.split_once('/').map(|(ns, _)| ns).unwrap_or("");
    let within = |ns: &str, domain: &str| ns == domain || ns.ends_with(&format!(".{domain}"));
    if within(namespace, "node-restriction.kubernetes.io") {
        return false;
    }
    if !within(namespace, "kubernetes.io") && !within(namespace, "k8s.io") {
        return true;
    }
    KUBELET_SELF_LABELS.contains(&key)
        || within(namespace, "kubelet.kubernetes.io")
        || within(namespace, "node.kubernetes.io")
}

/// The inventory labels of `host` the kubelet may not set itself: they go on the Node through
/// the API once it has joined (`kubectl label node`).
pub fn labels_after_join(host: &Host) -> BTreeMap<String, String> {
    host.labels
        .iter()
        .filter(|(k, _)| !kubelet_may_self_set(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Written taints replace kubeadm's default, so a control plane that must stay unschedulable
/// but has taints of its own lists the control-plane taint too.
fn taints(inventory: &Inventory, host: &Host) -> Option<Vec<TaintSpec>> {
    let own = host.taints.iter().map(|t| TaintSpec {
        key: t.key.clone(),
        value: t.value.clone(),
        effect: t.effect.as_str(),
    });
    if !host.has_role(Role::ControlPlane) {
        return (!host.taints.is_empty()).then(|| own.collect());
    }
    let schedulable = inventory.cluster.control_plane_schedulable || host.has_role(Role::Worker);
    if schedulable {
        return Some(own.collect());
    }
    if host.taints.is_empty() {
        return None;
    }
    if host.taints.iter().any(|t| t.key == CONTROL_PLANE_TAINT) {
        return Some(own.collect());
    }
    let control_plane = TaintSpec {
        key: CONTROL_PLANE_TAINT.into(),
        value: None,
        effect: "NoSchedule",
    };
    Some(std::iter::once(control_plane).chain(own).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_package_strings() {
        assert_eq!(
            kubernetes_version_from_package("1.36.4-1.1").as_deref(),
            Some("v1.36.4")
        );
        assert_eq!(
            kubernetes_version_from_package("1.35.7-2.1\n").as_deref(),
            Some("v1.35.7")
        );
        assert_eq!(kubernetes_version_from_package("1.36"), None);
        assert_eq!(kubernetes_version_from_package("(none)"), None);
    }
}
