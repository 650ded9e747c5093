//! Rust-coded steps: work that a playbook cannot express (kubeadm init and joins, which pass data
//! between hosts) still runs through the engine, so it is reported, counted and failed per host
//! exactly like a playbook task, and uses the same modules and the same one connection per host.
//!
//! ```text
//! engine.start(Mode::Apply).await;
//! let _phase = engine.phase("init", vec!["host01".into()], Mode::Apply);
//! engine.step("host01", "kubeadm init", async {
//!     engine.module("host01", "file", &args, Mode::Apply).await?;
//!     Ok(Outcome::changed("initialised"))
//! }).await;
//! ```

use std::future::Future;
use std::time::Instant;

use kbs_inventory::Host;
use minijinja::Value;

use super::{Engine, HostState, Mode};
use crate::events::{Event, TaskStatus};
use crate::facts::Facts;
use crate::modules::{self, ModuleError, Outcome};
use crate::transport::{ExecResult, Remote, Script};

/// Emits `PhaseFinished` when dropped, so every early return still closes the phase.
pub struct PhaseGuard<'a> {
    engine: &'a Engine,
    name: String,
    started: Instant,
}

impl Drop for PhaseGuard<'_> {
    fn drop(&mut self) {
        self.engine.events.emit(Event::PhaseFinished {
            phase: self.name.clone(),
            duration_ms: self.started.elapsed().as_millis() as u64,
        });
    }
}

impl Engine {
    fn state(&self, host: &str) -> Option<&HostState> {
        self.hosts.iter().find(|h| h.host.name == host)
    }

    /// The inventory entry of a host of this run.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.state(name).map(|h| &h.host)
    }

    /// Names of this run's hosts, in inventory order.
    pub fn host_names(&self) -> Vec<String> {
        self.hosts.iter().map(|h| h.host.name.clone()).collect()
    }

    /// The host's connection (with its round-trip counter).
    pub fn remote(&self, name: &str) -> Option<&Remote> {
        self.state(name).map(|h| &h.remote)
    }

    /// Whether the host has failed in this run (or is not part of it).
    pub fn is_failed(&self, name: &str) -> bool {
        self.state(name).map(|h| h.failed()).unwrap_or(true)
    }

    /// Fails the host at `step`: reported once, left out of everything after.
    pub fn mark_failed(&self, name: &str, step: &str, error: ModuleError) {
        if let Some(h) = self.state(name) {
            self.fail(h, step, error);
        }
    }

    /// Says the host is waiting on something outside kbs.
    pub fn waiting(&self, name: &str, what: impl Into<String>) {
        self.events.emit(Event::Waiting {
            host: name.to_string(),
            what: what.into(),
        });
    }

    /// Opens a phase in the event stream; it closes when the guard is dropped.
    pub fn phase(&self, name: &str, hosts: Vec<String>, mode: Mode) -> PhaseGuard<'_> {
        self.events.emit(Event::PhaseStarted {
            phase: name.to_string(),
            hosts,
            check_only: mode == Mode::Check,
        });
        PhaseGuard {
            engine: self,
            name: name.to_string(),
            started: Instant::now(),
        }
    }

    /// Runs `work` as a task named `task` on `host`: `TaskStarted`, then `TaskResult` with its
    /// outcome; an error fails the host. `None` when the host had failed before or fails now.
    pub async fn step(
        &self,
        host: &str,
        task: &str,
        work: impl Future<Output = Result<Outcome, ModuleError>>,
    ) -> Option<Outcome> {
        let h = self.state(host)?;
        if h.failed() {
            return None;
        }
        let started = Instant::now();
        self.events.emit(Event::TaskStarted {
            host: host.to_string(),
            task: task.to_string(),
        });
        let result = work.await;
        let duration_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(outcome) => {
                let status = outcome.status();
                h.count(status);
                self.events.emit(Event::TaskResult {
                    host: host.to_string(),
                    task: task.to_string(),
                    status,
                    diff: outcome.diff.clone(),
                    message: outcome.message.clone(),
                    duration_ms,
                });
                Some(outcome)
            }
            Err(e) => {
                h.count(TaskStatus::Failed);
                self.events.emit(Event::TaskResult {
                    host: host.to_string(),
                    task: task.to_string(),
                    status: TaskStatus::Failed,
                    diff: None,
                    message: Some(e.message.clone()),
                    duration_ms,
                });
                self.fail(h, task, e);
                None
            }
        }
    }

    /// Reports a result that came out of a larger step (one add-on of the add-ons step), counted
    /// like a task of its own.
    pub fn note(
        &self,
        host: &str,
        task: &str,
        status: TaskStatus,
        message: Option<String>,
        duration_ms: u64,
    ) {
        if let Some(h) = self.state(host) {
            h.count(status);
        }
        self.events.emit(Event::TaskResult {
            host: host.to_string(),
            task: task.to_string(),
            status,
            diff: None,
            message,
            duration_ms,
        });
    }

    /// Runs an engine module (`file`, `service`, `apt_packages`, …) on `host` with the same
    /// template context a playbook task gets. Use inside [`Engine::step`].
    pub async fn module(
        &self,
        host: &str,
        module: &str,
        args: &serde_json::Value,
        mode: Mode,
    ) -> Result<Outcome, ModuleError> {
        let h = self
            .state(host)
            .ok_or_else(|| ModuleError::new(format!("{host} is not part of this run")))?;
        let hosts = Value::from_serialize(self.hosts.iter().map(|h| self.host_json(h)).collect::<Vec<_>>());
        let ctx = self.context(h, &hosts);
        modules::run(module, args, &self.module_ctx(h, &ctx, mode, None)).await
    }

    /// Runs a script on `host`; a broken connection is an error, a non-zero exit is not.
    pub async fn exec(&self, host: &str, script: &Script) -> Result<ExecResult, ModuleError> {
        let remote = self
            .remote(host)
            .ok_or_else(|| ModuleError::new(format!("{host} is not part of this run")))?;
        Ok(remote.exec(script).await?)
    }

    /// Gathers the host's facts again (after a step changed what they describe).
    pub async fn refresh_facts_of(&self, host: &str) -> Result<Facts, ModuleError> {
        let h = self
            .state(host)
            .ok_or_else(|| ModuleError::new(format!("{host} is not part of this run")))?;
        self.refresh_facts(h, None).await?;
        h.facts
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .ok_or_else(|| ModuleError::new("no facts after gathering them"))
    }
}
