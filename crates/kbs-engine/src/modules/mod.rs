//! Modules: each checks the host's current state in one remote script, reports `ok` or `changed`
//! (with a diff or a one-line "what would change"), and in apply mode changes only what differs,
//! usually in one more script. Run twice, the second run reports `ok` everywhere.
//!
//! In check mode (`plan`, `--dry-run`) nothing is applied: [`ModuleCtx::check_only`] is the single
//! switch every module consults before changing anything.
//!
//! | module | args (defaults) | notes |
//! |---|---|---|
//! | `kernel_module` | `names`, `file` (/etc/modules-load.d/kubernetes.conf) | modprobe + persist |
//! | `sysctl` | `values` {key: value}, `file` (/etc/sysctl.d/99-kubernetes.conf) | `sysctl -w` + persist |
//! | `file`, `template` | `path`, `content` or `src` (+ `vars`), `mode` ("0644"), `owner`/`group` (root), `sensitive` | atomic upload |
//! | `swap_off` | — | `swapoff -a`, comments fstab swap lines |
//! | `apt_key` | `url`, `path` | fetched, dearmored, compared byte for byte |
//! | `apt_repository` | `path`, `url`, `keyring`, `suite` ("/"), `components`, `comment` | `apt-get update` on change |
//! | `apt_packages` | `packages` [name or {name, version}], `hold`, `update_cache` (true) | `1.36` → newest 1.36.x |
//! | `apt_hold` | `packages`, `held` (true) | `apt-mark hold/unhold` |
//! | `service` | `name`, `enabled`, `state` (started/stopped/restarted/reloaded), `daemon_reload` | systemd |
//! | `command` | `cmd`, `creates`, `unless` | no secrets in `cmd` |
//! | `wait_for` | one of `port` (+`host`), `path`, `command`; `timeout` (300 s) | backoff, never fixed sleeps |

mod apt_hold;
mod apt_key;
mod apt_lock;
mod apt_packages;
mod apt_repository;
mod command;
mod file;
mod kernel_module;
mod probe;
mod service;
mod swap_off;
mod sysctl;
mod wait_for;

pub mod dpkg_version;

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::batch::Prefetch;
use crate::events::{Event, EventSink};
use crate::render::Renderer;
use crate::transport::{ExecResult, Remote, Script, TransportError, Upload};

/// Module names a playbook may use.
pub const KNOWN: &[&str] = &[
    "kernel_module",
    "sysctl",
    "file",
    "template",
    "swap_off",
    "apt_key",
    "apt_repository",
    "apt_packages",
    "apt_hold",
    "service",
    "command",
    "wait_for",
];

/// Timing knobs, explicit so tests can run the waits in milliseconds.
#[derive(Debug, Clone)]
pub struct Timing {
    /// How long apt waits for another process's dpkg lock before failing.
    pub dpkg_lock_timeout: Duration,
    /// First poll interval of every wait; doubles up to `poll_max`.
    pub poll_initial: Duration,
    pub poll_max: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            dpkg_lock_timeout: Duration::from_secs(600),
            poll_initial: Duration::from_millis(500),
            poll_max: Duration::from_secs(10),
        }
    }
}

/// Everything a module sees of the run.
pub struct ModuleCtx<'a> {
    pub host: &'a str,
    pub remote: &'a Remote,
    pub check_only: bool,
    pub renderer: &'a Renderer,
    /// The task's template context (`cluster`, `host`, `hosts`, `versions`, `vars`).
    pub vars: &'a minijinja::Value,
    pub events: &'a dyn EventSink,
    pub timing: &'a Timing,
    /// Check results fetched ahead in one batch; `None` runs every script for real.
    pub prefetched: Option<&'a Prefetch>,
}

impl ModuleCtx<'_> {
    pub(crate) async fn exec(&self, text: impl Into<String>) -> Result<ExecResult, ModuleError> {
        let text = text.into();
        if let Some(result) = self.prefetched.and_then(|p| p.get(&text)) {
            return Ok(result);
        }
        Ok(self.remote.exec(&Script::root(text)).await?)
    }

    /// Run and require exit 0; a failure carries the script's stderr tail.
    pub(crate) async fn exec_ok(
        &self,
        what: &str,
        text: impl Into<String>,
    ) -> Result<ExecResult, ModuleError> {
        let out = self.exec(text).await?;
        if !out.success() {
            return Err(ModuleError::new(format!("{what} failed: {}", out.tail())));
        }
        Ok(out)
    }

    pub(crate) async fn upload(&self, file: Upload) -> Result<(), ModuleError> {
        Ok(self.remote.upload(&file).await?)
    }

    pub(crate) fn waiting(&self, what: impl Into<String>) {
        self.events.emit(Event::Waiting {
            host: self.host.to_string(),
            what: what.into(),
        });
    }
}

/// What a module found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub changed: bool,
    /// Unified diff, or a one-line description of the change.
    pub diff: Option<String>,
    /// Anything else worth showing (e.g. "skipped: /etc/kubernetes/admin.conf exists").
    pub message: Option<String>,
    /// Nothing was checked (e.g. a wait in check mode).
    pub skipped: bool,
}

impl Outcome {
    pub fn ok() -> Self {
        Outcome {
            changed: false,
            diff: None,
            message: None,
            skipped: false,
        }
    }

    pub fn changed(diff: impl Into<String>) -> Self {
        Outcome {
            changed: true,
            diff: Some(diff.into()),
            message: None,
            skipped: false,
        }
    }

    pub fn skipped(message: impl Into<String>) -> Self {
        Outcome {
            skipped: true,
            message: Some(message.into()),
            ..Outcome::ok()
        }
    }

    /// How the outcome is reported.
    pub fn status(&self) -> crate::events::TaskStatus {
        use crate::events::TaskStatus;
        if self.skipped {
            TaskStatus::Skipped
        } else if self.changed {
            TaskStatus::Changed
        } else {
            TaskStatus::Ok
        }
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
}

/// What went wrong, for people: the message and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ModuleError {
    pub message: String,
    pub hint: Option<String>,
}

impl ModuleError {
    pub fn new(message: impl Into<String>) -> Self {
        ModuleError {
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<TransportError> for ModuleError {
    fn from(e: TransportError) -> Self {
        ModuleError {
            message: e.message,
            hint: e.hint,
        }
    }
}

fn parse_args<T: DeserializeOwned>(module: &str, args: &serde_json::Value) -> Result<T, ModuleError> {
    let args = if args.is_null() {
        serde_json::json!({})
    } else {
        args.clone()
    };
    serde_json::from_value(args).map_err(|e| {
        ModuleError::new(format!("bad args for module `{module}`: {e}"))
            .hint("fix the task's `args:` in the playbook")
    })
}

/// Run module `name` with rendered `args`.
pub async fn run(name: &str, args: &serde_json::Value, ctx: &ModuleCtx<'_>) -> Result<Outcome, ModuleError> {
    match name {
        "kernel_module" => kernel_module::run(parse_args(name, args)?, ctx).await,
        "sysctl" => sysctl::run(parse_args(name, args)?, ctx).await,
        "file" | "template" => file::run(parse_args(name, args)?, ctx).await,
        "swap_off" => swap_off::run(parse_args(name, args)?, ctx).await,
        "apt_key" => apt_key::run(parse_args(name, args)?, ctx).await,
        "apt_repository" => apt_repository::run(parse_args(name, args)?, ctx).await,
        "apt_packages" => apt_packages::run(parse_args(name, args)?, ctx).await,
        "apt_hold" => apt_hold::run(parse_args(name, args)?, ctx).await,
        "service" => service::run(parse_args(name, args)?, ctx).await,
        "command" => command::run(parse_args(name, args)?, ctx).await,
        "wait_for" => wait_for::run(parse_args(name, args)?, ctx).await,
        other => Err(ModuleError::new(format!("unknown module `{other}`"))),
    }
}

/// The first (check) script module `name` runs with these rendered args, if it can be known ahead;
/// the runner batches these. A script that turns out different is simply run for real.
pub fn check_script(name: &str, args: &serde_json::Value) -> Option<String> {
    fn with<T: DeserializeOwned>(
        name: &str,
        args: &serde_json::Value,
        f: impl FnOnce(T) -> Option<String>,
    ) -> Option<String> {
        parse_args::<T>(name, args).ok().and_then(f)
    }
    match name {
        "kernel_module" => with(name, args, |a| Some(kernel_module::check_script(&a))),
        "sysctl" => with(name, args, |a| Some(sysctl::check_script(&a))),
        "file" | "template" => with(name, args, |a| Some(file::check_script(&a))),
        "swap_off" => Some(swap_off::check_script()),
        "apt_key" => with(name, args, |a| Some(apt_key::check_script(&a))),
        "apt_repository" => with(name, args, |a| Some(apt_repository::check_script(&a))),
        "apt_packages" => with(name, args, |a| Some(apt_packages::check_script(&a))),
        "apt_hold" => Some(apt_hold::CHECK_SCRIPT.to_string()),
        "service" => with(name, args, |a: service::Args| {
            Some(service::check_script(&a.name))
        }),
        "command" => with(name, args, |a| command::check_script(&a)),
        "wait_for" => with(name, args, |a| wait_for::check_script(&a).ok().map(|(s, _)| s)),
        _ => None,
    }
}

/// A unified diff of a file's old and new text.
pub(crate) fn unified_diff(path: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{path} (on host)"), &format!("{path} (kbs)"))
        .to_string()
}

/// Polls `probe` until it returns `Some`, with doubling intervals, until `deadline` has passed.
pub(crate) async fn poll<T, F, Fut>(
    timing: &Timing,
    deadline: Duration,
    mut probe: F,
) -> Result<Option<T>, ModuleError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, ModuleError>>,
{
    let start = tokio::time::Instant::now();
    let mut interval = timing.poll_initial;
    loop {
        if let Some(v) = probe().await? {
            return Ok(Some(v));
        }
        let elapsed = start.elapsed();
        if elapsed >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(interval.min(deadline - elapsed)).await;
        interval = (interval * 2).min(timing.poll_max);
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A module context over the fake transport, for the modules' unit tests.
    use std::sync::Arc;

    use super::*;
    use crate::events::Collector;
    use crate::playbook::Library;
    use crate::testing::FakeTransport;

    pub struct Harness {
        pub fake: Arc<FakeTransport>,
        pub remote: Remote,
        pub renderer: Renderer,
        pub vars: minijinja::Value,
        pub events: Collector,
        pub timing: Timing,
    }

    impl Harness {
        pub fn new(fake: FakeTransport) -> Self {
            let fake = Arc::new(fake);
            Harness {
                remote: Remote::new(fake.clone()),
                fake,
                renderer: Renderer::new(&Library::embedded().expect("embedded library")),
                vars: minijinja::context! {},
                events: Collector::default(),
                timing: Timing {
                    dpkg_lock_timeout: Duration::from_millis(300),
                    poll_initial: Duration::from_millis(10),
                    poll_max: Duration::from_millis(40),
                },
            }
        }

        pub fn ctx(&self, check_only: bool) -> ModuleCtx<'_> {
            ModuleCtx {
                host: "host01",
                remote: &self.remote,
                check_only,
                renderer: &self.renderer,
                vars: &self.vars,
                events: &self.events,
                timing: &self.timing,
                prefetched: None,
            }
        }
    }
}
