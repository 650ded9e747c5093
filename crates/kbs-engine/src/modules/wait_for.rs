//! `wait_for`: block until a TCP port accepts, a file exists or a command succeeds, polling with
//! doubling intervals up to a deadline (never a fixed sleep). A wait changes nothing, so it reports
//! `ok`; in check mode it probes once and reports `skipped` if the condition does not hold yet.

use std::time::Duration;

use serde::Deserialize;

use super::{poll, ModuleCtx, ModuleError, Outcome};
use crate::transport::sh_quote;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default = "localhost")]
    pub host: String,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub command: Option<String>,
    /// Seconds.
    #[serde(default = "five_minutes")]
    pub timeout: u64,
}

fn localhost() -> String {
    "127.0.0.1".into()
}

fn five_minutes() -> u64 {
    300
}

pub fn check_script(args: &Args) -> Result<(String, String), ModuleError> {
    match (&args.port, &args.path, &args.command) {
        (Some(port), None, None) => {
            let h = sh_quote(&args.host);
            // dash has no /dev/tcp; bash does, and nc may be missing.
            Ok((
                format!("if command -v bash >/dev/null 2>&1; then timeout 5 bash -c 'exec 3<>/dev/tcp/'{h}'/{port}' 2>/dev/null; else nc -z -w 5 {h} {port}; fi"),
                format!("port {}:{port}", args.host),
            ))
        }
        (None, Some(path), None) => Ok((format!("[ -e {} ]", sh_quote(path)), format!("{path} to exist"))),
        (None, None, Some(cmd)) => Ok((
            format!("( {cmd} ) >/dev/null 2>&1"),
            format!("`{cmd}` to succeed"),
        )),
        _ => Err(ModuleError::new(
            "give exactly one of `port`, `path` and `command`",
        )),
    }
}

pub async fn run(args: Args, ctx: &ModuleCtx<'_>) -> Result<Outcome, ModuleError> {
    let (script, what) = check_script(&args)?;
    let probe = || async { Ok(ctx.exec(script.clone()).await?.success().then_some(())) };
    if ctx.check_only {
        return Ok(match probe().await? {
            Some(()) => Outcome::ok(),
            None => Outcome::skipped(format!("would wait for {what}")),
        });
    }
    if probe().await?.is_some() {
        return Ok(Outcome::ok());
    }
    ctx.waiting(what.clone());
    match poll(ctx.timing, Duration::from_secs(args.timeout), probe).await? {
        Some(()) => Ok(Outcome::ok()),
        None => Err(ModuleError::new(format!(
            "gave up waiting for {what} after {}s",
            args.timeout
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::modules::test_support::Harness;
    use crate::testing::{fail_with, ok_with, FakeTransport};

    #[tokio::test]
    async fn polls_until_the_port_opens() {
        let n = Arc::new(AtomicU32::new(0));
        let c = n.clone();
        let h = Harness::new(FakeTransport::new(move |_| {
            if c.fetch_add(1, Ordering::SeqCst) < 3 {
                fail_with(1, "")
            } else {
                ok_with("")
            }
        }));
        let a = Args {
            port: Some(6443),
            host: localhost(),
            path: None,
            command: None,
            timeout: 5,
        };
        assert_eq!(run(a, &h.ctx(false)).await.unwrap(), Outcome::ok());
        assert_eq!(n.load(Ordering::SeqCst), 4);
        assert!(h.fake.scripts()[0].contains("/dev/tcp/"));
        assert_eq!(h.events.events().len(), 1, "one Waiting event");
    }

    #[tokio::test]
    async fn check_mode_probes_once() {
        let h = Harness::new(FakeTransport::rules(vec![("[ -e", fail_with(1, ""))]));
        let a = Args {
            port: None,
            host: localhost(),
            path: Some("/x".into()),
            command: None,
            timeout: 5,
        };
        let out = run(a, &h.ctx(true)).await.unwrap();
        assert!(out.skipped);
        assert_eq!(h.fake.scripts().len(), 1);
    }

    #[tokio::test]
    async fn two_conditions_are_refused() {
        let h = Harness::new(FakeTransport::rules(vec![]));
        let a = Args {
            port: Some(1),
            host: localhost(),
            path: Some("/x".into()),
            command: None,
            timeout: 5,
        };
        assert!(run(a, &h.ctx(false)).await.is_err());
    }
}
