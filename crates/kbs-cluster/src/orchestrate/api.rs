//! Reading the cluster through kubectl on a control plane (with its admin.conf): the nodes, the
//! certificate signing requests, the admin kubeconfig. kbs opens no connection of its own to the
//! API: the SSH connection it already has is enough, and nothing needs exposing.

use kbs_engine::{Engine, KubeadmState, ModuleError, Script};
use kbs_inventory::Inventory;
use serde_json::Value;

use super::credentials::ADMIN_CONF;
use super::module_error;

/// The first control plane of the inventory, connected and with the control plane running.
pub fn api_host(engine: &Engine, inventory: &Inventory) -> Option<String> {
    inventory.control_planes().map(|h| h.name.clone()).find(|name| {
        !engine.is_failed(name)
            && engine
                .facts(name)
                .is_some_and(|f| f.kubeadm_state == KubeadmState::ControlPlane)
    })
}

/// `kubectl ARGS -o json` on `host`, parsed.
pub async fn kubectl_json(engine: &Engine, host: &str, args: &str) -> Result<Value, ModuleError> {
    let out = engine
        .exec(
            host,
            &Script::root(format!("kubectl --kubeconfig {ADMIN_CONF} {args} -o json")),
        )
        .await?;
    if !out.success() {
        return Err(module_error(
            format!("`kubectl {args}` failed: {}", out.tail()),
            format!("check the API server on {host}: `crictl ps`, `journalctl -u kubelet`"),
        ));
    }
    serde_json::from_str(&out.stdout)
        .map_err(|e| ModuleError::new(format!("`kubectl {args} -o json` printed no JSON: {e}")))
}

/// A node as `kbs status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub roles: Vec<String>,
    pub ready: bool,
    pub version: String,
}

pub fn nodes(list: &Value) -> Vec<NodeStatus> {
    items(list)
        .map(|node| {
            let roles = node["metadata"]["labels"]
                .as_object()
                .map(|labels| {
                    labels
                        .keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let ready = node["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            NodeStatus {
                name: text(&node["metadata"]["name"]),
                roles,
                ready,
                version: text(&node["status"]["nodeInfo"]["kubeletVersion"]),
            }
        })
        .collect()
}

/// A certificate signing request that nobody has approved or denied yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PendingCsr {
    pub name: String,
    pub requestor: String,
    pub signer: String,
}

pub fn pending_csrs(list: &Value) -> Vec<PendingCsr> {
    items(list)
        .filter(|csr| {
            csr["status"]["conditions"]
                .as_array()
                .is_none_or(|c| c.is_empty())
        })
        .map(|csr| PendingCsr {
            name: text(&csr["metadata"]["name"]),
            requestor: text(&csr["spec"]["username"]),
            signer: text(&csr["spec"]["signerName"]),
        })
        .collect()
}

fn items(list: &Value) -> impl Iterator<Item = &Value> {
    list["items"].as_array().into_iter().flatten()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// The admin kubeconfig of `host`, its `server:` set to the inventory's endpoint (it already is
/// on a kubeadm cluster with `controlPlaneEndpoint`; this makes it so for older ones too).
pub async fn admin_kubeconfig(
    engine: &Engine,
    host: &str,
    inventory: &Inventory,
) -> Result<String, ModuleError> {
    let out = engine
        .exec(host, &Script::root(format!("cat {ADMIN_CONF}")))
        .await?;
    if !out.success() {
        return Err(module_error(
            format!("cannot read {ADMIN_CONF}: {}", out.tail()),
            "is the control plane initialised? `kbs status` tells",
        ));
    }
    let server = inventory.api_endpoint().map(|e| format!("https://{e}"));
    Ok(out
        .stdout
        .lines()
        .map(
            |line| match (&server, line.trim_start().strip_prefix("server: ")) {
                (Some(server), Some(_)) => {
                    let indent = &line[..line.len() - line.trim_start().len()];
                    format!("{indent}server: {server}")
                }
                _ => line.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
        + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_read_roles_readiness_and_version() {
        let list: Value = serde_json::from_str(
            r#"{"items":[{"metadata":{"name":"host01","labels":{"node-role.kubernetes.io/control-plane":""}},
              "status":{"conditions":[{"type":"Ready","status":"True"}],"nodeInfo":{"kubeletVersion":"v1.36.4"}}},
             {"metadata":{"name":"host04","labels":{}},"status":{"conditions":[{"type":"Ready","status":"False"}],"nodeInfo":{"kubeletVersion":"v1.36.4"}}}]}"#,
        )
        .unwrap();
        let n = nodes(&list);
        assert_eq!(n[0].roles, ["control-plane"]);
        assert!(n[0].ready);
        assert!(!n[1].ready);
        assert_eq!(n[1].version, "v1.36.4");
    }

    #[test]
    fn only_undecided_csrs_are_pending() {
        let list: Value = serde_json::from_str(
            r#"{"items":[{"metadata":{"name":"csr-a"},"spec":{"username":"system:node:host01","signerName":"kubernetes.io/kubelet-serving"},"status":{}},
             {"metadata":{"name":"csr-b"},"spec":{"username":"system:node:host02","signerName":"kubernetes.io/kubelet-serving"},"status":{"conditions":[{"type":"Approved"}]}}]}"#,
        )
        .unwrap();
        let p = pending_csrs(&list);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].name, "csr-a");
        assert_eq!(p[0].requestor, "system:node:host01");
    }
}
