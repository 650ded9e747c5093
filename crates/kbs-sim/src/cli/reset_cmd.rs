//! `kubeadm reset` on the node itself (cmd/kubeadm/app/cmd/reset.go, phases/reset/).
//! With the cluster reachable through admin.conf it reads `kubeadm-config` and, on a control
//! plane (an etcd manifest is there), removes this node's etcd member — unless it is the last
//! one — as `etcdphase.RemoveStackedEtcdMemberFromCluster` does. Like the real reset it leaves
//! the Node object alone (`kubectl delete node` is the operator's step). Unreachable: kubeadm's
//! warning, and the local cleanup goes on.

use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Context, Failure, ResetArgs};
use crate::kubeclient::{Client, Kubeconfig};
use crate::preflight;

const DELETED_FILES: [&str; 6] = [
    "/etc/kubernetes/admin.conf",
    "/etc/kubernetes/super-admin.conf",
    "/etc/kubernetes/kubelet.conf",
    "/etc/kubernetes/bootstrap-kubelet.conf",
    "/etc/kubernetes/controller-manager.conf",
    "/etc/kubernetes/scheduler.conf",
];

fn clean_dir(path: &Path) {
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            let _ = if p.is_dir() && !p.is_symlink() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

/// The `server:` of a kubeconfig, as `host:port`.
fn kubeconfig_server(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.trim_start().starts_with("server:"))?;
    let url = line.trim_start().trim_start_matches("server:").trim();
    Some(
        url.trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string(),
    )
}

/// The cluster's answer to kubeadm-config, or why there is none (kubeadm's wording).
fn fetch_kubeadm_config(admin: &std::path::Path, ctx: &Context) -> Result<Client, String> {
    let text = std::fs::read_to_string(admin).map_err(|e| e.to_string())?;
    let server = kubeconfig_server(&text).unwrap_or_default();
    let url = format!("https://{server}/api/v1/namespaces/kube-system/configmaps/kubeadm-config?timeout=10s");
    let unreachable = |cause: String| format!("failed to get config map: Get \"{url}\": {cause}");
    ctx.probe.tcp_dial(&server).map_err(unreachable)?;
    let kc = Kubeconfig::parse(&text, admin.parent().unwrap_or(std::path::Path::new("/")))?;
    let mut c = Client::new(kc)?;
    let r = c
        .get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        .map_err(unreachable)?;
    if r.ok() {
        Ok(c)
    } else {
        Err(format!("failed to get config map: {}", r.message()))
    }
}

/// Removes this node's member from the replicated store's member list, unless it is the only one
/// (cmd/kubeadm/app/phases/etcd/local.go `RemoveStackedEtcdMemberFromCluster`).
fn remove_etcd_member(ctx: &Context, c: &mut Client, node: &str) -> Result<(), String> {
    let path = super::cluster::ETCD_MEMBER_PATH;
    let r = c.get(path)?;
    if !r.ok() {
        return Err(r.message());
    }
    let members = crate::apiserver::replication::members_of(
        r.body
            .get("items")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten(),
    );
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    // The voters that stay: the removal is committed once a majority of them hold it.
    let staying: Vec<String> = members
        .iter()
        .filter(|m| m.name != node && m.voter)
        .map(|m| m.url.clone())
        .collect();
    if names == [node] {
        return Ok(());
    }
    if !names.contains(&node) {
        return Err(format!(
            "etcd member with name {node} not found in the member list"
        ));
    }
    let r = c.request("DELETE", &format!("{path}/{node}"), "", b"")?;
    if !r.ok() {
        return Err(r.message());
    }
    wait_for_commit(ctx, node, &staying)
}

/// How long a member removal may take to commit before reset reports etcd's timeout.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// etcd's `MemberRemove` answers once the change is committed, i.e. held by a majority of the
/// voters. The simulated store replicates by pulling once a second, so without this wait a
/// node that stops right after its own removal could take the only copy of it along (the
/// replication model of apiserver/replication.rs). Each staying voter is asked for its replica
/// with the API servers' peer identity, as they ask each other.
fn wait_for_commit(ctx: &Context, node: &str, staying: &[String]) -> Result<(), String> {
    if staying.is_empty() {
        return Ok(());
    }
    let (ca, cert, key) = (
        ctx.path("/etc/kubernetes/pki/ca.crt"),
        ctx.path("/etc/kubernetes/pki/apiserver-kubelet-client.crt"),
        ctx.path("/etc/kubernetes/pki/apiserver-kubelet-client.key"),
    );
    if !ca.exists() {
        return Err("no /etc/kubernetes/pki/ca.crt".into());
    }
    let peer = crate::apiserver::replication::PeerIdentity {
        ca_file: &ca,
        cert_file: &cert,
        key_file: &key,
    };
    let needed = staying.len() / 2 + 1;
    let holds_removal = |url: &String| -> bool {
        peer.fetch_replica(url).is_some_and(|replica| {
            !replica.snapshot["objects"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["kind"] == "EtcdMember" && o["metadata"]["name"] == node)
        })
    };
    let deadline = Instant::now() + COMMIT_TIMEOUT;
    loop {
        if staying.iter().filter(|u| holds_removal(u)).count() >= needed {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("etcdserver: request timed out".into());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn run(args: ResetArgs, ctx: &mut Context) -> Result<(), Failure> {
    let admin = ctx.path("/etc/kubernetes/admin.conf");
    let mut cluster: Option<Client> = None;
    if admin.exists() {
        ctx.out("[reset] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...");
        ctx.out("[reset] Use 'kubeadm init phase upload-config --config your-config-file' to re-upload it.");
        match fetch_kubeadm_config(&admin, ctx) {
            Ok(c) => cluster = Some(c),
            Err(e) => ctx.warn(
                "reset.go:124",
                &format!("[reset] Unable to fetch the kubeadm-config ConfigMap from cluster: {e}"),
            ),
        }
    }
    if !args.force {
        ctx.warn("preflight.go:56", "[reset] WARNING: Changes made to this host by 'kubeadm init' or 'kubeadm join' will be reverted.");
        if ctx.live {
            eprint!("[reset] Are you sure you want to proceed? [y/N]: ");
        } else {
            ctx.err("[reset] Are you sure you want to proceed? [y/N]: ");
        }
        let answer = match ctx.stdin_line.take() {
            Some(a) => a,
            None => {
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
                line
            }
        };
        if !matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
            return Err(Failure::Plain("aborted reset operation".to_string()));
        }
    }
    let ignore = preflight::ignore_set(&args.ignore_preflight_errors, &[]).map_err(Failure::Plain)?;
    ctx.out("[preflight] Running pre-flight checks");
    let report = preflight::run_checks(
        &[preflight::Check::IsPrivilegedUser],
        &ignore,
        ctx.version,
        ctx.probe.as_ref(),
    );
    ctx.err(&report.output);
    if report.failed {
        return Err(Failure::Phase {
            phase: "preflight".into(),
            msg: preflight::PREFLIGHT_FAILED.into(),
        });
    }

    // remove-etcd-member + cleanup-node phases.
    let etcd_manifest = ctx.path("/etc/kubernetes/manifests/etcd.yaml");
    let data_dir = std::fs::read_to_string(&etcd_manifest)
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.trim().strip_prefix("- --data-dir=").map(str::to_string))
        })
        .unwrap_or_else(|| crate::config::validate::DEFAULT_ETCD_DATA_DIR.to_string());
    match cluster.as_mut() {
        None => ctx.warn(
            "removeetcdmember.go:105",
            "[reset] No kubeadm config, using etcd pod spec to get data directory",
        ),
        Some(c) if etcd_manifest.exists() => {
            let node = ctx.host.hostname.to_lowercase();
            if let Err(e) = remove_etcd_member(ctx, c, &node) {
                ctx.warn(
                    "removeetcdmember.go:61",
                    &format!("[reset] Failed to remove etcd member: {e}, please manually remove this etcd member using etcdctl"),
                );
            }
        }
        Some(_) => {}
    }
    let data_path = ctx.path(&data_dir);
    if data_path.exists() {
        clean_dir(&data_path);
        ctx.out(&format!(
            "[reset] Deleted contents of the etcd data directory: {data_dir}"
        ));
    }
    ctx.out("[reset] Stopping the kubelet service");
    if ctx.root.as_os_str().is_empty() {
        let _ = std::process::Command::new("systemctl")
            .args(["stop", "kubelet"])
            .status();
    }
    // cleanup-node removes the kubelet's containers; here they were its child processes (stopped with
    // it), and their list goes too so crictl shows none.
    let _ = std::fs::remove_file(ctx.path(crate::kubelet::static_pods::PODS_STATE));
    ctx.out("[reset] Unmounting mounted directories in \"/var/lib/kubelet\"");
    let cert_dir = args
        .cert_dir
        .clone()
        .unwrap_or_else(|| crate::config::validate::DEFAULT_CERTIFICATES_DIR.to_string());
    let dirs = [
        "/etc/kubernetes/manifests".to_string(),
        "/var/lib/kubelet".to_string(),
        cert_dir,
    ];
    for d in &dirs {
        clean_dir(&ctx.path(d));
    }
    ctx.out(&format!(
        "[reset] Deleting contents of directories: [{}]",
        dirs.join(" ")
    ));
    for f in DELETED_FILES {
        let _ = std::fs::remove_file(ctx.path(f));
    }
    ctx.out(&format!("[reset] Deleting files: [{}]", DELETED_FILES.join(" ")));
    ctx.out("\nThe reset process does not perform cleanup of CNI plugin configuration,\nnetwork filtering rules and kubeconfig files.\n\nFor information on how to perform this cleanup manually, please see:\n    https://k8s.io/docs/reference/setup-tools/kubeadm/kubeadm-reset/\n");
    Ok(())
}
