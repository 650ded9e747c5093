//! `kubeadm join` from discovery on (cmd/kubeadm/app/cmd/join.go, phases/join/*,
//! discovery/token): TCP reachability of the endpoint, cluster-info through an insecure
//! client checked by JWS and CA pin, the cluster's configuration read with the bootstrap
//! token, for control planes the uploaded certs, certificates, kubeconfigs, manifests and
//! the etcd learner, then the kubelet's TLS bootstrap.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use super::cluster;
use super::init_api::start_kubelet;
use super::{Context, Failure};
use crate::config::JoinConfig;
use crate::kubeclient::{Client, Kubeconfig};

/// How long a new member stays a learner before it is promoted: long enough that two
/// control-plane joins started together collide, as they do on real etcd.
const LEARNER_CATCH_UP: Duration = Duration::from_secs(3);

fn phase(name: &str, msg: impl Into<String>) -> Failure {
    Failure::Phase {
        phase: name.to_string(),
        msg: msg.into(),
    }
}

fn identity(msg: impl std::fmt::Display) -> Failure {
    phase(
        "preflight",
        format!("couldn't validate the identity of the API Server: {msg}"),
    )
}

/// Token discovery: returns the validated CA PEM.
fn discover(
    ctx: &mut Context,
    endpoint: &str,
    token: &crate::token::BootstrapToken,
    pins: &crate::discovery::PinSet,
) -> Result<String, Failure> {
    let url = format!("https://{endpoint}/api/v1/namespaces/kube-public/configmaps/cluster-info");
    let start = Instant::now();
    let timeout = ctx.control_plane_timeout.min(Duration::from_secs(300));
    let tls = crate::tls::insecure_client_config().map_err(identity)?;
    loop {
        let attempt = ctx.probe.tcp_dial(endpoint).and_then(|_| {
            let mut c = Client::with_tls(
                Kubeconfig {
                    server: format!("https://{endpoint}"),
                    ..Default::default()
                },
                tls.clone(),
            );
            c.get("/api/v1/namespaces/kube-public/configmaps/cluster-info")
                .map_err(|e| format!("dial tcp {endpoint}: {e}"))
        });
        match attempt {
            Ok(r) if r.ok() => {
                return crate::store::bootstrap::verify_cluster_info(&r.body, token, pins).map_err(identity)
            }
            Ok(r) => {
                if start.elapsed() >= timeout {
                    return Err(identity(format!(
                        "configmaps \"cluster-info\" is forbidden: {}",
                        r.message()
                    )));
                }
            }
            Err(e) => {
                if start.elapsed() >= timeout {
                    return Err(identity(format!("Get \"{url}?timeout=10s\": {e}")));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn get_json(c: &mut Client, path: &str, what: &str) -> Result<Value, String> {
    let r = c.get(path)?;
    if r.ok() {
        Ok(r.body)
    } else {
        Err(format!("unable to fetch the {what}: {}", r.message()))
    }
}

pub fn run(cfg: &JoinConfig, ctx: &mut Context) -> Result<(), Failure> {
    let j = &cfg.join;
    let Some(bt) = &j.discovery.bootstrap_token else {
        return Err(identity(
            "file discovery is not simulated; use bootstrap token discovery",
        ));
    };
    let pins = crate::discovery::PinSet::from_hashes(&bt.ca_cert_hashes).map_err(identity)?;
    let disc_token = crate::token::BootstrapToken::parse(&bt.token).map_err(identity)?;
    let ca_pem = discover(ctx, &bt.api_server_endpoint, &disc_token, &pins)?;
    let tls_token = if j.discovery.tls_bootstrap_token.is_empty() {
        bt.token.clone()
    } else {
        j.discovery.tls_bootstrap_token.clone()
    };
    let server = format!("https://{}", bt.api_server_endpoint);
    let boot = Kubeconfig {
        server: server.clone(),
        ca_pem: ca_pem.clone(),
        token: Some(tls_token.clone()),
        ..Default::default()
    };
    let mut c = Client::new(boot.clone()).map_err(|e| phase("preflight", e))?;
    ctx.out("[preflight] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...");
    ctx.out("[preflight] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it.");
    let cm = get_json(
        &mut c,
        "/api/v1/namespaces/kube-system/configmaps/kubeadm-config",
        "configuration from the kubeadm-config ConfigMap",
    )
    .map_err(|e| phase("preflight", e))?;
    let cluster_yaml = cm
        .pointer("/data/ClusterConfiguration")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let cluster: Value = serde_yaml::from_str(&cluster_yaml).unwrap_or(Value::Null);
    let k8s_version = cluster
        .get("kubernetesVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let node = j.node_registration.name.clone();

    let mut cp_init = None;
    if let Some(cp) = &j.control_plane {
        ctx.out("[preflight] Running pre-flight checks before initializing the new control plane instance");
        let ignore = crate::preflight::ignore_set(&[], &j.node_registration.ignore_preflight_errors)
            .map_err(Failure::Plain)?;
        let probe = super::init_cmd::RootedProbe {
            inner: ctx.probe.as_ref(),
            root: ctx.root.clone(),
        };
        let report = crate::preflight::run_checks(
            &crate::preflight::join_control_plane_checks(cfg, &k8s_version),
            &ignore,
            ctx.version,
            &probe,
        );
        ctx.err(&report.output);
        if report.failed {
            return Err(phase("preflight", crate::preflight::PREFLIGHT_FAILED));
        }
        // download-certs
        ctx.out("[download-certs] Downloading the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace");
        let key =
            crate::certs_upload::CertificateKey::parse(&cp.certificate_key, "controlPlane.certificateKey")
                .map_err(|e| phase("control-plane-prepare/download-certs", e.0))?;
        let secret = c
            .get("/api/v1/namespaces/kube-system/secrets/kubeadm-certs")
            .map_err(|e| phase("control-plane-prepare/download-certs", e))?;
        if !secret.ok() {
            return Err(phase(
                "control-plane-prepare/download-certs",
                // phases/join/controlplaneprepare.go wraps copycerts' error.
                format!(
                    "error downloading certs: error downloading the secret: {}",
                    crate::certs_upload::secret_not_found_message()
                ),
            ));
        }
        let pki_dir = cluster
            .get("certificatesDir")
            .and_then(Value::as_str)
            .unwrap_or("/etc/kubernetes/pki")
            .to_string();
        let pki = ctx.path(&pki_dir);
        let b64 = base64::engine::general_purpose::STANDARD;
        for (name, v) in secret
            .body
            .get("data")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let enc = b64.decode(v.as_str().unwrap_or("")).unwrap_or_default();
            let plain = key.decrypt(&enc).map_err(|e| {
                phase(
                    "control-plane-prepare/download-certs",
                    format!("error decoding secret data with provided key: {e}"),
                )
            })?;
            let rel = crate::certs_upload::UPLOADED_FILES
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, r)| *r)
                .unwrap_or(name.as_str());
            let mode = if rel.ends_with(".key") { 0o600 } else { 0o644 };
            crate::pki::write_file(&pki.join(rel), &plain, mode)
                .map_err(|e| phase("control-plane-prepare/download-certs", e.to_string()))?;
        }
        ctx.out(&format!(
            "[download-certs] Saving the certificates to the folder: {}",
            crate::gofmt::quote(&pki_dir)
        ));
        // This node's view as an InitConfig: its name and address, the cluster's configuration.
        let ep = &cp.local_api_endpoint;
        let init_text = format!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: {node}\nlocalAPIEndpoint:\n  advertiseAddress: {}\n  bindPort: {}\n---\n{cluster_yaml}",
            ep.advertise_address, ep.bind_port
        );
        let init = crate::config::load_init(&init_text, ctx.version, &ctx.host)
            .map_err(|e| phase("control-plane-prepare/certs", e))?;
        let now = ctx.clock.now();
        let (outcome, ca) = crate::pki::create_pki(&pki, &init, now)
            .map_err(|e| phase("control-plane-prepare/certs", e.to_string()))?;
        for l in &outcome.lines {
            ctx.out(l);
        }
        let kube_dir = ctx.path("/etc/kubernetes");
        let lines = crate::pki::create_kubeconfigs(&kube_dir, &init, &ca, now)
            .map_err(|e| phase("control-plane-prepare/kubeconfig", e.to_string()))?;
        for l in lines
            .iter()
            .filter(|l| !l.contains("super-admin.conf") && !l.contains("\"kubelet.conf\""))
        {
            ctx.out(l);
        }
        // super-admin.conf exists only on the init node; kubelet.conf comes from the TLS bootstrap.
        let _ = std::fs::remove_file(kube_dir.join("super-admin.conf"));
        let _ = std::fs::remove_file(kube_dir.join("kubelet.conf"));
        let manifests = ctx.path(crate::preflight::MANIFESTS_DIR);
        let lines = crate::manifests::write_control_plane(&manifests, &init)
            .map_err(|e| phase("control-plane-prepare/control-plane", e.to_string()))?;
        for l in lines.iter().filter(|l| !l.starts_with("[etcd]")) {
            ctx.out(l);
        }
        // The shared store lives behind the first API server (docs/simulation.md).
        crate::manifests::add_store_upstream(&manifests.join("kube-apiserver.yaml"), &server)
            .map_err(|e| phase("control-plane-prepare/control-plane", e.to_string()))?;
        cp_init = Some(init);
    }

    // kubelet-start
    let kubelet_cm = get_json(
        &mut c,
        "/api/v1/namespaces/kube-system/configmaps/kubelet-config",
        "kubelet-config ConfigMap",
    )
    .map_err(|e| phase("kubelet-start", e))?;
    let kubelet_yaml = kubelet_cm
        .pointer("/data/kubelet")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let werr = |e: crate::pki::PkiError| phase("kubelet-start", e.to_string());
    ctx.out("[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"");
    crate::pki::write_file(
        &ctx.path("/var/lib/kubelet/config.yaml"),
        kubelet_yaml.as_bytes(),
        0o644,
    )
    .map_err(werr)?;
    let mut flags = vec![format!(
        "--container-runtime-endpoint={}",
        j.node_registration.cri_socket
    )];
    for a in &j.node_registration.kubelet_extra_args.0 {
        flags.push(format!("--{}={}", a.name, a.value));
    }
    ctx.out("[kubelet-start] Writing kubelet environment file with flags to file \"/var/lib/kubelet/kubeadm-flags.env\"");
    crate::pki::write_file(
        &ctx.path("/var/lib/kubelet/kubeadm-flags.env"),
        format!("KUBELET_KUBEADM_ARGS=\"{}\"\n", flags.join(" ")).as_bytes(),
        0o644,
    )
    .map_err(werr)?;
    let boot_text = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: tls-bootstrap-token-user\n  name: tls-bootstrap-token-user@kubernetes\ncurrent-context: tls-bootstrap-token-user@kubernetes\nkind: Config\npreferences: {{}}\nusers:\n- name: tls-bootstrap-token-user\n  user:\n    token: {tls_token}\n",
        b64e(&ca_pem)
    );
    crate::pki::write_file(
        &ctx.path("/etc/kubernetes/bootstrap-kubelet.conf"),
        boot_text.as_bytes(),
        0o600,
    )
    .map_err(werr)?;
    start_kubelet(ctx);
    ctx.out("[kubelet-check] Waiting for a healthy kubelet at http://127.0.0.1:10248/healthz. This can take up to 4m0s");
    ctx.out("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap");
    let start = Instant::now();
    while !ctx.path("/etc/kubernetes/kubelet.conf").exists() {
        if start.elapsed() >= ctx.control_plane_timeout {
            return Err(phase(
                "kubelet-start",
                "error waiting for kubelet to perform the TLS Bootstrap: timed out waiting for the condition",
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::fs::remove_file(ctx.path("/etc/kubernetes/bootstrap-kubelet.conf"));

    if let Some(init) = cp_init {
        let admin = Kubeconfig::load(&ctx.path("/etc/kubernetes/admin.conf"))
            .map_err(|e| phase("control-plane-join/etcd", e))?;
        let mut a = Client::new(admin).map_err(|e| phase("control-plane-join/etcd", e))?;
        let ep = &init.init.local_api_endpoint;
        let peer = format!("https://{}:2380", ep.advertise_address);
        let client_url = crate::pki::https_url(&ep.advertise_address, ep.bind_port);
        let r = a
            .send_json(
                "POST",
                cluster::ETCD_MEMBER_PATH,
                &cluster::etcd_member(&node, &peer, &client_url, true),
            )
            .map_err(|e| phase("control-plane-join/etcd", e))?;
        if !r.ok() && r.reason() != "AlreadyExists" {
            return Err(phase(
                "control-plane-join/etcd",
                format!(
                    "error creating local etcd static pod manifest file: {}",
                    r.message()
                ),
            ));
        }
        ctx.out("[etcd] Announced new etcd member joining to the existing etcd cluster");
        ctx.out("[etcd] Creating static Pod manifest for \"etcd\"");
        ctx.out("[etcd] Waiting for the new etcd member to join the cluster. This can take up to 40s");
        // The learner catches up, then is promoted (etcd's learner workflow).
        std::thread::sleep(LEARNER_CATCH_UP);
        let path = format!("{}/{node}", cluster::ETCD_MEMBER_PATH);
        let r = a
            .request(
                "PATCH",
                &path,
                "application/merge-patch+json",
                br#"{"spec":{"isLearner":false}}"#,
            )
            .map_err(|e| phase("control-plane-join/etcd", e))?;
        if !r.ok() {
            return Err(phase("control-plane-join/etcd", r.message()));
        }
        cluster::wait_for_node(&mut a, &node, Duration::from_secs(60))
            .map_err(|e| phase("control-plane-join/mark-control-plane", e))?;
        let taints = j.node_registration.taints.clone().unwrap_or_else(|| {
            vec![crate::config::Taint {
                key: "node-role.kubernetes.io/control-plane".into(),
                value: String::new(),
                effect: "NoSchedule".into(),
            }]
        });
        ctx.out(&format!("[mark-control-plane] Marking the node {node} as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]"));
        if !taints.is_empty() {
            let t: Vec<String> = taints.iter().map(|t| format!("{}:{}", t.key, t.effect)).collect();
            ctx.out(&format!(
                "[mark-control-plane] Marking the node {node} as control-plane by adding the taints [{}]",
                t.join(" ")
            ));
        }
        cluster::mark_control_plane(&mut a, &node, &taints)
            .map_err(|e| phase("control-plane-join/mark-control-plane", e))?;
        ctx.out("\nThis node has joined the cluster and a new control plane instance was created:\n\n* Certificate signing request was sent to apiserver and approval was received.\n* The Kubelet was informed of the new secure connection details.\n* Control plane label and taint were applied to the new node.\n* The Kubernetes control plane instances scaled up.\n* A new etcd member was added to the local/stacked etcd cluster.\n\nTo start administering your cluster from this node, you need to run the following as a regular user:\n\n\tmkdir -p $HOME/.kube\n\tsudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n\tsudo chown $(id -u):$(id -g) $HOME/.kube/config\n\nRun 'kubectl get nodes' to see this node join the cluster.\n");
    } else {
        ctx.out("\nThis node has joined the cluster:\n* Certificate signing request was sent to apiserver and a response was received.\n* The Kubelet was informed of the new secure connection details.\n\nRun 'kubectl get nodes' on the control-plane to see this node join the cluster.\n");
    }
    Ok(())
}

fn b64e(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}
