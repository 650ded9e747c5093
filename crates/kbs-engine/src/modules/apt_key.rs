//! `apt_key`: a repository signing key, fetched and dearmored into `/etc/apt/keyrings/`
//! (referenced by `signed-by=`, never added to apt's global trust).
//!
//! The check fetches the key and compares it byte for byte with the installed one, so a rotated
//! key or a different mirror is noticed; both happen in one script, and apply is one more.

use serde::Deserialize;

use super::probe;
use super::{ModuleCtx, ModuleError, Outcome};
use crate::transport::sh_quote;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// ASCII-armoured key, e.g. `https://pkgs.k8s.io/core:/stable:/v1.36/deb/Release.key`.
    pub url: String,
    /// e.g. `/etc/apt/keyrings/kubernetes-apt-keyring.gpg`.
    pub path: String,
}

fn dir_of(path: &str) -> &str {
    path.rsplit_once('/')
        .map(|(d, _)| if d.is_empty() { "/" } else { d })
        .unwrap_or("/")
}

pub fn check_script(args: &Args) -> String {
    let (url, path) = (sh_quote(&args.url), sh_quote(&args.path));
    probe::section(
        "key",
        &format!(
            "if ! command -v curl >/dev/null 2>&1 || ! command -v gpg >/dev/null 2>&1; then echo no-tools
elif [ ! -s {path} ]; then echo absent
else
  tmp=$(mktemp)
  if curl -fsSL --retry 3 {url} 2>/dev/null | gpg --dearmor > \"$tmp\" 2>/dev/null && [ -s \"$tmp\" ]; then
    if cmp -s \"$tmp\" {path}; then echo same; else echo differs; fi
  else echo fetch-failed; fi
  rm -f \"$tmp\"
fi"
        ),
    )
}

pub fn apply_script(args: &Args) -> String {
    let (url, path, dir) = (
        sh_quote(&args.url),
        sh_quote(&args.path),
        sh_quote(dir_of(&args.path)),
    );
    format!(
        "set -e\ninstall -d -m 0755 {dir}\ntmp=$(mktemp {dir}/.kbs-key.XXXXXX)\ntrap 'rm -f \"$tmp\"' EXIT\n\
         curl -fsSL --retry 3 {url} | gpg --dearmor > \"$tmp\"\n[ -s \"$tmp\" ]\nchmod 0644 \"$tmp\"\nmv -f \"$tmp\" {path}\n"
    )
}

pub async fn run(args: Args, ctx: &ModuleCtx<'_>) -> Result<Outcome, ModuleError> {
    let out = ctx.exec(check_script(&args)).await?;
    let state = probe::get(&out.stdout, "key").map(str::trim).unwrap_or("");
    let change = match state {
        "same" => return Ok(Outcome::ok()),
        "absent" | "no-tools" => format!("fetch {} into {}", args.url, args.path),
        "differs" => format!("{}: replace with the key now served at {}", args.path, args.url),
        // The apply will fetch again and report curl's own error if it still fails.
        "fetch-failed" => format!("{}: could not fetch {} to compare", args.path, args.url),
        _ => {
            return Err(ModuleError::new(format!(
                "checking the key {} failed: {}",
                args.path,
                out.tail()
            )))
        }
    };
    if !ctx.check_only {
        let out = ctx.exec(apply_script(&args)).await?;
        if !out.success() {
            return Err(ModuleError::new(format!("fetching {} failed: {}", args.url, out.tail())).hint(
                "check that the host reaches the repository (DNS, proxy) and that curl and gpg are installed",
            ));
        }
    }
    Ok(Outcome::changed(change))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_support::Harness;
    use crate::testing::{fail_with, ok_with, FakeTransport};

    fn args() -> Args {
        Args {
            url: "https://pkgs.k8s.io/core:/stable:/v1.36/deb/Release.key".into(),
            path: "/etc/apt/keyrings/kubernetes-apt-keyring.gpg".into(),
        }
    }

    #[tokio::test]
    async fn same_key_is_ok() {
        let h = Harness::new(FakeTransport::rules(vec![(
            "cmp -s",
            ok_with("@@kbs:key\nsame\n\n@@kbs:end\n"),
        )]));
        assert_eq!(run(args(), &h.ctx(false)).await.unwrap(), Outcome::ok());
    }

    #[tokio::test]
    async fn absent_key_is_fetched_and_dearmored_atomically() {
        let h = Harness::new(FakeTransport::rules(vec![(
            "cmp -s",
            ok_with("@@kbs:key\nabsent\n\n@@kbs:end\n"),
        )]));
        let out = run(args(), &h.ctx(false)).await.unwrap();
        assert!(out.changed);
        let apply = &h.fake.scripts()[1];
        assert!(apply.contains("install -d -m 0755 /etc/apt/keyrings"));
        assert!(apply.contains("gpg --dearmor"));
        assert!(apply.contains("mv -f \"$tmp\" /etc/apt/keyrings/kubernetes-apt-keyring.gpg"));
    }

    #[tokio::test]
    async fn fetch_failure_names_the_url() {
        let h = Harness::new(FakeTransport::rules(vec![
            ("cmp -s", ok_with("@@kbs:key\nabsent\n\n@@kbs:end\n")),
            (
                "set -e",
                fail_with(22, "curl: (6) Could not resolve host: pkgs.k8s.io"),
            ),
        ]));
        let err = run(args(), &h.ctx(false)).await.unwrap_err();
        assert!(
            err.message.contains("Release.key failed: curl: (6)"),
            "{}",
            err.message
        );
    }
}
