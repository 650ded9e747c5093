//! What `kubeconfig`, `status` and `reset` share: connect to the hosts they need, learn their
//! facts, and find the control plane kubectl runs on.

use std::sync::Arc;

use kbs_engine::{Engine, EventSink, Library, Mode, Vars};
use kbs_inventory::{Host, Inventory, Role};

use crate::connect::connect_hosts;
use crate::failure::Failure;
use crate::targets::AccessDefaults;

/// An engine over the control planes plus `extra` hosts, facts gathered (and, for `Mode::Apply`,
/// each host's run lock taken).
pub async fn connect_cluster(
    inventory: &Inventory,
    extra: &[Host],
    defaults: &AccessDefaults,
    forks: usize,
    events: Arc<dyn EventSink>,
    mode: Mode,
) -> Result<Engine, Failure> {
    let hosts: Vec<Host> = inventory
        .hosts
        .iter()
        .filter(|h| h.has_role(Role::ControlPlane) || extra.iter().any(|e| e.name == h.name))
        .cloned()
        .collect();
    let connected = connect_hosts(inventory, &hosts, defaults, forks).await;
    let library = Library::embedded().map_err(|error| Failure::BadInput(error.to_string()))?;
    let engine = Engine::new(library, connected, Vars::default(), events).window(forks);
    engine.start(mode).await;
    Ok(engine)
}

/// A read-only look at the cluster: the inventory, an engine over its control planes (facts
/// gathered, no locks, no events) and the control plane kubectl runs on.
pub async fn read_cluster(
    inventory_path: &std::path::Path,
    defaults: &AccessDefaults,
    forks: usize,
) -> Result<(Inventory, Engine, String), Failure> {
    let inventory = crate::commands::load_inventory(inventory_path)?;
    let engine = connect_cluster(
        &inventory,
        &[],
        defaults,
        forks,
        Arc::new(kbs_engine::NoEvents),
        Mode::Check,
    )
    .await?;
    let host = require_api_host(&engine, &inventory)?;
    Ok((inventory, engine, host))
}

/// The control plane kubectl runs on, or an error saying why there is none.
pub fn require_api_host(engine: &Engine, inventory: &Inventory) -> Result<String, Failure> {
    kbs_cluster::orchestrate::api::api_host(engine, inventory).ok_or_else(|| {
        let failed: Vec<String> = inventory
            .control_planes()
            .filter(|h| engine.is_failed(&h.name))
            .map(|h| h.name.clone())
            .collect();
        Failure::HostsFailed(if failed.is_empty() {
            "no control plane of the inventory runs a cluster; `kbs apply` creates it".to_string()
        } else {
            format!(
                "no reachable control plane runs a cluster (unreachable or failed: {})",
                failed.join(", ")
            )
        })
    })
}
