//! `command`: a shell command guarded so it runs only when needed: `creates` (skip if the path
//! exists) and `unless` (skip if that command succeeds). Without a guard it always reports a change.
//! The command text is visible in process lists: never put a secret in it.

use serde::Deserialize;

use super::probe;
use super::{ModuleCtx, ModuleError, Outcome};
use crate::transport::sh_quote;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub cmd: String,
    #[serde(default)]
    pub creates: Option<String>,
    #[serde(default)]
    pub unless: Option<String>,
}

/// The guards as one script printing `creates`, `unless` or `run`; `None` without guards.
pub fn check_script(args: &Args) -> Option<String> {
    if args.creates.is_none() && args.unless.is_none() {
        return None;
    }
    let mut guards = String::new();
    if let Some(p) = &args.creates {
        guards.push_str(&format!(
            "if [ -e {} ]; then echo creates; exit 0; fi\n",
            sh_quote(p)
        ));
    }
    if let Some(u) = &args.unless {
        guards.push_str(&format!(
            "if ( {u} ) >/dev/null 2>&1; then echo unless; exit 0; fi\n"
        ));
    }
    guards.push_str("echo run");
    Some(probe::section("guard", &format!("( {guards} )")))
}

pub async fn run(args: Args, ctx: &ModuleCtx<'_>) -> Result<Outcome, ModuleError> {
    if let Some(script) = check_script(&args) {
        let out = ctx.exec(script).await?;
        match probe::get(&out.stdout, "guard").map(str::trim) {
            Some("creates") => {
                return Ok(Outcome::ok().with_message(format!("{} exists", args.creates.unwrap_or_default())))
            }
            Some("unless") => return Ok(Outcome::ok()),
            Some("run") => {}
            _ => {
                return Err(ModuleError::new(format!(
                    "checking the guards failed: {}",
                    out.tail()
                )))
            }
        }
    }
    if !ctx.check_only {
        let out = ctx.exec(args.cmd.clone()).await?;
        if !out.success() {
            return Err(ModuleError::new(format!(
                "`{}` exited with {:?}: {}",
                args.cmd,
                out.code,
                out.tail()
            )));
        }
    }
    Ok(Outcome::changed(format!("run: {}", args.cmd)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_support::Harness;
    use crate::testing::{fail_with, ok_with, FakeTransport};

    fn args() -> Args {
        Args {
            cmd: "kubeadm init".into(),
            creates: Some("/etc/kubernetes/admin.conf".into()),
            unless: None,
        }
    }

    #[tokio::test]
    async fn creates_guard_skips() {
        let h = Harness::new(FakeTransport::rules(vec![(
            "if [ -e",
            ok_with("@@kbs:guard\ncreates\n\n@@kbs:end\n"),
        )]));
        let out = run(args(), &h.ctx(false)).await.unwrap();
        assert!(!out.changed);
        assert_eq!(h.fake.scripts().len(), 1);
    }

    #[tokio::test]
    async fn runs_when_guard_allows_and_reports_failure() {
        let h = Harness::new(FakeTransport::rules(vec![
            ("if [ -e", ok_with("@@kbs:guard\nrun\n\n@@kbs:end\n")),
            ("kubeadm init", fail_with(1, "error execution phase preflight")),
        ]));
        let err = run(args(), &h.ctx(false)).await.unwrap_err();
        assert!(err.message.contains("preflight"));
    }

    #[tokio::test]
    async fn check_mode_does_not_run() {
        let h = Harness::new(FakeTransport::rules(vec![(
            "if [ -e",
            ok_with("@@kbs:guard\nrun\n\n@@kbs:end\n"),
        )]));
        assert_eq!(
            run(args(), &h.ctx(true)).await.unwrap().diff.as_deref(),
            Some("run: kubeadm init")
        );
        assert_eq!(h.fake.scripts().len(), 1);
    }
}
