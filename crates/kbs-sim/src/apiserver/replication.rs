//! The simulated etcd's replication between control planes: every API server keeps a copy
//! of the store; the members are the `EtcdMember` objects (voters unless learners). Once a
//! second, each API server probes the other voters (`GET /kbs-sim/replica`, peers only) and
//! elects (see [`elect`]):
//! - only with a majority of voters reachable — so 2 of 3 control planes keep the API up, and
//!   1 of 3 answers `etcdserver: request timed out`, as stacked etcd does;
//! - a leader stays leader while it keeps its quorum, as raft's leader does for its term; a new
//!   one is the reachable voter with the highest revision (raft's "most up-to-date log"; ties:
//!   lowest name);
//! - followers adopt the leader's snapshot when it is newer and forward requests to it; only
//!   the leader writes (its controllers included), so a follower is never ahead of it;
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

    /// A peer's replica (`GET /kbs-sim/replica`), if it answers.
    pub fn fetch_replica(&self, url: &str) -> Option<Replica> {
        let r = self.client(url)?.get("/kbs-sim/replica").ok()?;
        if !r.ok() {
            return None;
        }
        Some(Replica {
            revision: r.body.get("revision")?.as_u64()?,
            snapshot: r.body.get("snapshot")?.clone(),
            leader: r.body.get("leader").and_then(Value::as_bool) == Some(true),
        })
    }
}

/// What a peer answers on `/kbs-sim/replica`.
pub struct Replica {
    pub revision: u64,
    pub snapshot: Value,
    /// Whether the peer leads the store now.
    pub leader: bool,
}

/// A reachable voter as one election round sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub name: String,
    pub url: String,
    pub revision: u64,
    /// It said it leads (for this API server itself: it led after the last round).
    pub leads: bool,
}

/// One round's choice of leader among the reachable voters, or `None` without a majority of
/// `voters`. The leader in office (the best one, should a partition have left two) stays while
/// it has a quorum: moving leadership whenever another voter catches up would let two API
/// servers take writes at once. Without one, the most up-to-date voter wins, ties to the
/// lowest name, so every server that sees the same replicas picks the same one.
pub fn elect(voters: usize, reachable: &[Candidate]) -> Option<&Candidate> {
    if reachable.len() * 2 <= voters {
        return None;
    }
    let in_office = most_up_to_date(reachable.iter().filter(|c| c.leads));
    in_office.or_else(|| most_up_to_date(reachable.iter()))
}

/// The highest revision, ties to the lowest name.
fn most_up_to_date<'a>(pool: impl Iterator<Item = &'a Candidate>) -> Option<&'a Candidate> {
    pool.min_by(|a, b| b.revision.cmp(&a.revision).then(a.name.cmp(&b.name)))
}

impl ApiServer {
    /// A peer's replica, if it answers.
    fn fetch_replica(&self, url: &str) -> Option<Replica> {
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
                if let Some(r) = self.fetch_replica(&up) {
                    self.adopt(&r.snapshot);
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
        let mut reachable = Vec::new();
        let mut snapshots = Vec::new();
        for m in &voters {
            let (revision, leads) = if Some(&m.url) == me.as_ref() {
                (my_rev, self.role() == Role::Leader)
            } else if let Some(r) = self.fetch_replica(&m.url) {
                snapshots.push((m.url.clone(), r.snapshot));
                (r.revision, r.leader)
            } else {
                continue;
            };
            reachable.push(Candidate {
                name: m.name.clone(),
                url: m.url.clone(),
                revision,
                leads,
            });
        }
        let Some(leader) = elect(voters.len(), &reachable) else {
            self.set_role(Role::NoQuorum);
            return;
        };
        if Some(&leader.url) == me.as_ref() {
            self.set_role(Role::Leader);
            return;
        }
        if leader.revision > my_rev {
            if let Some((_, snap)) = snapshots.iter().find(|(u, _)| *u == leader.url) {
                self.adopt(snap);
            }
        }
        self.set_role(Role::Follower(leader.url.clone()));
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
