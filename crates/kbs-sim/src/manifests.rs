//! The static pod manifests `kubeadm init` writes to /etc/kubernetes/manifests
//! (cmd/kubeadm/app/phases/controlplane/manifests.go, phases/etcd/local.go).
//!
//! The simulated kubelet reads these files to decide what "runs": the API server's flags
//! (advertise address, port, service ranges) come from here, so `extraArgs` given in the
//! ClusterConfiguration take effect the way they do on a real node.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{Args, InitConfig};
use crate::pki::{write_file, PkiError};

/// Component flags: kubeadm's defaults overridden by `extraArgs` (later names win).
fn flags(defaults: &[(&str, String)], extra: &Args) -> Vec<String> {
    let mut map: BTreeMap<String, String> =
        defaults.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    for a in &extra.0 {
        map.insert(a.name.clone(), a.value.clone());
    }
    map.into_iter().map(|(k, v)| format!("--{k}={v}")).collect()
}

fn pod(
    name: &str,
    image: &str,
    command: &str,
    args: &[String],
    host_ip: &str,
    port: u16,
    scheme: &str,
) -> String {
    let mut cmd = format!("    - {command}\n");
    for a in args {
        cmd.push_str(&format!("    - {a}\n"));
    }
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    component: {name}\n    tier: control-plane\n  name: {name}\n  namespace: kube-system\nspec:\n  containers:\n  - command:\n{cmd}    image: {image}\n    imagePullPolicy: IfNotPresent\n    livenessProbe:\n      httpGet:\n        host: {host_ip}\n        path: /livez\n        port: {port}\n        scheme: {scheme}\n    name: {name}\n  hostNetwork: true\n  priority: 2000001000\n  priorityClassName: system-node-critical\n"
    )
}

/// Writes the four manifests (etcd only with local etcd); returns the printed lines.
pub fn write_control_plane(manifests_dir: &Path, cfg: &InitConfig) -> Result<Vec<String>, PkiError> {
    let c = &cfg.cluster;
    let ep = &cfg.init.local_api_endpoint;
    let repo = &c.image_repository;
    let version = &c.kubernetes_version;
    let pki = &c.certificates_dir;
    let advertise = &ep.advertise_address;
    let mut lines = vec![format!(
        "[control-plane] Using manifest folder {}",
        crate::gofmt::quote(&manifests_dir.display().to_string())
    )];

    let mut api_defaults = vec![
        ("advertise-address", advertise.clone()),
        ("allow-privileged", "true".to_string()),
        ("authorization-mode", "Node,RBAC".to_string()),
        ("client-ca-file", format!("{pki}/ca.crt")),
        ("enable-admission-plugins", "NodeRestriction".to_string()),
        ("enable-bootstrap-token-auth", "true".to_string()),
        (
            "kubelet-client-certificate",
            format!("{pki}/apiserver-kubelet-client.crt"),
        ),
        (
            "kubelet-client-key",
            format!("{pki}/apiserver-kubelet-client.key"),
        ),
        ("secure-port", ep.bind_port.to_string()),
        (
            "service-account-issuer",
            "https://kubernetes.default.svc.cluster.local".to_string(),
        ),
        ("service-account-key-file", format!("{pki}/sa.pub")),
        ("service-account-signing-key-file", format!("{pki}/sa.key")),
        ("service-cluster-ip-range", c.networking.service_subnet.clone()),
        ("tls-cert-file", format!("{pki}/apiserver.crt")),
        ("tls-private-key-file", format!("{pki}/apiserver.key")),
    ];
    if c.etcd.local.is_some() {
        api_defaults.push(("etcd-servers", "https://127.0.0.1:2379".to_string()));
        api_defaults.push(("etcd-cafile", format!("{pki}/etcd/ca.crt")));
        api_defaults.push(("etcd-certfile", format!("{pki}/apiserver-etcd-client.crt")));
        api_defaults.push(("etcd-keyfile", format!("{pki}/apiserver-etcd-client.key")));
    }
    let api_flags = flags(&api_defaults, &c.api_server.extra_args);
    let port = u16::try_from(ep.bind_port).unwrap_or(6443);
    let mut write = |name: &str, text: String| -> Result<(), PkiError> {
        lines.push(format!(
            "[control-plane] Creating static Pod manifest for {}",
            crate::gofmt::quote(name)
        ));
        write_file(
            &manifests_dir.join(format!("{name}.yaml")),
            text.as_bytes(),
            0o600,
        )
    };
    write(
        "kube-apiserver",
        pod(
            "kube-apiserver",
            &format!("{repo}/kube-apiserver:{version}"),
            "kube-apiserver",
            &api_flags,
            advertise,
            port,
            "HTTPS",
        ),
    )?;

    let mut cm_defaults = vec![
        (
            "authentication-kubeconfig",
            "/etc/kubernetes/controller-manager.conf".to_string(),
        ),
        (
            "authorization-kubeconfig",
            "/etc/kubernetes/controller-manager.conf".to_string(),
        ),
        ("bind-address", "127.0.0.1".to_string()),
        ("client-ca-file", format!("{pki}/ca.crt")),
        ("cluster-name", c.cluster_name.clone()),
        ("cluster-signing-cert-file", format!("{pki}/ca.crt")),
        ("cluster-signing-key-file", format!("{pki}/ca.key")),
        ("controllers", "*,bootstrapsigner,tokencleaner".to_string()),
        (
            "kubeconfig",
            "/etc/kubernetes/controller-manager.conf".to_string(),
        ),
        ("leader-elect", "true".to_string()),
        ("service-cluster-ip-range", c.networking.service_subnet.clone()),
        ("use-service-account-credentials", "true".to_string()),
    ];
    if !c.networking.pod_subnet.is_empty() {
        cm_defaults.push(("allocate-node-cidrs", "true".to_string()));
        cm_defaults.push(("cluster-cidr", c.networking.pod_subnet.clone()));
    }
    let cm_flags = flags(&cm_defaults, &c.controller_manager.extra_args);
    write(
        "kube-controller-manager",
        pod(
            "kube-controller-manager",
            &format!("{repo}/kube-controller-manager:{version}"),
            "kube-controller-manager",
            &cm_flags,
            "127.0.0.1",
            10257,
            "HTTPS",
        ),
    )?;

    let sched_defaults = vec![
        (
            "authentication-kubeconfig",
            "/etc/kubernetes/scheduler.conf".to_string(),
        ),
        (
            "authorization-kubeconfig",
            "/etc/kubernetes/scheduler.conf".to_string(),
        ),
        ("bind-address", "127.0.0.1".to_string()),
        ("kubeconfig", "/etc/kubernetes/scheduler.conf".to_string()),
        ("leader-elect", "true".to_string()),
    ];
    let sched_flags = flags(&sched_defaults, &c.scheduler.extra_args);
    write(
        "kube-scheduler",
        pod(
            "kube-scheduler",
            &format!("{repo}/kube-scheduler:{version}"),
            "kube-scheduler",
            &sched_flags,
            "127.0.0.1",
            10259,
            "HTTPS",
        ),
    )?;

    if let Some(local) = &c.etcd.local {
        let node = &cfg.init.node_registration.name;
        let etcd_defaults = vec![
            ("advertise-client-urls", format!("https://{advertise}:2379")),
            ("cert-file", format!("{pki}/etcd/server.crt")),
            ("client-cert-auth", "true".to_string()),
            ("data-dir", local.data_dir.clone()),
            ("initial-advertise-peer-urls", format!("https://{advertise}:2380")),
            ("initial-cluster", format!("{node}=https://{advertise}:2380")),
            ("key-file", format!("{pki}/etcd/server.key")),
            (
                "listen-client-urls",
                format!("https://127.0.0.1:2379,https://{advertise}:2379"),
            ),
            ("listen-peer-urls", format!("https://{advertise}:2380")),
            ("name", node.clone()),
            ("peer-cert-file", format!("{pki}/etcd/peer.crt")),
            ("peer-client-cert-auth", "true".to_string()),
            ("peer-key-file", format!("{pki}/etcd/peer.key")),
            ("peer-trusted-ca-file", format!("{pki}/etcd/ca.crt")),
            ("trusted-ca-file", format!("{pki}/etcd/ca.crt")),
        ];
        let etcd_flags = flags(&etcd_defaults, &local.extra_args);
        lines.push(format!(
            "[etcd] Creating static Pod manifest for local etcd in {}",
            crate::gofmt::quote(&manifests_dir.display().to_string())
        ));
        write_file(
            &manifests_dir.join("etcd.yaml"),
            pod(
                "etcd",
                &format!("{repo}/etcd:3.6.5-0"),
                "etcd",
                &etcd_flags,
                "127.0.0.1",
                2381,
                "HTTP",
            )
            .as_bytes(),
            0o600,
        )?;
    }
    Ok(lines)
}

/// Flag that makes a joined control plane's API server serve the shared store of the first
/// one (the simulation's stand-in for stacked etcd replication; docs/simulation.md).
pub const STORE_UPSTREAM_FLAG: &str = "--kbs-store-upstream";

/// Adds `--kbs-store-upstream=<url>` to a written kube-apiserver manifest.
pub fn add_store_upstream(manifest: &Path, upstream: &str) -> Result<(), PkiError> {
    let text = std::fs::read_to_string(manifest).map_err(|e| PkiError::Write {
        path: manifest.display().to_string(),
        reason: e.to_string(),
    })?;
    let needle = "    - kube-apiserver\n";
    let text = text.replacen(
        needle,
        &format!("{needle}    - {STORE_UPSTREAM_FLAG}={upstream}\n"),
        1,
    );
    write_file(manifest, text.as_bytes(), 0o600)
}
