//! `kbs status`: the cluster as the API sees it — nodes with roles, readiness and versions, the
//! endpoint's health, pending CSRs — and the inventory hosts that are not nodes yet.

use std::fmt::Write as _;
use std::path::Path;

use kbs_cluster::orchestrate::api::{self, NodeStatus, PendingCsr};
use kbs_engine::Script;
use serde::Serialize;

use crate::commands::cluster::read_cluster;
use crate::failure::Failure;
use crate::output::report::OutputFormat;
use crate::targets::AccessDefaults;

#[derive(Serialize)]
struct Status {
    endpoint: String,
    endpoint_healthy: bool,
    asked: String,
    nodes: Vec<NodeStatus>,
    not_joined: Vec<String>,
    pending_csrs: Vec<PendingCsr>,
}

pub async fn run(
    inventory_path: &Path,
    format: OutputFormat,
    defaults: AccessDefaults,
    forks: usize,
) -> Result<(), Failure> {
    let (inventory, engine, host) = read_cluster(inventory_path, &defaults, forks).await?;
    let asked = |e: kbs_engine::ModuleError| Failure::HostsFailed(format!("{host}: {}", e.message));
    let nodes = api::nodes(
        &api::kubectl_json(&engine, &host, "get nodes")
            .await
            .map_err(asked)?,
    );
    let pending = api::pending_csrs(
        &api::kubectl_json(&engine, &host, "get csr")
            .await
            .map_err(asked)?,
    );
    let endpoint = inventory
        .api_endpoint()
        .map(|e| format!("https://{e}"))
        .unwrap_or_default();
    let healthy = engine
        .exec(
            &host,
            &Script::root(format!("curl -ksf --max-time 5 {endpoint}/readyz")),
        )
        .await
        .is_ok_and(|out| out.success());
    let not_joined = inventory
        .hosts
        .iter()
        .filter(|h| !h.roles.iter().all(|r| r.as_str() == "lb"))
        .filter(|h| !nodes.iter().any(|n| n.name == h.name))
        .map(|h| h.name.clone())
        .collect();
    let status = Status {
        endpoint,
        endpoint_healthy: healthy,
        asked: host,
        nodes,
        not_joined,
        pending_csrs: pending,
    };
    match format {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string(&status).map_err(|e| Failure::BadInput(e.to_string()))?
        ),
        _ => print!("{}", render(&status)),
    }
    let all_ready = status.nodes.iter().all(|n| n.ready);
    if status.endpoint_healthy && all_ready {
        Ok(())
    } else {
        Err(Failure::HostsFailed(
            "the cluster is not healthy (see above)".to_string(),
        ))
    }
}

fn render(s: &Status) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "endpoint {} {} (asked {})\n",
        s.endpoint,
        if s.endpoint_healthy {
            "healthy"
        } else {
            "NOT ANSWERING"
        },
        s.asked
    );
    let _ = writeln!(out, "{:<20} {:<24} {:<9} VERSION", "NODE", "ROLES", "READY");
    for n in &s.nodes {
        let roles = if n.roles.is_empty() {
            "<none>".to_string()
        } else {
            n.roles.join(",")
        };
        let _ = writeln!(
            out,
            "{:<20} {:<24} {:<9} {}",
            n.name,
            roles,
            if n.ready { "Ready" } else { "NotReady" },
            n.version
        );
    }
    if !s.not_joined.is_empty() {
        let _ = writeln!(
            out,
            "\nin the inventory, not in the cluster: {} (kbs join HOST -i INVENTORY)",
            s.not_joined.join(", ")
        );
    }
    if s.pending_csrs.is_empty() {
        let _ = writeln!(out, "\nno pending certificate signing requests");
    } else {
        let _ = writeln!(out, "\npending certificate signing requests:");
        for c in &s.pending_csrs {
            let _ = writeln!(out, "  {}  {}  {}", c.name, c.requestor, c.signer);
        }
    }
    out
}
