//! `kernel_module`: modules loaded now (`modprobe`) and at every boot (a modules-load.d file,
//! rendered from the `modules-load.conf.j2` template).
//!
//! Check: `/sys/module/NAME` exists or the kernel lists NAME in `modules.builtin` (built-in
//! modules count as loaded), and the file's content.

use serde::Deserialize;

use super::probe::{self, RemoteFile};
use super::{unified_diff, ModuleCtx, ModuleError, Outcome};
use crate::transport::{sh_quote, Upload};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub names: Vec<String>,
    /// Where to persist; default `/etc/modules-load.d/kubernetes.conf`.
    #[serde(default = "default_file")]
    pub file: String,
}

fn default_file() -> String {
    "/etc/modules-load.d/kubernetes.conf".into()
}

pub fn check_script(args: &Args) -> String {
    // A built-in module is always loaded. Most kernels also list built-ins under /sys/module, but
    // not all (nor every container's view of /sys): modules.builtin is the kernel's own list.
    let mut s = String::from("LC_ALL=C; export LC_ALL\nbuiltin=/lib/modules/$(uname -r)/modules.builtin\n");
    let loops: String = args
        .names
        .iter()
        .map(|n| {
            format!(
                "if [ -d /sys/module/{m} ] || grep -qs '/{n}\\.ko' \"$builtin\"; then echo 'loaded {n}'; else echo 'missing {n}'; fi\n",
                m = sh_quote(n)
            )
        })
        .collect();
    s.push_str(&probe::section("modules", loops.trim_end()));
    s.push_str(&probe::file_section("file", &args.file));
    s
}

pub async fn run(args: Args, ctx: &ModuleCtx<'_>) -> Result<Outcome, ModuleError> {
    if let Some(bad) = args.names.iter().find(|n| {
        n.is_empty()
            || !n
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }) {
        return Err(ModuleError::new(format!("`{bad}` is not a kernel module name")));
    }
    let out = ctx.exec(check_script(&args)).await?;
    let (Some(modules), Some(file)) = (
        probe::get(&out.stdout, "modules"),
        probe::get(&out.stdout, "file"),
    ) else {
        return Err(ModuleError::new(format!(
            "checking kernel modules failed: {}",
            out.tail()
        )));
    };
    let missing: Vec<&str> = modules
        .lines()
        .filter_map(|l| l.strip_prefix("missing "))
        .collect();
    let current = probe::parse_file(file);
    let wanted = ctx
        .renderer
        .template(
            "modules-load.conf.j2",
            &minijinja::context! { modules => &args.names },
        )
        .map_err(|e| ModuleError::new(e.0))?;
    let file_differs =
        !matches!(&current, Some(RemoteFile { content, mode: 0o644, .. }) if *content == wanted);

    let mut changes = Vec::new();
    if !missing.is_empty() {
        changes.push(format!("load {}", missing.join(", ")));
    }
    if file_differs {
        let old = current.as_ref().map(|f| f.content.as_str()).unwrap_or("");
        changes.push(unified_diff(&args.file, old, &wanted));
    }
    if changes.is_empty() {
        return Ok(Outcome::ok());
    }
    if !ctx.check_only {
        // Loading and making sure the directory exists share one round trip; the file follows.
        let mut steps: Vec<String> = missing
            .iter()
            .map(|m| format!("modprobe {}", sh_quote(m)))
            .collect();
        if file_differs {
            steps.push(format!("mkdir -p {}", sh_quote(parent(&args.file))));
        }
        ctx.exec_ok("loading kernel modules", steps.join(" && ")).await.map_err(|e| {
            e.hint("the kernel may lack the module (a container or a minimal kernel?); check `modprobe` on the host")
        })?;
        if file_differs {
            ctx.upload(Upload {
                path: args.file.clone(),
                contents: wanted.into_bytes(),
                mode: 0o644,
                owner: Some(("root".into(), "root".into())),
            })
            .await?;
        }
    }
    Ok(Outcome::changed(changes.join("\n")))
}

fn parent(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) | None => "/",
        Some((dir, _)) => dir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_support::Harness;
    use crate::testing::{ok_with, FakeTransport};

    fn args() -> Args {
        Args {
            names: vec!["overlay".into(), "br_netfilter".into()],
            file: default_file(),
        }
    }

    const CONF: &str = "# Loaded at boot for Kubernetes (written by kbs)\noverlay\nbr_netfilter\n";

    fn state(overlay: bool, br: bool, file: Option<&str>) -> String {
        let f = match file {
            Some(c) => format!("present\n644 root root\n{c}"),
            None => "absent".into(),
        };
        format!(
            "@@kbs:modules\n{} overlay\n{} br_netfilter\n\n@@kbs:end\n@@kbs:file\n{f}\n@@kbs:end\n",
            if overlay { "loaded" } else { "missing" },
            if br { "loaded" } else { "missing" },
        )
    }

    #[tokio::test]
    async fn loads_missing_and_persists() {
        let h = Harness::new(FakeTransport::rules(vec![(
            "/sys/module",
            ok_with(&state(true, false, None)),
        )]));
        let out = run(args(), &h.ctx(false)).await.unwrap();
        assert!(out.changed);
        let diff = out.diff.unwrap();
        assert!(diff.starts_with("load br_netfilter\n"), "{diff}");
        assert!(diff.contains("+br_netfilter"));
        let scripts = h.fake.scripts();
        assert!(scripts
            .iter()
            .any(|s| s.contains("modprobe br_netfilter") && !s.contains("modprobe overlay")));
        let up = h.fake.uploads();
        assert_eq!(up[0].path, "/etc/modules-load.d/kubernetes.conf");
        assert_eq!(h.remote.round_trips(), 3, "check, load + mkdir, upload");
        assert_eq!(String::from_utf8_lossy(&up[0].contents), CONF);
    }

    #[tokio::test]
    async fn check_only_changes_nothing_and_applied_state_is_ok() {
        let h = Harness::new(FakeTransport::rules(vec![(
            "/sys/module",
            ok_with(&state(false, false, None)),
        )]));
        assert!(run(args(), &h.ctx(true)).await.unwrap().changed);
        assert_eq!(h.fake.scripts().len(), 1, "check mode runs the check only");
        assert!(h.fake.uploads().is_empty());

        let h = Harness::new(FakeTransport::rules(vec![(
            "/sys/module",
            ok_with(&state(true, true, Some(CONF))),
        )]));
        assert_eq!(run(args(), &h.ctx(false)).await.unwrap(), Outcome::ok());
        assert_eq!(h.fake.calls().len(), 1);
    }

    #[tokio::test]
    async fn refuses_odd_names() {
        let h = Harness::new(FakeTransport::rules(vec![]));
        let a = Args {
            names: vec!["x; reboot".into()],
            file: default_file(),
        };
        assert!(run(a, &h.ctx(false)).await.is_err());
        assert!(h.fake.calls().is_empty());
    }
}
