//! The simulated etcd's replication between control planes: every API server keeps a copy
//! of the store; the members are the `EtcdMember` objects (voters unless learners). Once a
//! second, each API server probes the other voters (`GET /kbs-sim/replica`, peers only):
//! - the leader is the reachable voter with the highest revision (ties: lowest name), and
//!   only with a majority of voters reachable — so 2 of 3 control planes keep the API up, and
//!   1 of 3 answers `etcdserver: request timed out`, as stacked etcd does;
//! - followers adopt the leader's snapshot when it is newer and forward requests to it;
//! - an API server that knows no members yet (a fresh join) forwards to its
//!   `--kbs-store-upstream`, and the first control plane, alone, leads.
//!
//! Writes acknowledged by a leader that dies before the next pull (≤ 1 s) are lost: a
//! deliberate simplification of raft's commit rule.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::ApiServer;
use crate::kubeclient::{Client, Kubeconfig};

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Not decided yet: forward to the upstream if there is one, else serve.
    Unknown,
    Leader,
    Follower(String),
    NoQuorum,
}

/// A member as the store records it.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub url: String,
    pub voter: bool,
}

pub fn members(store: &crate::store::Store) -> Vec<Member> {
    members_of(store.list("kbs-sim.io/v1", "EtcdMember", None))
}

/// [`Member`]s of `EtcdMember` objects, as the store or a `kubectl get` list holds them.
pub fn members_of<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Vec<Member> {
    objects
        .into_iter()
        .filter_map(|m| {
            Some(Member {
                name: m.pointer("/metadata/name")?.as_str()?.to_string(),
                url: m
                    .pointer("/spec/clientURL")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                voter: m.pointer("/spec/isLearner").and_then(Value::as_bool) != Some(true),
            })
        })
        .collect()
}

/// Where an API server's peer identity lives: the CA and the client certificate the API
/// servers present to each other (`--kubelet-client-certificate`, CN kube-apiserver-kubelet-client).
pub struct PeerIdentity<'a> {
    pub ca_file: &'a Path,
    pub cert_file: &'a Path,
    pub key_file: &'a Path,
}

impl PeerIdentity<'_> {
    fn client(&self, url: &str) -> Option<Client> {
        let read = |p: &Path| std::fs::read_to_string(p).ok();
        let kc = Kubeconfig {
            server: url.to_string(),
            ca_pem: read(self.ca_file)?,
            client_cert_pem: read(self.cert_file),
            client_key_pem: read(self.key_file),
            token: None,
        };
        let mut c = Client::new(kc).ok()?;
        c.timeout = Duration::from_millis(700);
        Some(c)
    }

    /// A peer's revision and snapshot (`GET /kbs-sim/replica`), if it answers.
    pub fn fetch_replica(&self, url: &str) -> Option<(u64, Value)> {
        let r = self.client(url)?.get("/kbs-sim/replica").ok()?;
        if !r.ok() {
            return None;
        }
        Some((r.body.get("revision")?.as_u64()?, r.body.get("snapshot")?.clone()))
    }
}

impl ApiServer {
    /// A peer's revision and snapshot, if it answers.
    fn fetch_replica(&self, url: &str) -> Option<(u64, Value)> {
        PeerIdentity {
            ca_file: &self.config.client_ca_file,
            cert_file: &self.config.proxy_cert_file,
            key_file: &self.config.proxy_key_file,
        }
        .fetch_replica(url)
    }

    /// This API server's own URL (`https://<advertise-address>:<secure-port>`).
    pub fn own_url(&self) -> Option<String> {
        self.config
            .advertise
            .as_ref()
            .map(|a| crate::pki::https_url(a, i32::from(self.config.bind.port())))
    }

    /// One round: probe, elect, pull.
    pub fn replicate(&self) {
        let mut known = members(&self.store());
        if known.is_empty() {
            // A fresh joined control plane learns the members from its upstream.
            if let Some(up) = self.config.store_upstream.clone() {
                if let Some((_, snap)) = self.fetch_replica(&up) {
                    self.adopt(&snap);
                    known = members(&self.store());
                }
            }
        }
        let me = self.own_url();
        let voters: Vec<&Member> = known.iter().filter(|m| m.voter).collect();
        if voters.is_empty() {
            self.set_role(if self.config.store_upstream.is_some() {
                Role::Unknown
            } else {
                Role::Leader
            });
            return;
        }
        let my_rev = self.store().revision();
        let mut reachable: Vec<(u64, String, String, Option<Value>)> = Vec::new();
        for m in &voters {
            if Some(&m.url) == me.as_ref() {
                reachable.push((my_rev, m.name.clone(), m.url.clone(), None));
            } else if let Some((rev, snap)) = self.fetch_replica(&m.url) {
                reachable.push((rev, m.name.clone(), m.url.clone(), Some(snap)));
            }
        }
        if reachable.len() * 2 <= voters.len() {
            self.set_role(Role::NoQuorum);
            return;
        }
        reachable.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let (rev, _, url, snap) = reachable.swap_remove(0);
        if Some(&url) == me.as_ref() {
            self.set_role(Role::Leader);
        } else {
            if rev > my_rev {
                if let Some(s) = snap {
                    self.adopt(&s);
                }
            }
            self.set_role(Role::Follower(url));
        }
    }

    fn adopt(&self, snapshot: &Value) {
        let fresh = crate::store::Store::restore(snapshot);
        let mut s = self.store();
        *s = fresh;
        self.persist(&s);
    }

    pub fn role(&self) -> Role {
        self.role.lock().map(|r| r.clone()).unwrap_or(Role::Unknown)
    }

    fn set_role(&self, r: Role) {
        if let Ok(mut g) = self.role.lock() {
            *g = r;
        }
    }

    /// The replica endpoint's answer (`leader`: whether this API server leads the store now).
    pub fn replica(&self) -> Value {
        let s = self.store();
        let leader = self.role() == Role::Leader;
        serde_json::json!({"revision": s.revision(), "snapshot": s.snapshot(), "leader": leader})
    }
}
