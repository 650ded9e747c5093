//! `kbs reset`: take hosts out of the cluster and undo kubeadm on them. Workers go first (in
//! parallel), control planes one at a time; `kubeadm reset` on a control plane removes its own
//! etcd member while the others still form a quorum, and the Node object is deleted through a
//! control plane that stays. Packages and host preparation stay: `kbs join` can bring the host
//! straight back.

use kbs_engine::{Outcome, Script, Strategy};
use kbs_inventory::Role;

use super::api::api_host;
use super::credentials::ADMIN_CONF;
use super::{module_error, ClusterRun};

/// What kubeadm leaves behind on purpose (its reset says to clean these up by hand), plus kbs' own
/// files.
const CLEANUP: &str = "rm -rf /etc/cni/net.d /etc/kubernetes/kubeadm-kbs.yaml /var/lib/etcd";

pub const RESET: &str = "reset";

pub async fn reset(run: &ClusterRun<'_>, hosts: &[String]) {
    let staying = |name: &String| !hosts.contains(name);
    // kubectl runs on a control plane that is not being reset (none when the whole cluster goes).
    let api = api_host(run.engine, run.inventory).filter(staying).or_else(|| {
        run.inventory
            .control_planes()
            .map(|h| h.name.clone())
            .filter(staying)
            .find(|h| !run.engine.is_failed(h))
    });
    let _phase = run.engine.phase(RESET, hosts.to_vec(), run.mode);
    let (control_planes, workers): (Vec<String>, Vec<String>) = hosts.iter().cloned().partition(|h| {
        run.inventory
            .host(h)
            .is_some_and(|h| h.has_role(Role::ControlPlane))
    });
    let api = api.as_deref();
    kbs_engine::strategy::run(workers, Strategy::Parallel, run.window, |host| async move {
        reset_one(run, &host, api).await;
    })
    .await;
    for host in control_planes {
        reset_one(run, &host, api).await;
    }
}

async fn reset_one(run: &ClusterRun<'_>, host: &str, api: Option<&str>) {
    let engine = run.engine;
    let touched = engine
        .facts(host)
        .is_some_and(|f| f.kubeadm_state != kbs_engine::KubeadmState::Nothing);
    if !touched {
        engine
            .step(host, "kubeadm reset", async {
                Ok(Outcome::ok().with_message("not part of a cluster"))
            })
            .await;
        return;
    }
    if run.mode == kbs_engine::Mode::Check {
        engine
            .step(host, "kubeadm reset", async {
                Ok(Outcome::changed("would reset"))
            })
            .await;
        return;
    }
    let done = engine
        .step(host, "kubeadm reset", async {
            let out = engine
                .exec(host, &Script::root(format!("kubeadm reset -f 2>&1 && {CLEANUP}")))
                .await?;
            if !out.success() {
                return Err(module_error(
                    format!("`kubeadm reset -f` failed: {}", out.tail()),
                    format!("look at the output above, fix it on {host} and run kbs reset again"),
                ));
            }
            engine.refresh_facts_of(host).await?;
            Ok(Outcome::changed("reset"))
        })
        .await;
    let (Some(_), Some(api)) = (done, api) else {
        return;
    };
    engine
        .step(api, &format!("node {host} removed from the cluster"), async {
            let out = engine
                .exec(
                    api,
                    &Script::root(format!(
                        "kubectl --kubeconfig {ADMIN_CONF} delete node {} --ignore-not-found",
                        kbs_engine::sh_quote(host)
                    )),
                )
                .await?;
            if out.success() {
                Ok(Outcome::changed(format!("node {host} deleted")))
            } else {
                Err(module_error(
                    format!("deleting node {host} failed: {}", out.tail()),
                    format!("delete it by hand: kubectl delete node {host}"),
                ))
            }
        })
        .await;
}
