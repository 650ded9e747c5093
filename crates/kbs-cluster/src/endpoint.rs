//! The files behind the control-plane endpoint: kube-vip's static pod manifest (mode
//! `kube-vip`, on every control plane, written before `kubeadm init`) and HAProxy's config (mode
//! `haproxy`, on the `lb` hosts). Both are templates of the library (`templates/endpoint/`),
//! rendered with the engine's one [`Renderer`], so `--templates DIR` can replace them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use kbs_engine::Renderer;
use kbs_inventory::{EndpointMode, Inventory, Role};
use serde::Serialize;

use crate::kubeadm_config::{KubeadmRole, API_SERVER_PORT};
use crate::versions::MinorVersions;

pub const KUBE_VIP_TEMPLATE: &str = "endpoint/kube-vip.yaml.j2";
pub const HAPROXY_TEMPLATE: &str = "endpoint/haproxy.cfg.j2";
/// Where the kubelet picks kube-vip up as a static pod.
pub const KUBE_VIP_MANIFEST_PATH: &str = "/etc/kubernetes/manifests/kube-vip.yaml";
pub const HAPROXY_CONFIG_PATH: &str = "/etc/haproxy/haproxy.cfg";

/// Which host kubeconfig kube-vip mounts (inside the pod it is always
/// `/etc/kubernetes/admin.conf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeVipKubeconfig {
    /// Group system:masters; exists only on the init node, and works before the
    /// `kubeadm:cluster-admins` binding that `kubeadm init` creates late (1.29+, kube-vip#684).
    SuperAdmin,
    Admin,
}

impl KubeVipKubeconfig {
    /// super-admin.conf on the init node, admin.conf on the control planes that join.
    pub fn for_role(role: KubeadmRole) -> Self {
        match role {
            KubeadmRole::Init => KubeVipKubeconfig::SuperAdmin,
            _ => KubeVipKubeconfig::Admin,
        }
    }

    pub fn path(&self) -> &'static str {
        match self {
            KubeVipKubeconfig::SuperAdmin => "/etc/kubernetes/super-admin.conf",
            KubeVipKubeconfig::Admin => "/etc/kubernetes/admin.conf",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("no host {0} in the inventory")]
    UnknownHost(String),
    #[error("the endpoint mode is {0}, not {1}")]
    WrongMode(EndpointMode, EndpointMode),
    #[error("{0} is not a control plane, so it runs no kube-vip")]
    NotControlPlane(String),
    #[error("the endpoint has no address")]
    NoAddress,
    #[error(
        "kube-vip only holds the address, so clients reach the API servers on their port {API_SERVER_PORT}, not {0}"
    )]
    KubeVipPort(u16),
    #[error("which interface of {0} carries the VIP is not known: set `cluster.endpoint.interface`")]
    NoInterface(String),
    #[error("the node IP of {0} is not known: set `nodeIp` in the inventory")]
    NodeIpUnknown(String),
    #[error("{0}")]
    Render(#[from] kbs_engine::RenderError),
}

/// What the kube-vip template needs.
#[derive(Debug, Clone, Serialize)]
pub struct KubeVip {
    pub address: String,
    pub port: u16,
    pub interface: String,
    /// 32 for an IPv4 VIP, 128 for IPv6: kube-vip adds the address alone, not a subnet.
    pub cidr: u8,
    /// From the version table; ≥ v1.2.3 (v1.2.2 deadlocks `kubeadm init`, kube-vip#1654).
    pub image_tag: String,
    /// The host path mounted as the pod's admin.conf.
    pub kubeconfig: String,
}

impl KubeVip {
    /// kube-vip for control plane `host_name`. `facts_interface` is the interface that holds
    /// the host's node IP (the engine's `Facts::node_interface`); the inventory's
    /// `endpoint.interface` wins over it.
    pub fn for_host(
        inventory: &Inventory,
        host_name: &str,
        versions: &MinorVersions,
        facts_interface: Option<&str>,
    ) -> Result<KubeVip, EndpointError> {
        let endpoint = &inventory.cluster.endpoint;
        if endpoint.mode != EndpointMode::KubeVip {
            return Err(EndpointError::WrongMode(endpoint.mode, EndpointMode::KubeVip));
        }
        let host = inventory
            .host(host_name)
            .ok_or_else(|| EndpointError::UnknownHost(host_name.into()))?;
        let role = match KubeadmRole::of(inventory, host) {
            Some(role @ (KubeadmRole::Init | KubeadmRole::JoinControlPlane)) => role,
            _ => return Err(EndpointError::NotControlPlane(host.name.clone())),
        };
        let address = endpoint.address.clone().ok_or(EndpointError::NoAddress)?;
        if endpoint.port != API_SERVER_PORT {
            return Err(EndpointError::KubeVipPort(endpoint.port));
        }
        let interface = endpoint
            .interface
            .as_deref()
            .or(facts_interface)
            .ok_or_else(|| EndpointError::NoInterface(host.name.clone()))?;
        let cidr = match address.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => 128,
            _ => 32,
        };
        Ok(KubeVip {
            address,
            port: endpoint.port,
            interface: interface.to_string(),
            cidr,
            image_tag: versions.kube_vip.to_string(),
            kubeconfig: KubeVipKubeconfig::for_role(role).path().to_string(),
        })
    }

    /// Mount another kubeconfig, e.g. admin.conf on the init node once `kubeadm init` is done.
    pub fn with_kubeconfig(mut self, kubeconfig: KubeVipKubeconfig) -> Self {
        self.kubeconfig = kubeconfig.path().to_string();
        self
    }

    /// The static pod manifest.
    pub fn render(&self, renderer: &Renderer) -> Result<String, EndpointError> {
        Ok(renderer.template(KUBE_VIP_TEMPLATE, &minijinja::Value::from_serialize(self))?)
    }
}

/// What the HAProxy template needs.
#[derive(Debug, Clone, Serialize)]
pub struct Haproxy {
    pub cluster_name: String,
    /// `*` (IPv4) or `:::` (IPv6 and IPv4).
    pub bind: String,
    pub port: u16,
    pub servers: Vec<Backend>,
    /// With the ingress add-on: the nodes that run the ingress controller, for the 80/443
    /// frontends (the worker load balancer of the kind pattern). Empty without it.
    pub ingress: Vec<IngressBackend>,
}

/// A node whose ingress controller answers on nodePorts 80 and 443.
#[derive(Debug, Clone, Serialize)]
pub struct IngressBackend {
    pub name: String,
    /// The bare IP; `[ip]` for IPv6 so a port can follow.
    pub host: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backend {
    pub name: String,
    /// `ip:6443`, `[ip]:6443` for IPv6.
    pub address: String,
}

impl Haproxy {
    /// HAProxy for the `lb` hosts: every control plane's API server behind the endpoint port.
    /// `node_ips` fills node IPs the inventory does not give (from the hosts' facts). The
    /// inventory already refuses port 6443 when an lb host is also a control plane.
    pub fn for_inventory(
        inventory: &Inventory,
        node_ips: &BTreeMap<String, IpAddr>,
    ) -> Result<Haproxy, EndpointError> {
        let endpoint = &inventory.cluster.endpoint;
        if endpoint.mode != EndpointMode::Haproxy {
            return Err(EndpointError::WrongMode(endpoint.mode, EndpointMode::Haproxy));
        }
        let servers = inventory
            .control_planes()
            .map(|cp| {
                let ip = cp
                    .node_ip
                    .or_else(|| node_ips.get(&cp.name).copied())
                    .ok_or_else(|| EndpointError::NodeIpUnknown(cp.name.clone()))?;
                let address = match ip {
                    IpAddr::V4(v4) => format!("{v4}:{API_SERVER_PORT}"),
                    IpAddr::V6(v6) => format!("[{v6}]:{API_SERVER_PORT}"),
                };
                Ok(Backend {
                    name: cp.name.clone(),
                    address,
                })
            })
            .collect::<Result<Vec<_>, EndpointError>>()?;
        let ingress = if inventory.addons.ingress.enabled {
            crate::addons::ingress_nodes(inventory)
                .into_iter()
                .map(|node| {
                    let ip = node
                        .node_ip
                        .or_else(|| node_ips.get(&node.name).copied())
                        .ok_or_else(|| EndpointError::NodeIpUnknown(node.name.clone()))?;
                    Ok(IngressBackend {
                        name: node.name.clone(),
                        host: match ip {
                            IpAddr::V4(v4) => v4.to_string(),
                            IpAddr::V6(v6) => format!("[{v6}]"),
                        },
                    })
                })
                .collect::<Result<Vec<_>, EndpointError>>()?
        } else {
            Vec::new()
        };
        let ipv6 = inventory
            .lbs()
            .any(|h| h.address.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6()));
        Ok(Haproxy {
            cluster_name: inventory.cluster.name.clone(),
            bind: if ipv6 { ":::".into() } else { "*".into() },
            port: endpoint.port,
            servers,
            ingress,
        })
    }

    pub fn render(&self, renderer: &Renderer) -> Result<String, EndpointError> {
        Ok(renderer.template(HAPROXY_TEMPLATE, &minijinja::Value::from_serialize(self))?)
    }
}

/// Hosts that run HAProxy: the `lb` hosts under mode haproxy.
pub fn haproxy_hosts(inventory: &Inventory) -> Vec<String> {
    if inventory.cluster.endpoint.mode != EndpointMode::Haproxy {
        return Vec::new();
    }
    inventory
        .hosts
        .iter()
        .filter(|h| h.has_role(Role::Lb))
        .map(|h| h.name.clone())
        .collect()
}
