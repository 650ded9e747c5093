//! Which resources the simulated API server knows and how URL paths map onto store keys.
//! Built-in kinds are a fixed table (the subset of kube-apiserver's that kbs and the
//! add-ons it installs touch); any other group/version/resource is served when a stored
//! CustomResourceDefinition declares it, as the apiextensions server does.

use serde_json::Value;

use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// "" for the core group.
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// `nodes`, `leases.coordination.k8s.io`: how errors name it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// (group, version, plural, kind, namespaced, short names).
const BUILTIN: &[(&str, &str, &str, &str, bool, &str)] = &[
    ("", "v1", "namespaces", "Namespace", false, "ns"),
    ("", "v1", "nodes", "Node", false, "no"),
    ("", "v1", "configmaps", "ConfigMap", true, "cm"),
    ("", "v1", "secrets", "Secret", true, ""),
    ("", "v1", "services", "Service", true, "svc"),
    ("", "v1", "pods", "Pod", true, "po"),
    ("", "v1", "endpoints", "Endpoints", true, "ep"),
    ("", "v1", "serviceaccounts", "ServiceAccount", true, "sa"),
    ("", "v1", "events", "Event", true, "ev"),
    (
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        "pvc",
    ),
    ("", "v1", "persistentvolumes", "PersistentVolume", false, "pv"),
    ("", "v1", "resourcequotas", "ResourceQuota", true, "quota"),
    ("", "v1", "limitranges", "LimitRange", true, "limits"),
    ("apps", "v1", "deployments", "Deployment", true, "deploy"),
    ("apps", "v1", "daemonsets", "DaemonSet", true, "ds"),
    ("apps", "v1", "statefulsets", "StatefulSet", true, "sts"),
    ("apps", "v1", "replicasets", "ReplicaSet", true, "rs"),
    ("batch", "v1", "jobs", "Job", true, ""),
    ("batch", "v1", "cronjobs", "CronJob", true, "cj"),
    (
        "certificates.k8s.io",
        "v1",
        "certificatesigningrequests",
        "CertificateSigningRequest",
        false,
        "csr",
    ),
    ("coordination.k8s.io", "v1", "leases", "Lease", true, ""),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role", true, ""),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "RoleBinding",
        true,
        "",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        false,
        "",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        "",
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        "crd,crds",
    ),
    ("networking.k8s.io", "v1", "ingresses", "Ingress", true, "ing"),
    (
        "networking.k8s.io",
        "v1",
        "ingressclasses",
        "IngressClass",
        false,
        "",
    ),
    (
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        "netpol",
    ),
    (
        "storage.k8s.io",
        "v1",
        "storageclasses",
        "StorageClass",
        false,
        "sc",
    ),
    ("storage.k8s.io", "v1", "csidrivers", "CSIDriver", false, ""),
    (
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        "pdb",
    ),
    (
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "PriorityClass",
        false,
        "pc",
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        false,
        "",
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        false,
        "",
    ),
    (
        "apiregistration.k8s.io",
        "v1",
        "apiservices",
        "APIService",
        false,
        "",
    ),
    (
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "EndpointSlice",
        true,
        "",
    ),
    // The simulated etcd's membership (kubeadm's learner add/promote goes through it).
    ("kbs-sim.io", "v1", "etcdmembers", "EtcdMember", false, ""),
];

fn builtin() -> impl Iterator<Item = Resource> {
    BUILTIN.iter().map(|(g, v, p, k, ns, short)| Resource {
        group: g.to_string(),
        version: v.to_string(),
        plural: p.to_string(),
        kind: k.to_string(),
        namespaced: *ns,
        short_names: short
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
    })
}

/// Resources declared by stored CRDs (every served version).
fn from_crds(store: &Store) -> Vec<Resource> {
    let mut out = Vec::new();
    for crd in store.list("apiextensions.k8s.io/v1", "CustomResourceDefinition", None) {
        let s = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
        let (group, plural, kind) = (s("/spec/group"), s("/spec/names/plural"), s("/spec/names/kind"));
        if group.is_empty() || plural.is_empty() || kind.is_empty() {
            continue;
        }
        let short_names: Vec<String> = crd
            .pointer("/spec/names/shortNames")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        for v in crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if v.get("served").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            if let Some(name) = v.get("name").and_then(Value::as_str) {
                out.push(Resource {
                    group: group.clone(),
                    version: name.to_string(),
                    plural: plural.clone(),
                    kind: kind.clone(),
                    namespaced: s("/spec/scope") != "Cluster",
                    short_names: short_names.clone(),
                });
            }
        }
    }
    out
}

/// Every resource the server serves right now.
pub fn all(store: &Store) -> Vec<Resource> {
    builtin().chain(from_crds(store)).collect()
}

pub fn by_plural(store: &Store, group: &str, version: &str, plural: &str) -> Option<Resource> {
    all(store)
        .into_iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

pub fn by_kind(store: &Store, api_version: &str, kind: &str) -> Option<Resource> {
    all(store)
        .into_iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// A parsed resource URL: `/api/v1/namespaces/ns/pods/name/status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
    pub subresource: String,
}

/// Parses a resource path; `None` for anything else (discovery, health).
pub fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, r1, rest @ ..] => (ns.to_string(), {
            let mut v = vec![*r1];
            v.extend_from_slice(rest);
            v
        }),
        other => (String::new(), other.to_vec()),
    };
    let target = |plural: &str, name: &str, sub: &str| Target {
        group: group.clone(),
        version: version.clone(),
        plural: plural.to_string(),
        namespace: namespace.clone(),
        name: name.to_string(),
        subresource: sub.to_string(),
    };
    match rest.as_slice() {
        [plural] => Some(target(plural, "", "")),
        [plural, name] => Some(target(plural, name, "")),
        [plural, name, sub] => Some(target(plural, name, sub)),
        // `/api/v1/namespaces/<name>` itself.
        [] if !namespace.is_empty() => Some(Target {
            namespace: String::new(),
            ..target("namespaces", &namespace, "")
        }),
        _ => None,
    }
}

/// `/api/v1/namespaces/ns/plural/name` for an object of `r`.
pub fn object_path(r: &Resource, namespace: &str, name: &str) -> String {
    let base = if r.group.is_empty() {
        format!("/api/{}", r.version)
    } else {
        format!("/apis/{}/{}", r.group, r.version)
    };
    let ns = if r.namespaced && !namespace.is_empty() {
        format!("/namespaces/{namespace}")
    } else {
        String::new()
    };
    let name = if name.is_empty() {
        String::new()
    } else {
        format!("/{name}")
    };
    format!("{base}{ns}/{}{name}", r.plural)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let t = parse_path("/api/v1/namespaces/kube-system/configmaps/kubeadm-config").unwrap();
        assert_eq!(
            (t.namespace.as_str(), t.plural.as_str(), t.name.as_str()),
            ("kube-system", "configmaps", "kubeadm-config")
        );
        let t = parse_path("/api/v1/namespaces/kube-system").unwrap();
        assert_eq!(
            (t.plural.as_str(), t.name.as_str(), t.namespace.as_str()),
            ("namespaces", "kube-system", "")
        );
        let t = parse_path("/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-1/approval").unwrap();
        assert_eq!(t.subresource, "approval");
        assert!(parse_path("/healthz").is_none());
        let s = Store::new();
        let r = by_plural(&s, "coordination.k8s.io", "v1", "leases").unwrap();
        assert_eq!(
            object_path(&r, "kube-system", "plndr-cp-lock"),
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/plndr-cp-lock"
        );
    }
}
