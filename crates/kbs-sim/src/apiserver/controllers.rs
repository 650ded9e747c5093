//! The controllers that run inside the simulated API server process, one pass per tick
//! and before each request (lazy but exact, driven by the lab clock):
//! - kube-controller-manager's token cleaner + garbage collector, bootstrapsigner
//!   (`store::collect_garbage`, `store::bootstrap::sign_cluster_info`);
//! - csrapproving (kubelet *client* CSRs from bootstrap tokens or nodes only: kubelet-serving
//!   CSRs are never auto-approved, pkg/controller/certificates/approver/sarapprove.go) and
//!   csrsigning (signs approved CSRs of the kubernetes.io signers with ca.key);
//! - add-on "run" rules standing in for pods that cannot run in the lab (shared/lab.md):
//!   Calico (the `Installation` pool must lie within the cluster's podSubnet, message from
//!   tigera/operator), Longhorn (iscsid active and nfs-common on every node, reported by the
//!   kubelet as node annotations), metrics-server (every node has an issued kubelet-serving
//!   certificate), ingress-nginx (its controller Service exists); Nodes become Ready when the
//!   CNI rule holds.

use std::time::SystemTime;

use serde_json::{json, Value};

use crate::config::validate::Cidr;
use crate::pki::{CertAuthority, Usage};
use crate::store::{bootstrap, ObjectKey, Store};

/// Node annotations the simulated kubelet sets from the guest's real state.
pub const ANN_ISCSID: &str = "kbs-sim.io/iscsid-active";
pub const ANN_NFS: &str = "kbs-sim.io/nfs-common-installed";
/// Set by the kubelet: the node has a CNI network config, so the runtime's network is ready.
pub const ANN_CNI_CONFIG: &str = "kbs-sim.io/cni-config-present";

/// `Could not resolve CalicoNetwork IPPool and kubeadm configuration: …` (tigera/operator
/// pkg/controller/installation, as quoted in tigera/operator#1512).
pub fn calico_pool_error(pool: &str, pod_cidrs: &[String]) -> String {
    format!(
        "Could not resolve CalicoNetwork IPPool and kubeadm configuration: IPPool {pool} is not within the platform's configured pod network CIDR(s) [{}]",
        pod_cidrs.join(" ")
    )
}

pub fn tick(store: &mut Store, ca: Option<&CertAuthority>, now: SystemTime) {
    store.collect_garbage(now);
    bootstrap::sign_cluster_info(store, now);
    csr_approve_and_sign(store, ca, now);
    let cni = calico(store, now).ok();
    nodes(store, cni.as_deref(), now);
    workloads(store, now);
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn has_condition(v: &Value, ty: &str) -> bool {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        })
}

fn put(store: &mut Store, obj: Value, now: SystemTime) {
    let _ = store.update(obj, now);
}

fn csr_approve_and_sign(store: &mut Store, ca: Option<&CertAuthority>, now: SystemTime) {
    let csrs: Vec<Value> = store
        .list("certificates.k8s.io/v1", "CertificateSigningRequest", None)
        .into_iter()
        .cloned()
        .collect();
    for mut csr in csrs {
        let signer = str_at(&csr, "/spec/signerName").to_string();
        let groups: Vec<&str> = csr
            .pointer("/spec/groups")
            .and_then(Value::as_array)
            .map(|g| g.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let approved = has_condition(&csr, "Approved");
        let denied = has_condition(&csr, "Denied");
        if !approved
            && !denied
            && signer == "kubernetes.io/kube-apiserver-client-kubelet"
            && groups
                .iter()
                .any(|g| *g == "system:bootstrappers" || *g == "system:nodes")
        {
            let cond = json!({"type": "Approved", "status": "True", "reason": "AutoApproved",
                "message": "Auto approving kubelet client certificate after SubjectAccessReview.",
                "lastUpdateTime": crate::clock::rfc3339(now), "lastTransitionTime": crate::clock::rfc3339(now)});
            let conds = csr["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut conds = conds;
            conds.push(cond);
            csr["status"]["conditions"] = json!(conds);
            put(store, csr.clone(), now);
            csr = match ObjectKey::of(&csr).and_then(|k| store.get(&k).ok().cloned()) {
                Some(c) => c,
                None => continue,
            };
        }
        if !has_condition(&csr, "Approved") || denied || csr.pointer("/status/certificate").is_some() {
            continue;
        }
        let usage = match signer.as_str() {
            "kubernetes.io/kubelet-serving" => Usage::Server,
            "kubernetes.io/kube-apiserver-client-kubelet" | "kubernetes.io/kube-apiserver-client" => {
                Usage::Client
            }
            _ => continue,
        };
        let Some(ca) = ca else { continue };
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let Some(pem) = b64
            .decode(str_at(&csr, "/spec/request"))
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        else {
            continue;
        };
        match ca.sign_csr(&pem, usage, now) {
            Ok(cert) => csr["status"]["certificate"] = json!(b64.encode(cert)),
            Err(e) => {
                let conds = csr["status"]["conditions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut conds = conds;
                conds.push(json!({"type": "Failed", "status": "True", "reason": "SigningError", "message": e.to_string()}));
                csr["status"]["conditions"] = json!(conds);
            }
        }
        put(store, csr, now);
    }
}

/// The cluster's podSubnet from kubeadm's ClusterConfiguration.
pub fn pod_subnets(store: &Store) -> Vec<String> {
    let key = ObjectKey::new("v1", "ConfigMap", "kube-system", "kubeadm-config");
    let text = store
        .get(&key)
        .ok()
        .map(|cm| str_at(cm, "/data/ClusterConfiguration").to_string())
        .unwrap_or_default();
    let cfg: Value = serde_yaml::from_str(&text).unwrap_or(Value::Null);
    str_at(&cfg, "/networking/podSubnet")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn within(inner: &str, outer: &str) -> bool {
    match (Cidr::parse(inner), Cidr::parse(outer)) {
        (Some(i), Some(o)) => i.prefix >= o.prefix && o.contains(i.addr),
        _ => false,
    }
}

/// Calico's rule: Ok when the operator runs and every Installation pool lies within podSubnet.
/// Node annotation carrying the pod CIDR calico-node would write into the node's CNI
/// config; the simulated kubelet writes /etc/cni/net.d/10-calico.conflist from it.
pub const ANN_CNI_CIDR: &str = "kbs-sim.io/cni-pod-cidr";

fn calico(store: &mut Store, now: SystemTime) -> Result<String, String> {
    let inst = store
        .get(&ObjectKey::new(
            "operator.tigera.io/v1",
            "Installation",
            "",
            "default",
        ))
        .ok()
        .cloned();
    let operator = store
        .get(&ObjectKey::new(
            "apps/v1",
            "Deployment",
            "tigera-operator",
            "tigera-operator",
        ))
        .is_ok();
    let Some(inst) = inst.filter(|_| operator) else {
        return Err("calico is not installed".into());
    };
    let pods = pod_subnets(store);
    let pools: Vec<String> = inst
        .pointer("/spec/calicoNetwork/ipPools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("cidr").and_then(Value::as_str).map(str::to_string))
        .collect();
    // No pools given: the operator takes them from kubeadm's podSubnet.
    let result = match pools.iter().find(|p| !pods.iter().any(|pod| within(p, pod))) {
        Some(bad) => Err(calico_pool_error(bad, &pods)),
        None if pods.is_empty() && !pools.is_empty() => Err(calico_pool_error(&pools[0], &pods)),
        None => Ok(pools
            .first()
            .cloned()
            .or_else(|| pods.first().cloned())
            .unwrap_or_default()),
    };
    let (available, degraded, reason, message) = match &result {
        Ok(_) => ("True", "False", "AllObjectsAvailable", String::new()),
        Err(e) => ("False", "True", "ResourceReadError", e.clone()),
    };
    let status = json!({"apiVersion": "operator.tigera.io/v1", "kind": "TigeraStatus", "metadata": {"name": "calico"},
        "status": {"conditions": [
            {"type": "Available", "status": available, "reason": reason, "message": message},
            {"type": "Progressing", "status": "False", "reason": reason, "message": ""},
            {"type": "Degraded", "status": degraded, "reason": reason, "message": message}]}});
    let key = ObjectKey::new("operator.tigera.io/v1", "TigeraStatus", "", "calico");
    match store.get(&key) {
        Ok(cur) if cur.get("status") == status.get("status") => {}
        Ok(cur) => {
            let mut next = cur.clone();
            next["status"] = status["status"].clone();
            put(store, next, now);
        }
        Err(_) => {
            let _ = store.create(status, now);
        }
    }
    result
}

const NOT_READY_MSG: &str = "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized";

/// Ready iff the CNI rule holds and the node's kubelet reports a CNI config on the node (what
/// calico-node writes there once it runs); the `node.kubernetes.io/not-ready` taint follows.
fn nodes(store: &mut Store, cni: Option<&str>, now: SystemTime) {
    let nodes: Vec<Value> = store.list("v1", "Node", None).into_iter().cloned().collect();
    for node in nodes {
        let has_config = node
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(ANN_CNI_CONFIG))
            .and_then(Value::as_str)
            == Some("true");
        let cni_ok = cni.is_some() && has_config;
        let mut next = node.clone();
        let (status, reason, message) = if cni_ok {
            ("True", "KubeletReady", "kubelet is posting ready status")
        } else {
            ("False", "KubeletNotReady", NOT_READY_MSG)
        };
        let mut conds: Vec<Value> = next
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        conds.retain(|c| c.get("type").and_then(Value::as_str) != Some("Ready"));
        let stamp = node
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready" && c["status"] == status))
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(crate::clock::rfc3339(now)));
        conds.push(
            json!({"type": "Ready", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": stamp}),
        );
        next["status"]["conditions"] = json!(conds);
        let mut taints: Vec<Value> = next
            .pointer("/spec/taints")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        taints.retain(|t| t.get("key").and_then(Value::as_str) != Some("node.kubernetes.io/not-ready"));
        if !cni_ok {
            taints.push(json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}));
        }
        if taints.is_empty() {
            if let Some(spec) = next.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("taints");
            }
        } else {
            next["spec"]["taints"] = json!(taints);
        }
        match cni {
            Some(cidr) => next["metadata"]["annotations"][ANN_CNI_CIDR] = json!(cidr),
            None => {
                if let Some(a) = next
                    .pointer_mut("/metadata/annotations")
                    .and_then(Value::as_object_mut)
                {
                    a.remove(ANN_CNI_CIDR);
                }
            }
        }
        if next != node {
            put(store, next, now);
        }
    }
}

fn node_ready(n: &Value) -> bool {
    n.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Why a workload cannot become available, if it cannot.
fn blocked(store: &Store, w: &Value) -> Option<String> {
    let ns = str_at(w, "/metadata/namespace");
    let name = str_at(w, "/metadata/name");
    let nodes = store.list("v1", "Node", None);
    if nodes.is_empty() {
        return Some("0/0 nodes are available: no nodes registered".into());
    }
    let host_network = w
        .pointer("/spec/template/spec/hostNetwork")
        .and_then(Value::as_bool)
        == Some(true);
    if !host_network && !nodes.iter().any(|n| node_ready(n)) {
        return Some(format!(
            "0/{n} nodes are available: {n} node(s) had untolerated taint {{node.kubernetes.io/not-ready: }}.",
            n = nodes.len()
        ));
    }
    if ns == "longhorn-system" {
        for n in &nodes {
            let a = |k: &str| {
                n.pointer("/metadata/annotations")
                    .and_then(|m| m.get(k))
                    .and_then(Value::as_str)
                    == Some("true")
            };
            if !a(ANN_ISCSID) || !a(ANN_NFS) {
                return Some(format!(
                    "failed to check environment, please make sure you have iscsiadm/open-iscsi installed on the host (node {})",
                    str_at(n, "/metadata/name")
                ));
            }
        }
    }
    if ns == "kube-system" && name == "metrics-server" {
        let csrs = store.list("certificates.k8s.io/v1", "CertificateSigningRequest", None);
        for n in &nodes {
            let user = format!("system:node:{}", str_at(n, "/metadata/name"));
            let issued = csrs.iter().any(|c| {
                str_at(c, "/spec/signerName") == "kubernetes.io/kubelet-serving"
                    && str_at(c, "/spec/username") == user
                    && c.pointer("/status/certificate").is_some()
            });
            if !issued {
                let ip = n
                    .pointer("/status/addresses")
                    .and_then(Value::as_array)
                    .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
                    .map(|a| str_at(a, "/address").to_string())
                    .unwrap_or_default();
                return Some(format!(
                    "Failed to scrape node\" err=\"Get \\\"https://{ip}:10250/metrics/resource\\\": remote error: tls: internal error\" node=\"{}\"",
                    str_at(n, "/metadata/name")
                ));
            }
        }
    }
    if ns == "ingress-nginx"
        && name == "ingress-nginx-controller"
        && store.get(&ObjectKey::new("v1", "Service", ns, name)).is_err()
    {
        return Some(format!("service \"{ns}/{name}\" not found"));
    }
    None
}

fn workloads(store: &mut Store, now: SystemTime) {
    let node_count = store.list("v1", "Node", None).len() as i64;
    for kind in ["Deployment", "DaemonSet", "StatefulSet"] {
        let items: Vec<Value> = store.list("apps/v1", kind, None).into_iter().cloned().collect();
        for w in items {
            let why = blocked(store, &w);
            let gen = w
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let want = match kind {
                "DaemonSet" => node_count,
                _ => w.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1),
            };
            let ready = if why.is_none() { want } else { 0 };
            let status = match kind {
                "DaemonSet" => {
                    json!({"observedGeneration": gen, "desiredNumberScheduled": want, "currentNumberScheduled": want,
                    "updatedNumberScheduled": want, "numberReady": ready, "numberAvailable": ready, "numberMisscheduled": 0,
                    "numberUnavailable": want - ready})
                }
                "StatefulSet" => json!({"observedGeneration": gen, "replicas": want, "readyReplicas": ready,
                    "currentReplicas": want, "updatedReplicas": want, "availableReplicas": ready}),
                _ => {
                    let (st, reason, msg) = match &why {
                        None => (
                            "True",
                            "MinimumReplicasAvailable",
                            "Deployment has minimum availability.".to_string(),
                        ),
                        Some(m) => (
                            "False",
                            "MinimumReplicasUnavailable",
                            format!("Deployment does not have minimum availability. ({m})"),
                        ),
                    };
                    json!({"observedGeneration": gen, "replicas": want, "updatedReplicas": want, "readyReplicas": ready,
                        "availableReplicas": ready, "unavailableReplicas": want - ready,
                        "conditions": [{"type": "Available", "status": st, "reason": reason, "message": msg},
                            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                             "message": format!("ReplicaSet \"{}\" has successfully progressed.", str_at(&w, "/metadata/name"))}]})
                }
            };
            if w.get("status") != Some(&status) {
                let mut next = w.clone();
                next["status"] = status;
                put(store, next, now);
            }
            pods_for(store, kind, &w, why.as_deref(), now);
        }
    }
}

/// The Pods a workload would have (what `kubectl get pods` / `kubectl wait pod` see):
/// Deployments `<name>-<hash>-<i>`, StatefulSets `<name>-<i>`, DaemonSets one per Node;
/// owned by the workload (deleted with it), Running and Ready when the workload's rule holds,
/// Pending with the scheduler's reason otherwise.
fn pods_for(store: &mut Store, kind: &str, w: &Value, why: Option<&str>, now: SystemTime) {
    let ns = str_at(w, "/metadata/namespace").to_string();
    let name = str_at(w, "/metadata/name").to_string();
    let uid = str_at(w, "/metadata/uid").to_string();
    let labels = w
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    let containers = w
        .pointer("/spec/template/spec/containers")
        .cloned()
        .unwrap_or(json!([]));
    let nodes: Vec<String> = store
        .list("v1", "Node", None)
        .iter()
        .map(|n| str_at(n, "/metadata/name").to_string())
        .collect();
    let hash = format!(
        "{:08x}",
        name.bytes()
            .fold(2166136261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16777619))
    );
    let wanted: Vec<(String, String)> = match kind {
        "DaemonSet" => nodes
            .iter()
            .map(|n| {
                (
                    format!(
                        "{name}-{}",
                        &format!(
                            "{:08x}",
                            n.len() * 7919 + n.bytes().map(usize::from).sum::<usize>()
                        )[3..]
                    ),
                    n.clone(),
                )
            })
            .collect(),
        _ => {
            let replicas = w
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1)
                .max(0) as usize;
            (0..replicas)
                .map(|i| {
                    let pod = if kind == "StatefulSet" {
                        format!("{name}-{i}")
                    } else {
                        format!("{name}-{}-{i}", &hash[..6])
                    };
                    (
                        pod,
                        nodes.get(i % nodes.len().max(1)).cloned().unwrap_or_default(),
                    )
                })
                .collect()
        }
    };
    let ready = why.is_none();
    for (pod, node) in &wanted {
        let (phase, cond) = if ready {
            (
                "Running",
                json!([{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}]),
            )
        } else {
            (
                "Pending",
                json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": why.unwrap_or("")}]),
            )
        };
        let status = json!({"phase": phase, "conditions": cond});
        let key = ObjectKey::new("v1", "Pod", &ns, pod);
        match store.get(&key) {
            Ok(cur) if cur.get("status") == Some(&status) => {}
            Ok(cur) => {
                let mut next = cur.clone();
                next["status"] = status;
                put(store, next, now);
            }
            Err(_) => {
                let p = json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod, "namespace": ns, "labels": labels,
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true}]},
                    "spec": {"nodeName": if ready { json!(node) } else { Value::Null }, "containers": containers},
                    "status": status});
                let _ = store.create(p, now);
            }
        }
    }
    let stale: Vec<ObjectKey> = store
        .list("v1", "Pod", Some(&ns))
        .into_iter()
        .filter(|p| {
            p.pointer("/metadata/ownerReferences/0/uid")
                .and_then(Value::as_str)
                == Some(uid.as_str())
                && !wanted.iter().any(|(n, _)| n == str_at(p, "/metadata/name"))
        })
        .filter_map(ObjectKey::of)
        .collect();
    for k in stale {
        let _ = store.delete(&k);
    }
}
