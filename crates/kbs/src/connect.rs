//! Opening the one SSH connection per host that a whole run uses, a sliding window of `--forks`
//! at a time. A host that cannot be reached gets an [`Unreachable`] transport carrying the reason,
//! so the engine fails it like any other host failure while the others go on.

use std::sync::Arc;

use futures_util::StreamExt;
use kbs_engine::{SshTransport, Transport, TransportError, Unreachable};
use kbs_inventory::{Host, Inventory};
use kbs_ssh::{run_windowed, Connection};

use crate::targets::{host_access, AccessDefaults};

/// Every host with its transport, in inventory order.
pub async fn connect_hosts(
    inventory: &Inventory,
    hosts: &[Host],
    defaults: &AccessDefaults,
    forks: usize,
) -> Vec<(Host, Arc<dyn Transport>)> {
    let mut connected: Vec<(usize, Arc<dyn Transport>)> =
        run_windowed(hosts.iter().enumerate(), forks, |(index, host)| async move {
            (index, connect(inventory, host, defaults).await)
        })
        .collect()
        .await;
    connected.sort_by_key(|(index, _)| *index);
    hosts
        .iter()
        .cloned()
        .zip(connected.into_iter().map(|(_, transport)| transport))
        .collect()
}

async fn connect(inventory: &Inventory, host: &Host, defaults: &AccessDefaults) -> Arc<dyn Transport> {
    let access = match host_access(inventory, host, defaults) {
        Ok(access) => access,
        Err(message) => {
            return Arc::new(Unreachable(TransportError {
                message,
                hint: Some("fix ~/.ssh/config or run with --no-ssh-config".to_string()),
            }))
        }
    };
    match Connection::connect(&access.target, &access.options).await {
        Ok(connection) => Arc::new(SshTransport::new(Arc::new(connection), access.privilege)),
        Err(error) => Arc::new(Unreachable::from(error)),
    }
}
