//! The add-on version table: for each supported Kubernetes minor, the version of every add-on kbs
//! installs, and where each version's manifests live upstream. ONE place to edit when upstream
//! moves (checked November 2026; sources in docs/addons.md).

use kbs_inventory::IngressController;

/// The add-ons kbs installs, in the order it installs them (the book's order: network first,
/// then storage, then ingress, then metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AddonKind {
    Calico,
    Longhorn,
    IngressNginx,
    Traefik,
    MetricsServer,
}

impl AddonKind {
    /// Every add-on kbs knows, in install order.
    pub const ALL: [AddonKind; 5] = [
        AddonKind::Calico,
        AddonKind::Longhorn,
        AddonKind::IngressNginx,
        AddonKind::Traefik,
        AddonKind::MetricsServer,
    ];

    /// The name people see in progress lines, errors and the record ConfigMap.
    pub fn name(&self) -> &'static str {
        match self {
            AddonKind::Calico => "calico",
            AddonKind::Longhorn => "longhorn",
            AddonKind::IngressNginx => "ingress-nginx",
            AddonKind::Traefik => "traefik",
            AddonKind::MetricsServer => "metrics-server",
        }
    }

    /// The inventory key that enables, pins and checksums it.
    pub fn inventory_key(&self) -> &'static str {
        match self {
            AddonKind::Calico => "addons.calico",
            AddonKind::Longhorn => "addons.longhorn",
            AddonKind::IngressNginx | AddonKind::Traefik => "addons.ingress",
            AddonKind::MetricsServer => "addons.metricsServer",
        }
    }

    /// The version as upstream tags it: `v3.33.1`, `controller-v1.15.1`. A pin may leave the
    /// prefix out (`3.33.1`, `1.15.1`).
    pub fn tag(&self, version: &str) -> String {
        let bare = version
            .trim()
            .trim_start_matches("controller-")
            .trim_start_matches('v');
        match self {
            AddonKind::IngressNginx => format!("controller-v{bare}"),
            _ => format!("v{bare}"),
        }
    }

    /// The upstream manifests of `version`, in the order they are applied. kbs renders the rest
    /// itself (Calico's Installation, Traefik's Deployment and Service): see `rendered`.
    pub fn upstream_manifests(&self, version: &str) -> Vec<String> {
        let tag = self.tag(version);
        match self {
            // Operator CRDs first (too large for client-side apply), then the operator.
            AddonKind::Calico => vec![
                format!("https://raw.githubusercontent.com/projectcalico/calico/{tag}/manifests/operator-crds.yaml"),
                format!("https://raw.githubusercontent.com/projectcalico/calico/{tag}/manifests/tigera-operator.yaml"),
            ],
            AddonKind::Longhorn => vec![format!(
                "https://raw.githubusercontent.com/longhorn/longhorn/{tag}/deploy/longhorn.yaml"
            )],
            // The bare-metal flavour: a NodePort Service, which the book then pins to 80/443.
            AddonKind::IngressNginx => vec![format!(
                "https://raw.githubusercontent.com/kubernetes/ingress-nginx/{tag}/deploy/static/provider/baremetal/deploy.yaml"
            )],
            // Traefik publishes its CRDs and RBAC as manifests; its Deployment is a Helm chart,
            // so kbs renders the Deployment, Service and IngressClass itself.
            AddonKind::Traefik => vec![
                format!("https://raw.githubusercontent.com/traefik/traefik/{tag}/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml"),
                format!("https://raw.githubusercontent.com/traefik/traefik/{tag}/docs/content/reference/dynamic-configuration/kubernetes-crd-rbac.yml"),
            ],
            AddonKind::MetricsServer => vec![format!(
                "https://github.com/kubernetes-sigs/metrics-server/releases/download/{tag}/components.yaml"
            )],
        }
    }
}

/// The add-on versions that go with one Kubernetes minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddonVersions {
    /// `36` for Kubernetes 1.36.
    pub minor: u32,
    /// Calico 3.33 covers Kubernetes 1.35–1.37.
    pub calico: &'static str,
    /// Longhorn 1.12.1+ needs Kubernetes ≥ 1.34.
    pub longhorn: &'static str,
    /// Retired upstream (last release controller-v1.15.1, 2026-03); kept for the book's setup.
    pub ingress_nginx: &'static str,
    /// Whether upstream tested ingress-nginx with this minor (only up to 1.35).
    pub ingress_nginx_tested: bool,
    /// The maintained default ingress controller.
    pub traefik: &'static str,
    /// metrics-server 0.9.x needs Kubernetes ≥ 1.34.
    pub metrics_server: &'static str,
}

/// Oldest first; must list exactly `kbs_inventory::SUPPORTED_MINORS` (a test checks).
pub const ADDON_TABLE: &[AddonVersions] = &[
    AddonVersions {
        minor: 35,
        calico: "v3.33.1",
        longhorn: "v1.12.1",
        ingress_nginx: "controller-v1.15.1",
        ingress_nginx_tested: true,
        traefik: "v3.7.13",
        metrics_server: "v0.9.0",
    },
    AddonVersions {
        minor: 36,
        calico: "v3.33.1",
        longhorn: "v1.12.1",
        ingress_nginx: "controller-v1.15.1",
        ingress_nginx_tested: false,
        traefik: "v3.7.13",
        metrics_server: "v0.9.0",
    },
    AddonVersions {
        minor: 37,
        calico: "v3.33.1",
        longhorn: "v1.12.1",
        ingress_nginx: "controller-v1.15.1",
        ingress_nginx_tested: false,
        traefik: "v3.7.13",
        metrics_server: "v0.9.0",
    },
];

/// The row for `minor`, if kbs supports it.
pub fn addon_versions(minor: u32) -> Option<&'static AddonVersions> {
    ADDON_TABLE.iter().find(|v| v.minor == minor)
}

impl AddonVersions {
    /// The table's version of `kind` for this minor.
    pub fn of(&self, kind: AddonKind) -> &'static str {
        match kind {
            AddonKind::Calico => self.calico,
            AddonKind::Longhorn => self.longhorn,
            AddonKind::IngressNginx => self.ingress_nginx,
            AddonKind::Traefik => self.traefik,
            AddonKind::MetricsServer => self.metrics_server,
        }
    }
}

/// Traefik unless the inventory asks for ingress-nginx: ingress-nginx is retired and untested
/// past 1.35, Traefik is maintained, reads standard Ingress objects and has an ingress-nginx
/// annotation provider for migrations.
pub fn default_ingress_controller() -> IngressController {
    IngressController::Traefik
}

/// The add-on that runs `controller`.
pub fn ingress_kind(controller: IngressController) -> AddonKind {
    match controller {
        IngressController::IngressNginx => AddonKind::IngressNginx,
        IngressController::Traefik => AddonKind::Traefik,
    }
}

/// The newest minor every enabled add-on is tested with: ingress-nginx pulls it down to 1.35.
pub fn newest_minor_for(addons: &kbs_inventory::Addons) -> u32 {
    let nginx = addons.ingress.enabled && addons.ingress.controller == Some(IngressController::IngressNginx);
    ADDON_TABLE
        .iter()
        .filter(|row| !nginx || row.ingress_nginx_tested)
        .map(|row| row.minor)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_supported_minors_and_the_facts() {
        let minors: Vec<u32> = ADDON_TABLE.iter().map(|v| v.minor).collect();
        assert_eq!(minors, kbs_inventory::SUPPORTED_MINORS.to_vec());
        for row in ADDON_TABLE {
            assert!(row.calico.starts_with("v3.33."), "1.{}: Calico 3.33.x", row.minor);
            assert!(
                row.longhorn.starts_with("v1.12."),
                "1.{}: Longhorn 1.12.x",
                row.minor
            );
            assert!(row.metrics_server.starts_with("v0.9."), "1.{}", row.minor);
            assert!(row.traefik.starts_with("v3."), "1.{}", row.minor);
            assert_eq!(row.ingress_nginx, "controller-v1.15.1", "its last release");
            assert_eq!(
                row.ingress_nginx_tested,
                row.minor <= 35,
                "tested only up to 1.35"
            );
        }
    }

    #[test]
    fn pins_with_or_without_prefix_give_upstream_tags_and_urls() {
        assert_eq!(AddonKind::Calico.tag("3.33.0"), "v3.33.0");
        assert_eq!(AddonKind::IngressNginx.tag("v1.15.1"), "controller-v1.15.1");
        assert_eq!(
            AddonKind::IngressNginx.tag("controller-v1.15.0"),
            "controller-v1.15.0"
        );
        assert_eq!(
            AddonKind::Calico.upstream_manifests("v3.33.1"),
            [
                "https://raw.githubusercontent.com/projectcalico/calico/v3.33.1/manifests/operator-crds.yaml",
                "https://raw.githubusercontent.com/projectcalico/calico/v3.33.1/manifests/tigera-operator.yaml"
            ]
        );
        assert_eq!(
            AddonKind::MetricsServer.upstream_manifests("0.9.0"),
            ["https://github.com/kubernetes-sigs/metrics-server/releases/download/v0.9.0/components.yaml"]
        );
    }

    #[test]
    fn ingress_nginx_limits_the_default_minor_and_traefik_is_the_default() {
        let mut addons = kbs_inventory::Addons::default();
        assert_eq!(newest_minor_for(&addons), 37);
        addons.ingress.enabled = true;
        assert_eq!(newest_minor_for(&addons), 37, "Traefik by default");
        addons.ingress.controller = Some(IngressController::IngressNginx);
        assert_eq!(newest_minor_for(&addons), 35);
        assert_eq!(default_ingress_controller(), IngressController::Traefik);
    }
}
