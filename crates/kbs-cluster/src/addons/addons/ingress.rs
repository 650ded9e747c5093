//! The ingress controller the book's way: its Service pinned to nodePorts 80 and 443 (so any
//! node, and the `lb` hosts' HAProxy in front of them, answers on the usual ports) and its
//! IngressClass marked the cluster's default, so Ingress objects without a class use it.

use kbs_inventory::{Host, Inventory, Role};

use super::kubectl::KUBECTL;
use super::versions::AddonKind;

/// The names an ingress controller's objects have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngressTarget {
    pub namespace: &'static str,
    pub deployment: &'static str,
    pub service: &'static str,
    pub ingress_class: &'static str,
    /// (port name, Service port, target port) for HTTP then HTTPS.
    pub ports: [(&'static str, u16, &'static str); 2],
}

impl IngressTarget {
    /// The objects of `kind`: upstream's names for ingress-nginx, kbs' template's for Traefik.
    pub fn for_kind(kind: AddonKind) -> IngressTarget {
        match kind {
            AddonKind::IngressNginx => IngressTarget {
                namespace: "ingress-nginx",
                deployment: "ingress-nginx-controller",
                service: "ingress-nginx-controller",
                ingress_class: "nginx",
                ports: [("http", 80, "http"), ("https", 443, "https")],
            },
            _ => IngressTarget {
                namespace: "traefik",
                deployment: "traefik",
                service: "traefik",
                ingress_class: "traefik",
                ports: [("web", 80, "web"), ("websecure", 443, "websecure")],
            },
        }
    }

    /// The Service as the book patches it: NodePort, nodePort = port for 80 and 443. A merge
    /// patch replaces the port list whole, so the result is the same whatever upstream shipped.
    pub fn service_patch(&self) -> String {
        let ports: Vec<serde_json::Value> = self
            .ports
            .iter()
            .map(|(name, port, target)| {
                serde_json::json!({"name": name, "port": port, "targetPort": target, "nodePort": port, "protocol": "TCP"})
            })
            .collect();
        serde_json::json!({"spec": {"type": "NodePort", "ports": ports}}).to_string()
    }

    /// Pins the Service's nodePorts (kubectl's wording of no-change differs between commands and
    /// versions, so kbs decides from the object itself: see [`IngressTarget::service_pinned`]).
    pub fn patch_service_script(&self) -> String {
        format!(
            "{KUBECTL} -n {ns} patch service {svc} --type merge -p '{patch}'\n",
            ns = self.namespace,
            svc = self.service,
            patch = self.service_patch(),
        )
    }

    pub fn default_class_script(&self) -> String {
        format!(
            "{KUBECTL} annotate ingressclass {class} {DEFAULT_CLASS_ANNOTATION}=true --overwrite\n",
            class = self.ingress_class,
        )
    }

    /// Whether the Service (as `kubectl get -o json` prints it) is a NodePort on 80 and 443.
    pub fn service_pinned(&self, service: &serde_json::Value) -> bool {
        let ports = service.pointer("/spec/ports").and_then(|p| p.as_array());
        service.pointer("/spec/type").and_then(|t| t.as_str()) == Some("NodePort")
            && self.ports.iter().all(|(_, port, _)| {
                ports.is_some_and(|ps| {
                    ps.iter().any(|p| {
                        p.get("port").and_then(|v| v.as_u64()) == Some(u64::from(*port))
                            && p.get("nodePort").and_then(|v| v.as_u64()) == Some(u64::from(*port))
                    })
                })
            })
    }

    /// Whether the IngressClass carries the default-class annotation.
    pub fn class_is_default(class: &serde_json::Value) -> bool {
        class
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
            .and_then(|v| v.as_str())
            == Some("true")
    }
}

pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// The nodes that run workloads, and so the ingress controller's pods: workers, plus the
/// control planes when they are schedulable; the control planes alone if nothing else can.
pub fn ingress_nodes(inventory: &Inventory) -> Vec<&Host> {
    let schedulable = |h: &&Host| {
        h.has_role(Role::Worker)
            || (h.has_role(Role::ControlPlane) && inventory.cluster.control_plane_schedulable)
    };
    let nodes: Vec<&Host> = inventory.hosts.iter().filter(schedulable).collect();
    if nodes.is_empty() {
        inventory.control_planes().collect()
    } else {
        nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_scripts_pin_80_and_443_and_mark_the_class_default() {
        let nginx = IngressTarget::for_kind(AddonKind::IngressNginx);
        let script = nginx.patch_service_script();
        assert!(script.starts_with(
            "kubectl --kubeconfig /etc/kubernetes/admin.conf -n ingress-nginx patch service ingress-nginx-controller --type merge -p '"
        ), "{script}");
        let patch: serde_json::Value = serde_json::from_str(&nginx.service_patch()).unwrap();
        assert_eq!(patch["spec"]["type"], "NodePort");
        assert_eq!(patch["spec"]["ports"][0]["nodePort"], 80);
        assert_eq!(patch["spec"]["ports"][0]["targetPort"], "http");
        assert_eq!(patch["spec"]["ports"][1]["nodePort"], 443);
        // The patch itself is what `service_pinned` accepts; upstream's Service is not.
        assert!(nginx.service_pinned(&patch));
        let upstream = serde_json::json!({"spec": {"type": "NodePort", "ports": [
            {"name": "http", "port": 80, "nodePort": 31080}, {"name": "https", "port": 443, "nodePort": 31443}]}});
        assert!(!nginx.service_pinned(&upstream));
        assert_eq!(
            nginx.default_class_script(),
            "kubectl --kubeconfig /etc/kubernetes/admin.conf annotate ingressclass nginx ingressclass.kubernetes.io/is-default-class=true --overwrite\n"
        );
        assert!(!IngressTarget::class_is_default(
            &serde_json::json!({"metadata": {"name": "nginx"}})
        ));
        assert!(IngressTarget::class_is_default(
            &serde_json::json!({"metadata": {"annotations": {DEFAULT_CLASS_ANNOTATION: "true"}}})
        ));
        let traefik = IngressTarget::for_kind(AddonKind::Traefik);
        assert!(traefik
            .patch_service_script()
            .contains("-n traefik patch service traefik"));
        assert!(traefik
            .default_class_script()
            .contains("annotate ingressclass traefik "));
    }

    #[test]
    fn ingress_runs_on_workers_or_schedulable_control_planes() {
        let yaml = "cluster:\n  podSubnet: 172.31.0.0/16\n  endpoint: {mode: haproxy, port: 8443}\nhosts:\n  - {name: cp1, address: 10.0.0.1, roles: [control-plane, lb]}\n  - {name: w1, address: 10.0.0.2, roles: [worker]}\n";
        let inv = kbs_inventory::Inventory::from_str(yaml, std::path::Path::new("i.yaml"))
            .unwrap()
            .inventory;
        let names: Vec<&str> = ingress_nodes(&inv).iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["w1"]);
        let yaml = yaml.replace("  endpoint:", "  controlPlaneSchedulable: true\n  endpoint:");
        let inv = kbs_inventory::Inventory::from_str(&yaml, std::path::Path::new("i.yaml"))
            .unwrap()
            .inventory;
        let names: Vec<&str> = ingress_nodes(&inv).iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["cp1", "w1"]);
    }
}
