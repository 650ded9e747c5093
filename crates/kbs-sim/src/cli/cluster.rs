//! kubeadm's work against the API server: the admin binding, uploaded configuration,
//! bootstrap tokens and their RBAC, cluster-info, uploaded certs, control-plane marking,
//! add-ons, and the etcd membership check of control-plane joins. Object names, roles and
//! groups are kubeadm's (cmd/kubeadm/app/phases/{uploadconfig,bootstraptoken/node,
//! bootstraptoken/clusterinfo,copycerts,markcontrolplane,addons}, app/util/kubeconfig
//! `EnsureAdminClusterRoleBinding`).

use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::kubeclient::{Client, Kubeconfig, Reply};
use crate::token::{BootstrapToken, TokenRecord};

const RBAC: &str = "rbac.authorization.k8s.io/v1";
pub const BOOTSTRAP_GROUP: &str = crate::token::DEFAULT_GROUP;

/// A request failure in kubeadm's style (`unable to create ConfigMap: <msg>`).
pub fn call(c: &mut Client, method: &str, path: &str, body: Option<&Value>) -> Result<Reply, String> {
    let r = match body {
        Some(b) => c.send_json(method, path, b),
        None => c.request(method, path, "", b""),
    }
    .map_err(|e| format!("{method} \"{}{path}\": {e}", c.config.server))?;
    Ok(r)
}

/// Create, or replace when it exists (kubeadm's `CreateOrUpdate*`).
pub fn create_or_update(c: &mut Client, collection: &str, obj: &Value) -> Result<(), String> {
    let kind = obj["kind"].as_str().unwrap_or("object").to_string();
    let r = call(c, "POST", collection, Some(obj))?;
    if r.ok() {
        return Ok(());
    }
    if r.reason() != "AlreadyExists" {
        return Err(format!("unable to create {kind}: {}", r.message()));
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let path = format!("{collection}/{name}");
    let r = call(c, "PUT", &path, Some(obj))?;
    if r.ok() {
        Ok(())
    } else {
        Err(format!("unable to update {kind}: {}", r.message()))
    }
}

fn role(ns: &str, name: &str, rules: Value) -> Value {
    json!({"apiVersion": RBAC, "kind": "Role", "metadata": {"name": name, "namespace": ns}, "rules": rules})
}

fn role_binding(ns: &str, name: &str, role: &str, subjects: Value) -> Value {
    json!({"apiVersion": RBAC, "kind": "RoleBinding", "metadata": {"name": name, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role}, "subjects": subjects})
}

fn crb(name: &str, cluster_role: &str, subjects: Value) -> Value {
    json!({"apiVersion": RBAC, "kind": "ClusterRoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role}, "subjects": subjects})
}

fn group(name: &str) -> Value {
    json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": name})
}

fn ns_path(ns: &str, plural: &str) -> String {
    let base = if plural == "roles" || plural == "rolebindings" {
        format!("/apis/{RBAC}")
    } else {
        "/api/v1".into()
    };
    format!("{base}/namespaces/{ns}/{plural}")
}

/// `EnsureAdminClusterRoleBinding`: admin.conf first; on Forbidden, super-admin.conf creates
/// the `kubeadm:cluster-admins` binding. Connection errors are retried until `timeout`.
pub fn ensure_admin_binding(
    admin: &Kubeconfig,
    super_admin: Option<&Kubeconfig>,
    timeout: Duration,
) -> Result<Client, String> {
    let binding = crb(
        "kubeadm:cluster-admins",
        "cluster-admin",
        json!([group("kubeadm:cluster-admins")]),
    );
    let path = format!("/apis/{RBAC}/clusterrolebindings");
    let start = Instant::now();
    let mut c = Client::new(admin.clone())?;
    loop {
        match c.send_json("POST", &path, &binding) {
            Ok(r) if r.ok() || r.reason() == "AlreadyExists" => return Ok(c),
            Ok(r) if r.status == 403 => {
                let Some(sa) = super_admin else {
                    return Err(format!("could not bootstrap the admin user in file admin.conf: {}", r.message()));
                };
                let mut s = Client::new(sa.clone())?;
                let r = s
                    .send_json("POST", &path, &binding)
                    .map_err(|e| format!("could not bootstrap the admin user in file admin.conf: unable to create ClusterRoleBinding: {e}"))?;
                if r.ok() || r.reason() == "AlreadyExists" {
                    return Client::new(admin.clone());
                }
                return Err(format!("could not bootstrap the admin user in file admin.conf: unable to create ClusterRoleBinding: {}", r.message()));
            }
            Ok(r) => return Err(format!("could not bootstrap the admin user in file admin.conf: unable to create ClusterRoleBinding: {}", r.message())),
            Err(e) if start.elapsed() >= timeout => {
                return Err(format!(
                    "could not bootstrap the admin user in file admin.conf: unable to create ClusterRoleBinding: Post \"{}{path}?timeout=10s\": {e}",
                    admin.server
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// upload-config/kubeadm and upload-config/kubelet: the ConfigMaps and the Roles that let
/// joining nodes (bootstrap tokens) and nodes read them.
pub fn upload_config(c: &mut Client, cluster_yaml: &str, kubelet_yaml: &str) -> Result<(), String> {
    create_or_update(
        c,
        &ns_path("kube-system", "configmaps"),
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kubeadm-config", "namespace": "kube-system"}, "data": {"ClusterConfiguration": cluster_yaml}}),
    )?;
    let readers = json!([group(BOOTSTRAP_GROUP), group("system:nodes")]);
    create_or_update(
        c,
        &ns_path("kube-system", "roles"),
        &role(
            "kube-system",
            "kubeadm:nodes-kubeadm-config",
            json!([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kubeadm-config"], "verbs": ["get"]}]),
        ),
    )?;
    create_or_update(
        c,
        &ns_path("kube-system", "rolebindings"),
        &role_binding(
            "kube-system",
            "kubeadm:nodes-kubeadm-config",
            "kubeadm:nodes-kubeadm-config",
            readers.clone(),
        ),
    )?;
    create_or_update(
        c,
        &ns_path("kube-system", "configmaps"),
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kubelet-config", "namespace": "kube-system"}, "data": {"kubelet": kubelet_yaml}}),
    )?;
    create_or_update(
        c,
        &ns_path("kube-system", "roles"),
        &role(
            "kube-system",
            "kubeadm:kubelet-config",
            json!([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kubelet-config"], "verbs": ["get"]}]),
        ),
    )?;
    create_or_update(
        c,
        &ns_path("kube-system", "rolebindings"),
        &role_binding(
            "kube-system",
            "kubeadm:kubelet-config",
            "kubeadm:kubelet-config",
            readers,
        ),
    )?;
    Ok(())
}

/// kubeadm's `timeouts.kubernetesAPICall` when no configuration sets it.
pub const DEFAULT_API_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// kubeadm's pause between attempts of an API call (`constants.APICallRetryInterval`).
pub const API_CALL_RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// `call`, retried as kubeadm's `CreateOrUpdate*` helpers do since v1.30 (kubernetes/kubernetes
/// #123271, app/util/apiclient/idempotency.go): every 500 ms until `timeout`
/// (`timeouts.kubernetesAPICall`, 1m0s by default) while the API server is unreachable or
/// answers 5xx, e.g. `etcdserver: leader changed` during an etcd election. The last answer or
/// error is what the caller sees.
pub fn call_with_retries(
    c: &mut Client,
    method: &str,
    path: &str,
    body: Option<&Value>,
    timeout: Duration,
) -> Result<Reply, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let answer = call(c, method, path, body);
        let transient = match &answer {
            Err(_) => true,
            Ok(reply) => reply.status >= 500,
        };
        if !transient || Instant::now() + API_CALL_RETRY_INTERVAL > deadline {
            return answer;
        }
        std::thread::sleep(API_CALL_RETRY_INTERVAL);
    }
}

/// A bootstrap token Secret through the API (`kubeadm token create`, init's bootstrap-token),
/// retried for up to `timeout` as kubeadm does.
pub fn create_token(c: &mut Client, rec: &TokenRecord, timeout: Duration) -> Result<(), String> {
    let secret = crate::store::bootstrap::token_secret(rec);
    let r = call_with_retries(
        c,
        "POST",
        &ns_path("kube-system", "secrets"),
        Some(&secret),
        timeout,
    )?;
    if r.ok() {
        return Ok(());
    }
    if r.reason() == "AlreadyExists" {
        return Err(format!("a token with id {:?} already exists", rec.token.id));
    }
    Err(format!(
        "failed to create or update bootstrap token with name {}: {}",
        rec.token.secret_name(),
        r.message()
    ))
}

/// Tokens in the cluster (`kubeadm token list`).
pub fn list_tokens(c: &mut Client) -> Result<Vec<TokenRecord>, String> {
    let r = call(
        c,
        "GET",
        &format!(
            "{}?fieldSelector=type%3D{}",
            ns_path("kube-system", "secrets"),
            crate::http::url_encode(crate::store::bootstrap::SECRET_TYPE_BOOTSTRAP_TOKEN)
        ),
        None,
    )?;
    if !r.ok() {
        return Err(format!("failed to list bootstrap tokens: {}", r.message()));
    }
    Ok(r.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(crate::store::bootstrap::token_from_secret)
        .collect())
}

/// bootstrap-token phase RBAC and cluster-info (phases/bootstraptoken).
pub fn bootstrap_token_rbac(c: &mut Client, server: &str, ca_pem: &str) -> Result<(), String> {
    let crbs = format!("/apis/{RBAC}/clusterrolebindings");
    let crs = format!("/apis/{RBAC}/clusterroles");
    create_or_update(
        c,
        &crs,
        &json!({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "kubeadm:get-nodes"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]}),
    )?;
    create_or_update(
        c,
        &crbs,
        &crb(
            "kubeadm:get-nodes",
            "kubeadm:get-nodes",
            json!([group(BOOTSTRAP_GROUP)]),
        ),
    )?;
    create_or_update(
        c,
        &crbs,
        &crb(
            "kubeadm:kubelet-bootstrap",
            "system:node-bootstrapper",
            json!([group(BOOTSTRAP_GROUP)]),
        ),
    )?;
    create_or_update(
        c,
        &crs,
        &json!({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "system:certificates.k8s.io:certificatesigningrequests:nodeclient"},
        "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/nodeclient"], "verbs": ["create"]}]}),
    )?;
    create_or_update(
        c,
        &crbs,
        &crb(
            "kubeadm:node-autoapprove-bootstrap",
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            json!([group(BOOTSTRAP_GROUP)]),
        ),
    )?;
    create_or_update(
        c,
        &crs,
        &json!({"apiVersion": RBAC, "kind": "ClusterRole", "metadata": {"name": "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"},
        "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests/selfnodeclient"], "verbs": ["create"]}]}),
    )?;
    create_or_update(
        c,
        &crbs,
        &crb(
            "kubeadm:node-autoapprove-certificate-rotation",
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            json!([group("system:nodes")]),
        ),
    )?;
    create_or_update(
        c,
        &ns_path("kube-public", "configmaps"),
        &json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": {"kubeconfig": crate::store::bootstrap::cluster_info_kubeconfig(server, ca_pem)}}),
    )?;
    create_or_update(
        c,
        &ns_path("kube-public", "roles"),
        &role(
            "kube-public",
            "kubeadm:bootstrap-signer-clusterinfo",
            json!([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"], "verbs": ["get"]}]),
        ),
    )?;
    create_or_update(
        c,
        &ns_path("kube-public", "rolebindings"),
        &role_binding(
            "kube-public",
            "kubeadm:bootstrap-signer-clusterinfo",
            "kubeadm:bootstrap-signer-clusterinfo",
            json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}]),
        ),
    )?;
    Ok(())
}

/// upload-certs: encrypts the shared certificates into `kubeadm-certs`, owned by a 2 h token.
pub fn upload_certs(
    c: &mut Client,
    pki: &std::path::Path,
    key: &crate::certs_upload::CertificateKey,
    now: SystemTime,
) -> Result<(), String> {
    let mut files = std::collections::BTreeMap::new();
    for (name, rel) in crate::certs_upload::UPLOADED_FILES {
        if let Ok(b) = std::fs::read(pki.join(rel)) {
            files.insert(name.to_string(), b);
        }
    }
    let sealed = crate::certs_upload::UploadedCerts::seal(&files, key, now)?;
    let owner_tok = BootstrapToken::generate()?;
    let mut rec = TokenRecord::new(owner_tok.clone(), now, crate::certs_upload::UPLOADED_CERTS_TTL);
    rec.usages.clear();
    rec.groups.clear();
    rec.description = crate::store::bootstrap::CERTS_TOKEN_DESCRIPTION.into();
    let r = call(
        c,
        "POST",
        &ns_path("kube-system", "secrets"),
        Some(&crate::store::bootstrap::token_secret(&rec)),
    )?;
    if !r.ok() {
        return Err(format!("error uploading certs: {}", r.message()));
    }
    let uid = r.body.pointer("/metadata/uid").cloned().unwrap_or(Value::Null);
    let b64 = base64::engine::general_purpose::STANDARD;
    let data: serde_json::Map<String, Value> = sealed
        .data
        .iter()
        .map(|(k, v)| (k.clone(), json!(b64.encode(v))))
        .collect();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": crate::certs_upload::KUBEADM_CERTS_SECRET, "namespace": "kube-system",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Secret", "name": owner_tok.secret_name(), "uid": uid,
                "blockOwnerDeletion": true, "controller": true}]},
        "data": data});
    create_or_update(c, &ns_path("kube-system", "secrets"), &secret)?;
    create_or_update(
        c,
        &ns_path("kube-system", "roles"),
        &role(
            "kube-system",
            "kubeadm:kubeadm-certs",
            json!([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [crate::certs_upload::KUBEADM_CERTS_SECRET], "verbs": ["get"]}]),
        ),
    )?;
    create_or_update(
        c,
        &ns_path("kube-system", "rolebindings"),
        &role_binding(
            "kube-system",
            "kubeadm:kubeadm-certs",
            "kubeadm:kubeadm-certs",
            json!([group(BOOTSTRAP_GROUP)]),
        ),
    )?;
    Ok(())
}

/// Waits for the kubelet to register `node` (kubeadm waits in mark-control-plane).
pub fn wait_for_node(c: &mut Client, node: &str, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    loop {
        match c.get(&format!("/api/v1/nodes/{node}")) {
            Ok(r) if r.ok() => return Ok(()),
            Ok(r) if start.elapsed() >= timeout => return Err(r.message()),
            Err(e) if start.elapsed() >= timeout => return Err(e),
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// mark-control-plane: labels, and the control-plane taint unless `taints` was given.
pub fn mark_control_plane(c: &mut Client, node: &str, taints: &[crate::config::Taint]) -> Result<(), String> {
    let taints: Vec<Value> = taints
        .iter()
        .map(|t| {
            let mut v = json!({"key": t.key, "effect": t.effect});
            if !t.value.is_empty() {
                v["value"] = json!(t.value);
            }
            v
        })
        .collect();
    let path = format!("/api/v1/nodes/{node}");
    let cur = call(c, "GET", &path, None)?;
    let mut all: Vec<Value> = cur
        .body
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for t in taints {
        if !all
            .iter()
            .any(|x| x["key"] == t["key"] && x["effect"] == t["effect"])
        {
            all.push(t);
        }
    }
    let patch = json!({"metadata": {"labels": {"node-role.kubernetes.io/control-plane": "",
        "node.kubernetes.io/exclude-from-external-load-balancers": ""}}, "spec": {"taints": all}});
    let r = c.request(
        "PATCH",
        &path,
        "application/strategic-merge-patch+json",
        patch.to_string().as_bytes(),
    )?;
    if r.ok() {
        Ok(())
    } else {
        Err(format!("error patching Node {node:?}: {}", r.message()))
    }
}

/// addons: CoreDNS and kube-proxy as the objects kubeadm creates (they "run" by rule).
pub fn addons(c: &mut Client, dns_ip: &str, version: &str) -> Result<(), String> {
    create_or_update(
        c,
        "/apis/apps/v1/namespaces/kube-system/deployments",
        &json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
            "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}}, "spec": {"containers": [{"name": "coredns", "image": "registry.k8s.io/coredns/coredns:v1.12.1"}]}}}}),
    )?;
    create_or_update(
        c,
        &ns_path("kube-system", "services"),
        &json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {"k8s-app": "kube-dns"}},
        "spec": {"clusterIP": dns_ip, "selector": {"k8s-app": "kube-dns"},
            "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}}),
    )?;
    create_or_update(
        c,
        "/apis/apps/v1/namespaces/kube-system/daemonsets",
        &json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "kube-proxy", "namespace": "kube-system", "labels": {"k8s-app": "kube-proxy"}},
        "spec": {"selector": {"matchLabels": {"k8s-app": "kube-proxy"}},
            "template": {"metadata": {"labels": {"k8s-app": "kube-proxy"}}, "spec": {"hostNetwork": true,
                "containers": [{"name": "kube-proxy", "image": format!("registry.k8s.io/kube-proxy:{version}")}]}}}}),
    )?;
    Ok(())
}

/// Etcd membership as the store records it (`kbs-sim.io/v1 EtcdMember`, one per member).
pub const ETCD_MEMBER_PATH: &str = "/apis/kbs-sim.io/v1/etcdmembers";

pub fn etcd_member(name: &str, peer_url: &str, client_url: &str, learner: bool) -> Value {
    json!({"apiVersion": "kbs-sim.io/v1", "kind": "EtcdMember", "metadata": {"name": name},
        "spec": {"peerURLs": [peer_url], "clientURL": client_url, "isLearner": learner}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::admission::PortRange;
    use crate::apiserver::replication::Role;
    use crate::apiserver::tests::{Fixture, SUPER};
    use crate::store::ObjectKey;

    /// Makes the store lose its quorum: one voter that never answers. The replication loop
    /// notices within a second and object requests get `etcdserver: request timed out` (500).
    fn lose_quorum(f: &Fixture) {
        let member = etcd_member("gone", "https://127.0.0.1:1", "https://127.0.0.1:1", false);
        f.server.store().create(member, SystemTime::now()).unwrap();
        let start = Instant::now();
        while f.server.role() != Role::NoQuorum {
            assert!(start.elapsed() < Duration::from_secs(5), "quorum never lost");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn token() -> TokenRecord {
        TokenRecord::new(
            BootstrapToken::generate().unwrap(),
            SystemTime::now(),
            Duration::from_secs(600),
        )
    }

    #[test]
    fn a_token_write_is_retried_while_the_store_has_no_quorum_then_gives_up_with_its_error() {
        let f = Fixture::start(PortRange::default());
        let mut c = f.client(Some(SUPER));
        lose_quorum(&f);

        // Nothing recovers within the timeout: the last error is what kubeadm shows.
        let started = Instant::now();
        let err = create_token(&mut c, &token(), Duration::from_millis(1200)).unwrap_err();
        assert!(err.contains("etcdserver: request timed out"), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(1000), "no retries");

        // The quorum comes back after 1.5 s: the write goes through on a later attempt.
        let server = f.server.clone();
        let heal = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            let key = ObjectKey::new("kbs-sim.io/v1", "EtcdMember", "", "gone");
            server.store().delete(&key).unwrap();
        });
        let started = Instant::now();
        create_token(&mut c, &token(), DEFAULT_API_CALL_TIMEOUT).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(1500));
        heal.join().unwrap();
    }
}
