//! `kubeadm init` on the first control plane (once), then the joins: control planes one at a time
//! (etcd adds one learner at a time), workers in parallel.

use kbs_engine::{Mode, ModuleError, Outcome, Script, Strategy, Upload};

use super::credentials::{self, JoinCredentials, ADMIN_CONF};
use super::endpoint::write_kube_vip;
use super::wait::https_ok;
use super::{module_error, ClusterError, ClusterRun, INIT, JOIN_CONTROL_PLANES, JOIN_WORKERS};
use crate::endpoint::KubeVipKubeconfig;
use crate::kubeadm_config::{
    kubeadm_config_as, labels_after_join, ConfigInput, KubeadmRole, KUBEADM_CONFIG_PATH,
};
use crate::secrets::Secrets;

/// Inits the cluster if no control plane runs one yet, else gets fresh join credentials from it.
/// `None` when there is nothing to join (or this is a dry run, which only says what would happen).
pub async fn init_or_attach(run: &ClusterRun<'_>) -> Result<Option<JoinCredentials>, ClusterError> {
    let control_planes = run.control_planes();
    let Some(first) = control_planes.first().cloned() else {
        return Err(ClusterError::NoControlPlane(
            "every control plane of the inventory failed earlier in this run".into(),
        ));
    };
    let initialised = run.initialised_control_planes();
    let credentials = match initialised.first() {
        None if run.join_only => {
            return Err(ClusterError::NoControlPlane(
                "no control plane of the inventory runs a cluster yet; `kbs apply` creates it".into(),
            ))
        }
        None if !run.engine.in_limit(&first) => {
            return Err(ClusterError::NoControlPlane(format!(
                "the cluster is not initialised yet and {first}, where `kubeadm init` runs, is not among the hosts of this run; include it (or drop --hosts)"
            )))
        }
        None => init(run, &first).await,
        Some(existing) => attach(run, existing).await,
    };
    if run.mode == Mode::Check {
        report_planned_joins(run).await;
        return Ok(None);
    }
    match credentials {
        Some(c) => Ok(Some(c)),
        None if initialised.is_empty() => Err(ClusterError::NoControlPlane(format!(
            "`kubeadm init` on {first} did not succeed (see above)"
        ))),
        None => Ok(None),
    }
}

async fn init(run: &ClusterRun<'_>, host: &str) -> Option<JoinCredentials> {
    let _phase = run.engine.phase(INIT, vec![host.to_string()], run.mode);
    let engine = run.engine;
    if run.mode == Mode::Check {
        engine
            .step(host, "kubeadm init", async {
                Ok(Outcome::changed(format!(
                    "would initialise the cluster on {host}"
                )))
            })
            .await;
        return None;
    }
    let mut minted = None;
    engine
        .step(host, "kubeadm init", async {
            let secrets = Secrets::mint().map_err(|e| ModuleError::new(e.to_string()))?;
            let version = credentials::kubeadm_version(run, host).await?;
            let mut input = ConfigInput::new(version.clone(), &secrets, None);
            input.node_ips = credentials::node_ips(run);
            let config = kubeadm_config_as(run.inventory, host, KubeadmRole::Init, &input)
                .map_err(|e| module_error(e.to_string(), "fix the inventory"))?;
            run_kubeadm(
                run,
                host,
                config.text.expose(),
                "kubeadm init --config {} --upload-certs",
                &secrets,
            )
            .await?;
            // The control plane exists now: later phases read that from the facts.
            engine.refresh_facts_of(host).await?;
            minted = Some((secrets, version.clone()));
            Ok(Outcome::changed(format!("cluster initialised ({version})")))
        })
        .await?;
    let (secrets, version) = minted?;
    if run.inventory.cluster.endpoint.mode == kbs_inventory::EndpointMode::KubeVip {
        engine
            .step(
                host,
                "kube-vip uses admin.conf now",
                write_kube_vip(run, host, KubeVipKubeconfig::Admin),
            )
            .await?;
    }
    let endpoint = api_url(run)?;
    engine
        .step(host, "API answers through the endpoint", async {
            let took = https_ok(
                run,
                host,
                &format!("{endpoint}/readyz"),
                "the API",
                run.deadlines.api,
            )
            .await?;
            Ok(Outcome::ok().with_message(format!("{endpoint} after {:.1}s", took.as_secs_f64())))
        })
        .await?;
    let mut hash = None;
    engine
        .step(host, "cluster CA pin", async {
            hash = Some(credentials::read_ca_cert_hash(run, host).await?);
            Ok(Outcome::ok())
        })
        .await?;
    let mut c = JoinCredentials::new(host, version, secrets, hash?);
    c.certificates_uploaded = true;
    Some(c)
}

/// `https://endpoint:port` as clients reach the API.
fn api_url(run: &ClusterRun<'_>) -> Option<String> {
    run.inventory.api_endpoint().map(|e| format!("https://{e}"))
}

/// The cluster runs on `host`: fresh credentials for the hosts that still have to join.
async fn attach(run: &ClusterRun<'_>, host: &str) -> Option<JoinCredentials> {
    let _phase = run.engine.phase(INIT, vec![host.to_string()], run.mode);
    let control_planes = run.to_join(true);
    let workers = run.to_join(false);
    let engine = run.engine;
    engine
        .step(host, "cluster initialised", async {
            Ok(Outcome::ok().with_message(format!("the cluster runs on {host}")))
        })
        .await?;
    if run.mode == Mode::Check || (control_planes.is_empty() && workers.is_empty()) {
        return None;
    }
    let mut fresh = None;
    engine
        .step(host, "join credentials", async {
            let version = credentials::kubeadm_version(run, host).await?;
            let hash = credentials::read_ca_cert_hash(run, host).await?;
            let token = credentials::create_token(run, host).await?;
            // Control-plane joins need the certificates uploaded again (they expire 2 h after
            // an upload); workers do not, so nothing is uploaded for them.
            let key = if control_planes.is_empty() {
                None
            } else {
                Some(credentials::upload_certificates(run, host).await?)
            };
            let placeholder = Secrets::mint().map_err(|e| ModuleError::new(e.to_string()))?;
            let key_text = key
                .as_ref()
                .map(|k| k.expose().to_string())
                .unwrap_or_else(|| placeholder.certificate_key().expose().to_string());
            let secrets = Secrets::from_parts(token.expose(), &key_text)
                .map_err(|e| ModuleError::new(e.to_string()))?;
            let mut c = JoinCredentials::new(host, version, secrets, hash);
            c.certificates_uploaded = key.is_some();
            fresh = Some(c);
            Ok(Outcome::changed(if control_planes.is_empty() {
                "bootstrap token created".to_string()
            } else {
                "bootstrap token created, control-plane certificates uploaded".to_string()
            }))
        })
        .await?;
    fresh
}

/// Hosts that would join, for a dry run: the not yet joined ones, less the host that would init.
fn planned_joins(run: &ClusterRun<'_>, control_plane: bool) -> Vec<String> {
    let initialised = run.initialised_control_planes();
    let would_init = match initialised.is_empty() {
        true => run.control_planes().first().cloned(),
        false => None,
    };
    run.to_join(control_plane)
        .into_iter()
        .filter(|h| Some(h) != would_init.as_ref())
        .collect()
}

async fn report_planned_joins(run: &ClusterRun<'_>) {
    for (control_plane, phase, what) in [
        (true, JOIN_CONTROL_PLANES, "would join as a control plane"),
        (false, JOIN_WORKERS, "would join as a worker"),
    ] {
        let hosts = planned_joins(run, control_plane);
        if hosts.is_empty() {
            continue;
        }
        let _phase = run.engine.phase(phase, hosts.clone(), Mode::Check);
        for host in hosts {
            run.engine
                .step(&host, "kubeadm join", async { Ok(Outcome::changed(what)) })
                .await;
        }
    }
}

/// Joins the control planes that are not in the cluster yet, one at a time, each waiting until
/// its API server answers before the next starts.
pub async fn join_control_planes(run: &ClusterRun<'_>, credentials: &mut JoinCredentials) {
    let hosts = run.to_join(true);
    if hosts.is_empty() {
        return;
    }
    let _phase = run.engine.phase(JOIN_CONTROL_PLANES, hosts.clone(), run.mode);
    for host in hosts {
        let joined = run
            .engine
            .step(
                &host,
                "kubeadm join (control plane)",
                join_one(run, &host, KubeadmRole::JoinControlPlane, credentials),
            )
            .await;
        if joined.is_none() {
            continue;
        }
        let url = match run.facts(&host).and_then(|f| f.node_ip) {
            Some(ip) if ip.contains(':') => format!("https://[{ip}]:6443/readyz"),
            Some(ip) => format!("https://{ip}:6443/readyz"),
            None => "https://127.0.0.1:6443/readyz".to_string(),
        };
        run.engine
            .step(&host, "API server healthy", async {
                let what = format!("the API server of {host}");
                let took = https_ok(run, &host, &url, &what, run.deadlines.api).await?;
                Ok(Outcome::ok().with_message(format!("after {:.1}s", took.as_secs_f64())))
            })
            .await;
    }
}

/// Joins the workers that are not in the cluster yet, `run.window` at a time.
pub async fn join_workers(run: &ClusterRun<'_>, credentials: &JoinCredentials) {
    let hosts = run.to_join(false);
    if hosts.is_empty() {
        return;
    }
    let _phase = run.engine.phase(JOIN_WORKERS, hosts.clone(), run.mode);
    kbs_engine::strategy::run(hosts, Strategy::Parallel, run.window, |host| async move {
        run.engine
            .step(
                &host,
                "kubeadm join",
                join_one(run, &host, KubeadmRole::Worker, credentials),
            )
            .await;
    })
    .await;
}

async fn join_one(
    run: &ClusterRun<'_>,
    host: &str,
    role: KubeadmRole,
    credentials: &JoinCredentials,
) -> Result<Outcome, ModuleError> {
    if role == KubeadmRole::JoinControlPlane && !credentials.certificates_uploaded {
        return Err(ModuleError::new(
            "no control-plane certificates were uploaded in this run (kbs bug)",
        ));
    }
    reach_endpoint(run, host).await?;
    let input = credentials.config_input(run);
    let config = kubeadm_config_as(run.inventory, host, role, &input)
        .map_err(|e| module_error(e.to_string(), "fix the inventory"))?;
    run_kubeadm(
        run,
        host,
        config.text.expose(),
        "kubeadm join --config {}",
        &credentials.secrets,
    )
    .await?;
    run.engine.refresh_facts_of(host).await?;
    label_node(run, host, credentials).await?;
    Ok(Outcome::changed(format!(
        "joined ({})",
        credentials.kubernetes_version
    )))
}

/// Whether `host` reaches the API endpoint, asked before kubeadm, which would retry discovery for
/// minutes before saying the same.
async fn reach_endpoint(run: &ClusterRun<'_>, host: &str) -> Result<(), ModuleError> {
    let Some(url) = api_url(run) else {
        return Ok(());
    };
    let out = run
        .engine
        .exec(
            host,
            &Script::root(format!("curl -ksS --max-time 10 -o /dev/null {url}/healthz")),
        )
        .await?;
    if out.success() {
        return Ok(());
    }
    Err(module_error(
        format!("{host} cannot reach the API endpoint {url}: {}", out.tail()),
        format!("check the network, routes and firewall between {host} and the endpoint, then re-run; nothing was changed on {host}"),
    ))
}

/// Labels the kubelet may not set on itself (node-role.kubernetes.io/…) go on through the API.
async fn label_node(
    run: &ClusterRun<'_>,
    host: &str,
    credentials: &JoinCredentials,
) -> Result<(), ModuleError> {
    let Some(entry) = run.inventory.host(host) else {
        return Ok(());
    };
    let labels = labels_after_join(entry);
    if labels.is_empty() {
        return Ok(());
    }
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| kbs_engine::sh_quote(&format!("{k}={v}")))
        .collect();
    let out = run
        .engine
        .exec(
            &credentials.kubectl_host,
            &Script::root(format!(
                "kubectl --kubeconfig {ADMIN_CONF} label node {} {} --overwrite",
                kbs_engine::sh_quote(host),
                pairs.join(" ")
            )),
        )
        .await?;
    if out.success() {
        Ok(())
    } else {
        Err(module_error(
            format!("labelling node {host} failed: {}", out.tail()),
            "the node joined; re-run `kbs apply` to label it",
        ))
    }
}

/// Uploads `config` (0600), runs kubeadm with it, and removes it again whatever happened: it holds
/// the token and the certificate key. kubeadm's own message is shown (scrubbed) on failure.
async fn run_kubeadm(
    run: &ClusterRun<'_>,
    host: &str,
    config: &str,
    command: &str,
    secrets: &Secrets,
) -> Result<String, ModuleError> {
    let remote = run
        .engine
        .remote(host)
        .ok_or_else(|| ModuleError::new(format!("{host} is not part of this run")))?;
    // The kubelet package does not always ship /etc/kubernetes, and with an HAProxy or external
    // endpoint nothing of kbs' has written there before kubeadm runs.
    let made = run
        .engine
        .exec(host, &Script::root("install -d -m 0755 /etc/kubernetes"))
        .await?;
    if !made.success() {
        return Err(module_error(
            format!("creating /etc/kubernetes failed: {}", made.tail()),
            format!("check the file system of {host} (read-only? full?) and re-run"),
        ));
    }
    remote
        .upload(&Upload {
            path: KUBEADM_CONFIG_PATH.into(),
            contents: config.as_bytes().to_vec(),
            mode: 0o600,
            owner: None,
        })
        .await?;
    let command = command.replace("{}", KUBEADM_CONFIG_PATH);
    let out = run
        .engine
        .exec(
            host,
            &Script::root(format!("{command}; rc=$?; rm -f {KUBEADM_CONFIG_PATH}; exit $rc")),
        )
        .await?;
    if out.success() {
        return Ok(credentials::scrub(secrets, &out.stdout));
    }
    let text = if out.stderr.trim().is_empty() {
        &out.stdout
    } else {
        &out.stderr
    };
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let shown = lines[lines.len().saturating_sub(20)..].join("\n");
    Err(module_error(
        format!("`{command}` failed:\n{}", credentials::scrub(secrets, &shown)),
        format!(
            "fix what kubeadm reports on {host}; if it got past its preflight checks, `kbs reset -i INVENTORY {host}` before re-running"
        ),
    ))
}
