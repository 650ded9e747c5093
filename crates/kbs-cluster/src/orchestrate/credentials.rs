//! What a join needs from the running cluster: a bootstrap token, the certificate key of freshly
//! uploaded control-plane certificates (control-plane joins only), the CA pin and the Kubernetes
//! version — and the cleanup after: the token is deleted when the joins are done.
//!
//! Secrets come back from kubeadm on stdout (`kubeadm token create`, `kubeadm init phase
//! upload-certs`), never go into a command line, and are scrubbed from any output kbs shows.

use kbs_engine::{Outcome, Script};
use kbs_ssh::Secret;

use super::{module_error, ClusterRun};
use crate::kubeadm_config::ConfigInput;
use crate::secrets::{ca_cert_hash, is_bootstrap_token, is_certificate_key, Secrets};

pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";
pub const CA_CERT: &str = "/etc/kubernetes/pki/ca.crt";

/// A bootstrap token lives this long when kbs mints it for a join of an existing cluster: long
/// enough for slow hosts, short enough to be worthless soon; kbs deletes it anyway when done.
pub const JOIN_TOKEN_TTL: &str = "30m";

pub struct JoinCredentials {
    /// The control plane where kubectl and `kubeadm token` run (it has admin.conf).
    pub kubectl_host: String,
    /// `v1.36.4`, what the cluster's kubeadm reports.
    pub kubernetes_version: String,
    pub secrets: Secrets,
    /// Whether `secrets.certificate_key()` unlocks certificates uploaded in this run.
    pub certificates_uploaded: bool,
    pub ca_cert_hash: String,
    revoked: bool,
}

impl JoinCredentials {
    pub fn new(
        kubectl_host: &str,
        kubernetes_version: String,
        secrets: Secrets,
        ca_cert_hash: String,
    ) -> Self {
        JoinCredentials {
            kubectl_host: kubectl_host.to_string(),
            kubernetes_version,
            secrets,
            certificates_uploaded: false,
            ca_cert_hash,
            revoked: false,
        }
    }

    /// The config input of a join with these credentials.
    pub fn config_input(&self, run: &ClusterRun<'_>) -> ConfigInput {
        let mut input = ConfigInput::new(
            self.kubernetes_version.clone(),
            &self.secrets,
            Some(self.ca_cert_hash.clone()),
        );
        input.node_ips = node_ips(run);
        input
    }

    /// Replaces every secret of this run in `text` (kubeadm prints the join command on success
    /// and may echo config values in errors).
    pub fn scrub(&self, text: &str) -> String {
        scrub(&self.secrets, text)
    }

    /// Deletes this run's bootstrap token (best effort: it expires anyway; a failure is reported).
    pub async fn revoke(&mut self, run: &ClusterRun<'_>) {
        if self.revoked || run.mode != kbs_engine::Mode::Apply {
            return;
        }
        self.revoked = true;
        // The token id (before the dot) is public: it names the Secret `bootstrap-token-<id>`.
        let token = self.secrets.token().expose();
        let Some((id, _)) = token.split_once('.') else {
            return;
        };
        let script = Script::root(format!("kubeadm token delete {id} --kubeconfig {ADMIN_CONF}"));
        let host = self.kubectl_host.as_str();
        let secrets = &self.secrets;
        run.engine
            .step(host, "delete this run's bootstrap token", async {
                let out = run.engine.exec(host, &script).await?;
                if out.success() {
                    Ok(Outcome::changed(format!("bootstrap token {id} deleted")))
                } else {
                    Err(module_error(
                        format!(
                            "deleting bootstrap token {id} failed: {}",
                            scrub(secrets, &out.tail())
                        ),
                        format!("delete it by hand on {host}: kubeadm token delete {id}"),
                    ))
                }
            })
            .await;
    }
}

pub fn scrub(secrets: &Secrets, text: &str) -> String {
    let mut text = text.to_string();
    for secret in [secrets.token(), secrets.certificate_key()] {
        let value = secret.expose();
        if !value.is_empty() {
            text = text.replace(value, "<redacted>");
        }
    }
    text
}

/// Node IPs from the facts, for hosts whose inventory entry has none.
pub fn node_ips(run: &ClusterRun<'_>) -> std::collections::BTreeMap<String, std::net::IpAddr> {
    run.inventory
        .hosts
        .iter()
        .filter_map(|h| {
            let ip = run.facts(&h.name)?.node_ip?.parse().ok()?;
            Some((h.name.clone(), ip))
        })
        .collect()
}

/// `kubeadm version -o short` on `host`: `v1.36.4`.
pub async fn kubeadm_version(run: &ClusterRun<'_>, host: &str) -> Result<String, kbs_engine::ModuleError> {
    let out = run
        .engine
        .exec(host, &Script::root("kubeadm version -o short"))
        .await?;
    let version = out.stdout.trim().to_string();
    if out.success() && version.starts_with('v') {
        Ok(version)
    } else {
        Err(module_error(
            format!("`kubeadm version -o short` failed: {}", out.tail()),
            "the prepare phase installs kubeadm; re-run `kbs apply` to repair the host",
        ))
    }
}

/// The CA pin of the cluster, read from a control plane.
pub async fn read_ca_cert_hash(run: &ClusterRun<'_>, host: &str) -> Result<String, kbs_engine::ModuleError> {
    let out = run
        .engine
        .exec(host, &Script::root(format!("cat {CA_CERT}")))
        .await?;
    if !out.success() {
        return Err(module_error(
            format!("cannot read the cluster CA {CA_CERT}: {}", out.tail()),
            "the control plane looks half set up: check `kubeadm` on it, or reset it with `kbs reset`",
        ));
    }
    ca_cert_hash(&out.stdout).map_err(|e| {
        module_error(
            format!("{CA_CERT}: {e}"),
            "the cluster CA is damaged; restore it from a backup of /etc/kubernetes/pki",
        )
    })
}

/// A fresh bootstrap token from `kubeadm token create` on `host` (the token is read from stdout).
pub async fn create_token(run: &ClusterRun<'_>, host: &str) -> Result<Secret, kbs_engine::ModuleError> {
    let out = run
        .engine
        .exec(
            host,
            &Script::root(format!(
                "kubeadm token create --ttl {JOIN_TOKEN_TTL} --description 'kbs join' --kubeconfig {ADMIN_CONF}"
            )),
        )
        .await?;
    let token = out.stdout.trim().to_string();
    if out.success() && is_bootstrap_token(&token) {
        Ok(Secret::new(token))
    } else {
        // On failure stdout holds no token, so the tail is safe to show.
        Err(module_error(
            format!("`kubeadm token create` failed: {}", out.tail()),
            "check that the API server answers on this control plane (`kbs status`)",
        ))
    }
}

/// Uploads the control-plane certificates again with a new certificate key (they expire 2 hours
/// after an upload) and returns the key, read from kubeadm's output.
pub async fn upload_certificates(
    run: &ClusterRun<'_>,
    host: &str,
) -> Result<Secret, kbs_engine::ModuleError> {
    let out = run
        .engine
        .exec(
            host,
            &Script::root(format!(
                "kubeadm init phase upload-certs --upload-certs --kubeconfig {ADMIN_CONF}"
            )),
        )
        .await?;
    let key = out
        .stdout
        .lines()
        .skip_while(|line| !line.contains("Using certificate key"))
        .nth(1)
        .map(|line| line.trim().to_string())
        .filter(|key| is_certificate_key(key));
    match key {
        Some(key) if out.success() => Ok(Secret::new(key)),
        _ => {
            let shown: Vec<&str> = out
                .stdout
                .lines()
                .chain(out.stderr.lines())
                .filter(|line| !is_certificate_key(line.trim()))
                .collect();
            Err(module_error(
                format!(
                    "`kubeadm init phase upload-certs` failed: {}",
                    shown[shown.len().saturating_sub(8)..].join("\n")
                ),
                "check that the API server answers on this control plane (`kbs status`)",
            ))
        }
    }
}
