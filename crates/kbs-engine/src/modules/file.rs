//! `file` and `template`: a file with exact content, mode and owner. Content comes from `content`
//! or from the library template `src`; it is written atomically by upload. `sensitive: true` keeps
//! the content out of diffs (the file holds a secret).

use serde::Deserialize;

use super::probe;
use super::{unified_diff, ModuleCtx, ModuleError, Outcome};
use crate::transport::{sh_quote, Upload};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub path: String,
    #[serde(default)]
    pub content: Option<String>,
    /// A template of the library, rendered with the task's context plus `vars`.
    #[serde(default)]
    pub src: Option<String>,
    #[serde(default)]
    pub vars: serde_json::Value,
    /// Octal, e.g. `"0644"`. A YAML number like `644` is read by its digits, as octal, because that
    /// is what anyone writing it means.
    #[serde(default)]
    pub mode: Option<serde_json::Value>,
    #[serde(default = "root")]
    pub owner: String,
    #[serde(default = "root")]
    pub group: String,
    #[serde(default)]
    pub sensitive: bool,
}

fn root() -> String {
    "root".into()
}

fn parse_mode(v: &Option<serde_json::Value>) -> Result<u32, ModuleError> {
    let text = match v {
        None => return Ok(0o644),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(other) => return Err(ModuleError::new(format!("mode {other} is not an octal mode"))),
    };
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| ModuleError::new(format!("mode `{text}` is not an octal mode like 0644")))
}

fn parent(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/".to_string(),
        Some((d, _)) => d.to_string(),
    }
}

/// The file (or its digest, when sensitive) and whether its directory exists.
pub fn check_script(args: &Args) -> String {
    let file = if args.sensitive {
        probe::file_hash_section("file", &args.path)
    } else {
        probe::file_section("file", &args.path)
    };
    let dir = sh_quote(&parent(&args.path));
    format!(
        "{file}{}",
        probe::section(
            "dir",
            &format!("if [ -d {dir} ]; then echo yes; else echo no; fi")
        )
    )
}

pub async fn run(args: Args, ctx: &ModuleCtx<'_>) -> Result<Outcome, ModuleError> {
    if !args.path.starts_with('/') {
        return Err(ModuleError::new(format!("path `{}` must be absolute", args.path)));
    }
    let mode = parse_mode(&args.mode)?;
    let wanted = match (&args.content, &args.src) {
        (Some(c), None) => c.clone(),
        (None, Some(src)) => {
            let mut vars = ctx.vars.clone();
            if !args.vars.is_null() {
                vars = minijinja::context! { vars => minijinja::Value::from_serialize(&args.vars), ..vars };
            }
            ctx.renderer
                .template(src, &vars)
                .map_err(|e| ModuleError::new(e.0))?
        }
        _ => return Err(ModuleError::new("give exactly one of `content` and `src`")),
    };
    // A secret's content must not come back from the host: compare digests instead.
    let wanted_key = if args.sensitive {
        sha256_hex(&wanted)
    } else {
        wanted.clone()
    };
    let dir = parent(&args.path);
    let script = check_script(&args);
    let out = ctx.exec(script).await?;
    let (Some(body), Some(dir_exists)) = (probe::get(&out.stdout, "file"), probe::get(&out.stdout, "dir"))
    else {
        return Err(ModuleError::new(format!(
            "reading {} failed: {}",
            args.path,
            out.tail()
        )));
    };
    let current = probe::parse_file(body);

    let content_differs = current.as_ref().map(|f| &f.content) != Some(&wanted_key);
    let mut changes = Vec::new();
    if content_differs {
        changes.push(if args.sensitive {
            format!("{}: content differs (sensitive, not shown)", args.path)
        } else {
            unified_diff(
                &args.path,
                current.as_ref().map(|f| f.content.as_str()).unwrap_or(""),
                &wanted,
            )
        });
    }
    let meta_differs = match &current {
        Some(f) if !content_differs => {
            let mut m = Vec::new();
            if f.mode != mode {
                m.push(format!("mode {:o} → {mode:o}", f.mode));
            }
            if f.owner != args.owner || f.group != args.group {
                m.push(format!(
                    "owner {}:{} → {}:{}",
                    f.owner, f.group, args.owner, args.group
                ));
            }
            if !m.is_empty() {
                changes.push(format!("{}: {}", args.path, m.join(", ")));
            }
            !m.is_empty()
        }
        _ => false,
    };
    if changes.is_empty() {
        return Ok(Outcome::ok());
    }
    if !ctx.check_only {
        if content_differs {
            if dir_exists.trim() != "yes" {
                ctx.exec_ok(&format!("creating {dir}"), format!("mkdir -p {}", sh_quote(&dir)))
                    .await?;
            }
            ctx.upload(Upload {
                path: args.path.clone(),
                contents: wanted.into_bytes(),
                mode,
                owner: Some((args.owner.clone(), args.group.clone())),
            })
            .await?;
        } else if meta_differs {
            let p = sh_quote(&args.path);
            ctx.exec_ok(
                &format!("setting mode and owner of {}", args.path),
                format!(
                    "chmod {mode:o} {p} && chown {} {p}",
                    sh_quote(&format!("{}:{}", args.owner, args.group))
                ),
            )
            .await?;
        }
    }
    Ok(Outcome::changed(changes.join("\n")))
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_support::Harness;
    use crate::testing::{ok_with, FakeTransport};

    fn args(content: &str) -> Args {
        serde_json::from_value(
            serde_json::json!({"path": "/etc/crictl.yaml", "content": content, "mode": "0644"}),
        )
        .unwrap()
    }

    fn present(mode: &str, content: &str) -> String {
        format!("@@kbs:file\npresent\n{mode} root root\n{content}\n@@kbs:end\n@@kbs:dir\nyes\n\n@@kbs:end\n")
    }

    #[tokio::test]
    async fn absent_file_is_uploaded_with_diff() {
        let h = Harness::new(FakeTransport::rules(vec![(
            "stat -c",
            ok_with("@@kbs:file\nabsent\n@@kbs:end\n@@kbs:dir\nno\n\n@@kbs:end\n"),
        )]));
        let out = run(args("a: 1\n"), &h.ctx(false)).await.unwrap();
        assert!(out.diff.unwrap().contains("+a: 1"));
        assert!(h.fake.scripts()[1].starts_with("mkdir -p /etc"));
        let up = &h.fake.uploads()[0];
        assert_eq!((up.mode, up.contents.as_slice()), (0o644, &b"a: 1\n"[..]));
    }

    #[tokio::test]
    async fn same_content_wrong_mode_is_chmod_only_and_right_file_is_ok() {
        let h = Harness::new(FakeTransport::rules(vec![(
            "stat -c",
            ok_with(&present("600", "a: 1\n")),
        )]));
        let out = run(args("a: 1\n"), &h.ctx(false)).await.unwrap();
        assert_eq!(out.diff.as_deref(), Some("/etc/crictl.yaml: mode 600 → 644"));
        assert!(h.fake.uploads().is_empty());
        assert!(h.fake.scripts()[1].starts_with("chmod 644 /etc/crictl.yaml"));

        let h = Harness::new(FakeTransport::rules(vec![(
            "stat -c",
            ok_with(&present("644", "a: 1\n")),
        )]));
        assert_eq!(run(args("a: 1\n"), &h.ctx(false)).await.unwrap(), Outcome::ok());
    }

    #[tokio::test]
    async fn sensitive_content_never_shows_in_the_diff_nor_comes_back() {
        let old_hash = sha256_hex("old-token\n");
        let h = Harness::new(FakeTransport::rules(vec![(
            "sha256sum",
            ok_with(&present("600", &old_hash)),
        )]));
        let mut a = args("new-token\n");
        a.sensitive = true;
        a.mode = Some(serde_json::json!("0600"));
        let out = run(a, &h.ctx(false)).await.unwrap();
        let diff = out.diff.unwrap();
        assert!(!diff.contains("token"), "{diff}");
        assert!(
            !h.fake.scripts()[0].contains("cat "),
            "only the digest is read back"
        );
        assert!(
            h.fake.scripts().iter().all(|s| !s.contains("new-token")),
            "content goes by upload only"
        );
        assert_eq!(h.fake.uploads()[0].mode, 0o600);

        let new_hash = sha256_hex("new-token\n");
        let h = Harness::new(FakeTransport::rules(vec![(
            "sha256sum",
            ok_with(&present("600", &new_hash)),
        )]));
        let mut a = args("new-token\n");
        a.sensitive = true;
        a.mode = Some(serde_json::json!("0600"));
        assert_eq!(
            run(a, &h.ctx(false)).await.unwrap(),
            Outcome::ok(),
            "same digest is ok"
        );
    }

    #[test]
    fn digest_is_sha256() {
        assert_eq!(
            sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode(&Some(serde_json::json!("0600"))).unwrap(), 0o600);
        assert_eq!(parse_mode(&Some(serde_json::json!(644))).unwrap(), 0o644);
        assert!(parse_mode(&Some(serde_json::json!("0955"))).is_err());
    }
}
