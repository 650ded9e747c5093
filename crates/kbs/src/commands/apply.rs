//! `kbs apply` (and `kbs plan`, which is `apply --dry-run`): converge the hosts to the inventory.
//!
//! The story of a run: load and validate the inventory → connect to every host (one SSH connection
//! each, `--forks` at a time) → the phases of `kbs_cluster::apply_phases()` in order, each a playbook
//! on a host set → a per-host summary. Unreachable hosts fail alone; the others go on.

use std::path::PathBuf;
use std::sync::Arc;

use kbs_engine::{Engine, EventSink, Library, Mode};

use crate::commands::{load_inventory, select_hosts};
use crate::connect::connect_hosts;
use crate::failure::Failure;
use crate::output::report::{self, Detail, OutputFormat};
use crate::targets::AccessDefaults;

/// What `apply` and `plan` take.
pub struct ApplyRequest {
    pub inventory: PathBuf,
    pub hosts: Option<String>,
    pub until: Option<String>,
    pub check_only: bool,
    pub playbooks: Option<PathBuf>,
    pub templates: Option<PathBuf>,
    pub package_repository: Option<String>,
    pub output: OutputFormat,
    pub detail: Detail,
}

pub async fn run(request: ApplyRequest, defaults: AccessDefaults, forks: usize) -> Result<(), Failure> {
    let inventory = load_inventory(&request.inventory)?;
    let phases = kbs_cluster::apply_phases();
    if let Some(until) = &request.until {
        if !phases.iter().any(|phase| &phase.name == until) {
            let known: Vec<&str> = phases.iter().map(|phase| phase.name.as_str()).collect();
            return Err(Failure::BadInput(format!(
                "--until {until}: no such phase; the phases are {}",
                known.join(", ")
            )));
        }
    }
    let library = if request.playbooks.is_some() || request.templates.is_some() {
        Library::load(request.playbooks.as_deref(), request.templates.as_deref())
    } else {
        Library::embedded()
    }
    .map_err(|error| Failure::BadInput(error.to_string()))?;
    let mut options = kbs_cluster::Options::default();
    if let Some(url) = request
        .package_repository
        .clone()
        .or_else(|| inventory.cluster.package_repository.clone())
    {
        options.repo_base_url = url;
    }
    let vars =
        kbs_cluster::vars(&inventory, &options).map_err(|error| Failure::BadInput(error.to_string()))?;

    let (sender, reporter) = report::start(request.output, request.detail);
    let selected = select_hosts(&inventory, request.hosts.as_deref())?;
    let hosts = connect_hosts(&inventory, &selected, &defaults, forks).await;
    let mode = if request.check_only {
        Mode::Check
    } else {
        Mode::Apply
    };
    let sink: Arc<dyn EventSink> = Arc::new(sender.clone());
    let engine = Engine::new(library, hosts, vars, sink).window(forks);
    let outcome = engine.run(&phases, mode, request.until.as_deref()).await;
    drop(engine);
    drop(sender);
    let _ = reporter.await;

    let report = outcome.map_err(|error| Failure::BadInput(error.to_string()))?;
    let mut failed: Vec<String> = report
        .failures
        .iter()
        .map(|failure| failure.host.clone())
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        failed.sort();
        Err(Failure::HostsFailed(format!(
            "{} host{} failed: {} (the others completed)",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            failed.join(", ")
        )))
    }
}
