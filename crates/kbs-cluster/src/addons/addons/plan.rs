//! What `install` will put on the cluster: the enabled add-ons in the book's order, each with its
//! version (the table's, or the inventory's pin) and its files in apply order — upstream
//! manifests plus the few documents kbs renders itself.

use std::net::IpAddr;

use kbs_engine::Renderer;
use kbs_inventory::{Checksums, Inventory};
use serde::Serialize;

use super::error::AddonError;
use super::ingress::IngressTarget;
use super::source::file_name;
use super::versions::{addon_versions, default_ingress_controller, ingress_kind, AddonKind};

pub const CALICO_INSTALLATION_TEMPLATE: &str = "addons/calico-installation.yaml.j2";
pub const TRAEFIK_TEMPLATE: &str = "addons/traefik.yaml.j2";

/// One file of an add-on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedFile {
    /// Read from upstream (or its mirror/directory) and checked against its SHA-256.
    Upstream { name: String, url: String },
    /// Rendered by kbs from the inventory; nothing to verify.
    Rendered { name: String, contents: String },
}

impl PlannedFile {
    pub fn name(&self) -> &str {
        match self {
            PlannedFile::Upstream { name, .. } | PlannedFile::Rendered { name, .. } => name,
        }
    }
}

/// One add-on to install.
#[derive(Debug, Clone)]
pub struct AddonPlan {
    pub kind: AddonKind,
    /// The upstream tag, e.g. `v3.33.1`.
    pub version: String,
    pub files: Vec<PlannedFile>,
    /// The inventory's expected sums for this add-on's upstream files.
    pub sha256: Checksums,
    /// A note for the report, e.g. ingress-nginx on a minor it was never tested with.
    pub warning: Option<String>,
}

/// Every enabled add-on, in install order (Calico, Longhorn, ingress, metrics-server).
pub fn plan(inventory: &Inventory, minor: u32, renderer: &Renderer) -> Result<Vec<AddonPlan>, AddonError> {
    let row = addon_versions(minor).ok_or(AddonError::UnknownMinor(minor))?;
    let addons = &inventory.addons;
    let mut wanted: Vec<(AddonKind, Option<&String>, &Checksums)> = Vec::new();
    if addons.calico.enabled {
        wanted.push((
            AddonKind::Calico,
            addons.calico.version.as_ref(),
            &addons.calico.sha256,
        ));
    }
    if addons.longhorn.enabled {
        wanted.push((
            AddonKind::Longhorn,
            addons.longhorn.version.as_ref(),
            &addons.longhorn.sha256,
        ));
    }
    if addons.ingress.enabled {
        let kind = ingress_kind(
            addons
                .ingress
                .controller
                .unwrap_or_else(default_ingress_controller),
        );
        wanted.push((kind, addons.ingress.version.as_ref(), &addons.ingress.sha256));
    }
    if addons.metrics_server.enabled {
        wanted.push((
            AddonKind::MetricsServer,
            addons.metrics_server.version.as_ref(),
            &addons.metrics_server.sha256,
        ));
    }
    wanted
        .into_iter()
        .map(|(kind, pin, sums)| {
            let version = kind.tag(pin.map(String::as_str).unwrap_or(row.of(kind)));
            let mut files: Vec<PlannedFile> = kind
                .upstream_manifests(&version)
                .into_iter()
                .map(|url| PlannedFile::Upstream {
                    name: file_name(&url).to_string(),
                    url,
                })
                .collect();
            check_sum_keys(kind, &version, &files, sums)?;
            files.extend(rendered(kind, &version, inventory, renderer)?);
            let warning = (kind == AddonKind::IngressNginx && !row.ingress_nginx_tested).then(|| {
                format!(
                    "ingress-nginx is retired and was tested only up to Kubernetes 1.35, not 1.{minor}; the maintained default is Traefik"
                )
            });
            Ok(AddonPlan {
                kind,
                version,
                files,
                sha256: sums.clone(),
                warning,
            })
        })
        .collect()
}

/// A sum for a file the add-on does not have is a typo or a stale pin: say so before downloading.
fn check_sum_keys(
    kind: AddonKind,
    version: &str,
    files: &[PlannedFile],
    sums: &Checksums,
) -> Result<(), AddonError> {
    let names: Vec<&str> = files.iter().map(PlannedFile::name).collect();
    match sums.keys().find(|k| !names.contains(&k.as_str())) {
        Some(unknown) => Err(AddonError::UnknownChecksumKey {
            key: kind.inventory_key().to_string(),
            file: unknown.clone(),
            addon: kind.name().to_string(),
            version: version.to_string(),
            known: names.join(", "),
        }),
        None => Ok(()),
    }
}

#[derive(Serialize)]
struct CalicoVars {
    pod_subnet: String,
    ip_family: u8,
    block_size: u8,
}

#[derive(Serialize)]
struct TraefikVars<'a> {
    version: &'a str,
    namespace: &'a str,
    deployment: &'a str,
    service: &'a str,
    ingress_class: &'a str,
    replicas: usize,
}

fn render(renderer: &Renderer, template: &str, vars: impl Serialize) -> Result<String, AddonError> {
    renderer
        .template(template, &minijinja::Value::from_serialize(vars))
        .map_err(|e| AddonError::Render(e.to_string()))
}

/// The documents kbs writes itself.
fn rendered(
    kind: AddonKind,
    version: &str,
    inventory: &Inventory,
    renderer: &Renderer,
) -> Result<Vec<PlannedFile>, AddonError> {
    match kind {
        // Upstream's custom-resources.yaml carries an example pool (192.168.0.0/16); the pool
        // must be kubeadm's podSubnet or the operator refuses it.
        AddonKind::Calico => {
            let v6 = matches!(inventory.cluster.pod_subnet.addr(), IpAddr::V6(_));
            let contents = render(
                renderer,
                CALICO_INSTALLATION_TEMPLATE,
                CalicoVars {
                    pod_subnet: inventory.cluster.pod_subnet.to_string(),
                    ip_family: if v6 { 6 } else { 4 },
                    block_size: if v6 { 122 } else { 26 },
                },
            )?;
            Ok(vec![PlannedFile::Rendered {
                name: "installation.yaml".into(),
                contents,
            }])
        }
        AddonKind::Traefik => {
            let target = IngressTarget::for_kind(kind);
            // Two replicas when two nodes can run them, so one node going down keeps ingress.
            let replicas = super::ingress::ingress_nodes(inventory).len().clamp(1, 2);
            let contents = render(
                renderer,
                TRAEFIK_TEMPLATE,
                TraefikVars {
                    version,
                    namespace: target.namespace,
                    deployment: target.deployment,
                    service: target.service,
                    ingress_class: target.ingress_class,
                    replicas,
                },
            )?;
            Ok(vec![PlannedFile::Rendered {
                name: "traefik.yaml".into(),
                contents,
            }])
        }
        _ => Ok(Vec::new()),
    }
}
