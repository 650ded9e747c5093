//! Opening the one SSH connection per host that a whole run uses, a sliding window of `--forks`
//! at a time. Hosts that cannot be reached are returned with the reason instead of stopping the run.

use std::sync::Arc;

use futures_util::StreamExt;
use kbs_engine::{SshTransport, Transport};
use kbs_inventory::{Host, Inventory};
use kbs_ssh::{run_windowed, Connection};

use crate::targets::{host_access, AccessDefaults};

/// A host kbs could not log in to, and why.
#[derive(Debug, Clone)]
pub struct Unreachable {
    pub host: String,
    pub reason: String,
}

/// The hosts that answered (in inventory order, each with its transport) and those that did not.
pub struct Connected {
    pub hosts: Vec<(Host, Arc<dyn Transport>)>,
    pub unreachable: Vec<Unreachable>,
}

/// A host's transport, or why kbs could not log in.
type ConnectResult = Result<Arc<dyn Transport>, String>;

pub async fn connect_hosts(
    inventory: &Inventory,
    hosts: &[Host],
    defaults: &AccessDefaults,
    forks: usize,
) -> Connected {
    let results: Vec<(usize, ConnectResult)> =
        run_windowed(hosts.iter().enumerate(), forks, |(index, host)| async move {
            let result = async {
                let access = host_access(inventory, host, defaults)?;
                let connection = Connection::connect(&access.target, &access.options)
                    .await
                    .map_err(|error| error.to_string())?;
                let transport: Arc<dyn Transport> =
                    Arc::new(SshTransport::new(Arc::new(connection), access.privilege));
                Ok(transport)
            }
            .await;
            (index, result)
        })
        .collect()
        .await;

    let mut ordered: Vec<Option<ConnectResult>> = vec![None; hosts.len()];
    for (index, result) in results {
        ordered[index] = Some(result);
    }
    let mut connected = Connected {
        hosts: Vec::new(),
        unreachable: Vec::new(),
    };
    for (host, result) in hosts.iter().zip(ordered) {
        match result {
            Some(Ok(transport)) => connected.hosts.push((host.clone(), transport)),
            Some(Err(reason)) => connected.unreachable.push(Unreachable {
                host: host.name.clone(),
                reason,
            }),
            None => connected.unreachable.push(Unreachable {
                host: host.name.clone(),
                reason: "no connection attempt was made".to_string(),
            }),
        }
    }
    connected
}
