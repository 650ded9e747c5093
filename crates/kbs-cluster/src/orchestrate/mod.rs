//! The cluster phases of `kbs apply` after host preparation, and `kbs join`:
//! endpoint → init (first control plane, once) → join control planes (one at a time) → join
//! workers (in parallel).
//!
//! Stateless, like the rest of kbs: whether the cluster exists and which hosts are in it is read
//! from the hosts' facts (`/etc/kubernetes/admin.conf` and the API server manifest on a control
//! plane, `kubelet.conf` on a joined node). Secrets are minted for this run only, handed to kubeadm
//! in 0600 files that are removed again, and the bootstrap token is deleted once the joins are
//! done. Nothing secret goes into a script's text, an event or an error.

pub mod api;
mod credentials;
mod endpoint;
mod finish;
mod haproxy_reload;
mod kubeadm;
pub mod reset;
mod wait;

use std::time::Duration;

use kbs_engine::{Engine, Facts, KubeadmState, Mode, ModuleError};
use kbs_inventory::{Inventory, Role};

use crate::kubeadm_config::KubeadmRole;
use crate::versions::MinorVersions;

pub use credentials::JoinCredentials;

/// Phase names, as `--until` takes them.
pub const ENDPOINT: &str = "endpoint";
pub const INIT: &str = "init";
pub const JOIN_CONTROL_PLANES: &str = "join-control-planes";
pub const JOIN_WORKERS: &str = "join-workers";
pub const APPROVE_CSRS: &str = "approve-csrs";
pub const ADDONS: &str = "addons";

/// The phases this module runs, in order.
pub const PHASES: [&str; 6] = [
    ENDPOINT,
    INIT,
    JOIN_CONTROL_PLANES,
    JOIN_WORKERS,
    APPROVE_CSRS,
    ADDONS,
];

/// How long kbs waits for the cluster before giving up with a message.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// The API answering through the endpoint after init, and a joined API server being healthy.
    pub api: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            api: Duration::from_secs(300),
        }
    }
}

/// What the cluster phases work with.
pub struct ClusterRun<'a> {
    pub engine: &'a Engine,
    pub inventory: &'a Inventory,
    pub versions: &'static MinorVersions,
    pub mode: Mode,
    pub deadlines: Deadlines,
    /// At most this many workers join at once.
    pub window: usize,
    /// `kbs join`: never init; a cluster must run already.
    pub join_only: bool,
}

/// Why the cluster phases stopped before the end (a single host's failure is not one: it is
/// reported on that host and the others go on).
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no control plane of the cluster is reachable and initialised, so nothing can join: {0}")]
    NoControlPlane(String),
    #[error("{0}")]
    Config(String),
    #[error("the API endpoint is not served: {0}")]
    EndpointDown(String),
}

impl ClusterRun<'_> {
    fn facts(&self, host: &str) -> Option<Facts> {
        self.engine.facts(host)
    }

    fn kubeadm_state(&self, host: &str) -> KubeadmState {
        self.facts(host).map(|f| f.kubeadm_state).unwrap_or_default()
    }

    /// Control planes of the run (not failed), in inventory order.
    fn control_planes(&self) -> Vec<String> {
        self.inventory
            .control_planes()
            .map(|h| h.name.clone())
            .filter(|name| self.engine.host(name).is_some() && !self.engine.is_failed(name))
            .collect()
    }

    /// Control planes that already run the control plane.
    fn initialised_control_planes(&self) -> Vec<String> {
        self.control_planes()
            .into_iter()
            .filter(|name| self.kubeadm_state(name) == KubeadmState::ControlPlane)
            .collect()
    }

    /// Hosts of `role` in this run that kubeadm has not touched yet.
    fn to_join(&self, control_plane: bool) -> Vec<String> {
        self.inventory
            .hosts
            .iter()
            .filter(|h| self.engine.host(&h.name).is_some() && !self.engine.is_failed(&h.name))
            .filter(|h| self.engine.in_limit(&h.name))
            .filter(|h| {
                let role = KubeadmRole::of(self.inventory, h);
                if control_plane {
                    h.has_role(Role::ControlPlane)
                } else {
                    role == Some(KubeadmRole::Worker)
                }
            })
            .filter(|h| self.kubeadm_state(&h.name) == KubeadmState::Nothing)
            .map(|h| h.name.clone())
            .collect()
    }
}

/// What a full run ends with, for the closing summary.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ClusterSummary {
    /// The control plane kbs asked (kubectl runs there).
    pub asked: Option<String>,
    pub nodes: Vec<api::NodeStatus>,
    /// (add-on, version) of every add-on that is ready.
    pub addons: Vec<(String, String)>,
}

/// Runs the cluster phases, up to and including `until` if it names one of them.
pub async fn converge(run: &ClusterRun<'_>, until: Option<&str>) -> Result<ClusterSummary, ClusterError> {
    let mut summary = ClusterSummary::default();
    endpoint::run(run).await;
    if until == Some(ENDPOINT) {
        return Ok(summary);
    }
    endpoint::require_a_load_balancer(run)?;
    if let Some(mut credentials) = kubeadm::init_or_attach(run).await? {
        if until != Some(INIT) {
            kubeadm::join_control_planes(run, &mut credentials).await;
            if until != Some(JOIN_CONTROL_PLANES) {
                kubeadm::join_workers(run, &credentials).await;
            }
        }
        credentials.revoke(run).await;
    }
    if matches!(until, Some(INIT | JOIN_CONTROL_PLANES | JOIN_WORKERS)) {
        return Ok(summary);
    }
    finish::approve_csrs(run).await;
    summary.asked = api::api_host(run.engine, run.inventory);
    // `kbs join` adds a node; the add-ons are the cluster's, installed by `kbs apply`.
    if until == Some(APPROVE_CSRS) || run.join_only {
        summary.nodes = finish::nodes_ready(run, false).await;
        return Ok(summary);
    }
    summary.addons = finish::install_addons(run).await;
    // Nodes turn Ready once a network add-on runs; without Calico that is someone else's job.
    summary.nodes = finish::nodes_ready(run, run.inventory.addons.calico.enabled).await;
    Ok(summary)
}

/// `kbs join`: the same phases narrowed to the hosts of the run that are not in the cluster yet
/// (the engine was built with the cluster's control planes plus the hosts to join).
pub async fn join(run: &ClusterRun<'_>) -> Result<ClusterSummary, ClusterError> {
    converge(run, None).await
}

fn module_error(message: impl Into<String>, hint: impl Into<String>) -> ModuleError {
    ModuleError::new(message).hint(hint)
}
