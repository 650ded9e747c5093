//! Who is asking and may they: kube-apiserver's x509 / bootstrap-token / anonymous
//! authenticators and the `Node,RBAC` authorizers kubeadm configures.
//!
//! RBAC is evaluated over the Roles, ClusterRoles and bindings in the store, seeded with
//! the few bootstrap-policy objects kubeadm relies on (plugin/pkg/auth/authorizer/rbac/
//! bootstrappolicy): `cluster-admin` bound to `system:masters`, `system:node-bootstrapper`.
//! So `kubeadm:cluster-admins` (admin.conf) is Forbidden until `kubeadm init` creates its
//! binding, exactly as on 1.29+, and anonymous users read cluster-info only once init
//! created the `kubeadm:bootstrap-signer-clusterinfo` Role.

use std::time::SystemTime;

use serde_json::{json, Value};

use crate::store::{bootstrap, Store};
use crate::token::BootstrapToken;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    pub fn anonymous() -> Identity {
        Identity {
            user: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        }
    }
    pub fn in_group(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }
    /// The node name of a kubelet's identity (`system:node:<name>` in `system:nodes`).
    pub fn node_name(&self) -> Option<&str> {
        self.user
            .strip_prefix("system:node:")
            .filter(|_| self.in_group("system:nodes"))
    }
}

/// Why authentication failed: the API server answers 401 `Unauthorized`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthorized;

/// Identity from the verified client certificate (CN, O) or a bearer token; requests with
/// neither are anonymous. A bearer token that does not authenticate is 401, not anonymous
/// (k8s.io/apiserver union authenticator).
pub fn authenticate(
    store: &Store,
    peer_cert: Option<&[u8]>,
    authorization: Option<&str>,
    now: SystemTime,
) -> Result<Identity, Unauthorized> {
    if let Some(der) = peer_cert {
        let (user, mut groups) = crate::tls::subject_identity(der).ok_or(Unauthorized)?;
        groups.push("system:authenticated".into());
        return Ok(Identity { user, groups });
    }
    if let Some(h) = authorization {
        let tok = h.strip_prefix("Bearer ").ok_or(Unauthorized)?.trim();
        let tok = BootstrapToken::parse(tok).map_err(|_| Unauthorized)?;
        let rec = bootstrap::authenticate(store, &tok, now).ok_or(Unauthorized)?;
        if !rec.usages.iter().any(|u| u == "authentication") {
            return Err(Unauthorized);
        }
        let mut groups = vec!["system:bootstrappers".to_string()];
        groups.extend(rec.groups.iter().cloned());
        groups.push("system:authenticated".into());
        return Ok(Identity {
            user: format!("system:bootstrap:{}", tok.id),
            groups,
        });
    }
    Ok(Identity::anonymous())
}

/// One request as the authorizers see it.
#[derive(Debug, Clone)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

fn matches(list: Option<&Value>, want: &str) -> bool {
    list.and_then(Value::as_array).is_some_and(|l| {
        l.iter()
            .any(|v| v.as_str() == Some("*") || v.as_str() == Some(want))
    })
}

fn rule_allows(rule: &Value, a: &Attributes) -> bool {
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let names_ok = match rule.get("resourceNames").and_then(Value::as_array) {
        Some(n) if !n.is_empty() => n.iter().any(|v| v.as_str() == Some(a.name.as_str())),
        _ => true,
    };
    matches(rule.get("verbs"), &a.verb)
        && matches(rule.get("apiGroups"), &a.group)
        && matches(rule.get("resources"), &resource)
        && names_ok
}

fn subject_matches(binding: &Value, id: &Identity, binding_ns: &str) -> bool {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|s| {
            let name = s.get("name").and_then(Value::as_str).unwrap_or("");
            match s.get("kind").and_then(Value::as_str) {
                Some("User") => name == id.user,
                Some("Group") => id.in_group(name),
                Some("ServiceAccount") => {
                    let ns = s.get("namespace").and_then(Value::as_str).unwrap_or(binding_ns);
                    id.user == format!("system:serviceaccount:{ns}:{name}")
                }
                _ => false,
            }
        })
}

fn role_rules<'a>(store: &'a Store, role_ref: &Value, ns: &str) -> Vec<&'a Value> {
    let name = role_ref.get("name").and_then(Value::as_str).unwrap_or("");
    let role = match role_ref.get("kind").and_then(Value::as_str) {
        Some("ClusterRole") => store.get(&crate::store::ObjectKey::new(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            "",
            name,
        )),
        _ => store.get(&crate::store::ObjectKey::new(
            "rbac.authorization.k8s.io/v1",
            "Role",
            ns,
            name,
        )),
    };
    role.ok()
        .and_then(|r| r.get("rules"))
        .and_then(Value::as_array)
        .map(|v| v.iter().collect())
        .unwrap_or_default()
}

/// The Node authorizer, reduced to what a kubelet does: its own Node and Lease, CSRs,
/// reads of what it needs to start pods; never other Secrets.
fn node_allows(node: &str, a: &Attributes) -> bool {
    let read = matches!(a.verb.as_str(), "get" | "list" | "watch");
    match (a.group.as_str(), a.resource.as_str()) {
        ("", "nodes") => read || a.verb == "create" || a.name == node,
        ("coordination.k8s.io", "leases") => a.namespace == "kube-node-lease",
        ("certificates.k8s.io", "certificatesigningrequests") => {
            matches!(a.verb.as_str(), "create" | "get" | "list" | "watch")
        }
        ("", "pods") | ("", "events") => true,
        ("", "configmaps") | ("", "services") | ("", "endpoints") | ("", "namespaces") => read,
        _ => false,
    }
}

/// `Node,RBAC`: may `id` do `a`?
pub fn authorize(store: &Store, id: &Identity, a: &Attributes) -> bool {
    if let Some(node) = id.node_name() {
        if node_allows(node, a) {
            return true;
        }
    }
    let rbac = "rbac.authorization.k8s.io/v1";
    let cluster = store
        .list(rbac, "ClusterRoleBinding", None)
        .into_iter()
        .filter(|b| subject_matches(b, id, ""))
        .any(|b| {
            b.get("roleRef")
                .is_some_and(|r| role_rules(store, r, "").iter().any(|rule| rule_allows(rule, a)))
        });
    if cluster {
        return true;
    }
    if a.namespace.is_empty() {
        return false;
    }
    store
        .list(rbac, "RoleBinding", Some(&a.namespace))
        .into_iter()
        .filter(|b| subject_matches(b, id, &a.namespace))
        .any(|b| {
            b.get("roleRef").is_some_and(|r| {
                role_rules(store, r, &a.namespace)
                    .iter()
                    .any(|rule| rule_allows(rule, a))
            })
        })
}

/// The Forbidden message (k8s.io/apiserver pkg/endpoints/handlers/responsewriters
/// errors.go `forbiddenMessage`, wrapped by apimachinery `NewForbidden`).
pub fn forbidden_message(id: &Identity, a: &Attributes, qualified: &str) -> String {
    let resource = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    let detail = if a.namespace.is_empty() {
        format!(
            "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" at the cluster scope",
            id.user, a.verb, a.group
        )
    } else {
        format!(
            "User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" in the namespace \"{}\"",
            id.user, a.verb, a.group, a.namespace
        )
    };
    let qualified = if a.subresource.is_empty() {
        qualified.to_string()
    } else {
        format!("{qualified}/{}", a.subresource)
    };
    if a.name.is_empty() {
        format!("{qualified} is forbidden: {detail}")
    } else {
        format!("{qualified} \"{}\" is forbidden: {detail}", a.name)
    }
}

/// The non-resource Forbidden message (`User "x" cannot get path "/foo"`).
pub fn forbidden_path_message(id: &Identity, verb: &str, path: &str) -> String {
    format!("forbidden: User \"{}\" cannot {verb} path \"{path}\"", id.user)
}

/// Bootstrap policy objects a fresh API server creates if missing.
pub fn bootstrap_policy() -> Vec<Value> {
    let rbac = "rbac.authorization.k8s.io/v1";
    let label = json!({"kubernetes.io/bootstrapping": "rbac-defaults"});
    vec![
        json!({"apiVersion": rbac, "kind": "ClusterRole",
            "metadata": {"name": "cluster-admin", "labels": label},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}),
        json!({"apiVersion": rbac, "kind": "ClusterRoleBinding",
            "metadata": {"name": "cluster-admin", "labels": label},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}]}),
        json!({"apiVersion": rbac, "kind": "ClusterRole",
            "metadata": {"name": "system:node-bootstrapper", "labels": label},
            "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"],
                "verbs": ["create", "get", "list", "watch"]}]}),
        json!({"apiVersion": rbac, "kind": "ClusterRole",
            "metadata": {"name": "system:discovery", "labels": label},
            "rules": [{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}]}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}, "status": {"phase": "Active"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system"}, "status": {"phase": "Active"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-public"}, "status": {"phase": "Active"}}),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-node-lease"}, "status": {"phase": "Active"}}),
    ]
}
