//! The simulated kubelet, run by systemd from the packaged `kubelet.service` with
//! kubeadm's drop-in (`--bootstrap-kubeconfig`, `--kubeconfig`, `--config`, and
//! `$KUBELET_KUBEADM_ARGS` from /var/lib/kubelet/kubeadm-flags.env).
//!
//! What it does, as the real one does it:
//! - without /var/lib/kubelet/config.yaml it exits with the kubelet's error, so systemd
//!   restarts it every 10 s until kubeadm has written the file;
//! - TLS bootstrap: with only bootstrap-kubelet.conf, a `kube-apiserver-client-kubelet` CSR
//!   authenticated by the bootstrap token; the approved certificate goes to
//!   /var/lib/kubelet/pki/kubelet-client-current.pem and kubelet.conf points at it;
//! - registers its Node (NotReady; the API server's node controller keeps the
//!   `node.kubernetes.io/not-ready` taint until the CNI rule holds) with the host's address;
//! - with `serverTLSBootstrap: true`, a `kubelet-serving` CSR with the host's names and IPs,
//!   left pending (nothing auto-approves serving certificates);
//! - runs the static pods of /etc/kubernetes/manifests as child processes (kube-apiserver,
//!   kube-vip); etcd, controller-manager and scheduler are "running" without a process: their
//!   work happens inside the API server (docs/simulation.md).

pub mod static_pods;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::kubeclient::{Client, Kubeconfig};
use crate::pki::{KeyAlgo, LeafSpec, Usage};

pub const CONFIG: &str = "/var/lib/kubelet/config.yaml";
pub const KUBECONFIG: &str = "/etc/kubernetes/kubelet.conf";
pub const BOOTSTRAP_KUBECONFIG: &str = "/etc/kubernetes/bootstrap-kubelet.conf";
pub const CLIENT_PEM: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";

/// Paths under an optional root (`KBS_SIM_ROOT` in tests).
#[derive(Debug, Clone, Default)]
pub struct Root(pub PathBuf);

impl Root {
    pub fn from_env() -> Root {
        Root(
            std::env::var_os("KBS_SIM_ROOT")
                .map(PathBuf::from)
                .unwrap_or_default(),
        )
    }
    pub fn path(&self, abs: &str) -> PathBuf {
        if self.0.as_os_str().is_empty() {
            PathBuf::from(abs)
        } else {
            self.0.join(abs.trim_start_matches('/'))
        }
    }
}

/// The kubelet's error for a missing or unreadable config (cmd/kubelet/app/server.go,
/// pkg/kubelet/kubeletconfig/configfiles).
pub fn load_config(root: &Root) -> Result<Value, String> {
    let path = root.path(CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "failed to load kubelet config file, path: {CONFIG}, error: failed to load Kubelet config file {CONFIG}, error failed to read kubelet config file \"{CONFIG}\", error: open {CONFIG}: {}",
            crate::cli::io_text(&e)
        )
    })?;
    serde_yaml::from_str(&text).map_err(|e| {
        format!("failed to load kubelet config file, path: {CONFIG}, error: failed to decode: {e}")
    })
}

/// Who this node is.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    pub name: String,
    pub ips: Vec<IpAddr>,
    pub kubelet_version: String,
    /// iscsid active / nfs-common installed (Longhorn's requirements), from the guest.
    pub iscsid_active: bool,
    pub nfs_common: bool,
    /// A CNI network config is in /etc/cni/net.d: containerd reports the network ready.
    pub cni_config: bool,
}

/// Whether /etc/cni/net.d holds a network config (`*.conf`, `*.conflist`, `*.json`), which is what
/// containerd's CRI plugin waits for before it reports NetworkReady (containerd internal/cri
/// `cniNetConfSyncer`).
pub fn cni_config_present(root: &Root) -> bool {
    std::fs::read_dir(root.path("/etc/cni/net.d"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            e.path()
                .extension()
                .is_some_and(|x| x == "conf" || x == "conflist" || x == "json")
        })
}

/// The client kubeconfig: kubelet.conf if present, else TLS bootstrap through the bootstrap
/// kubeconfig (waiting up to `timeout` for the CSR to be approved and signed).
pub fn client_kubeconfig(root: &Root, node: &str, timeout: Duration) -> Result<Kubeconfig, String> {
    let kc = root.path(KUBECONFIG);
    if kc.exists() {
        return Kubeconfig::load(&kc);
    }
    let boot_path = root.path(BOOTSTRAP_KUBECONFIG);
    let boot = Kubeconfig::load(&boot_path).map_err(|_| {
        format!(
            "failed to run Kubelet: unable to load bootstrap kubeconfig: stat {BOOTSTRAP_KUBECONFIG}: no such file or directory"
        )
    })?;
    let (csr_pem, key_pem) = crate::pki::make_csr(
        &LeafSpec {
            common_name: format!("system:node:{node}"),
            organizations: vec!["system:nodes".into()],
            dns_names: vec![],
            ips: vec![],
            usage: Usage::Client,
        },
        KeyAlgo::EcdsaP256,
    )
    .map_err(|e| e.to_string())?;
    let cert = request_certificate(
        &boot,
        "kubernetes.io/kube-apiserver-client-kubelet",
        &csr_pem,
        &["digital signature", "client auth"],
        timeout,
    )?
    .ok_or_else(|| "timed out waiting for the client certificate to be issued".to_string())?;
    let pem = format!("{cert}{key_pem}");
    crate::pki::write_file(&root.path(CLIENT_PEM), pem.as_bytes(), 0o600).map_err(|e| e.to_string())?;
    let text = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {}\n  name: default-cluster\ncontexts:\n- context:\n    cluster: default-cluster\n    namespace: default\n    user: default-auth\n  name: default-context\ncurrent-context: default-context\nkind: Config\npreferences: {{}}\nusers:\n- name: default-auth\n  user:\n    client-certificate: {CLIENT_PEM}\n    client-key: {CLIENT_PEM}\n",
        base64::engine::general_purpose::STANDARD.encode(&boot.ca_pem),
        boot.server
    );
    crate::pki::write_file(&kc, text.as_bytes(), 0o600).map_err(|e| e.to_string())?;
    let mut cfg = boot;
    cfg.token = None;
    cfg.client_cert_pem = Some(cert);
    cfg.client_key_pem = Some(key_pem);
    Ok(cfg)
}

/// Creates a CSR and waits for its certificate (None: not issued within `timeout`).
pub fn request_certificate(
    kc: &Kubeconfig,
    signer: &str,
    csr_pem: &str,
    usages: &[&str],
    timeout: Duration,
) -> Result<Option<String>, String> {
    let mut c = Client::new(kc.clone())?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "csr-"},
        "spec": {"signerName": signer, "request": b64.encode(csr_pem), "usages": usages}});
    let r = c.send_json(
        "POST",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        &body,
    )?;
    if !r.ok() {
        return Err(r.message());
    }
    let name = r
        .body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let start = Instant::now();
    loop {
        let got = c.get(&format!(
            "/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}"
        ))?;
        if let Some(cert) = got.body.pointer("/status/certificate").and_then(Value::as_str) {
            let pem = b64.decode(cert).map_err(|e| e.to_string())?;
            return Ok(Some(String::from_utf8_lossy(&pem).into_owned()));
        }
        if start.elapsed() >= timeout {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Registers (or refreshes) the Node object.
pub fn register(c: &mut Client, n: &NodeFacts) -> Result<(), String> {
    let mut addresses: Vec<Value> = n
        .ips
        .iter()
        .map(|ip| json!({"type": "InternalIP", "address": ip.to_string()}))
        .collect();
    addresses.push(json!({"type": "Hostname", "address": n.name}));
    let ann = json!({
        crate::apiserver::controllers::ANN_ISCSID: n.iscsid_active.to_string(),
        crate::apiserver::controllers::ANN_NFS: n.nfs_common.to_string(),
        crate::apiserver::controllers::ANN_CNI_CONFIG: n.cni_config.to_string(),
        "volumes.kubernetes.io/controller-managed-attach-detach": "true"});
    let path = format!("/api/v1/nodes/{}", n.name);
    let cur = c.get(&path)?;
    if cur.status == 404 {
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": n.name, "annotations": ann, "labels": {
                "kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64"}},
            "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]},
            "status": {"addresses": addresses, "nodeInfo": {"kubeletVersion": n.kubelet_version,
                "containerRuntimeVersion": "containerd://2.1.4", "operatingSystem": "linux", "architecture": "amd64"},
                "conditions": [{"type": "Ready", "status": "False", "reason": "KubeletNotReady",
                    "message": "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized"}]}});
        let r = c.send_json("POST", "/api/v1/nodes", &node)?;
        if !r.ok() && r.reason() != "AlreadyExists" {
            return Err(r.message());
        }
        return Ok(());
    }
    if !cur.ok() {
        return Err(cur.message());
    }
    let patch = json!({"metadata": {"annotations": ann}});
    let r = c.request(
        "PATCH",
        &path,
        "application/merge-patch+json",
        patch.to_string().as_bytes(),
    )?;
    if !r.ok() {
        return Err(r.message());
    }
    let status =
        json!({"status": {"addresses": addresses, "nodeInfo": {"kubeletVersion": n.kubelet_version}}});
    let r = c.request(
        "PATCH",
        &format!("{path}/status"),
        "application/merge-patch+json",
        status.to_string().as_bytes(),
    )?;
    if r.ok() {
        Ok(())
    } else {
        Err(r.message())
    }
}

/// The CNI config calico-node writes on each node once Calico runs (the API server's
/// Calico rule publishes the pool on the Node as an annotation). Returns true when written.
pub fn write_cni_config(root: &Root, c: &mut Client, node: &str) -> Result<bool, String> {
    let r = c.get(&format!("/api/v1/nodes/{node}"))?;
    let Some(cidr) = r
        .body
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(crate::apiserver::controllers::ANN_CNI_CIDR))
        .and_then(Value::as_str)
    else {
        return Ok(false);
    };
    let conf = json!({"name": "k8s-pod-network", "cniVersion": "0.3.1", "plugins": [
        {"type": "calico", "log_level": "info", "datastore_type": "kubernetes", "nodename": node, "mtu": 0,
         "ipam": {"type": "calico-ipam", "assign_ipv4": "true", "ipv4_pools": [cidr]},
         "policy": {"type": "k8s"}, "kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"}},
        {"type": "portmap", "snat": true, "capabilities": {"portMappings": true}},
        {"type": "bandwidth", "capabilities": {"bandwidth": true}}]});
    let path = root.path("/etc/cni/net.d/10-calico.conflist");
    let text = serde_json::to_string_pretty(&conf).unwrap_or_default();
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(false);
    }
    crate::pki::write_file(&path, text.as_bytes(), 0o644).map_err(|e| e.to_string())?;
    Ok(true)
}

/// Mirror Pods for the static pods (`<name>-<node>` in kube-system, annotated
/// `kubernetes.io/config.mirror`), so `kubectl get pods -n kube-system` lists the control plane.
pub fn sync_mirror_pods(root: &Root, c: &mut Client, node: &str) -> Result<(), String> {
    for (name, spec) in static_pods::manifests(root) {
        let pod = format!("{name}-{node}");
        let path = format!("/api/v1/namespaces/kube-system/pods/{pod}");
        if c.get(&path)?.ok() {
            continue;
        }
        let body = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "namespace": "kube-system",
                "labels": {"component": name, "tier": "control-plane"},
                "annotations": {"kubernetes.io/config.mirror": "kbs-sim", "kubernetes.io/config.source": "file"}},
            "spec": {"nodeName": node, "hostNetwork": true, "containers": [{"name": name, "image": spec.image}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        let r = c.send_json("POST", "/api/v1/namespaces/kube-system/pods", &body)?;
        if !r.ok() && r.reason() != "AlreadyExists" {
            return Err(r.message());
        }
    }
    Ok(())
}

/// The kubelet-serving CSR (`serverTLSBootstrap: true`): CN system:node:<name>, the host's
/// names and addresses as SANs; it stays Pending until someone approves it.
pub fn request_serving_certificate(kc: &Kubeconfig, n: &NodeFacts) -> Result<(String, String), String> {
    let (csr, key) = crate::pki::make_csr(
        &LeafSpec {
            common_name: format!("system:node:{}", n.name),
            organizations: vec!["system:nodes".into()],
            dns_names: vec![n.name.clone()],
            ips: n.ips.clone(),
            usage: Usage::Server,
        },
        KeyAlgo::EcdsaP256,
    )
    .map_err(|e| e.to_string())?;
    let mut c = Client::new(kc.clone())?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "csr-"},
        "spec": {"signerName": "kubernetes.io/kubelet-serving", "request": b64.encode(csr),
            "usages": ["digital signature", "server auth"]}});
    let r = c.send_json(
        "POST",
        "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        &body,
    )?;
    if !r.ok() {
        return Err(r.message());
    }
    Ok((
        r.body
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        key,
    ))
}

fn flag(args: &[String], name: &str) -> Option<String> {
    let eq = format!("--{name}=");
    args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix(&eq).map(str::to_string).or_else(|| {
            (a == &format!("--{name}"))
                .then(|| args.get(i + 1).cloned())
                .flatten()
        })
    })
}

fn facts(args: &[String]) -> NodeFacts {
    let hostname = flag(args, "hostname-override").unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    });
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let ips: Vec<IpAddr> = match flag(args, "node-ip").and_then(|s| s.parse().ok()) {
        Some(ip) => vec![ip],
        None => hosts
            .lines()
            .filter_map(|l| {
                let mut f = l.split('#').next()?.split_whitespace();
                let ip: IpAddr = f.next()?.parse().ok()?;
                (!ip.is_loopback() && f.any(|n| n == hostname)).then_some(ip)
            })
            .take(1)
            .collect(),
    };
    let active = |unit: &str| {
        std::process::Command::new("systemctl")
            .args(["is-active", "--quiet", unit])
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    NodeFacts {
        name: hostname.to_lowercase(),
        ips,
        kubelet_version: crate::version::Version::current_for("kubelet").git_version(),
        iscsid_active: active("iscsid"),
        nfs_common: Path::new("/sbin/mount.nfs").exists() || Path::new("/usr/sbin/mount.nfs").exists(),
        cni_config: false,
    }
}

/// The parts of the node's state that change while the kubelet runs (services, packages, CNI).
fn refresh(n: &mut NodeFacts, root: &Root) {
    n.iscsid_active = std::process::Command::new("systemctl")
        .args(["is-active", "--quiet", "iscsid"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    n.nfs_common = Path::new("/sbin/mount.nfs").exists() || Path::new("/usr/sbin/mount.nfs").exists();
    n.cni_config = cni_config_present(root);
}

fn log(level: char, msg: &str) {
    eprintln!(
        "{level}0000 00:00:00.000000 {:>7} kubelet.go] {msg}",
        std::process::id()
    );
}

/// The kubelet process.
pub fn main(args: &[String]) -> i32 {
    if args.iter().any(|a| a == "--version" || a == "--version=true") {
        println!(
            "Kubernetes {}",
            crate::version::Version::current_for("kubelet").git_version()
        );
        return 0;
    }
    let root = Root::from_env();
    let cfg = match load_config(&root) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "E0000 00:00:00.000000 {:>7} run.go:72] \"command failed\" err=\"{}\"",
                std::process::id(),
                e.replace('"', "\\\"")
            );
            return 1;
        }
    };
    if cfg.get("failSwapOn").and_then(Value::as_bool) != Some(false) {
        let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
        if swaps.lines().count() > 1 {
            eprintln!("E0000 00:00:00.000000 {:>7} run.go:72] \"command failed\" err=\"failed to run Kubelet: running with swap on is not supported, please disable swap or set --fail-swap-on flag to false\"", std::process::id());
            return 1;
        }
    }
    let mut n = facts(args);
    let mut pods = static_pods::StaticPods::new(root.clone());
    let serving = cfg.get("serverTLSBootstrap").and_then(Value::as_bool) == Some(true);
    let mut kc: Option<Kubeconfig> = None;
    let mut registered = false;
    let mut serving_requested = false;
    loop {
        pods.sync();
        if kc.is_none() {
            match client_kubeconfig(&root, &n.name, Duration::from_secs(5)) {
                Ok(k) => kc = Some(k),
                Err(e) => log(
                    'E',
                    &format!("\"Unable to obtain a client certificate\" err=\"{e}\""),
                ),
            }
        }
        if let Some(k) = &kc {
            refresh(&mut n, &root);
            match Client::new(k.clone()).and_then(|mut c| register(&mut c, &n)) {
                Ok(()) => {
                    if !registered {
                        log(
                            'I',
                            &format!("\"Successfully registered node\" node=\"{}\"", n.name),
                        );
                        registered = true;
                    }
                    if serving && !serving_requested && request_serving_certificate(k, &n).is_ok() {
                        serving_requested = true;
                    }
                    if let Ok(mut c) = Client::new(k.clone()) {
                        let _ = sync_mirror_pods(&root, &mut c, &n.name);
                        if let Ok(true) = write_cni_config(&root, &mut c, &n.name) {
                            log(
                                'I',
                                "\"Wrote the CNI configuration\" path=\"/etc/cni/net.d/10-calico.conflist\"",
                            );
                        }
                    }
                }
                Err(e) => log(
                    'E',
                    &format!(
                        "\"Unable to register node with API server\" err=\"{e}\" node=\"{}\"",
                        n.name
                    ),
                ),
            }
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests;
