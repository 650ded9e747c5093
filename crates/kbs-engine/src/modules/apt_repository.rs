//! `apt_repository`: one sources.list.d file holding one `deb [signed-by=KEYRING] URL SUITE…` line
//! (rendered from `apt-source.list.j2`), and `apt-get update` when it changed. pkgs.k8s.io is a flat
//! repository per minor: `URL = BASE/core:/stable:/v1.XX/deb/`, suite `/`, no components.

use serde::Deserialize;

use super::apt_lock::{self, apt_error, apt_get};
use super::probe;
use super::{unified_diff, ModuleCtx, ModuleError, Outcome};
use crate::transport::Upload;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// e.g. `/etc/apt/sources.list.d/kubernetes.list`.
    pub path: String,
    pub url: String,
    pub keyring: String,
    #[serde(default = "flat")]
    pub suite: String,
    #[serde(default)]
    pub components: Vec<String>,
    /// Shown in the file's first line.
    #[serde(default)]
    pub comment: String,
}

fn flat() -> String {
    "/".into()
}

pub fn render(args: &Args, ctx: &ModuleCtx<'_>) -> Result<String, ModuleError> {
    ctx.renderer
        .template(
            "apt-source.list.j2",
            &minijinja::context! {
                url => &args.url, keyring => &args.keyring, suite => &args.suite,
                components => &args.components, comment => &args.comment,
            },
        )
        .map_err(|e| ModuleError::new(e.0))
}

pub fn check_script(args: &Args) -> String {
    format!(
        "{}{}",
        probe::file_section("file", &args.path),
        apt_lock::holder_section()
    )
}

pub async fn run(args: Args, ctx: &ModuleCtx<'_>) -> Result<Outcome, ModuleError> {
    let wanted = render(&args, ctx)?;
    let out = ctx.exec(check_script(&args)).await?;
    let Some(body) = probe::get(&out.stdout, "file") else {
        return Err(ModuleError::new(format!(
            "reading {} failed: {}",
            args.path,
            out.tail()
        )));
    };
    let current = probe::parse_file(body);
    if current.as_ref().map(|f| (f.content.as_str(), f.mode)) == Some((wanted.as_str(), 0o644)) {
        return Ok(Outcome::ok());
    }
    let diff = unified_diff(
        &args.path,
        current.as_ref().map(|f| f.content.as_str()).unwrap_or(""),
        &wanted,
    );
    if !ctx.check_only {
        ctx.upload(Upload {
            path: args.path.clone(),
            contents: wanted.into_bytes(),
            mode: 0o644,
            owner: Some(("root".into(), "root".into())),
        })
        .await?;
        apt_lock::wait_until_free(ctx, apt_lock::holder_from(&out.stdout)).await?;
        let out = ctx.exec(apt_get(ctx, "update")).await?;
        if !out.success() {
            return Err(apt_error(
                &format!("apt-get update after writing {}", args.path),
                &out.tail(),
            ));
        }
    }
    Ok(Outcome::changed(diff))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_support::Harness;
    use crate::testing::{fail_with, ok_with, FakeTransport};

    fn args() -> Args {
        Args {
            path: "/etc/apt/sources.list.d/kubernetes.list".into(),
            url: "https://pkgs.k8s.io/core:/stable:/v1.36/deb/".into(),
            keyring: "/etc/apt/keyrings/kubernetes-apt-keyring.gpg".into(),
            suite: flat(),
            components: vec![],
            comment: "Kubernetes 1.36".into(),
        }
    }

    const LINE: &str = "# Written by kbs: Kubernetes 1.36\ndeb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.36/deb/ /\n";

    #[tokio::test]
    async fn writes_the_line_and_updates() {
        let h = Harness::new(FakeTransport::rules(vec![(
            "stat -c",
            ok_with("@@kbs:file\nabsent\n@@kbs:end\n@@kbs:dpkg_lock\n\n@@kbs:end\n"),
        )]));
        let out = run(args(), &h.ctx(false)).await.unwrap();
        assert!(out.diff.unwrap().contains("+deb [signed-by="));
        assert_eq!(String::from_utf8_lossy(&h.fake.uploads()[0].contents), LINE);
        assert!(h.fake.scripts()[1].ends_with(" update"));
    }

    #[tokio::test]
    async fn same_line_is_ok_and_failed_update_says_why() {
        let same = format!("@@kbs:file\npresent\n644 root root\n{LINE}\n@@kbs:end\n");
        let h = Harness::new(FakeTransport::rules(vec![("stat -c", ok_with(&same))]));
        assert_eq!(run(args(), &h.ctx(false)).await.unwrap(), Outcome::ok());

        let old = "@@kbs:file\npresent\n644 root root\ndeb [signed-by=/k] https://pkgs.k8s.io/core:/stable:/v1.35/deb/ /\n\n@@kbs:end\n";
        let h = Harness::new(FakeTransport::rules(vec![
            ("stat -c", ok_with(old)),
            (
                "update",
                fail_with(
                    100,
                    "E: Failed to fetch https://pkgs.k8s.io/core:/stable:/v1.36/deb/InRelease  403",
                ),
            ),
        ]));
        let err = run(args(), &h.ctx(false)).await.unwrap_err();
        assert!(err.hint.unwrap().contains("cannot reach the package repository"));
    }
}
