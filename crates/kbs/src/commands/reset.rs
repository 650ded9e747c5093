//! `kbs reset`: `kubeadm reset` and cleanup on some hosts (or the whole cluster), after
//! confirmation. Control planes leave etcd cleanly, one at a time; see
//! `kbs_cluster::orchestrate::reset`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use kbs_cluster::orchestrate::{reset, ClusterRun, Deadlines};
use kbs_engine::{EventSink, Mode};
use kbs_inventory::Host;

use crate::commands::cluster::connect_cluster;
use crate::commands::load_inventory;
use crate::failure::Failure;
use crate::output::report::{self, Detail, OutputFormat};
use crate::targets::AccessDefaults;

pub struct ResetRequest<'a> {
    pub inventory: &'a Path,
    /// Host names; empty means every host of the inventory.
    pub hosts: Vec<String>,
    pub yes: bool,
    pub output: OutputFormat,
    pub detail: Detail,
}

pub async fn run(request: ResetRequest<'_>, defaults: AccessDefaults, forks: usize) -> Result<(), Failure> {
    let inventory = load_inventory(request.inventory)?;
    let chosen: Vec<Host> = if request.hosts.is_empty() {
        inventory.hosts.clone()
    } else {
        let mut chosen = Vec::new();
        for name in &request.hosts {
            let host = inventory.host(name).ok_or_else(|| {
                Failure::BadInput(format!(
                    "{name} is not a host of {}; nothing was reset",
                    request.inventory.display()
                ))
            })?;
            chosen.push(host.clone());
        }
        chosen
    };
    let names: Vec<String> = chosen.iter().map(|h| h.name.clone()).collect();
    let whole = request.hosts.is_empty();
    if !request.yes {
        confirm(&names, whole, &inventory.cluster.name)?;
    }
    let versions =
        kbs_cluster::minor_versions(&inventory).map_err(|error| Failure::BadInput(error.to_string()))?;
    let (sender, reporter) = report::start(request.output, request.detail);
    let sink: Arc<dyn EventSink> = Arc::new(sender.clone());
    let engine = connect_cluster(&inventory, &chosen, &defaults, forks, sink, Mode::Apply).await?;
    let run = ClusterRun {
        engine: &engine,
        inventory: &inventory,
        versions,
        mode: Mode::Apply,
        deadlines: Deadlines::default(),
        window: forks,
        join_only: false,
    };
    reset::reset(&run, &names).await;
    let report = engine.finish().await;
    drop(engine);
    drop(sender);
    let _ = reporter.await;
    let failed: Vec<String> = report.failures.iter().map(|f| f.host.clone()).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::HostsFailed(format!(
            "reset failed on {}",
            failed.join(", ")
        )))
    }
}

/// Asks on the terminal; without one, `--yes` is required (a script must say it means it).
fn confirm(hosts: &[String], whole: bool, cluster: &str) -> Result<(), Failure> {
    let what = if whole {
        format!(
            "every host of cluster {cluster} ({}): the cluster and its data are gone",
            hosts.join(", ")
        )
    } else {
        format!("{} (removed from cluster {cluster})", hosts.join(", "))
    };
    if !std::io::stdin().is_terminal() {
        return Err(Failure::BadInput(format!(
            "kbs reset would reset {what}; confirm with --yes (no terminal to ask on); nothing was reset"
        )));
    }
    eprint!("kbs reset will run `kubeadm reset` on {what}.\nType yes to go on: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::BadInput(format!("cannot read the answer: {e}")))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Failure::BadInput("not confirmed; nothing was reset".into()))
    }
}
