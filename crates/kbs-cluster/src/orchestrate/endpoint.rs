//! The endpoint phase: the files that make the API reachable at the inventory's endpoint before
//! `kubeadm init` — kube-vip static pods on every control plane, or HAProxy on the `lb` hosts.

use kbs_engine::{Mode, ModuleError, Outcome, Script};
use kbs_inventory::EndpointMode;
use serde_json::json;

use super::credentials::node_ips;
use super::{haproxy_reload, module_error, ClusterError, ClusterRun, ENDPOINT};
use crate::endpoint::{
    haproxy_hosts, Haproxy, KubeVip, KubeVipKubeconfig, HAPROXY_CONFIG_PATH, KUBE_VIP_MANIFEST_PATH,
};

pub async fn run(run: &ClusterRun<'_>) {
    match run.inventory.cluster.endpoint.mode {
        EndpointMode::KubeVip => kube_vip(run).await,
        EndpointMode::Haproxy => haproxy(run).await,
        // external: someone else runs it; none: clients talk to the one control plane.
        _ => {}
    }
}

/// Which kubeconfig kube-vip on `host` mounts: super-admin.conf only on the host that is about to
/// run `kubeadm init` (admin.conf is Forbidden until init ends, kube-vip#684), admin.conf on every
/// other control plane and on the init node once the cluster runs.
pub fn kube_vip_kubeconfig(run: &ClusterRun<'_>, host: &str) -> KubeVipKubeconfig {
    let cluster_exists = !run.initialised_control_planes().is_empty();
    let is_init_node = run.control_planes().first().map(String::as_str) == Some(host);
    if is_init_node && !cluster_exists {
        KubeVipKubeconfig::SuperAdmin
    } else {
        KubeVipKubeconfig::Admin
    }
}

/// Writes the kube-vip manifest of `host` with the given kubeconfig (unchanged files stay).
pub async fn write_kube_vip(
    run: &ClusterRun<'_>,
    host: &str,
    kubeconfig: KubeVipKubeconfig,
) -> Result<Outcome, ModuleError> {
    let interface = run.facts(host).and_then(|f| f.node_interface);
    let manifest = KubeVip::for_host(run.inventory, host, run.versions, interface.as_deref())
        .and_then(|kv| kv.with_kubeconfig(kubeconfig).render(run.engine.renderer()))
        .map_err(|e| {
            module_error(
                format!("kube-vip manifest: {e}"),
                "fix `cluster.endpoint` in the inventory",
            )
        })?;
    run.engine
        .module(
            host,
            "file",
            &json!({ "path": KUBE_VIP_MANIFEST_PATH, "content": manifest, "mode": "0600" }),
            run.mode,
        )
        .await
}

async fn kube_vip(run: &ClusterRun<'_>) {
    let hosts: Vec<String> = run
        .control_planes()
        .into_iter()
        .filter(|h| run.engine.in_limit(h))
        .collect();
    if hosts.is_empty() {
        return;
    }
    let _phase = run.engine.phase(ENDPOINT, hosts.clone(), run.mode);
    kbs_engine::strategy::run(
        hosts,
        kbs_engine::Strategy::Parallel,
        run.window,
        |host| async move {
            let kubeconfig = kube_vip_kubeconfig(run, &host);
            run.engine
                .step(
                    &host,
                    "kube-vip static pod",
                    write_kube_vip(run, &host, kubeconfig),
                )
                .await;
        },
    )
    .await;
}

/// With HAProxy, kubeadm talks to the API through the `lb` hosts: if every one of them in this
/// run failed, kubeadm would only fail later with a connection error, so the run stops here.
pub fn require_a_load_balancer(run: &ClusterRun<'_>) -> Result<(), ClusterError> {
    if run.inventory.cluster.endpoint.mode != EndpointMode::Haproxy {
        return Ok(());
    }
    let in_run: Vec<String> = haproxy_hosts(run.inventory)
        .into_iter()
        .filter(|h| run.engine.host(h).is_some() && run.engine.in_limit(h))
        .collect();
    if in_run.is_empty() || in_run.iter().any(|h| !run.engine.is_failed(h)) {
        return Ok(());
    }
    Err(ClusterError::EndpointDown(format!(
        "every HAProxy host failed ({}), so kubeadm was not run on any host; fix what is reported above and re-run",
        in_run.join(", ")
    )))
}

async fn haproxy(run: &ClusterRun<'_>) {
    let hosts: Vec<String> = haproxy_hosts(run.inventory)
        .into_iter()
        .filter(|h| !run.engine.is_failed(h) && run.engine.in_limit(h))
        .collect();
    if hosts.is_empty() {
        return;
    }
    let _phase = run.engine.phase(ENDPOINT, hosts.clone(), run.mode);
    let config =
        Haproxy::for_inventory(run.inventory, &node_ips(run)).and_then(|h| h.render(run.engine.renderer()));
    let config = match config {
        Ok(config) => config,
        Err(e) => {
            for host in &hosts {
                run.engine.mark_failed(
                    host,
                    "HAProxy configuration",
                    module_error(
                        e.to_string(),
                        "fix `cluster.endpoint` and the control planes in the inventory",
                    ),
                );
            }
            return;
        }
    };
    let config = &config;
    kbs_engine::strategy::run(
        hosts,
        kbs_engine::Strategy::Parallel,
        run.window,
        |host| async move {
            let engine = run.engine;
            let installed = engine
                .step(
                    &host,
                    "HAProxy installed",
                    engine.module(
                        &host,
                        "apt_packages",
                        &json!({ "packages": ["haproxy"] }),
                        run.mode,
                    ),
                )
                .await;
            if installed.is_none() {
                return;
            }
            let written = engine
                .step(
                    &host,
                    "HAProxy configuration",
                    write_haproxy_config(run, &host, config),
                )
                .await;
            if written.is_none() {
                return;
            }
            engine
                .step(
                    &host,
                    "HAProxy running",
                    haproxy_reload::ensure_loaded(run, &host),
                )
                .await;
        },
    )
    .await;
}

/// Checks the new configuration with `haproxy -c` on the host before it replaces the running one.
async fn write_haproxy_config(
    run: &ClusterRun<'_>,
    host: &str,
    config: &str,
) -> Result<Outcome, ModuleError> {
    if run.mode == Mode::Apply {
        let check = Script {
            text: "t=$(mktemp) && cat > \"$t\" && haproxy -c -q -f \"$t\"; rc=$?; rm -f \"$t\"; exit $rc"
                .into(),
            stdin: Some(config.as_bytes().to_vec()),
            privileged: true,
        };
        let out = run.engine.exec(host, &check).await?;
        if !out.success() {
            return Err(module_error(
                format!("haproxy -c refuses the generated configuration: {}", out.tail()),
                "this is a kbs bug or an old HAProxy; the running configuration was left as it was",
            ));
        }
    }
    run.engine
        .module(
            host,
            "file",
            &json!({ "path": HAPROXY_CONFIG_PATH, "content": config, "mode": "0644" }),
            run.mode,
        )
        .await
}
