//! The simulated cluster state: Kubernetes objects as JSON, keyed like etcd keys them,
//! with resourceVersions, Kubernetes' API error texts, and the two controllers kubeadm's
//! expiry behaviour depends on (the token cleaner and owner-reference garbage collection).
//!
//! This is the one model every simulated component shares. The API server (next step)
//! serves it over HTTPS; kubeadm, the kubelet, kubectl and kube-vip only reach it through
//! the API server, as the real ones do. Typed views for what kubeadm stores live in
//! [`bootstrap`] (bootstrap-token Secrets, `kubeadm-certs`, `cluster-info`).
//! docs/simulation.md describes where the store lives and how it is replicated.

pub mod bootstrap;

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{json, Value};

/// `apiVersion` + `kind` + namespace + name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectKey {
    pub api_version: String,
    pub kind: String,
    /// Empty for cluster-scoped kinds (Node, CertificateSigningRequest, Namespace).
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(api_version: &str, kind: &str, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of a JSON object (from its apiVersion, kind and metadata).
    pub fn of(obj: &Value) -> Option<ObjectKey> {
        Some(ObjectKey {
            api_version: obj.get("apiVersion")?.as_str()?.to_string(),
            kind: obj.get("kind")?.as_str()?.to_string(),
            namespace: obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            name: obj.pointer("/metadata/name")?.as_str()?.to_string(),
        })
    }

    /// The group-qualified resource name Kubernetes puts in error messages
    /// (`secrets`, `leases.coordination.k8s.io`).
    pub fn resource(&self) -> String {
        let plural = plural(&self.kind);
        match self.api_version.split_once('/') {
            Some((group, _)) => format!("{plural}.{group}"),
            None => plural,
        }
    }
}

/// Lower-case plural as the API server's RESTMapper derives it.
pub fn plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if lower.ends_with('s') || lower.ends_with("ch") || lower.ends_with("sh") || lower.ends_with('x') {
        format!("{lower}es")
    } else if let Some(stem) = lower
        .strip_suffix('y')
        .filter(|s| !s.ends_with(['a', 'e', 'i', 'o', 'u']))
    {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// Kubernetes API errors with the apiserver's message texts (k8s.io/apimachinery
/// pkg/api/errors: `NewNotFound`, `NewAlreadyExists`, `NewConflict`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{resource} \"{name}\" not found")]
    NotFound { resource: String, name: String },
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists { resource: String, name: String },
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": the object has been modified; please apply your changes to the latest version and try again")]
    Conflict { resource: String, name: String },
    #[error("{0}")]
    Invalid(String),
}

impl ApiError {
    /// HTTP status the API server answers with.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::Invalid(_) => 422,
        }
    }
}

/// All objects, in key order, plus the resourceVersion counter.
#[derive(Debug, Clone, Default)]
pub struct Store {
    objects: BTreeMap<ObjectKey, Value>,
    revision: u64,
}

fn not_found(k: &ObjectKey) -> ApiError {
    ApiError::NotFound {
        resource: k.resource(),
        name: k.name.clone(),
    }
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// The store's current revision (etcd's).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn get(&self, key: &ObjectKey) -> Result<&Value, ApiError> {
        self.objects.get(key).ok_or_else(|| not_found(key))
    }

    /// Objects of one kind, optionally in one namespace, in name order.
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|(k, _)| {
                k.api_version == api_version && k.kind == kind && namespace.is_none_or(|ns| k.namespace == ns)
            })
            .map(|(_, v)| v)
            .collect()
    }

    fn stamp(&mut self, obj: &mut Value, now: SystemTime, fresh: bool) {
        self.revision += 1;
        let meta = obj.as_object_mut().and_then(|o| {
            o.entry("metadata").or_insert_with(|| json!({}));
            o.get_mut("metadata").and_then(Value::as_object_mut)
        });
        if let Some(meta) = meta {
            meta.insert("resourceVersion".into(), json!(self.revision.to_string()));
            if fresh {
                meta.insert("creationTimestamp".into(), json!(crate::clock::rfc3339(now)));
                let uid = format!("00000000-0000-4000-8000-{:012x}", self.revision);
                meta.insert("uid".into(), json!(uid));
            }
        }
    }

    /// POST: fails if the object exists.
    pub fn create(&mut self, mut obj: Value, now: SystemTime) -> Result<Value, ApiError> {
        let key = ObjectKey::of(&obj)
            .ok_or_else(|| ApiError::Invalid("object has no apiVersion, kind or metadata.name".into()))?;
        if self.objects.contains_key(&key) {
            return Err(ApiError::AlreadyExists {
                resource: key.resource(),
                name: key.name,
            });
        }
        self.stamp(&mut obj, now, true);
        self.objects.insert(key, obj.clone());
        Ok(obj)
    }

    /// PUT: the object must exist; a stale `metadata.resourceVersion` is a Conflict
    /// (optimistic concurrency, which kube-vip's lease election relies on).
    pub fn update(&mut self, mut obj: Value, now: SystemTime) -> Result<Value, ApiError> {
        let key = ObjectKey::of(&obj)
            .ok_or_else(|| ApiError::Invalid("object has no apiVersion, kind or metadata.name".into()))?;
        let current = self.objects.get(&key).ok_or_else(|| not_found(&key))?;
        let want = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        let have = current
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !want.is_empty() && want != have {
            return Err(ApiError::Conflict {
                resource: key.resource(),
                name: key.name,
            });
        }
        for field in ["creationTimestamp", "uid"] {
            if let Some(v) = current.pointer(&format!("/metadata/{field}")).cloned() {
                if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert(field.into(), v);
                }
            }
        }
        self.stamp(&mut obj, now, false);
        self.objects.insert(key, obj.clone());
        Ok(obj)
    }

    /// Create or replace, ignoring resourceVersion (kubeadm's `CreateOrUpdate*` helpers).
    pub fn apply(&mut self, mut obj: Value, now: SystemTime) -> Result<Value, ApiError> {
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        let key = ObjectKey::of(&obj)
            .ok_or_else(|| ApiError::Invalid("object has no apiVersion, kind or metadata.name".into()))?;
        if self.objects.contains_key(&key) {
            self.update(obj, now)
        } else {
            self.create(obj, now)
        }
    }

    /// Deletes one object. A deletion is a write and moves the revision, as in etcd: followers
    /// adopt the leader's copy only when it is newer, so a deletion that kept the revision
    /// would never reach them.
    pub fn delete(&mut self, key: &ObjectKey) -> Result<Value, ApiError> {
        let gone = self.objects.remove(key).ok_or_else(|| not_found(key))?;
        self.revision += 1;
        Ok(gone)
    }

    /// Deletes every object in `namespace` (the namespace controller's end result).
    pub fn delete_namespace_contents(&mut self, namespace: &str) {
        self.objects.retain(|k, _| k.namespace != namespace);
        self.revision += 1;
    }

    /// The token cleaner (kube-controller-manager `tokencleaner`) then the garbage
    /// collector for owner references: expired bootstrap-token Secrets go, and so does
    /// everything they own (the `kubeadm-certs` Secret). Returns the deleted keys.
    pub fn collect_garbage(&mut self, now: SystemTime) -> Vec<ObjectKey> {
        let mut deleted: Vec<ObjectKey> = self
            .objects
            .iter()
            .filter(|(_, v)| bootstrap::token_secret_expired(v, now))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &deleted {
            self.objects.remove(k);
        }
        // Owners are referenced by uid; drop objects whose every owner is gone.
        loop {
            let live_uids: Vec<String> = self
                .objects
                .values()
                .filter_map(|v| {
                    v.pointer("/metadata/uid")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .collect();
            let orphans: Vec<ObjectKey> = self
                .objects
                .iter()
                .filter(|(_, v)| {
                    let owners = v.pointer("/metadata/ownerReferences").and_then(Value::as_array);
                    owners.is_some_and(|o| {
                        !o.is_empty()
                            && o.iter().all(|r| {
                                r.get("uid")
                                    .and_then(Value::as_str)
                                    .is_none_or(|u| !live_uids.iter().any(|l| l == u))
                            })
                    })
                })
                .map(|(k, _)| k.clone())
                .collect();
            if orphans.is_empty() {
                break;
            }
            for k in orphans {
                self.objects.remove(&k);
                deleted.push(k);
            }
        }
        if !deleted.is_empty() {
            self.revision += 1;
        }
        deleted
    }

    /// Every object, for persistence and replication.
    pub fn snapshot(&self) -> Value {
        json!({"revision": self.revision, "objects": self.objects.values().collect::<Vec<_>>()})
    }

    /// Rebuilds a store from [`Store::snapshot`] output.
    pub fn restore(snapshot: &Value) -> Store {
        let mut store = Store {
            revision: snapshot.get("revision").and_then(Value::as_u64).unwrap_or(0),
            ..Default::default()
        };
        for obj in snapshot
            .get("objects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(k) = ObjectKey::of(obj) {
                store.objects.insert(k, obj.clone());
            }
        }
        store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(rv: Option<&str>, holder: &str) -> Value {
        let mut v = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "plndr-cp-lock", "namespace": "kube-system"},
            "spec": {"holderIdentity": holder}});
        if let Some(rv) = rv {
            v["metadata"]["resourceVersion"] = json!(rv);
        }
        v
    }

    #[test]
    fn crud_with_kubernetes_messages() {
        let now = SystemTime::now();
        let mut s = Store::new();
        let created = s.create(lease(None, "host01"), now).unwrap();
        let rv = created["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            s.create(lease(None, "host02"), now).unwrap_err().to_string(),
            "leases.coordination.k8s.io \"plndr-cp-lock\" already exists"
        );
        s.update(lease(Some(&rv), "host02"), now).unwrap();
        // A second writer with the old resourceVersion loses, as in a real leader election.
        assert_eq!(
            s.update(lease(Some(&rv), "host03"), now).unwrap_err().to_string(),
            "Operation cannot be fulfilled on leases.coordination.k8s.io \"plndr-cp-lock\": the object has been modified; please apply your changes to the latest version and try again"
        );
        let key = ObjectKey::new("v1", "Secret", "kube-system", "kubeadm-certs");
        assert_eq!(
            s.get(&key).unwrap_err().to_string(),
            "secrets \"kubeadm-certs\" not found"
        );
        assert_eq!(plural("CertificateSigningRequest"), "certificatesigningrequests");
        assert_eq!(plural("Ingress"), "ingresses");
        assert_eq!(plural("NetworkPolicy"), "networkpolicies");
        let restored = Store::restore(&s.snapshot());
        assert_eq!(
            restored
                .list("coordination.k8s.io/v1", "Lease", Some("kube-system"))
                .len(),
            1
        );
        assert_eq!(restored.revision(), s.revision());
    }

    /// Followers pull the leader's copy only when its revision is newer: every kind of write,
    /// deletions and the token cleaner's included, must move it (and nothing else may).
    #[test]
    fn every_write_moves_the_revision() {
        let now = SystemTime::now();
        let mut s = Store::new();
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default"}});
        s.create(cm, now).unwrap();
        let r0 = s.revision();
        s.delete(&ObjectKey::new("v1", "ConfigMap", "default", "a"))
            .unwrap();
        assert_eq!(s.revision(), r0 + 1, "delete");
        assert!(s
            .delete(&ObjectKey::new("v1", "ConfigMap", "default", "a"))
            .is_err());
        assert_eq!(s.revision(), r0 + 1, "a failed delete writes nothing");
        assert!(s.collect_garbage(now).is_empty());
        assert_eq!(s.revision(), r0 + 1, "nothing to collect");
        let token = crate::token::BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let expired = crate::token::TokenRecord::new(
            token,
            now - std::time::Duration::from_secs(120),
            std::time::Duration::from_secs(60),
        );
        s.create(bootstrap::token_secret(&expired), now).unwrap();
        let r1 = s.revision();
        assert_eq!(s.collect_garbage(now).len(), 1);
        assert_eq!(s.revision(), r1 + 1, "the token cleaner's deletion");
    }
}
