//! The runner: phases (playbook + host set + strategy) over hosts, tasks in order on each host,
//! handlers at the end of a playbook, events all along.
//!
//! A failure stops that host only: it is reported once (`HostFailed`, with the step and a hint),
//! left out of later phases, and every other host goes on. Facts are gathered once per host, before
//! the first phase, in one round trip each; each playbook's checks go in one more (see [`batch`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kbs_inventory::{Host, Role};
use minijinja::Value;
use serde_json::json;

use crate::batch::{self, Prefetch};
use crate::events::{Event, EventSink, HostSummary, TaskStatus};
use crate::facts::{self, Facts};
use crate::lock::{self, LockState, RunLock};
use crate::modules::{self, ModuleCtx, ModuleError, Timing};
use crate::playbook::{HostSet, Library, Playbook, Strategy, Task};
use crate::render::Renderer;
use crate::strategy;
use crate::transport::{Remote, Script, Transport};

mod steps;
pub use steps::PhaseGuard;

/// One step of a run: a playbook on a set of hosts with a strategy. `hosts`/`strategy` override the
/// playbook's own defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    pub name: String,
    pub playbook: String,
    pub hosts: Option<HostSet>,
    pub strategy: Option<Strategy>,
}

impl Phase {
    /// A phase running `playbook` as the playbook itself says.
    pub fn new(name: impl Into<String>, playbook: impl Into<String>) -> Self {
        Phase {
            name: name.into(),
            playbook: playbook.into(),
            hosts: None,
            strategy: None,
        }
    }

    pub fn on(mut self, hosts: HostSet) -> Self {
        self.hosts = Some(hosts);
        self
    }

    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = Some(strategy);
        self
    }
}

/// Apply changes, or only check what would change (`plan`, `--dry-run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    Check,
}

/// Values templates see besides `host` and `hosts`.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// `cluster`: the inventory's cluster settings plus resolved choices (repo URL, …).
    pub cluster: serde_json::Value,
    /// `versions`: the version table's row for the chosen minor.
    pub versions: serde_json::Value,
    /// `vars`: anything else.
    pub extra: serde_json::Value,
}

/// Why a host stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFailure {
    pub host: String,
    /// The task (or "gather facts") that failed.
    pub step: String,
    pub message: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for HostFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.host, self.step, self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub hosts: BTreeMap<String, HostSummary>,
    pub failures: Vec<HostFailure>,
}

impl RunReport {
    pub fn success(&self) -> bool {
        self.failures.is_empty()
    }

    pub fn changed(&self) -> u32 {
        self.hosts.values().map(|h| h.changed).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("unknown phase `{name}` (phases: {known})")]
    UnknownPhase { name: String, known: String },
    #[error("phase `{phase}` runs playbook `{playbook}`, which the library does not have")]
    UnknownPlaybook { phase: String, playbook: String },
}

struct HostState {
    host: Host,
    remote: Remote,
    facts: Mutex<Option<Facts>>,
    failure: Mutex<Option<HostFailure>>,
    counts: Mutex<HostSummary>,
    /// This run holds the host's lock.
    locked: std::sync::atomic::AtomicBool,
}

impl HostState {
    fn failed(&self) -> bool {
        self.failure.lock().map(|f| f.is_some()).unwrap_or(true)
    }

    fn count(&self, status: TaskStatus) {
        if let Ok(mut c) = self.counts.lock() {
            match status {
                TaskStatus::Ok => c.ok += 1,
                TaskStatus::Changed => c.changed += 1,
                TaskStatus::Failed => c.failed += 1,
                TaskStatus::Skipped => c.skipped += 1,
            }
        }
    }
}

/// Runs playbooks on hosts. Build one per run: it holds each host's facts and failure state.
pub struct Engine {
    library: Library,
    renderer: Renderer,
    vars: Vars,
    hosts: Vec<HostState>,
    events: Arc<dyn EventSink>,
    window: usize,
    timing: Timing,
    host_lock: bool,
    /// The run lock taken by [`Engine::start`], released by [`Engine::finish`].
    run_lock: Mutex<Option<RunLock>>,
    /// Phases change only these hosts (`--hosts`, `kbs join`); the others are connected for
    /// reading (facts, the cluster's credentials). `None`: every host.
    limit: Option<BTreeSet<String>>,
}

impl Engine {
    /// `hosts` in inventory order, each with its connection.
    pub fn new(
        library: Library,
        hosts: Vec<(Host, Arc<dyn Transport>)>,
        vars: Vars,
        events: Arc<dyn EventSink>,
    ) -> Self {
        Engine {
            renderer: Renderer::new(&library),
            library,
            vars,
            hosts: hosts
                .into_iter()
                .map(|(host, transport)| HostState {
                    host,
                    remote: Remote::new(transport),
                    facts: Mutex::new(None),
                    failure: Mutex::new(None),
                    counts: Mutex::new(HostSummary::default()),
                    locked: std::sync::atomic::AtomicBool::new(false),
                })
                .collect(),
            events,
            window: 64,
            timing: Timing::default(),
            host_lock: true,
            run_lock: Mutex::new(None),
            limit: None,
        }
    }

    /// Whether [`Mode::Apply`] runs take each host's lock (default true; see [`crate::lock`]).
    pub fn host_lock(mut self, enabled: bool) -> Self {
        self.host_lock = enabled;
        self
    }

    /// Phases change only the named hosts; the others are there to be read.
    pub fn limit(mut self, hosts: impl IntoIterator<Item = String>) -> Self {
        self.limit = Some(hosts.into_iter().collect());
        self
    }

    /// Whether phases may change `host` (see [`Engine::limit`]).
    pub fn in_limit(&self, host: &str) -> bool {
        self.limit.as_ref().is_none_or(|l| l.contains(host))
    }

    /// At most this many hosts work at once in parallel phases (default 64).
    pub fn window(mut self, window: usize) -> Self {
        self.window = window.max(1);
        self
    }

    pub fn timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    /// Facts of a host, once gathered.
    pub fn facts(&self, host: &str) -> Option<Facts> {
        let h = self.hosts.iter().find(|h| h.host.name == host)?;
        h.facts.lock().ok()?.clone()
    }

    /// Per-host totals so far.
    pub fn summary(&self) -> BTreeMap<String, HostSummary> {
        self.hosts
            .iter()
            .map(|h| {
                let mut s = h.counts.lock().map(|c| c.clone()).unwrap_or_default();
                s.round_trips = h.remote.round_trips();
                (h.host.name.clone(), s)
            })
            .collect()
    }

    pub fn failures(&self) -> Vec<HostFailure> {
        self.hosts
            .iter()
            .filter_map(|h| h.failure.lock().ok().and_then(|f| f.clone()))
            .collect()
    }

    /// Gathers facts on every host that has none yet and has not failed (one round trip each).
    pub async fn gather_facts(&self) -> BTreeMap<String, Result<Facts, HostFailure>> {
        self.gather(None).await
    }

    /// Facts for hosts that have none, taking `lock` in the same script when given.
    async fn gather(&self, lock: Option<&RunLock>) -> BTreeMap<String, Result<Facts, HostFailure>> {
        let todo: Vec<&HostState> = self
            .hosts
            .iter()
            .filter(|h| !h.failed() && h.facts.lock().map(|f| f.is_none()).unwrap_or(false))
            .collect();
        if !todo.is_empty() {
            let started = Instant::now();
            self.events.emit(Event::PhaseStarted {
                phase: "facts".into(),
                hosts: todo.iter().map(|h| h.host.name.clone()).collect(),
                check_only: true,
            });
            strategy::run(todo, Strategy::Parallel, self.window, |h| async move {
                match self.refresh_facts(h, lock).await {
                    Err(e) => {
                        self.fail(h, "gather facts", e);
                        h.count(TaskStatus::Failed);
                    }
                    Ok(state) => {
                        if let (Some(lock), Some(state)) = (lock, state) {
                            self.settle_lock(h, lock, state).await;
                        }
                    }
                }
            })
            .await;
            self.events.emit(Event::PhaseFinished {
                phase: "facts".into(),
                duration_ms: started.elapsed().as_millis() as u64,
            });
        }
        self.hosts
            .iter()
            .map(|h| {
                let result = match h.failure.lock().ok().and_then(|f| f.clone()) {
                    Some(f) => Err(f),
                    None => h
                        .facts
                        .lock()
                        .ok()
                        .and_then(|f| f.clone())
                        .ok_or_else(|| HostFailure {
                            host: h.host.name.clone(),
                            step: "gather facts".into(),
                            message: "no facts".into(),
                            hint: None,
                        }),
                };
                (h.host.name.clone(), result)
            })
            .collect()
    }

    /// Gathers facts again; with `lock`, also tries to take the host's lock and says how it went.
    async fn refresh_facts(
        &self,
        h: &HostState,
        lock: Option<&RunLock>,
    ) -> Result<Option<LockState>, ModuleError> {
        let mut script = facts::script();
        if let Some(lock) = lock {
            script.push_str(&lock.acquire_snippet());
        }
        let out = h.remote.exec(&Script::root(script)).await?;
        if !out.success() {
            return Err(ModuleError::new(format!(
                "the facts script failed: {}",
                out.tail()
            )));
        }
        let f = facts::parse(&out.stdout, h.host.node_ip, &h.host.address);
        if let Ok(mut slot) = h.facts.lock() {
            *slot = Some(f);
        }
        Ok(lock.and_then(|_| RunLock::parse(&out.stdout)))
    }

    /// Takes the lock on hosts whose facts were gathered before the run (no lock yet).
    async fn lock_hosts(&self, lock: &RunLock) {
        let todo: Vec<&HostState> = self
            .hosts
            .iter()
            .filter(|h| !h.failed() && !h.locked.load(std::sync::atomic::Ordering::Relaxed))
            .collect();
        strategy::run(todo, Strategy::Parallel, self.window, |h| async move {
            match h.remote.exec(&Script::root(lock.acquire_snippet())).await {
                Ok(out) => match RunLock::parse(&out.stdout) {
                    Some(state) => self.settle_lock(h, lock, state).await,
                    None => self.fail(
                        h,
                        "lock",
                        ModuleError::new(format!("taking {} failed: {}", lock::LOCK_DIR, out.tail())),
                    ),
                },
                Err(e) => self.fail(h, "lock", e.into()),
            }
        })
        .await;
    }

    /// Acts on what taking the lock found: ours, stale (taken over) or someone else's (host fails).
    async fn settle_lock(&self, h: &HostState, lock: &RunLock, state: LockState) {
        let state = match state {
            LockState::Held(owner) if lock.is_stale(&owner) => {
                match h.remote.exec(&Script::root(lock.takeover_script())).await {
                    Ok(out) => RunLock::parse(&out.stdout).unwrap_or(LockState::Held(owner)),
                    Err(e) => return self.fail(h, "lock", e.into()),
                }
            }
            other => other,
        };
        match state {
            LockState::Acquired => h.locked.store(true, std::sync::atomic::Ordering::Relaxed),
            LockState::Held(owner) => self.fail(
                h,
                "lock",
                ModuleError::new(format!("another kbs run is working on this host ({owner})")).hint(format!(
                    "wait for that run to finish; if none is running, remove {} on the host and re-run kbs",
                    lock::LOCK_DIR
                )),
            ),
        }
    }

    /// Releases this run's locks (best effort: a host that went away keeps a lock only until reboot).
    async fn unlock_hosts(&self, lock: &RunLock) {
        let held: Vec<&HostState> = self
            .hosts
            .iter()
            .filter(|h| h.locked.load(std::sync::atomic::Ordering::Relaxed))
            .collect();
        strategy::run(held, Strategy::Parallel, self.window, |h| async move {
            if h.remote.exec(&Script::root(lock.release_script())).await.is_ok() {
                h.locked.store(false, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .await;
    }

    fn fail(&self, h: &HostState, step: &str, e: ModuleError) {
        let failure = HostFailure {
            host: h.host.name.clone(),
            step: step.to_string(),
            message: e.message,
            hint: e.hint,
        };
        self.events.emit(Event::HostFailed {
            host: failure.host.clone(),
            step: failure.step.clone(),
            message: failure.message.clone(),
            hint: failure.hint.clone(),
        });
        if let Ok(mut slot) = h.failure.lock() {
            slot.get_or_insert(failure);
        }
    }

    /// Runs `phases` in order, up to and including `until` if given, and ends with a `Summary` event.
    pub async fn run(
        &self,
        phases: &[Phase],
        mode: Mode,
        until: Option<&str>,
    ) -> Result<RunReport, EngineError> {
        let phases = match until {
            None => phases,
            Some(name) => {
                let Some(i) = phases.iter().position(|p| p.name == name) else {
                    return Err(EngineError::UnknownPhase {
                        name: name.to_string(),
                        known: phases
                            .iter()
                            .map(|p| p.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                };
                &phases[..=i]
            }
        };
        let playbooks = phases
            .iter()
            .map(|p| {
                self.library
                    .playbook(&p.playbook)
                    .ok_or_else(|| EngineError::UnknownPlaybook {
                        phase: p.name.clone(),
                        playbook: p.playbook.clone(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;

        self.start(mode).await;
        self.run_phases(phases, playbooks, mode).await;
        Ok(self.finish().await)
    }

    /// Gathers facts on every host and, for [`Mode::Apply`], takes each host's run lock. Call once
    /// before [`Engine::run_phase_named`] or the Rust-coded steps of [`crate::steps`].
    pub async fn start(&self, mode: Mode) {
        let lock = (mode == Mode::Apply && self.host_lock).then(RunLock::new);
        self.gather(lock.as_ref()).await;
        if let Some(lock) = &lock {
            self.lock_hosts(lock).await;
        }
        if let Ok(mut slot) = self.run_lock.lock() {
            *slot = lock;
        }
    }

    /// Runs one phase by name (its playbook must be in the library); after [`Engine::start`].
    pub async fn run_phase_named(&self, phase: &Phase, mode: Mode) -> Result<(), EngineError> {
        let playbook =
            self.library
                .playbook(&phase.playbook)
                .ok_or_else(|| EngineError::UnknownPlaybook {
                    phase: phase.name.clone(),
                    playbook: phase.playbook.clone(),
                })?;
        self.run_phase(phase, playbook, mode).await;
        Ok(())
    }

    async fn run_phases(&self, phases: &[Phase], playbooks: Vec<&Playbook>, mode: Mode) {
        for (phase, playbook) in phases.iter().zip(playbooks) {
            self.run_phase(phase, playbook, mode).await;
        }
    }

    /// Releases the run locks, emits the `Summary` event and returns the report.
    pub async fn finish(&self) -> RunReport {
        let lock = self.run_lock.lock().ok().and_then(|mut slot| slot.take());
        if let Some(lock) = &lock {
            self.unlock_hosts(lock).await;
        }
        let report = RunReport {
            hosts: self.summary(),
            failures: self.failures(),
        };
        self.events.emit(Event::Summary {
            hosts: report.hosts.clone(),
        });
        report
    }

    async fn run_phase(&self, phase: &Phase, playbook: &Playbook, mode: Mode) {
        let all: Vec<&Host> = self.hosts.iter().map(|h| &h.host).collect();
        let set = phase.hosts.unwrap_or(playbook.hosts);
        let chosen: Vec<&HostState> = strategy::select(&all, set)
            .into_iter()
            .map(|i| &self.hosts[i])
            .filter(|h| !h.failed() && self.in_limit(&h.host.name))
            .collect();
        let strategy = phase.strategy.unwrap_or(playbook.strategy);
        let started = Instant::now();
        let names: Vec<String> = match strategy {
            Strategy::Once => chosen.iter().take(1).map(|h| h.host.name.clone()).collect(),
            _ => chosen.iter().map(|h| h.host.name.clone()).collect(),
        };
        self.events.emit(Event::PhaseStarted {
            phase: phase.name.clone(),
            hosts: names,
            check_only: mode == Mode::Check,
        });
        // Built once per phase: every host's facts are known by now.
        let hosts_value =
            Value::from_serialize(self.hosts.iter().map(|h| self.host_json(h)).collect::<Vec<_>>());
        let hosts_value = &hosts_value;
        strategy::run(chosen, strategy, self.window, |h| async move {
            self.run_playbook(h, playbook, mode, hosts_value).await
        })
        .await;
        self.events.emit(Event::PhaseFinished {
            phase: phase.name.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
        });
    }

    fn first_control_plane(&self) -> Option<&str> {
        self.hosts
            .iter()
            .find(|h| h.host.has_role(Role::ControlPlane))
            .map(|h| h.host.name.as_str())
    }

    fn host_json(&self, h: &HostState) -> serde_json::Value {
        let facts = h.facts.lock().ok().and_then(|f| f.clone());
        json!({
            "name": h.host.name,
            "address": h.host.address,
            "roles": h.host.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
            "node_ip": facts.as_ref().and_then(|f| f.node_ip.clone()).or(h.host.node_ip.map(|ip| ip.to_string())),
            "labels": h.host.labels,
            "first_control_plane": self.first_control_plane() == Some(h.host.name.as_str()),
            "facts": facts,
        })
    }

    fn context(&self, h: &HostState, hosts: &Value) -> Value {
        minijinja::context! {
            cluster => Value::from_serialize(&self.vars.cluster),
            versions => Value::from_serialize(&self.vars.versions),
            vars => Value::from_serialize(&self.vars.extra),
            host => Value::from_serialize(self.host_json(h)),
            hosts => hosts.clone(),
        }
    }

    async fn run_playbook(&self, h: &HostState, playbook: &Playbook, mode: Mode, hosts: &Value) {
        let prefetch = self.prefetch(h, playbook, hosts).await;
        let mut notified = BTreeSet::new();
        for task in &playbook.tasks {
            match self.run_task(h, task, mode, hosts, &prefetch).await {
                Some(TaskStatus::Changed) => {
                    notified.extend(task.notify.iter().cloned());
                    // The host changed: checks fetched before may no longer be true.
                    if mode == Mode::Apply {
                        prefetch.clear();
                    }
                }
                Some(_) => {}
                None => return,
            }
        }
        // Handlers run in the order they are defined, each at most once, only if notified.
        for handler in playbook.handlers.iter().filter(|t| notified.contains(&t.name)) {
            if self.run_task(h, handler, mode, hosts, &prefetch).await.is_none() {
                return;
            }
        }
    }

    /// Runs the check scripts of all the playbook's tasks in one round trip. Tasks whose condition
    /// is false or whose args do not render are left out; they report that themselves later.
    async fn prefetch(&self, h: &HostState, playbook: &Playbook, hosts: &Value) -> Prefetch {
        let prefetch = Prefetch::default();
        let ctx = self.context(h, hosts);
        let mut scripts: Vec<String> = Vec::new();
        for task in &playbook.tasks {
            if let Some(when) = &task.when {
                if !matches!(self.renderer.condition(when, &ctx), Ok(true)) {
                    continue;
                }
            }
            let Ok(args) = self.renderer.args(&task.args, &ctx) else {
                continue;
            };
            if let Some(script) = modules::check_script(&task.module, &args) {
                if !scripts.contains(&script) {
                    scripts.push(script);
                }
            }
        }
        // A single check gains nothing from a batch.
        if scripts.len() < 2 {
            return prefetch;
        }
        // A broken connection is reported by the first task that runs; nothing to do here.
        if let Ok(out) = h.remote.exec(&Script::root(batch::combine(&scripts))).await {
            let results = batch::parse(&out.stdout, scripts.len());
            for (script, result) in scripts.into_iter().zip(results) {
                // Failed checks run again for real: their stderr makes the error message.
                if let Some(r) = result.filter(|r| r.success()) {
                    prefetch.insert(script, r);
                }
            }
        }
        prefetch
    }

    /// Runs one task; `None` when the host failed.
    async fn run_task(
        &self,
        h: &HostState,
        task: &Task,
        mode: Mode,
        hosts: &Value,
        prefetch: &Prefetch,
    ) -> Option<TaskStatus> {
        let host = h.host.name.clone();
        let started = Instant::now();
        let ctx = self.context(h, hosts);
        let result = |status: TaskStatus, diff: Option<String>, message: Option<String>| Event::TaskResult {
            host: host.clone(),
            task: task.name.clone(),
            status,
            diff,
            message,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        if let Some(when) = &task.when {
            match self.renderer.condition(when, &ctx) {
                Ok(true) => {}
                Ok(false) => {
                    h.count(TaskStatus::Skipped);
                    self.events
                        .emit(result(TaskStatus::Skipped, None, Some(format!("when: {when}"))));
                    return Some(TaskStatus::Skipped);
                }
                Err(e) => {
                    let e = ModuleError::new(format!("`when: {when}`: {e}"))
                        .hint("fix the condition in the playbook");
                    return self.task_failed(h, task, e, result(TaskStatus::Failed, None, None));
                }
            }
        }
        self.events.emit(Event::TaskStarted {
            host: host.clone(),
            task: task.name.clone(),
        });
        let args = match self.renderer.args(&task.args, &ctx) {
            Ok(a) => a,
            Err(e) => {
                let e = ModuleError::new(format!("rendering args: {e}"))
                    .hint("fix the task's args or the inventory value it uses");
                return self.task_failed(h, task, e, result(TaskStatus::Failed, None, None));
            }
        };
        let mctx = self.module_ctx(h, &ctx, mode, Some(prefetch));
        match modules::run(&task.module, &args, &mctx).await {
            Ok(outcome) => {
                let status = outcome.status();
                h.count(status);
                tracing::debug!(host = %h.host.name, task = %task.name, ?status, "task done");
                self.events.emit(result(status, outcome.diff, outcome.message));
                if status == TaskStatus::Changed && task.refresh_facts && mode == Mode::Apply {
                    if let Err(e) = self.refresh_facts(h, None).await {
                        self.fail(h, &format!("{} (gathering facts again)", task.name), e);
                        return None;
                    }
                }
                Some(status)
            }
            Err(e) => self.task_failed(h, task, e, result(TaskStatus::Failed, None, None)),
        }
    }

    /// What a module gets to run with on host `h`.
    fn module_ctx<'a>(
        &'a self,
        h: &'a HostState,
        vars: &'a Value,
        mode: Mode,
        prefetched: Option<&'a Prefetch>,
    ) -> ModuleCtx<'a> {
        ModuleCtx {
            host: &h.host.name,
            remote: &h.remote,
            check_only: mode == Mode::Check,
            renderer: &self.renderer,
            vars,
            events: self.events.as_ref(),
            timing: &self.timing,
            prefetched,
        }
    }

    fn task_failed(
        &self,
        h: &HostState,
        task: &Task,
        e: ModuleError,
        mut event: Event,
    ) -> Option<TaskStatus> {
        tracing::debug!(host = %h.host.name, task = %task.name, error = %e.message, "task failed");
        if let Event::TaskResult { message, .. } = &mut event {
            *message = Some(e.message.clone());
        }
        h.count(TaskStatus::Failed);
        self.events.emit(event);
        self.fail(h, &task.name, e);
        None
    }
}
