//! The template context of a run (`cluster`, `versions`) from the inventory and run-time options.

use kbs_engine::Vars;
use kbs_inventory::Inventory;
use serde_json::json;

use crate::versions::{self, MinorVersions};

/// Choices made at run time rather than in the inventory.
#[derive(Debug, Clone)]
pub struct Options {
    /// Base of the pkgs.k8s.io-style repositories (`BASE/core:/stable:/v1.XX/deb/`); a mirror or
    /// the lab's repository. Default `https://pkgs.k8s.io`.
    pub repo_base_url: String,
    /// Replaces the table's containerd package (e.g. `containerd.io`).
    pub containerd_package: Option<String>,
    /// Replaces the table's containerd version spec.
    pub containerd_version: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            repo_base_url: "https://pkgs.k8s.io".into(),
            containerd_package: None,
            containerd_version: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("Kubernetes 1.{0} is not supported (supported: {1})")]
    Unsupported(u32, String),
}

/// The version table's row for the inventory's minor; without one, the newest minor every enabled
/// add-on supports (facts.md: 1.35 for the retired ingress-nginx, the newest otherwise).
pub fn minor_versions(inventory: &Inventory) -> Result<&'static MinorVersions, ContextError> {
    let minor = inventory
        .cluster
        .kubernetes_version
        .map(|v| v.minor)
        .unwrap_or_else(|| match crate::addons::newest_minor_for(&inventory.addons) {
            0 => versions::default_minor(),
            minor => minor.min(versions::default_minor()),
        });
    versions::for_minor(minor)
        .ok_or_else(|| ContextError::Unsupported(minor, kbs_inventory::KubernetesVersion::supported_list()))
}

/// `cluster` and `versions` for the engine.
pub fn vars(inventory: &Inventory, options: &Options) -> Result<Vars, ContextError> {
    let row = minor_versions(inventory)?;
    let c = &inventory.cluster;
    // "1.36" resolves to the newest 1.36.x on the hosts; "1.36.4" pins the patch.
    let kubernetes = match c.kubernetes_version.and_then(|v| v.patch) {
        Some(p) => format!("1.{}.{p}", row.minor),
        None => format!("1.{}", row.minor),
    };
    let mut versions = serde_json::to_value(row).unwrap_or_default();
    if let Some(map) = versions.as_object_mut() {
        map.insert("kubernetes".into(), json!(kubernetes));
        if let Some(p) = &options.containerd_package {
            map.insert("containerd_package".into(), json!(p));
        }
        if let Some(v) = &options.containerd_version {
            map.insert("containerd_version".into(), json!(v));
        }
    }
    let cluster = json!({
        "name": c.name,
        "pod_subnet": c.pod_subnet.to_string(),
        "service_subnet": c.service_subnet.to_string(),
        "host_subnet": c.host_subnet.map(|s| s.to_string()),
        "control_plane_schedulable": c.control_plane_schedulable,
        "endpoint": {
            "mode": c.endpoint.mode.as_str(),
            "address": c.endpoint.address,
            "port": c.endpoint.port,
            "interface": c.endpoint.interface,
        },
        "api_endpoint": inventory.api_endpoint().map(|e| e.to_string()),
        "repo_base_url": options.repo_base_url.trim_end_matches('/'),
    });
    Ok(Vars {
        cluster,
        versions,
        extra: json!({}),
    })
}

#[cfg(test)]
mod default_minor_tests {
    use std::path::Path;

    fn inventory(addons: &str) -> kbs_inventory::Inventory {
        let text = format!(
            "cluster:\n  podSubnet: 172.31.0.0/16\nhosts:\n  - name: host01\n    address: 192.168.61.11\n    roles: [control-plane, worker]\n{addons}"
        );
        kbs_inventory::Inventory::from_str(&text, Path::new("i.yaml"))
            .unwrap()
            .inventory
    }

    #[test]
    fn without_a_version_the_retired_ingress_nginx_keeps_the_cluster_on_the_minor_it_was_tested_with() {
        let nginx = inventory("addons:\n  ingress:\n    controller: ingress-nginx\n");
        assert_eq!(super::minor_versions(&nginx).unwrap().minor, 35);
        let traefik = inventory("addons:\n  ingress: {}\n");
        assert_eq!(
            super::minor_versions(&traefik).unwrap().minor,
            crate::versions::default_minor()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn inventory(version: &str) -> Inventory {
        let yaml = format!(
            "cluster:\n  podSubnet: 172.31.0.0/16\n{version}hosts:\n  - name: host01\n    address: 192.168.61.11\n    roles: [control-plane, worker]\n"
        );
        Inventory::from_str(&yaml, Path::new("inventory.yaml"))
            .unwrap()
            .inventory
    }

    #[test]
    fn default_minor_and_mirror_url() {
        let opts = Options {
            repo_base_url: "http://10.61.0.1/".into(),
            ..Options::default()
        };
        let v = vars(&inventory(""), &opts).unwrap();
        assert_eq!(v.versions["minor"], 37);
        assert_eq!(v.versions["kubernetes"], "1.37");
        assert_eq!(v.cluster["repo_base_url"], "http://10.61.0.1");
        assert_eq!(v.cluster["pod_subnet"], "172.31.0.0/16");
    }

    #[test]
    fn pinned_patch_and_containerd_override() {
        let opts = Options {
            containerd_package: Some("containerd.io".into()),
            ..Options::default()
        };
        let v = vars(&inventory("  kubernetesVersion: \"1.35.2\"\n"), &opts).unwrap();
        assert_eq!(v.versions["kubernetes"], "1.35.2");
        assert_eq!(v.versions["containerd_min_major"], 1);
        assert_eq!(v.versions["containerd_package"], "containerd.io");
    }
}
