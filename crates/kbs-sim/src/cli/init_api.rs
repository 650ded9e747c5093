//! `kubeadm init` from kubelet-start on: start the kubelet (which runs the API server's
//! static pod), wait for the API server, then the phases that write to the cluster, and the
//! closing text with the join commands (cmd/kubeadm/app/cmd/init.go, phases/init/*).

use std::time::{Duration, Instant};

use super::cluster;
use super::{Context, Failure, InitArgs};
use crate::config::{InitConfig, Taint};
use crate::kubeclient::{Client, Kubeconfig};
use crate::pki::CertAuthority;

fn phase(name: &str, msg: impl Into<String>) -> Failure {
    Failure::Phase {
        phase: name.to_string(),
        msg: msg.into(),
    }
}

/// `systemctl restart kubelet` on a guest; under `KBS_SIM_ROOT` the test harness runs it.
pub(super) fn start_kubelet(ctx: &mut Context) {
    ctx.out("[kubelet-start] Starting the kubelet");
    if ctx.root.as_os_str().is_empty() {
        let ok = std::process::Command::new("systemctl")
            .args(["restart", "kubelet"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            ctx.err("\t[WARNING Service-Kubelet]: kubelet service could not be restarted\n");
        }
    }
}

/// wait-control-plane: GET /livez on the local API server until it answers.
pub(super) fn wait_for_apiserver(ctx: &mut Context, local_url: &str, ca_pem: &str) -> Result<(), Failure> {
    let timeout = ctx.control_plane_timeout;
    let hostport = local_url.trim_start_matches("https://").to_string();
    ctx.out("[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from directory \"/etc/kubernetes/manifests\"");
    ctx.out(&format!(
        "[control-plane-check] Waiting for healthy control plane components. This can take up to {}",
        crate::config::duration::format_go_duration(timeout)
    ));
    ctx.out(&format!(
        "[control-plane-check] Checking kube-apiserver at {local_url}/livez"
    ));
    let start = Instant::now();
    let mut client = Client::new(Kubeconfig {
        server: local_url.to_string(),
        ca_pem: ca_pem.to_string(),
        ..Default::default()
    })
    .map_err(|e| phase("wait-control-plane", e))?;
    client.timeout = Duration::from_secs(2);
    loop {
        // Every dial goes through the host probe first (tests fake it; the guest's is real).
        let reachable = ctx.probe.tcp_dial(&hostport);
        let err = match reachable.map(|_| client.get("/livez")) {
            Err(e) => format!("kube-apiserver check failed at {local_url}/livez: Get \"{local_url}/livez?timeout=10s\": {e}"),
            Ok(r) => match r {
            Ok(r) if r.ok() => break,
            Ok(r) => format!("kube-apiserver check failed at {local_url}/livez: {}", r.message()),
            Err(e) => format!("kube-apiserver check failed at {local_url}/livez: Get \"{local_url}/livez?timeout=10s\": {e}"),
            },
        };
        if start.elapsed() >= timeout {
            ctx.out(&format!(
                "[control-plane-check] kube-apiserver is not healthy after {}",
                crate::config::duration::format_go_duration(start.elapsed())
            ));
            ctx.out("\nA control plane component may have crashed or exited when started by the container runtime.\nTo troubleshoot, list all containers using your preferred container runtimes CLI.\nHere is one example how you may list all running Kubernetes containers by using crictl:\n\t- 'crictl --runtime-endpoint unix:///var/run/containerd/containerd.sock ps -a | grep kube | grep -v pause'\n\tOnce you have found the failing container, you can inspect its logs with:\n\t- 'crictl --runtime-endpoint unix:///var/run/containerd/containerd.sock logs CONTAINERID'\n");
            return Err(phase(
                "wait-control-plane",
                format!("failed while waiting for the control plane to start: {err}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    ctx.out(&format!(
        "[control-plane-check] kube-apiserver is healthy after {}",
        crate::config::duration::format_go_duration(start.elapsed())
    ));
    Ok(())
}

fn load_kubeconfig(ctx: &Context, file: &str) -> Result<Kubeconfig, String> {
    Kubeconfig::load(&ctx.path(&format!("/etc/kubernetes/{file}")))
}

pub fn run(
    cfg: &InitConfig,
    args: &InitArgs,
    kubelet_yaml: &str,
    ca: &CertAuthority,
    ctx: &mut Context,
) -> Result<(), Failure> {
    start_kubelet(ctx);
    ctx.control_plane_timeout = cfg.init.timeouts.control_plane(ctx.control_plane_timeout);
    let ep = &cfg.init.local_api_endpoint;
    let local = crate::pki::https_url(&ep.advertise_address, ep.bind_port);
    wait_for_apiserver(ctx, &local, &ca.cert_pem)?;

    let admin = load_kubeconfig(ctx, "admin.conf").map_err(|e| phase("upload-config/kubeadm", e))?;
    let super_admin = load_kubeconfig(ctx, "super-admin.conf").ok();
    let mut c = cluster::ensure_admin_binding(&admin, super_admin.as_ref(), cfg.init.timeouts.api_call())
        .map_err(|e| phase("upload-config/kubeadm", e))?;
    c.user_agent = "kubeadm/v1 (linux/amd64) kubernetes/kbs-sim".into();

    let mut cluster_doc = serde_json::to_value(&cfg.cluster).unwrap_or_default();
    cluster_doc["apiVersion"] = serde_json::json!("kubeadm.k8s.io/v1beta4");
    cluster_doc["kind"] = serde_json::json!("ClusterConfiguration");
    let cluster_yaml = serde_yaml::to_string(&cluster_doc).unwrap_or_default();
    ctx.out("[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace");
    ctx.out("[kubelet] Creating a ConfigMap \"kubelet-config\" in namespace kube-system with the configuration for the kubelets in the cluster");
    cluster::upload_config(&mut c, &cluster_yaml, kubelet_yaml)
        .map_err(|e| phase("upload-config/kubeadm", e))?;

    let now = ctx.clock.now();
    let cert_key = if args.upload_certs {
        ctx.out("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace");
        let key = if cfg.init.certificate_key.is_empty() {
            crate::certs_upload::CertificateKey::generate().map_err(|e| phase("upload-certs", e))?
        } else {
            crate::certs_upload::CertificateKey::parse(&cfg.init.certificate_key, "certificateKey")
                .map_err(|e| phase("upload-certs", e.0))?
        };
        let pki = ctx.path(&cfg.cluster.certificates_dir);
        cluster::upload_certs(&mut c, &pki, &key, now).map_err(|e| phase("upload-certs", e))?;
        ctx.out("[upload-certs] Using certificate key:");
        if !args.skip_certificate_key_print {
            ctx.out(&key.to_hex());
        }
        Some(key)
    } else {
        ctx.out("[upload-certs] Skipping phase. Please see --upload-certs");
        None
    };

    let node = cfg.init.node_registration.name.clone();
    cluster::wait_for_node(&mut c, &node, Duration::from_secs(60)).map_err(|e| {
        phase(
            "mark-control-plane",
            format!("timed out waiting for the Node {node:?}: {e}"),
        )
    })?;
    let taints: Vec<Taint> = cfg.init.node_registration.taints.clone().unwrap_or_else(|| {
        vec![Taint {
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
    cluster::mark_control_plane(&mut c, &node, &taints).map_err(|e| phase("mark-control-plane", e))?;

    // bootstrap-token: the configured tokens, or one generated.
    let mut tokens = Vec::new();
    let specs = if cfg.init.bootstrap_tokens.is_empty() {
        vec![Default::default()]
    } else {
        cfg.init.bootstrap_tokens.clone()
    };
    for spec in specs {
        let spec: crate::config::types::BootstrapTokenSpec = spec;
        let token = if spec.token.is_empty() {
            crate::token::BootstrapToken::generate().map_err(|e| phase("bootstrap-token", e))?
        } else {
            crate::token::BootstrapToken::parse(&spec.token).map_err(|e| phase("bootstrap-token", e))?
        };
        let ttl = spec
            .ttl
            .as_deref()
            .and_then(|t| crate::config::duration::parse_go_duration(t).ok())
            .unwrap_or(crate::token::DEFAULT_TOKEN_TTL);
        let mut rec = crate::token::TokenRecord::new(token.clone(), now, ttl);
        if !spec.usages.is_empty() {
            rec.usages = spec.usages.clone();
        }
        if !spec.groups.is_empty() {
            rec.groups = spec.groups.clone();
        }
        rec.description = spec.description.clone();
        tokens.push(token);
        cluster::create_token(&mut c, &rec, cfg.init.timeouts.api_call())
            .map_err(|e| phase("bootstrap-token", e))?;
    }
    let first = tokens.first().map(|t| t.to_string()).unwrap_or_default();
    ctx.out(&format!("[bootstrap-token] Using token: {first}"));
    ctx.out("[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles");
    ctx.out("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes");
    ctx.out("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for nodes to get long term certificate credentials");
    ctx.out("[bootstrap-token] Configured RBAC rules to allow the csrapprover controller automatically approve CSRs from a Node Bootstrap Token");
    ctx.out("[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node client certificates in the cluster");
    ctx.out("[bootstrap-token] Creating the \"cluster-info\" ConfigMap in the \"kube-public\" namespace");
    let endpoint = crate::pki::control_plane_url(cfg);
    cluster::bootstrap_token_rbac(&mut c, &endpoint, &ca.cert_pem)
        .map_err(|e| phase("bootstrap-token", e))?;
    ctx.out("[kubelet-finalize] Updating \"/etc/kubernetes/kubelet.conf\" to point to a rotatable kubelet client certificate and key");

    let dns_ip = crate::config::validate::Cidr::parse(
        cfg.cluster
            .networking
            .service_subnet
            .split(',')
            .next()
            .unwrap_or(""),
    )
    .map(|c| c.nth(10).to_string())
    .unwrap_or_else(|| "10.96.0.10".into());
    cluster::addons(&mut c, &dns_ip, &cfg.cluster.kubernetes_version).map_err(|e| phase("addons", e))?;
    ctx.out("[addons] Applied essential addon: CoreDNS");
    ctx.out("[addons] Applied essential addon: kube-proxy");

    let hash = ca.hash().map_err(|e| phase("show-join-command", e.to_string()))?;
    let join_host = endpoint.trim_start_matches("https://").to_string();
    print_closing(
        ctx,
        &join_host,
        &first,
        &hash,
        cert_key.as_ref(),
        !cfg.cluster.control_plane_endpoint.is_empty(),
        args.skip_token_print,
    );
    // The etcd member this init started, for the learner rules of later joins.
    let peer = format!("https://{}:2380", ep.advertise_address);
    let _ = cluster::create_or_update(
        &mut c,
        cluster::ETCD_MEMBER_PATH,
        &cluster::etcd_member(&node, &peer, &local, false),
    );
    Ok(())
}

/// init's closing text (cmd/kubeadm/app/cmd/init.go `initDoneTempl`, util `GetJoinControlPlaneCommand`).
fn print_closing(
    ctx: &mut Context,
    host: &str,
    token: &str,
    hash: &str,
    key: Option<&crate::certs_upload::CertificateKey>,
    control_plane_endpoint: bool,
    skip_token: bool,
) {
    let token = if skip_token { "<value withheld>" } else { token };
    ctx.out("\nYour Kubernetes control-plane has initialized successfully!\n\nTo start using your cluster, you need to run the following as a regular user:\n\n  mkdir -p $HOME/.kube\n  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n\nAlternatively, if you are the root user, you can run:\n\n  export KUBECONFIG=/etc/kubernetes/admin.conf\n\nYou should now deploy a pod network to the cluster.\nRun \"kubectl apply -f [podnetwork].yaml\" with one of the options listed at:\n  https://kubernetes.io/docs/concepts/cluster-administration/addons/\n");
    if control_plane_endpoint {
        let mut cp = format!("You can now join any number of control-plane nodes running the following command on each as root:\n\n  kubeadm join {host} --token {token} \\\n\t--discovery-token-ca-cert-hash {hash} \\\n\t--control-plane");
        match key {
            Some(k) => {
                cp.push_str(&format!(" --certificate-key {}\n\nPlease note that the certificate-key gives access to cluster sensitive data, keep it secret!\nAs a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use\n\"kubeadm init phase upload-certs --upload-certs\" to reload certs afterward.\n", k.to_hex()));
            }
            None => cp = format!("You can now join any number of control-plane nodes by copying certificate authorities\nand service account keys on each node and then running the following as root:\n\n  kubeadm join {host} --token {token} \\\n\t--discovery-token-ca-cert-hash {hash} \\\n\t--control-plane\n"),
        }
        ctx.out(&cp);
    }
    ctx.out(&format!("Then you can join any number of worker nodes by running the following on each as root:\n\nkubeadm join {host} --token {token} \\\n\t--discovery-token-ca-cert-hash {hash} "));
}
