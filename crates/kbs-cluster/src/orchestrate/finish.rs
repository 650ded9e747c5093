//! The phases after the joins: approve the kubelet serving certificates kbs can vouch for
//! ([`crate::csr`]), then install the add-ons ([`crate::addons`]). Both run kubectl on a control
//! plane of the cluster, over the SSH connection kbs already has.

use std::time::{Duration, Instant};

use kbs_engine::{KubeadmState, Outcome, TaskStatus};

use super::api::{self, api_host, NodeStatus};
use super::{module_error, ClusterRun, ADDONS, APPROVE_CSRS};
use crate::addons::{self, AddonContext, AddonEvent};
use crate::csr;

/// How long kbs waits for every node's serving certificate.
pub const CSR_DEADLINE: Duration = Duration::from_secs(300);

/// How long kbs waits for every node to be Ready once the add-ons are in.
pub const NODES_READY_DEADLINE: Duration = Duration::from_secs(600);

/// The inventory narrowed to the hosts that are nodes now: a host meant to join later has no
/// kubelet asking for a certificate, and must not be waited for.
fn nodes_only(run: &ClusterRun<'_>) -> kbs_inventory::Inventory {
    let mut inventory = run.inventory.clone();
    inventory.hosts.retain(|h| {
        run.engine
            .facts(&h.name)
            .is_some_and(|f| f.kubeadm_state != KubeadmState::Nothing)
    });
    inventory
}

pub async fn approve_csrs(run: &ClusterRun<'_>) {
    let Some(api) = api_host(run.engine, run.inventory) else {
        return;
    };
    let _phase = run.engine.phase(APPROVE_CSRS, vec![api.clone()], run.mode);
    let engine = run.engine;
    let Some(remote) = engine.remote(&api) else { return };
    let nodes = nodes_only(run);
    engine
        .step(&api, "kubelet serving certificates", async {
            if run.mode == kbs_engine::Mode::Check {
                return Ok(Outcome::ok().with_message("checked when applying"));
            }
            let report = csr::approve_serving_csrs(&nodes, remote, CSR_DEADLINE)
                .await
                .map_err(|e| module_error(e.to_string(), "see the CSRs listed above"))?;
            let mut message = format!("{} nodes hold a serving certificate", report.nodes.len());
            for refusal in &report.refused {
                message.push_str(&format!("; left pending: {refusal}"));
            }
            Ok(if report.approved.is_empty() {
                Outcome::ok().with_message(message)
            } else {
                let names: Vec<&str> = report.approved.iter().map(|(_, node)| node.as_str()).collect();
                Outcome::changed(format!("approved for {}", names.join(", "))).with_message(message)
            })
        })
        .await;
}

/// Installs the add-ons; returns (name, version) of each one that is ready.
pub async fn install_addons(run: &ClusterRun<'_>) -> Vec<(String, String)> {
    let Some(api) = api_host(run.engine, run.inventory) else {
        return Vec::new();
    };
    let _phase = run.engine.phase(ADDONS, vec![api.clone()], run.mode);
    let engine = run.engine;
    if run.mode == kbs_engine::Mode::Check {
        engine
            .step(&api, "add-ons", async {
                Ok(Outcome::ok().with_message("checked when applying"))
            })
            .await;
        return Vec::new();
    }
    let Some(remote) = engine.remote(&api) else {
        return Vec::new();
    };
    let nodes_inventory = nodes_only(run);
    let nodes: Vec<(String, &kbs_engine::Remote)> = nodes_inventory
        .hosts
        .iter()
        .filter_map(|h| Some((h.name.clone(), engine.remote(&h.name)?)))
        .collect();
    let api_name = api.clone();
    let progress = move |event: &AddonEvent| match event {
        AddonEvent::Waiting { .. } => engine.waiting(&api_name, event.to_string()),
        _ => tracing::info!(host = %api_name, "{event}"),
    };
    let minor = run.versions.minor;
    let mut report = None;
    engine
        .step(&api, "add-ons", async {
            let ctx = AddonContext::new(run.inventory, minor, &api, remote, nodes)
                .map_err(|e| module_error(e.to_string(), "see above"))?;
            let done = addons::install(&ctx, &progress)
                .await
                .map_err(|e| kbs_engine::ModuleError::new(e.to_string()))?;
            let changed = done.changed();
            let warnings = done.warnings.join("; ");
            report = Some(done);
            let outcome = if changed {
                Outcome::changed("add-ons installed")
            } else {
                Outcome::ok()
            };
            Ok(if warnings.is_empty() {
                outcome
            } else {
                outcome.with_message(warnings)
            })
        })
        .await;
    for addon in report.iter().flat_map(|r| r.addons.iter()) {
        let status = if addon.changed {
            TaskStatus::Changed
        } else {
            TaskStatus::Ok
        };
        engine.note(
            &api,
            &format!("{} {}", addon.name, addon.version),
            status,
            Some(if addon.changed {
                "ready".into()
            } else {
                "unchanged, ready".into()
            }),
            addon.elapsed.as_millis() as u64,
        );
    }
    report
        .map(|r| r.addons.into_iter().map(|a| (a.name, a.version)).collect())
        .unwrap_or_default()
}

/// Waits until every node is Ready (they are NotReady until a network add-on runs), then
/// returns the nodes as the API reports them.
pub async fn nodes_ready(run: &ClusterRun<'_>, wait: bool) -> Vec<NodeStatus> {
    let Some(api) = api_host(run.engine, run.inventory) else {
        return Vec::new();
    };
    let engine = run.engine;
    let mut nodes = Vec::new();
    let task = if wait { "every node Ready" } else { "nodes" };
    engine
        .step(&api, task, async {
            let started = Instant::now();
            let mut pause = Duration::from_millis(500);
            loop {
                nodes = api::nodes(&api::kubectl_json(engine, &api, "get nodes").await?);
                let waiting: Vec<&str> = nodes.iter().filter(|n| !n.ready).map(|n| n.name.as_str()).collect();
                if waiting.is_empty() || !wait || run.mode == kbs_engine::Mode::Check {
                    return Ok(Outcome::ok().with_message(format!("{} nodes", nodes.len())));
                }
                if started.elapsed() > NODES_READY_DEADLINE {
                    return Err(module_error(
                        format!(
                            "after {}s these nodes are not Ready: {}",
                            NODES_READY_DEADLINE.as_secs(),
                            waiting.join(", ")
                        ),
                        "look at `kubectl describe node NAME` and the network add-on's pods (`kubectl get pods -A`)",
                    ));
                }
                engine.waiting(&api, format!("nodes not Ready yet: {}", waiting.join(", ")));
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        })
        .await;
    nodes
}
