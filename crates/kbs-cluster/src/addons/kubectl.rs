//! kubectl on the first control plane, with admin.conf: the scripts kbs runs there and the reading
//! of their output. Nothing secret is ever in a script's text; manifests travel as uploads.

use std::collections::BTreeMap;

use kbs_engine::transport::sh_quote;
use kbs_engine::{Remote, Script};
use serde_json::Value;

use super::error::AddonError;

pub const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";
/// Server-side apply's field manager: kbs owns what it applied, and `--force-conflicts` takes
/// fields over from a previous client-side apply (the book's).
pub const FIELD_MANAGER: &str = "kbs";
/// Where add-on files are uploaded on the first control plane (0700 directories, 0600 files).
pub const REMOTE_DIR: &str = "/etc/kubernetes/kbs/addons";
/// What kbs installed: one key per add-on, `<version> sha256:<sum of its files>`.
pub const RECORD_NAMESPACE: &str = "kube-system";
pub const RECORD_NAME: &str = "kbs-addons";

/// The first control plane, where kubectl runs.
pub struct Kubectl<'a> {
    pub host: &'a str,
    pub remote: &'a Remote,
}

/// `kubectl get` of one object.
#[derive(Debug, Clone, PartialEq)]
pub enum Got {
    Found(Value),
    NotFound,
}

impl Kubectl<'_> {
    /// Runs `text` as root; a transport failure is an error, a non-zero exit is returned.
    pub async fn run(&self, step: &str, text: String) -> Result<kbs_engine::ExecResult, AddonError> {
        self.remote.exec(&Script::root(text)).await.map_err(|e| {
            AddonError::remote(
                self.host,
                step,
                e.message,
                e.hint
                    .unwrap_or_else(|| "check that the host is reachable, then re-run kbs".into()),
            )
        })
    }

    /// Runs `text` and fails on a non-zero exit, quoting kubectl's last lines.
    pub async fn run_ok(&self, step: &str, text: String) -> Result<String, AddonError> {
        let out = self.run(step, text).await?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(AddonError::remote(
                self.host,
                step,
                out.tail(),
                "read kubectl's message above; fix the cause and re-run kbs apply",
            ))
        }
    }

    /// `kubectl get RESOURCE NAME [-n NS] -o json`.
    pub async fn get(&self, resource: &str, namespace: Option<&str>, name: &str) -> Result<Got, AddonError> {
        let target = Target {
            resource: resource.to_string(),
            namespace: namespace.map(str::to_string),
            name: Some(name.to_string()),
        };
        self.get_many(std::slice::from_ref(&target))
            .await
            .map(|mut v| v.remove(0))
    }

    /// `kubectl get RESOURCE -o json` across the cluster (a `List`).
    pub async fn list(&self, resource: &str) -> Result<Got, AddonError> {
        let target = Target {
            resource: resource.to_string(),
            namespace: None,
            name: None,
        };
        self.get_many(std::slice::from_ref(&target))
            .await
            .map(|mut v| v.remove(0))
    }

    /// Several `kubectl get`s in one round trip; one result per target, in order.
    pub async fn get_many(&self, targets: &[Target]) -> Result<Vec<Got>, AddonError> {
        let step = format!(
            "kubectl get {}",
            targets
                .iter()
                .map(Target::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        let out = self.run(&step, batch_script(targets)).await?;
        let parts = split_batch_output(&out.stdout);
        if parts.len() != targets.len() {
            return Err(AddonError::remote(
                self.host,
                &step,
                format!(
                    "expected {} answers, got {}: {}",
                    targets.len(),
                    parts.len(),
                    out.tail()
                ),
                "check that kubectl runs on that host, then re-run kbs apply",
            ));
        }
        targets
            .iter()
            .zip(parts)
            .map(|(target, (code, stdout, stderr))| {
                let step = format!("kubectl get {target}");
                if code != 0 {
                    if stderr.contains("(NotFound)") || stderr.contains("doesn't have a resource type") {
                        return Ok(Got::NotFound);
                    }
                    return Err(AddonError::remote(
                        self.host,
                        &step,
                        stderr.trim().to_string(),
                        "check that the API server answers (`kubectl get nodes` on that host), then re-run kbs apply",
                    ));
                }
                serde_json::from_str(&stdout).map(Got::Found).map_err(|e| {
                    AddonError::remote(
                        self.host,
                        &step,
                        format!("kubectl printed no JSON object: {e}"),
                        "re-run kbs apply",
                    )
                })
            })
            .collect()
    }

    /// The record of what kbs installed (empty before the first install).
    pub async fn read_record(&self) -> Result<BTreeMap<String, String>, AddonError> {
        Ok(
            match self.get("configmap", Some(RECORD_NAMESPACE), RECORD_NAME).await? {
                Got::NotFound => BTreeMap::new(),
                Got::Found(cm) => cm
                    .get("data")
                    .and_then(Value::as_object)
                    .map(|d| {
                        d.iter()
                            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
        )
    }

    /// Records one add-on. Each add-on has its own field manager, so applying its key alone
    /// leaves the other add-ons' keys in place.
    pub async fn write_record(&self, addon: &str, value: &str) -> Result<(), AddonError> {
        let cm = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": RECORD_NAME, "namespace": RECORD_NAMESPACE},
            "data": {addon: value},
        });
        let text = format!(
            "{KUBECTL} apply --server-side --force-conflicts --field-manager kbs-addon-{addon} -f - <<'KBS_EOF'\n{cm}\nKBS_EOF\n"
        );
        self.run_ok(
            &format!("record {addon} in {RECORD_NAMESPACE}/{RECORD_NAME}"),
            text,
        )
        .await
        .map(|_| ())
    }
}

/// One object (or, without a name, every object of a resource) to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.resource)?;
        if let Some(ns) = &self.namespace {
            write!(f, " -n {ns}")?;
        }
        if let Some(name) = &self.name {
            write!(f, " {name}")?;
        }
        Ok(())
    }
}

/// Ends each command's stdout; its exit status follows on the line, then its stderr.
pub const STATUS_MARK: &str = "@@kbs-status ";
/// Ends each command's stderr.
pub const DONE_MARK: &str = "@@kbs-done";

/// One `kubectl get … -o json` line per target; stdout, status and stderr of each framed by
/// the marks (stderr apart, so a warning never corrupts the JSON).
pub fn batch_script(targets: &[Target]) -> String {
    let mut text = String::from("t=$(mktemp) || exit 1\n");
    for target in targets {
        let name = target
            .name
            .as_deref()
            .map(|n| format!(" {}", sh_quote(n)))
            .unwrap_or_default();
        let ns = target
            .namespace
            .as_deref()
            .map(|n| format!(" -n {}", sh_quote(n)))
            .unwrap_or_default();
        text.push_str(&format!(
            "{KUBECTL} get {}{name}{ns} -o json 2>\"$t\"; echo \"{STATUS_MARK}$?\"; cat \"$t\"; echo {DONE_MARK}\n",
            target.resource
        ));
    }
    text.push_str("rm -f \"$t\"\n");
    text
}

/// The kubectl lines of a [`batch_script`] (for fakes that answer them one by one).
pub fn batch_commands(script: &str) -> Option<Vec<String>> {
    script.contains(STATUS_MARK).then(|| {
        script
            .lines()
            .filter(|l| l.starts_with(KUBECTL))
            .map(|l| l.split(" 2>\"$t\"").next().unwrap_or(l).to_string())
            .collect()
    })
}

/// Frames one command's answer as the batch script would print it (for fakes).
pub fn batch_frame(code: u32, stdout: &str, stderr: &str) -> String {
    let nl = if stdout.is_empty() || stdout.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    let enl = if stderr.is_empty() || stderr.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    format!("{stdout}{nl}{STATUS_MARK}{code}\n{stderr}{enl}{DONE_MARK}\n")
}

/// For fakes: answers a [`batch_script`] command by command with `answer`, framed as the
/// script would print; `None` if `script` is no batch.
pub fn answer_batch(
    script: &kbs_engine::Script,
    answer: impl Fn(&kbs_engine::Script) -> kbs_engine::ExecResult,
) -> Option<kbs_engine::ExecResult> {
    let commands = batch_commands(&script.text)?;
    let stdout = commands
        .into_iter()
        .map(|text| {
            let r = answer(&kbs_engine::Script {
                text,
                ..script.clone()
            });
            batch_frame(r.code.unwrap_or(1), &r.stdout, &r.stderr)
        })
        .collect();
    Some(kbs_engine::ExecResult {
        code: Some(0),
        stdout,
        stderr: String::new(),
    })
}

/// (status, stdout, stderr) per command of a batch's output.
pub fn split_batch_output(output: &str) -> Vec<(i32, String, String)> {
    let mut parts = Vec::new();
    let mut rest = output;
    while let Some(status_at) = rest.find(STATUS_MARK) {
        let stdout = &rest[..status_at];
        let after = &rest[status_at + STATUS_MARK.len()..];
        let (code_line, after) = after.split_once('\n').unwrap_or((after, ""));
        let (stderr, after) = match after.find(DONE_MARK) {
            Some(i) => (&after[..i], after[i + DONE_MARK.len()..].trim_start_matches('\n')),
            None => (after, ""),
        };
        parts.push((
            code_line.trim().parse().unwrap_or(-1),
            stdout.to_string(),
            stderr.to_string(),
        ));
        rest = after;
    }
    parts
}

/// The apply script for one uploaded file.
pub fn apply_script(path: &str) -> String {
    format!(
        "{KUBECTL} apply --server-side --force-conflicts --field-manager {FIELD_MANAGER} -f {}",
        sh_quote(path)
    )
}

/// A just-created CRD is not served for a moment: applying its objects then fails this way,
/// and trying again shortly succeeds.
pub fn crd_not_ready_yet(stderr: &str) -> bool {
    stderr.contains("ensure CRDs are installed first") || stderr.contains("no matches for kind")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_round_trips_through_its_framing() {
        let targets = [
            Target {
                resource: "tigerastatus".into(),
                namespace: None,
                name: Some("calico".into()),
            },
            Target {
                resource: "nodes".into(),
                namespace: None,
                name: None,
            },
            Target {
                resource: "deployment".into(),
                namespace: Some("kube-system".into()),
                name: Some("metrics-server".into()),
            },
        ];
        let script = batch_script(&targets);
        let commands = batch_commands(&script).unwrap();
        assert_eq!(
            commands,
            [
                "kubectl --kubeconfig /etc/kubernetes/admin.conf get tigerastatus calico -o json",
                "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o json",
                "kubectl --kubeconfig /etc/kubernetes/admin.conf get deployment metrics-server -n kube-system -o json",
            ]
        );
        let output = format!(
            "{}{}{}",
            batch_frame(0, "{\"a\": 1}", "Warning: deprecated"),
            batch_frame(1, "", "Error from server (NotFound): nodes not found"),
            batch_frame(0, "{}\n", "")
        );
        let parts = split_batch_output(&output);
        assert_eq!(parts.len(), 3);
        assert_eq!(
            parts[0],
            (0, "{\"a\": 1}\n".into(), "Warning: deprecated\n".into())
        );
        assert_eq!(parts[1].0, 1);
        assert!(parts[1].2.contains("(NotFound)"));
        assert_eq!(parts[2], (0, "{}\n".into(), String::new()));
    }
}
