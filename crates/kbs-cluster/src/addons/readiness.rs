//! When an add-on counts as ready, judged from the objects the API server reports (what
//! `kubectl wait` would look at), and the polling with backoff and a deadline around it.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::error::AddonError;
use super::ingress::IngressTarget;
use super::kubectl::{Got, Kubectl, Target};
use super::versions::AddonKind;
use super::{AddonEvent, Progress};

/// One thing that must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `tigerastatus/calico` Available (the operator's own verdict on Calico).
    TigeraAvailable,
    /// Every Node Ready: the CNI works.
    NodesReady,
    Deployment {
        namespace: &'static str,
        name: &'static str,
    },
    DaemonSet {
        namespace: &'static str,
        name: &'static str,
    },
}

/// What `kind` needs to be ready.
pub fn probes(kind: AddonKind) -> Vec<Probe> {
    match kind {
        AddonKind::Calico => vec![Probe::TigeraAvailable, Probe::NodesReady],
        AddonKind::Longhorn => vec![
            Probe::DaemonSet {
                namespace: "longhorn-system",
                name: "longhorn-manager",
            },
            Probe::Deployment {
                namespace: "longhorn-system",
                name: "longhorn-driver-deployer",
            },
        ],
        AddonKind::IngressNginx | AddonKind::Traefik => {
            let t = IngressTarget::for_kind(kind);
            vec![Probe::Deployment {
                namespace: t.namespace,
                name: t.deployment,
            }]
        }
        AddonKind::MetricsServer => vec![Probe::Deployment {
            namespace: "kube-system",
            name: "metrics-server",
        }],
    }
}

fn condition(obj: &Value, ty: &str) -> Option<(String, String)> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        .map(|c| {
            let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            (text("status"), text("message"))
        })
}

/// `None` when the object satisfies the probe, else why not (in the object's own words).
pub fn judge(probe: &Probe, obj: &Value) -> Option<String> {
    match probe {
        Probe::TigeraAvailable => match condition(obj, "Available") {
            Some((s, _)) if s == "True" => None,
            Some((_, m)) if !m.is_empty() => Some(format!("tigerastatus calico: {m}")),
            _ => Some("tigerastatus calico is not Available yet".into()),
        },
        Probe::NodesReady => {
            let items = obj
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if items.is_empty() {
                return Some("no Node is registered".into());
            }
            let not_ready: Vec<String> = items
                .iter()
                .filter(|n| condition(n, "Ready").map(|(s, _)| s) != Some("True".into()))
                .map(|n| {
                    n.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string()
                })
                .collect();
            (!not_ready.is_empty()).then(|| format!("nodes not Ready: {}", not_ready.join(", ")))
        }
        Probe::Deployment { namespace, name } => match condition(obj, "Available") {
            Some((s, _)) if s == "True" => None,
            Some((_, m)) if !m.is_empty() => Some(format!("deployment {namespace}/{name}: {m}")),
            _ => Some(format!("deployment {namespace}/{name} is not available yet")),
        },
        Probe::DaemonSet { namespace, name } => {
            let n = |k: &str| {
                obj.pointer(&format!("/status/{k}"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
            };
            let (want, ready) = (n("desiredNumberScheduled"), n("numberReady"));
            (want == 0 || ready < want)
                .then(|| format!("daemonset {namespace}/{name}: {ready} of {want} pods ready"))
        }
    }
}

/// `None` when every probe holds now, else the first reason one does not; `Missing` when an
/// object is not there at all (so applying again may help).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Ready,
    NotReady(String),
    Missing(String),
}

pub async fn check(kubectl: &Kubectl<'_>, kind: AddonKind) -> Result<State, AddonError> {
    let probes = probes(kind);
    let targets: Vec<Target> = probes.iter().map(Probe::target).collect();
    // All of an add-on's objects in one round trip.
    let found = kubectl.get_many(&targets).await?;
    for ((probe, target), got) in probes.iter().zip(&targets).zip(found) {
        let obj = match got {
            Got::Found(obj) => obj,
            Got::NotFound => return Ok(State::Missing(format!("{target} not found"))),
        };
        if let Some(why) = judge(probe, &obj) {
            return Ok(State::NotReady(why));
        }
    }
    Ok(State::Ready)
}

impl Probe {
    /// The object the probe reads.
    pub fn target(&self) -> Target {
        let t = |resource: &str, namespace: Option<&str>, name: Option<&str>| Target {
            resource: resource.to_string(),
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
        };
        match self {
            Probe::TigeraAvailable => t("tigerastatus", None, Some("calico")),
            Probe::NodesReady => t("nodes", None, None),
            Probe::Deployment { namespace, name } => t("deployment", Some(namespace), Some(name)),
            Probe::DaemonSet { namespace, name } => t("daemonset", Some(namespace), Some(name)),
        }
    }
}

/// Polls until ready, backing off from 1 s to 10 s, until `deadline` has passed.
pub async fn wait(
    kubectl: &Kubectl<'_>,
    kind: AddonKind,
    deadline: Duration,
    progress: Progress<'_>,
) -> Result<(), AddonError> {
    let start = Instant::now();
    let mut delay = Duration::from_secs(1);
    loop {
        let why = match check(kubectl, kind).await? {
            State::Ready => return Ok(()),
            State::NotReady(why) | State::Missing(why) => why,
        };
        if start.elapsed() >= deadline {
            return Err(AddonError::NotReady {
                addon: kind.name().to_string(),
                waited_s: start.elapsed().as_secs(),
                why,
            });
        }
        progress(&AddonEvent::Waiting {
            addon: kind.name().to_string(),
            why,
        });
        tokio::time::sleep(
            delay
                .min(deadline.saturating_sub(start.elapsed()))
                .max(Duration::from_millis(10)),
        )
        .await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn judges_the_objects_as_the_api_reports_them() {
        let available = json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}});
        let unavailable = json!({"status": {"conditions": [{"type": "Available", "status": "False",
            "message": "Deployment does not have minimum availability."}]}});
        let d = Probe::Deployment {
            namespace: "kube-system",
            name: "metrics-server",
        };
        assert_eq!(judge(&d, &available), None);
        assert_eq!(
            judge(&d, &unavailable).unwrap(),
            "deployment kube-system/metrics-server: Deployment does not have minimum availability."
        );
        let tigera_bad = json!({"status": {"conditions": [{"type": "Available", "status": "False",
            "message": "Could not resolve CalicoNetwork IPPool"}]}});
        assert!(judge(&Probe::TigeraAvailable, &tigera_bad)
            .unwrap()
            .contains("Could not resolve"));
        assert_eq!(judge(&Probe::TigeraAvailable, &available), None);
        let nodes = json!({"items": [
            {"metadata": {"name": "host01"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
            {"metadata": {"name": "host02"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}]});
        assert_eq!(
            judge(&Probe::NodesReady, &nodes).unwrap(),
            "nodes not Ready: host02"
        );
        let ds = Probe::DaemonSet {
            namespace: "longhorn-system",
            name: "longhorn-manager",
        };
        assert_eq!(
            judge(
                &ds,
                &json!({"status": {"desiredNumberScheduled": 4, "numberReady": 4}})
            ),
            None
        );
        assert_eq!(
            judge(
                &ds,
                &json!({"status": {"desiredNumberScheduled": 4, "numberReady": 1}})
            )
            .unwrap(),
            "daemonset longhorn-system/longhorn-manager: 1 of 4 pods ready"
        );
    }
}
