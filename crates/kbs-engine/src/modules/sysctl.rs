//! `sysctl`: kernel parameters set now (`sysctl -w`) and at boot (a sysctl.d file rendered from
//! `sysctl.conf.j2`). Check reads the live values and the file in one script.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::probe;
use super::{unified_diff, ModuleCtx, ModuleError, Outcome};
use crate::transport::{sh_quote, Upload};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    /// Key → value; numbers and strings both accepted.
    pub values: BTreeMap<String, serde_json::Value>,
    #[serde(default = "default_file")]
    pub file: String,
}

fn default_file() -> String {
    "/etc/sysctl.d/99-kubernetes.conf".into()
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `sysctl -n` separates multi-value entries with tabs; the file uses spaces.
fn normalize(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn check_script(args: &Args) -> String {
    let reads: String = args
        .values
        .keys()
        .map(|k| {
            let q = sh_quote(k);
            format!("printf '%s=%s\\n' {q} \"$(sysctl -n {q} 2>/dev/null || echo '<missing>')\"\n")
        })
        .collect();
    format!(
        "LC_ALL=C; export LC_ALL\n{}{}",
        probe::section("live", reads.trim_end()),
        probe::file_section("file", &args.file)
    )
}

pub async fn run(args: Args, ctx: &ModuleCtx<'_>) -> Result<Outcome, ModuleError> {
    if let Some(bad) = args.values.keys().find(|k| {
        k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
    }) {
        return Err(ModuleError::new(format!("`{bad}` is not a sysctl key")));
    }
    let out = ctx.exec(check_script(&args)).await?;
    let (Some(live), Some(file)) = (probe::get(&out.stdout, "live"), probe::get(&out.stdout, "file")) else {
        return Err(ModuleError::new(format!(
            "reading sysctl values failed: {}",
            out.tail()
        )));
    };
    let live: BTreeMap<&str, &str> = live.lines().filter_map(|l| l.split_once('=')).collect();
    let differing: Vec<(&String, String)> = args
        .values
        .iter()
        .map(|(k, v)| (k, normalize(&value_text(v))))
        .filter(|(k, v)| live.get(k.as_str()).map(|l| normalize(l)) != Some(v.clone()))
        .collect();
    let values: BTreeMap<&String, String> = args.values.iter().map(|(k, v)| (k, value_text(v))).collect();
    let wanted = ctx
        .renderer
        .template("sysctl.conf.j2", &minijinja::context! { values => values })
        .map_err(|e| ModuleError::new(e.0))?;
    let current = probe::parse_file(file);
    let file_differs =
        current.as_ref().map(|f| (f.content.as_str(), f.mode)) != Some((wanted.as_str(), 0o644));

    let mut changes: Vec<String> = differing
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}: {} → {v}",
                live.get(k.as_str()).copied().unwrap_or("<missing>")
            )
        })
        .collect();
    if file_differs {
        let old = current.as_ref().map(|f| f.content.as_str()).unwrap_or("");
        changes.push(unified_diff(&args.file, old, &wanted));
    }
    if changes.is_empty() {
        return Ok(Outcome::ok());
    }
    if !ctx.check_only {
        if file_differs {
            ctx.upload(Upload {
                path: args.file.clone(),
                contents: wanted.into_bytes(),
                mode: 0o644,
                owner: Some(("root".into(), "root".into())),
            })
            .await?;
        }
        if !differing.is_empty() {
            let cmd: String = differing
                .iter()
                .map(|(k, v)| format!("sysctl -q -w {} && ", sh_quote(&format!("{k}={v}"))))
                .collect();
            ctx.exec_ok("setting kernel parameters", format!("{cmd}true"))
                .await
                .map_err(|e| {
                    e.hint(
                        "net.bridge.* keys exist only once br_netfilter is loaded: load kernel modules first",
                    )
                })?;
        }
    }
    Ok(Outcome::changed(changes.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_support::Harness;
    use crate::testing::{ok_with, FakeTransport};

    const CONF: &str = "# Kernel settings for Kubernetes (written by kbs)\nnet.bridge.bridge-nf-call-iptables = 1\nnet.ipv4.ip_forward = 1\n";

    fn args() -> Args {
        Args {
            values: [
                ("net.ipv4.ip_forward", 1),
                ("net.bridge.bridge-nf-call-iptables", 1),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect(),
            file: default_file(),
        }
    }

    fn state(fwd: &str, br: &str, file: Option<&str>) -> String {
        let f = file
            .map(|c| format!("present\n644 root root\n{c}"))
            .unwrap_or("absent".into());
        format!("@@kbs:live\nnet.bridge.bridge-nf-call-iptables={br}\nnet.ipv4.ip_forward={fwd}\n\n@@kbs:end\n@@kbs:file\n{f}\n@@kbs:end\n")
    }

    #[tokio::test]
    async fn sets_only_differing_values_and_writes_the_file() {
        let h = Harness::new(FakeTransport::rules(vec![(
            "sysctl -n",
            ok_with(&state("0", "1", None)),
        )]));
        let out = run(args(), &h.ctx(false)).await.unwrap();
        assert!(out.changed);
        assert!(out
            .diff
            .as_deref()
            .unwrap()
            .starts_with("net.ipv4.ip_forward: 0 → 1\n"));
        let scripts = h.fake.scripts();
        assert!(scripts[1].contains("sysctl -q -w net.ipv4.ip_forward=1"));
        assert!(
            !scripts[1].contains("bridge"),
            "already-right values are left alone"
        );
        assert_eq!(String::from_utf8_lossy(&h.fake.uploads()[0].contents), CONF);
    }

    #[tokio::test]
    async fn missing_key_reads_as_missing_and_applied_state_is_ok() {
        let h = Harness::new(FakeTransport::rules(vec![(
            "sysctl -n",
            ok_with(&state("1", "<missing>", Some(CONF))),
        )]));
        let out = run(args(), &h.ctx(true)).await.unwrap();
        assert_eq!(
            out.diff.as_deref(),
            Some("net.bridge.bridge-nf-call-iptables: <missing> → 1")
        );

        let h = Harness::new(FakeTransport::rules(vec![(
            "sysctl -n",
            ok_with(&state("1", "1", Some(CONF))),
        )]));
        assert_eq!(run(args(), &h.ctx(false)).await.unwrap(), Outcome::ok());
    }

    #[test]
    fn multi_values_compare_by_words() {
        assert_eq!(normalize("4096\t87380  6291456"), "4096 87380 6291456");
    }
}
