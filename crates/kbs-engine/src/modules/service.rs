//! `service`: a systemd unit enabled/disabled and started/stopped, restarted or reloaded (the
//! last two always act, so they belong in handlers), with an optional `daemon-reload` first.

use serde::Deserialize;

use super::probe;
use super::{ModuleCtx, ModuleError, Outcome};
use crate::transport::sh_quote;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Started,
    Stopped,
    Restarted,
    Reloaded,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub name: String,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub state: Option<State>,
    #[serde(default)]
    pub daemon_reload: bool,
}

pub fn check_script(name: &str) -> String {
    let n = sh_quote(name);
    format!(
        "LC_ALL=C; export LC_ALL\n{}{}{}",
        probe::section("enabled", &format!("systemctl is-enabled {n} 2>/dev/null")),
        probe::section("active", &format!("systemctl is-active {n} 2>/dev/null")),
        probe::section(
            "exists",
            &format!("systemctl cat {n} >/dev/null 2>&1 && echo yes || echo no")
        )
    )
}

pub async fn run(args: Args, ctx: &ModuleCtx<'_>) -> Result<Outcome, ModuleError> {
    let out = ctx.exec(check_script(&args.name)).await?;
    let get = |k| probe::get(&out.stdout, k).map(|s| s.trim().to_string());
    let (Some(enabled), Some(active), Some(exists)) = (get("enabled"), get("active"), get("exists")) else {
        return Err(ModuleError::new(format!(
            "checking {} failed: {}",
            args.name,
            out.tail()
        )));
    };
    let n = sh_quote(&args.name);
    let mut steps: Vec<String> = Vec::new();
    let mut changes: Vec<String> = Vec::new();
    if args.daemon_reload {
        steps.push("systemctl daemon-reload".into());
    }
    match args.enabled {
        // `static`, `alias` and the like cannot be enabled and need not be.
        Some(true) if enabled == "disabled" || exists != "yes" => {
            steps.push(format!("systemctl enable {n}"));
            changes.push(format!("enable {}", args.name));
        }
        Some(false) if enabled == "enabled" => {
            steps.push(format!("systemctl disable {n}"));
            changes.push(format!("disable {}", args.name));
        }
        _ => {}
    }
    match args.state {
        Some(State::Started) if active != "active" => {
            steps.push(format!("systemctl start {n}"));
            changes.push(format!("start {} (now {active})", args.name));
        }
        Some(State::Stopped) if active == "active" => {
            steps.push(format!("systemctl stop {n}"));
            changes.push(format!("stop {}", args.name));
        }
        Some(State::Restarted) => {
            steps.push(format!("systemctl restart {n}"));
            changes.push(format!("restart {}", args.name));
        }
        Some(State::Reloaded) => {
            steps.push(format!("systemctl reload-or-restart {n}"));
            changes.push(format!("reload {}", args.name));
        }
        _ => {}
    }
    if changes.is_empty() {
        return Ok(Outcome::ok());
    }
    let summary = if exists == "yes" {
        changes.join(", ")
    } else {
        format!("{} (the unit is not installed yet)", changes.join(", "))
    };
    if !ctx.check_only {
        if exists != "yes" && !args.daemon_reload {
            return Err(
                ModuleError::new(format!("the systemd unit {} does not exist", args.name))
                    .hint("install the package that provides it first"),
            );
        }
        let out = ctx.exec(format!("set -e\n{}\n", steps.join("\n"))).await?;
        if !out.success() {
            return Err(
                ModuleError::new(format!("{} failed: {}", changes.join(", "), out.tail()))
                    .hint(format!("see `journalctl -u {} -n 50` on the host", args.name)),
            );
        }
    }
    Ok(Outcome::changed(summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_support::Harness;
    use crate::testing::{fail_with, ok_with, FakeTransport};

    fn state(enabled: &str, active: &str) -> String {
        format!("@@kbs:enabled\n{enabled}\n\n@@kbs:end\n@@kbs:active\n{active}\n\n@@kbs:end\n@@kbs:exists\nyes\n\n@@kbs:end\n")
    }

    fn args(enabled: Option<bool>, state: Option<State>) -> Args {
        Args {
            name: "iscsid".into(),
            enabled,
            state,
            daemon_reload: false,
        }
    }

    #[tokio::test]
    async fn enables_and_starts_in_one_apply() {
        let h = Harness::new(FakeTransport::rules(vec![(
            "is-enabled",
            ok_with(&state("disabled", "inactive")),
        )]));
        let out = run(args(Some(true), Some(State::Started)), &h.ctx(false))
            .await
            .unwrap();
        assert_eq!(
            out.diff.as_deref(),
            Some("enable iscsid, start iscsid (now inactive)")
        );
        assert_eq!(
            h.fake.scripts()[1],
            "set -e\nsystemctl enable iscsid\nsystemctl start iscsid\n"
        );
    }

    #[tokio::test]
    async fn running_enabled_is_ok_static_counts_as_enabled() {
        let h = Harness::new(FakeTransport::rules(vec![(
            "is-enabled",
            ok_with(&state("static", "active")),
        )]));
        assert_eq!(
            run(args(Some(true), Some(State::Started)), &h.ctx(false))
                .await
                .unwrap(),
            Outcome::ok()
        );
    }

    #[tokio::test]
    async fn restart_always_acts_and_failure_points_at_the_journal() {
        let h = Harness::new(FakeTransport::rules(vec![
            ("is-enabled", ok_with(&state("enabled", "active"))),
            ("restart", fail_with(1, "Job for iscsid.service failed.")),
        ]));
        let err = run(args(None, Some(State::Restarted)), &h.ctx(false))
            .await
            .unwrap_err();
        assert!(err.message.contains("Job for iscsid.service failed."));
        assert_eq!(
            err.hint.as_deref(),
            Some("see `journalctl -u iscsid -n 50` on the host")
        );
    }
}
