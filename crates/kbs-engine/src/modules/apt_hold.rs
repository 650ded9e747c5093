//! `apt_hold`: packages held (`apt-mark hold`) or released (`unhold`), e.g. released before a
//! deliberate upgrade and held again after.

use serde::Deserialize;

use super::{ModuleCtx, ModuleError, Outcome};
use crate::transport::sh_quote;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub packages: Vec<String>,
    #[serde(default = "yes")]
    pub held: bool,
}

fn yes() -> bool {
    true
}

pub const CHECK_SCRIPT: &str = "LC_ALL=C apt-mark showhold";

pub async fn run(args: Args, ctx: &ModuleCtx<'_>) -> Result<Outcome, ModuleError> {
    let out = ctx.exec(CHECK_SCRIPT).await?;
    if !out.success() {
        return Err(ModuleError::new(format!(
            "apt-mark showhold failed: {}",
            out.tail()
        )));
    }
    let held: Vec<&str> = out.stdout.lines().map(str::trim).collect();
    let todo: Vec<&String> = args
        .packages
        .iter()
        .filter(|p| held.contains(&p.as_str()) != args.held)
        .collect();
    if todo.is_empty() {
        return Ok(Outcome::ok());
    }
    let verb = if args.held { "hold" } else { "unhold" };
    let names: Vec<String> = todo.iter().map(|p| sh_quote(p)).collect();
    if !ctx.check_only {
        ctx.exec_ok(
            &format!("apt-mark {verb}"),
            format!("apt-mark {verb} {} >/dev/null", names.join(" ")),
        )
        .await?;
    }
    Ok(Outcome::changed(format!("{verb} {}", names.join(" "))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_support::Harness;
    use crate::testing::{ok_with, FakeTransport};

    #[tokio::test]
    async fn holds_only_what_is_not_held() {
        let h = Harness::new(FakeTransport::rules(vec![("showhold", ok_with("kubelet\n"))]));
        let a = Args {
            packages: vec!["kubelet".into(), "kubeadm".into()],
            held: true,
        };
        assert_eq!(
            run(a, &h.ctx(false)).await.unwrap().diff.as_deref(),
            Some("hold kubeadm")
        );
        assert_eq!(h.fake.scripts()[1], "apt-mark hold kubeadm >/dev/null");

        let h = Harness::new(FakeTransport::rules(vec![(
            "showhold",
            ok_with("kubelet\nkubeadm\n"),
        )]));
        let a = Args {
            packages: vec!["kubelet".into(), "kubeadm".into()],
            held: true,
        };
        assert_eq!(run(a, &h.ctx(false)).await.unwrap(), Outcome::ok());
    }

    #[tokio::test]
    async fn unholds() {
        let h = Harness::new(FakeTransport::rules(vec![("showhold", ok_with("kubelet\n"))]));
        let a = Args {
            packages: vec!["kubelet".into(), "kubeadm".into()],
            held: false,
        };
        assert_eq!(
            run(a, &h.ctx(true)).await.unwrap().diff.as_deref(),
            Some("unhold kubelet")
        );
        assert_eq!(h.fake.scripts().len(), 1);
    }
}
