//! The closing lines of a full `kbs apply`: where the cluster is and how it is, for a person.
//! (The per-host table comes first, from the reporter; `--output json` gets neither.)

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use kbs_cluster::orchestrate::ClusterSummary;
use kbs_engine::{Event, EventSink};

/// Passes every event on and keeps how long each phase took.
pub struct PhaseTimes {
    /// `None` once closed: the reporter behind it ends only when every sender is gone.
    inner: Mutex<Option<Arc<dyn EventSink>>>,
    times: Mutex<Vec<(String, u64)>>,
}

impl PhaseTimes {
    pub fn new(inner: Arc<dyn EventSink>) -> Self {
        PhaseTimes {
            inner: Mutex::new(Some(inner)),
            times: Mutex::new(Vec::new()),
        }
    }

    /// Lets go of the inner sink and returns the phase times so far.
    pub fn close(&self) -> Vec<(String, u64)> {
        if let Ok(mut inner) = self.inner.lock() {
            inner.take();
        }
        self.times.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

impl EventSink for PhaseTimes {
    fn emit(&self, event: Event) {
        if let Event::PhaseFinished { phase, duration_ms } = &event {
            if let Ok(mut times) = self.times.lock() {
                times.push((phase.clone(), *duration_ms));
            }
        }
        let inner = self.inner.lock().ok().and_then(|i| i.clone());
        if let Some(inner) = inner {
            inner.emit(event);
        }
    }
}

pub fn render(
    cluster: &str,
    endpoint: &str,
    summary: &ClusterSummary,
    kubeconfig: Option<&Path>,
    phases: &[(String, u64)],
    total_ms: u64,
) -> String {
    let mut out = String::new();
    let ready = summary.nodes.iter().filter(|n| n.ready).count();
    let _ = writeln!(
        out,
        "\ncluster {cluster}: endpoint {endpoint}, {ready} of {} nodes Ready",
        summary.nodes.len()
    );
    for node in &summary.nodes {
        let roles = if node.roles.is_empty() {
            "worker".to_string()
        } else {
            node.roles.join(",")
        };
        let state = if node.ready { "Ready" } else { "NotReady" };
        let _ = writeln!(
            out,
            "  {:<16} {:<22} {:<9} {}",
            node.name, roles, state, node.version
        );
    }
    if !summary.addons.is_empty() {
        let addons: Vec<String> = summary
            .addons
            .iter()
            .map(|(name, v)| format!("{name} {v}"))
            .collect();
        let _ = writeln!(out, "add-ons ready: {}", addons.join(", "));
    }
    if let Some(path) = kubeconfig {
        let _ = writeln!(
            out,
            "kubeconfig: {} (mode 0600): export KUBECONFIG={}",
            path.display(),
            path.display()
        );
    }
    let times: Vec<String> = phases
        .iter()
        .map(|(phase, ms)| format!("{phase} {:.1}s", *ms as f64 / 1000.0))
        .collect();
    let _ = writeln!(
        out,
        "time: {:.1}s ({})",
        total_ms as f64 / 1000.0,
        times.join(", ")
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kbs_cluster::orchestrate::api::NodeStatus;

    #[test]
    fn the_summary_names_endpoint_nodes_addons_kubeconfig_and_phase_times() {
        let summary = ClusterSummary {
            asked: Some("host01".into()),
            nodes: vec![NodeStatus {
                name: "host01".into(),
                roles: vec!["control-plane".into()],
                ready: true,
                version: "v1.36.4".into(),
            }],
            addons: vec![("calico".into(), "v3.33.1".into())],
        };
        let text = render(
            "lab",
            "https://10.61.0.10:6443",
            &summary,
            Some(Path::new("/x/lab-admin.kubeconfig")),
            &[("prepare".into(), 34_900), ("init".into(), 8_600)],
            70_000,
        );
        assert!(
            text.contains("endpoint https://10.61.0.10:6443, 1 of 1 nodes Ready"),
            "{text}"
        );
        assert!(text.contains("host01           control-plane"), "{text}");
        assert!(text.contains("add-ons ready: calico v3.33.1"), "{text}");
        assert!(text.contains("/x/lab-admin.kubeconfig (mode 0600)"), "{text}");
        assert!(text.contains("time: 70.0s (prepare 34.9s, init 8.6s)"), "{text}");
    }
}
