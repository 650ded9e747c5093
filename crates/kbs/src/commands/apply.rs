//! `kbs apply` (and `kbs plan`, which is `apply --dry-run`; and `kbs join`, which is apply
//! narrowed to one host): converge the hosts to the inventory.
//!
//! The story of a run: load and validate the inventory → connect to every host (one SSH connection
//! each, `--forks` at a time) → the playbook phases of `kbs_cluster::apply_phases()` (prepare) →
//! the cluster phases of `kbs_cluster::orchestrate` (endpoint, init, joins) → a per-host summary.
//! Unreachable hosts fail alone; the others go on. With `--hosts`, only the selected hosts are
//! changed, but the control planes are connected too: a join needs the running cluster.

use std::path::PathBuf;
use std::sync::Arc;

use kbs_cluster::orchestrate::{self, ClusterRun, ClusterSummary, Deadlines};
use kbs_engine::{Engine, EventSink, Library, Mode};
use kbs_inventory::{Host, Inventory, Role};

use crate::commands::closing::{self, PhaseTimes};
use crate::commands::kubeconfig::{default_path, write_private};
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
    /// `kbs join`: the cluster must exist already.
    pub join_only: bool,
}

pub async fn run(request: ApplyRequest, defaults: AccessDefaults, forks: usize) -> Result<(), Failure> {
    let inventory = load_inventory(&request.inventory)?;
    let phases = kbs_cluster::apply_phases();
    if let Some(until) = &request.until {
        let known = kbs_cluster::phase_names();
        if !known.contains(until) {
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

    let versions =
        kbs_cluster::minor_versions(&inventory).map_err(|error| Failure::BadInput(error.to_string()))?;
    if let (true, Some(name)) = (request.join_only, request.hosts.as_deref()) {
        if inventory.host(name).is_none() {
            return Err(Failure::BadInput(format!(
                "{name} is not a host of {}; add it there first (kbs join adds hosts the inventory lists); nothing was changed",
                request.inventory.display()
            )));
        }
    }
    let selected = select_hosts(&inventory, request.hosts.as_deref())?;
    let limited = request.hosts.is_some();
    let connected = if limited {
        with_cluster_hosts(&inventory, &selected)
    } else {
        selected.clone()
    };

    let (sender, reporter) = report::start(request.output, request.detail);
    let hosts = connect_hosts(&inventory, &connected, &defaults, forks).await;
    let mode = if request.check_only {
        Mode::Check
    } else {
        Mode::Apply
    };
    let started = std::time::Instant::now();
    let phase_times = Arc::new(PhaseTimes::new(Arc::new(sender.clone())));
    let sink: Arc<dyn EventSink> = phase_times.clone();
    let mut engine = Engine::new(library, hosts, vars, sink).window(forks);
    if limited {
        engine = engine.limit(selected.iter().map(|h| h.name.clone()));
    }
    engine.start(mode).await;
    let mut outcome: Result<Option<ClusterSummary>, String> = Ok(None);
    for phase in &phases {
        if let Err(error) = engine.run_phase_named(phase, mode).await {
            outcome = Err(error.to_string());
            break;
        }
        if request.until.as_deref() == Some(phase.name.as_str()) {
            break;
        }
    }
    let playbooks_only = request
        .until
        .as_deref()
        .is_some_and(|until| phases.iter().any(|phase| phase.name == until));
    if outcome.is_ok() && !playbooks_only {
        let run = ClusterRun {
            engine: &engine,
            inventory: &inventory,
            versions,
            mode,
            deadlines: Deadlines::default(),
            window: forks,
            join_only: request.join_only,
        };
        outcome = orchestrate::converge(&run, request.until.as_deref())
            .await
            .map(Some)
            .map_err(|error| error.to_string());
    }
    // A full run hands over the admin kubeconfig, beside the inventory.
    let full_run = mode == Mode::Apply && request.until.is_none() && !request.join_only;
    let mut kubeconfig = None;
    if let (
        true,
        Ok(Some(ClusterSummary {
            asked: Some(host), ..
        })),
    ) = (full_run, &outcome)
    {
        let path = default_path(&request.inventory, &inventory.cluster.name);
        match orchestrate::api::admin_kubeconfig(&engine, host, &inventory).await {
            Ok(text) => match write_private(&path, text.as_bytes()) {
                Ok(()) => kubeconfig = Some(path),
                Err(e) => eprintln!("kbs: cannot write the kubeconfig {}: {e}", path.display()),
            },
            Err(e) => eprintln!("kbs: cannot read the admin kubeconfig on {host}: {}", e.message),
        }
    }
    let report = engine.finish().await;
    drop(engine);
    // The reporter ends when the last sender is gone, and `phase_times` holds one.
    let phase_times = phase_times.close();
    drop(sender);
    let _ = reporter.await;

    let summary = match outcome {
        Err(error) => return Err(Failure::HostsFailed(error)),
        Ok(summary) => summary,
    };
    if let (Some(summary), OutputFormat::Text) = (&summary, request.output) {
        if summary.asked.is_some() {
            let endpoint = inventory
                .api_endpoint()
                .map(|e| format!("https://{e}"))
                .unwrap_or_default();
            print!(
                "{}",
                closing::render(
                    &inventory.cluster.name,
                    &endpoint,
                    summary,
                    kubeconfig.as_deref(),
                    &phase_times,
                    started.elapsed().as_millis() as u64,
                )
            );
        }
    }
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

/// The selected hosts plus the control planes and load balancers a join needs, in inventory order.
fn with_cluster_hosts(inventory: &Inventory, selected: &[Host]) -> Vec<Host> {
    inventory
        .hosts
        .iter()
        .filter(|host| {
            selected.iter().any(|s| s.name == host.name)
                || host.has_role(Role::ControlPlane)
                || host.has_role(Role::Lb)
        })
        .cloned()
        .collect()
}
