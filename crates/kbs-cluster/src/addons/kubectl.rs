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
        let ns = namespace
            .map(|n| format!(" -n {}", sh_quote(n)))
            .unwrap_or_default();
        let step = format!("kubectl get {resource} {name}");
        let out = self
            .run(
                &step,
                format!("{KUBECTL} get {resource} {}{ns} -o json", sh_quote(name)),
            )
            .await?;
        if !out.success() {
            if out.stderr.contains("(NotFound)") || out.stderr.contains("doesn't have a resource type") {
                return Ok(Got::NotFound);
            }
            return Err(AddonError::remote(
                self.host,
                &step,
                out.tail(),
                "check that the API server answers (`kubectl get nodes` on that host), then re-run kbs apply",
            ));
        }
        serde_json::from_str(&out.stdout).map(Got::Found).map_err(|e| {
            AddonError::remote(
                self.host,
                &step,
                format!("kubectl printed no JSON object: {e}"),
                "re-run kbs apply",
            )
        })
    }

    /// `kubectl get RESOURCE -o json` across the cluster (a `List`).
    pub async fn list(&self, resource: &str) -> Result<Got, AddonError> {
        let step = format!("kubectl get {resource}");
        let stdout = self
            .run_ok(&step, format!("{KUBECTL} get {resource} -o json"))
            .await?;
        serde_json::from_str(&stdout).map(Got::Found).map_err(|e| {
            AddonError::remote(
                self.host,
                &step,
                format!("kubectl printed no JSON object: {e}"),
                "re-run kbs apply",
            )
        })
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
