//! The lab's add-on manifest mirror: for every add-on version in kbs' table
//! (`kbs_cluster::addons::ADDON_TABLE`), a synthetic manifest at `<dir>/<upstream host>/<upstream
//! path>`, the layout kbs reads under `addons.manifests.mirror` (the lab serves
//! `repo/manifests/` as `http://10.61.0.1/manifests/`).
//!
//! The files are upstream-shaped, not upstream copies (nothing is downloaded here): the kinds,
//! names and namespaces kbs and the simulated API server's add-on rules look at are the real
//! ones — Calico's operator CRDs (one of them larger than the 256 KiB a client-side apply can
//! carry in its annotation, as upstream's are) and its operator Deployment, Longhorn's manager
//! DaemonSet and driver Deployment, each ingress controller's Deployment, NodePort Service and
//! IngressClass, metrics-server's Deployment and APIService.

use std::path::{Path, PathBuf};

use kbs_cluster::addons::{AddonKind, ADDON_TABLE};
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// kube-apiserver's limit on all annotations of one object; Calico's CRDs exceed it.
pub const ANNOTATION_LIMIT: usize = 262_144;

/// Writes every manifest; returns the files written, sorted.
pub fn publish(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for row in ADDON_TABLE {
        for kind in AddonKind::ALL {
            let version = row.of(kind);
            for url in kind.upstream_manifests(version) {
                let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(&url);
                let path = dir.join(rest);
                if written.contains(&path) {
                    continue;
                }
                let file = rest.rsplit('/').next().unwrap_or(rest);
                let text = to_yaml(&documents(kind, version, file))?;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| Error::io("create the manifest mirror", parent, e))?;
                }
                std::fs::write(&path, text).map_err(|e| Error::io("write a mirrored manifest", &path, e))?;
                written.push(path);
            }
        }
    }
    written.sort();
    Ok(written)
}

/// A multi-document YAML stream, as upstream ships them.
fn to_yaml(docs: &[Value]) -> Result<String> {
    let mut out = String::new();
    for doc in docs {
        let text = serde_yaml::to_string(doc)
            .map_err(|e| Error::new("render a mirrored manifest", e, "report this as a kbs-lab bug"))?;
        out.push_str("---\n");
        out.push_str(&text);
    }
    Ok(out)
}

/// The documents of one upstream file.
fn documents(kind: AddonKind, version: &str, file: &str) -> Vec<Value> {
    match (kind, file) {
        (AddonKind::Calico, "operator-crds.yaml") => calico_crds(),
        (AddonKind::Calico, _) => calico_operator(version),
        (AddonKind::Longhorn, _) => longhorn(version),
        (AddonKind::IngressNginx, _) => ingress_nginx(version),
        (AddonKind::Traefik, "kubernetes-crd-rbac.yml") => traefik_rbac(),
        (AddonKind::Traefik, _) => traefik_crds(),
        (AddonKind::MetricsServer, _) => metrics_server(version),
    }
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn service_account(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}})
}

fn cluster_role(name: &str, groups: &[&str]) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
        "rules": [{"apiGroups": groups, "resources": ["*"], "verbs": ["get", "list", "watch"]}]})
}

fn cluster_role_binding(name: &str, role: &str, ns: &str, sa: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]})
}

/// A workload whose pods run `image`; `kind` is Deployment or DaemonSet.
fn workload(kind: &str, ns: &str, name: &str, image: &str, host_network: bool) -> Value {
    let labels = json!({"app.kubernetes.io/name": name});
    let mut obj = json!({"apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                "spec": {"serviceAccountName": name, "hostNetwork": host_network,
                    "containers": [{"name": name, "image": image}]}}}});
    if kind == "Deployment" {
        obj["spec"]["replicas"] = json!(1);
    }
    obj
}

/// A CRD with `extra_properties` described fields in its schema (upstream's are that verbose).
fn crd(group: &str, kind: &str, plural: &str, scope: &str, version: &str, extra_properties: usize) -> Value {
    let mut props = serde_json::Map::new();
    for i in 0..extra_properties {
        props.insert(
            format!("field{i:04}"),
            json!({"type": "string", "description": format!(
                "Field {i} of {kind}: synthetic text standing in for the long descriptions that make upstream's \
                 generated CRDs large. It is repeated so that the schema, like the real one, cannot travel in a \
                 kubectl.kubernetes.io/last-applied-configuration annotation. {}", "x".repeat(200))}),
        );
    }
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "versions": [{"name": version, "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": props},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}})
}

fn calico_crds() -> Vec<Value> {
    vec![
        // ~600 described fields: well over the 256 KiB annotation limit on its own.
        crd(
            "operator.tigera.io",
            "Installation",
            "installations",
            "Cluster",
            "v1",
            600,
        ),
        crd(
            "operator.tigera.io",
            "APIServer",
            "apiservers",
            "Cluster",
            "v1",
            20,
        ),
        crd(
            "operator.tigera.io",
            "TigeraStatus",
            "tigerastatuses",
            "Cluster",
            "v1",
            5,
        ),
        crd("crd.projectcalico.org", "IPPool", "ippools", "Cluster", "v1", 20),
        crd(
            "crd.projectcalico.org",
            "FelixConfiguration",
            "felixconfigurations",
            "Cluster",
            "v1",
            50,
        ),
    ]
}

fn calico_operator(version: &str) -> Vec<Value> {
    // tigera/operator's own tag differs from Calico's; the lab's image name only has to look right.
    let image = format!("quay.io/tigera/operator:{version}-lab");
    vec![
        namespace("tigera-operator"),
        service_account("tigera-operator", "tigera-operator"),
        cluster_role(
            "tigera-operator",
            &["", "apps", "operator.tigera.io", "crd.projectcalico.org"],
        ),
        cluster_role_binding(
            "tigera-operator",
            "tigera-operator",
            "tigera-operator",
            "tigera-operator",
        ),
        // The operator runs on the host network: it must start before there is a pod network.
        workload("Deployment", "tigera-operator", "tigera-operator", &image, true),
    ]
}

fn longhorn(version: &str) -> Vec<Value> {
    let ns = "longhorn-system";
    let image = |c: &str| format!("longhornio/{c}:{version}");
    vec![
        namespace(ns),
        service_account(ns, "longhorn-service-account"),
        cluster_role("longhorn-role", &["", "apps", "longhorn.io", "storage.k8s.io"]),
        cluster_role_binding("longhorn-bind", "longhorn-role", ns, "longhorn-service-account"),
        crd("longhorn.io", "Volume", "volumes", "Namespaced", "v1beta2", 10),
        crd("longhorn.io", "Node", "nodes", "Namespaced", "v1beta2", 10),
        crd("longhorn.io", "Setting", "settings", "Namespaced", "v1beta2", 5),
        json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "longhorn"}, "provisioner": "driver.longhorn.io",
            "allowVolumeExpansion": true, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
            "parameters": {"numberOfReplicas": "3"}}),
        workload(
            "DaemonSet",
            ns,
            "longhorn-manager",
            &image("longhorn-manager"),
            false,
        ),
        workload(
            "Deployment",
            ns,
            "longhorn-driver-deployer",
            &image("longhorn-manager"),
            false,
        ),
        workload("Deployment", ns, "longhorn-ui", &image("longhorn-ui"), false),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "longhorn-frontend", "namespace": ns},
            "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": "longhorn-ui"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8000}]}}),
    ]
}

fn ingress_nginx(version: &str) -> Vec<Value> {
    let ns = "ingress-nginx";
    let tag = version.trim_start_matches("controller-");
    vec![
        namespace(ns),
        service_account(ns, "ingress-nginx"),
        cluster_role("ingress-nginx", &["", "networking.k8s.io", "discovery.k8s.io"]),
        cluster_role_binding("ingress-nginx", "ingress-nginx", ns, "ingress-nginx"),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "ingress-nginx-controller", "namespace": ns}, "data": {}}),
        // Upstream's bare-metal Service: a NodePort with ports the API server picks.
        json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "ingress-nginx-controller", "namespace": ns},
            "spec": {"type": "NodePort", "selector": {"app.kubernetes.io/name": "ingress-nginx-controller"},
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"},
                          {"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"}]}}),
        workload(
            "Deployment",
            ns,
            "ingress-nginx-controller",
            &format!("registry.k8s.io/ingress-nginx/controller:{tag}"),
            false,
        ),
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}),
    ]
}

fn traefik_crds() -> Vec<Value> {
    [
        "IngressRoute",
        "IngressRouteTCP",
        "Middleware",
        "TLSOption",
        "ServersTransport",
        "TraefikService",
    ]
    .iter()
    .map(|k| {
        crd(
            "traefik.io",
            k,
            &format!("{}s", k.to_lowercase()),
            "Namespaced",
            "v1alpha1",
            10,
        )
    })
    .collect()
}

fn traefik_rbac() -> Vec<Value> {
    vec![
        cluster_role(
            "traefik-ingress-controller",
            &[
                "",
                "extensions",
                "networking.k8s.io",
                "discovery.k8s.io",
                "traefik.io",
            ],
        ),
        // Upstream binds its role to a ServiceAccount in `default`, as here.
        cluster_role_binding(
            "traefik-ingress-controller",
            "traefik-ingress-controller",
            "default",
            "traefik-ingress-controller",
        ),
    ]
}

fn metrics_server(version: &str) -> Vec<Value> {
    let ns = "kube-system";
    let mut deployment = workload(
        "Deployment",
        ns,
        "metrics-server",
        &format!("registry.k8s.io/metrics-server/metrics-server:{version}"),
        false,
    );
    // Upstream verifies the kubelets' serving certificates (no --kubelet-insecure-tls).
    deployment["spec"]["template"]["spec"]["containers"][0]["args"] = json!([
        "--cert-dir=/tmp",
        "--secure-port=10250",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        "--kubelet-use-node-status-port",
        "--metric-resolution=15s"
    ]);
    vec![
        service_account(ns, "metrics-server"),
        cluster_role("system:metrics-server", &["", "metrics.k8s.io"]),
        cluster_role_binding(
            "system:metrics-server",
            "system:metrics-server",
            ns,
            "metrics-server",
        ),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "metrics-server", "namespace": ns},
            "spec": {"selector": {"app.kubernetes.io/name": "metrics-server"},
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": "https"}]}}),
        deployment,
        json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": "v1beta1.metrics.k8s.io"},
            "spec": {"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
                "versionPriority": 100, "insecureSkipTLSVerify": true,
                "service": {"name": "metrics-server", "namespace": ns}}}),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(path: &Path) -> Vec<Value> {
        let text = std::fs::read_to_string(path).unwrap();
        text.split("---\n")
            .filter(|d| !d.trim().is_empty())
            .map(|d| serde_yaml::from_str(d).unwrap())
            .collect()
    }

    fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
        docs.iter()
            .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
    }

    #[test]
    fn every_table_url_is_published_at_host_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let written = publish(dir.path()).unwrap();
        for row in ADDON_TABLE {
            for kind in AddonKind::ALL {
                for url in kind.upstream_manifests(row.of(kind)) {
                    let path = dir.path().join(url.strip_prefix("https://").unwrap());
                    assert!(written.contains(&path), "{url} not published");
                    assert!(path.is_file());
                }
            }
        }
        let crds = dir.path().join(format!(
            "raw.githubusercontent.com/projectcalico/calico/{}/manifests/operator-crds.yaml",
            ADDON_TABLE[0].calico
        ));
        assert!(written.contains(&crds));
    }

    #[test]
    fn calico_crds_are_too_large_for_a_client_side_apply() {
        let dir = tempfile::tempdir().unwrap();
        publish(dir.path()).unwrap();
        let path = dir.path().join(format!(
            "raw.githubusercontent.com/projectcalico/calico/{}/manifests/operator-crds.yaml",
            ADDON_TABLE[0].calico
        ));
        let crds = docs(&path);
        let installations = find(
            &crds,
            "CustomResourceDefinition",
            "installations.operator.tigera.io",
        )
        .unwrap();
        // What kubectl's client-side apply would put in the last-applied annotation.
        let annotation = serde_json::to_string(installations).unwrap();
        assert!(annotation.len() > ANNOTATION_LIMIT, "{} bytes", annotation.len());
        assert!(find(
            &crds,
            "CustomResourceDefinition",
            "tigerastatuses.operator.tigera.io"
        )
        .is_some());
    }

    #[test]
    fn workloads_have_the_names_the_rules_and_kbs_look_for() {
        let dir = tempfile::tempdir().unwrap();
        publish(dir.path()).unwrap();
        let row = &ADDON_TABLE[0];
        // The documents of `kind`'s `index`th upstream file, read where publish put it.
        let at = |kind: AddonKind, index: usize| {
            let url = kind.upstream_manifests(row.of(kind)).remove(index);
            docs(&dir.path().join(url.split_once("://").unwrap().1))
        };
        let namespace_of = |docs: &[Value], kind: &str, name: &str| {
            find(docs, kind, name).map(|d| d["metadata"]["namespace"].clone())
        };
        let op = at(AddonKind::Calico, 1);
        assert_eq!(
            namespace_of(&op, "Deployment", "tigera-operator").unwrap(),
            "tigera-operator"
        );
        assert_eq!(
            find(&op, "Deployment", "tigera-operator").unwrap()["spec"]["template"]["spec"]["hostNetwork"],
            true
        );
        let lh = at(AddonKind::Longhorn, 0);
        assert_eq!(
            namespace_of(&lh, "DaemonSet", "longhorn-manager").unwrap(),
            "longhorn-system"
        );
        assert!(find(&lh, "Deployment", "longhorn-driver-deployer").is_some());
        let nginx = at(AddonKind::IngressNginx, 0);
        assert_eq!(
            find(&nginx, "Service", "ingress-nginx-controller").unwrap()["spec"]["type"],
            "NodePort"
        );
        assert!(find(&nginx, "Deployment", "ingress-nginx-controller").is_some());
        assert!(find(&nginx, "IngressClass", "nginx").is_some());
        let ms = at(AddonKind::MetricsServer, 0);
        assert_eq!(
            namespace_of(&ms, "Deployment", "metrics-server").unwrap(),
            "kube-system"
        );
        assert!(find(&ms, "APIService", "v1beta1.metrics.k8s.io").is_some());
        assert!(find(
            &at(AddonKind::Traefik, 1),
            "ClusterRole",
            "traefik-ingress-controller"
        )
        .is_some());
        assert!(find(
            &at(AddonKind::Traefik, 0),
            "CustomResourceDefinition",
            "ingressroutes.traefik.io"
        )
        .is_some());
    }
}
