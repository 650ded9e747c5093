//! The kbs inventory `up` writes for the lab (same schema as inventory/vagrant.yaml, camelCase YAML).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::machine::Host;
use crate::paths;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Inventory {
    cluster: Cluster,
    ssh: Ssh,
    hosts: Vec<InventoryHost>,
    addons: BTreeMap<&'static str, serde_yaml::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cluster {
    name: &'static str,
    kubernetes_version: &'static str,
    pod_subnet: &'static str,
    service_subnet: &'static str,
    host_subnet: &'static str,
    /// The lab's guests share the real machine's cgroup hierarchy, which may be v1.
    #[serde(rename = "allowCgroupV1")]
    allow_cgroup_v1: bool,
    endpoint: Endpoint,
    /// The lab's own pkgs.k8s.io: guests cannot reach the internet.
    package_repository: String,
}

#[derive(Serialize)]
struct Endpoint {
    mode: &'static str,
    address: String,
    port: u16,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Ssh {
    user: &'static str,
    identity_file: String,
    known_hosts_file: String,
    sudo: bool,
}

#[derive(Serialize)]
struct InventoryHost {
    name: String,
    address: String,
    roles: Vec<&'static str>,
}

/// The inventory text: hosts in `lbs` get role `lb` (and the endpoint becomes HAProxy); of the others the
/// first three are control planes (one if fewer than three), the rest workers.
pub fn render(hosts: &[Host], lbs: &[String]) -> Result<String> {
    let mut control_planes = 0;
    let others = hosts.iter().filter(|h| !lbs.contains(&h.name)).count();
    let wanted_cp = if others >= 3 { 3 } else { 1 };
    let hosts_out = hosts
        .iter()
        .map(|h| {
            let role = if lbs.contains(&h.name) {
                "lb"
            } else if control_planes < wanted_cp {
                control_planes += 1;
                "control-plane"
            } else {
                "worker"
            };
            InventoryHost {
                name: h.name.clone(),
                address: h.address.to_string(),
                roles: vec![role],
            }
        })
        .collect();
    let endpoint = match lbs {
        [] => Endpoint {
            mode: "kube-vip",
            address: paths::VIP.to_string(),
            port: 6443,
        },
        // One load balancer: the endpoint is that host. Several: they share the VIP (keepalived).
        [only] => Endpoint {
            mode: "haproxy",
            address: hosts
                .iter()
                .find(|h| &h.name == only)
                .map(|h| h.address.to_string())
                .unwrap_or_default(),
            port: 6443,
        },
        _ => Endpoint {
            mode: "haproxy",
            address: paths::VIP.to_string(),
            port: 6443,
        },
    };
    let inventory = Inventory {
        cluster: Cluster {
            name: "lab",
            kubernetes_version: "1.36",
            pod_subnet: "172.31.0.0/16",
            service_subnet: "10.96.0.0/12",
            host_subnet: paths::HOST_SUBNET,
            allow_cgroup_v1: true,
            endpoint,
            package_repository: format!("http://{}", paths::BRIDGE_ADDRESS),
        },
        ssh: Ssh {
            user: "root",
            identity_file: paths::ssh_key().display().to_string(),
            known_hosts_file: paths::known_hosts().display().to_string(),
            sudo: false,
        },
        hosts: hosts_out,
        addons: addons(),
    };
    let body = serde_yaml::to_string(&inventory)
        .map_err(|e| Error::new("writing the inventory", e, "report this as a bug"))?;
    Ok(format!(
        "# Written by kbs-lab up: the lab's hosts (systemd-nspawn machines on bridge {}).\n{body}",
        paths::BRIDGE
    ))
}

/// Every add-on with kbs' defaults, its manifests from the lab's mirror: the guests and kbs
/// itself must never reach for the internet.
fn addons() -> BTreeMap<&'static str, serde_yaml::Value> {
    let mut addons: BTreeMap<&'static str, serde_yaml::Value> =
        ["calico", "longhorn", "ingress", "metricsServer"]
            .into_iter()
            .map(|a| (a, serde_yaml::Value::Mapping(Default::default())))
            .collect();
    let mut manifests = serde_yaml::Mapping::new();
    manifests.insert(
        "mirror".into(),
        format!("http://{}/manifests", paths::BRIDGE_ADDRESS).into(),
    );
    addons.insert("manifests", serde_yaml::Value::Mapping(manifests));
    addons
}

pub fn write(path: &Path, hosts: &[Host], lbs: &[String]) -> Result<()> {
    let text = render(hosts, lbs)?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("writing the inventory", parent, e))?;
    }
    std::fs::write(path, text).map_err(|e| Error::io("writing the inventory", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: usize) -> Vec<Host> {
        (1..=n).map(|i| Host::new(i, n)).collect()
    }

    #[test]
    fn add_on_manifests_come_from_the_lab_mirror() {
        let text = render(&hosts(4), &[]).unwrap();
        assert!(
            text.contains("manifests:\n    mirror: http://10.61.0.1/manifests"),
            "{text}"
        );
    }

    #[test]
    fn three_control_planes_then_workers_with_kube_vip() {
        let text = render(&hosts(4), &[]).unwrap();
        assert!(
            text.contains("mode: kube-vip\n    address: 10.61.0.10\n    port: 6443"),
            "{text}"
        );
        assert!(
            text.contains("- name: host03\n  address: 10.61.0.13\n  roles:\n  - control-plane"),
            "{text}"
        );
        assert!(
            text.contains("- name: host04\n  address: 10.61.0.14\n  roles:\n  - worker"),
            "{text}"
        );
        assert!(
            text.contains("kubernetesVersion: '1.36'") || text.contains("kubernetesVersion: \"1.36\""),
            "{text}"
        );
        assert!(text.contains("metricsServer: {}"), "{text}");
    }

    #[test]
    fn load_balancers_switch_the_endpoint_to_haproxy() {
        let text = render(&hosts(2), &["host02".to_string()]).unwrap();
        assert!(text.contains("mode: haproxy\n    address: 10.61.0.12"), "{text}");
        assert!(
            text.contains("- name: host01\n  address: 10.61.0.11\n  roles:\n  - control-plane"),
            "{text}"
        );
        assert!(
            text.contains("- name: host02\n  address: 10.61.0.12\n  roles:\n  - lb"),
            "{text}"
        );
    }
}
