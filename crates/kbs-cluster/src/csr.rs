//! Safe approval of kubelet serving certificate requests. Kubernetes never approves
//! `kubernetes.io/kubelet-serving` CSRs itself, and the book approves every pending CSR; kbs
//! approves only a request that a node of the inventory made for itself:
//! - signer `kubernetes.io/kubelet-serving`;
//! - requestor (`spec.username`, set by the API server from the client certificate)
//!   `system:node:<host>` for a host of the inventory, in group `system:nodes`;
//! - the request's subject CN equal to the requestor and O exactly `system:nodes`;
//! - DNS SANs only that host's names (its name, its address when that is a name), IP SANs only
//!   its addresses (`address`, `nodeIp`), nothing else (no e-mail or URI SANs);
//! - usages within digital signature, key encipherment and server auth, server auth included.
//!
//! Anything else stays pending and is reported with the reason; a node cannot obtain a
//! certificate for another node's name or address (the forged-CSR case).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use kbs_engine::transport::sh_quote;
use kbs_engine::{Remote, Script};
use kbs_inventory::{Host, Inventory, Role};
use serde_json::Value;

const KUBECTL: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";
const ALLOWED_USAGES: [&str; 3] = ["digital signature", "key encipherment", "server auth"];

/// A CSR kbs left pending, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub csr: String,
    pub requestor: String,
    pub reason: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (from {}): {}", self.csr, self.requestor, self.reason)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsrReport {
    /// CSRs kbs approved in this run, as (CSR name, node).
    pub approved: Vec<(String, String)>,
    /// Every node holds an issued serving certificate.
    pub nodes: Vec<String>,
    /// Pending kubelet-serving CSRs kbs refused to approve.
    pub refused: Vec<Refusal>,
}

#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    #[error("{step} on the first control plane failed: {message}\n  hint: {hint}")]
    Remote {
        step: String,
        message: String,
        hint: String,
    },
    #[error("{}", timeout_text(.waited, .missing, .refused))]
    Timeout {
        waited: Duration,
        missing: Vec<String>,
        refused: Vec<Refusal>,
    },
}

fn timeout_text(waited: &Duration, missing: &[String], refused: &[Refusal]) -> String {
    let mut out = format!(
        "after {} s these nodes have no approved and issued kubelet serving certificate: {}",
        waited.as_secs(),
        missing.join(", ")
    );
    if !refused.is_empty() {
        out.push_str("\n  CSRs left pending:");
        for r in refused {
            out.push_str(&format!("\n    {r}"));
        }
    }
    out.push_str(
        "\n  hint: the kubelet asks for its serving certificate when `serverTLSBootstrap: true` is set; check \
         `journalctl -u kubelet` on those nodes and `kubectl get csr`; a refused CSR names what does not match \
         the inventory (fix the host's names or `nodeIp`, then restart its kubelet)",
    );
    out
}

/// What the policy needs from the inventory: each node's allowed names and addresses.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub names: BTreeSet<String>,
    pub ips: BTreeSet<IpAddr>,
}

/// Nodes are the hosts that run a kubelet: control planes and workers (an `lb`-only host is not one).
pub fn node_identities(inventory: &Inventory) -> BTreeMap<String, NodeIdentity> {
    inventory
        .hosts
        .iter()
        .filter(|h| h.has_role(Role::ControlPlane) || h.has_role(Role::Worker))
        .map(|h| (h.name.clone(), identity(h)))
        .collect()
}

fn identity(host: &Host) -> NodeIdentity {
    let mut names = BTreeSet::from([host.name.clone()]);
    let mut ips = BTreeSet::new();
    match host.address.parse::<IpAddr>() {
        Ok(ip) => {
            ips.insert(ip);
        }
        Err(_) => {
            names.insert(host.address.clone());
        }
    }
    ips.extend(host.node_ip);
    NodeIdentity { names, ips }
}

/// The subject and SANs of a PKCS#10 request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub common_names: Vec<String>,
    pub organizations: Vec<String>,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    /// SANs of other kinds (e-mail, URI …), described.
    pub other_sans: Vec<String>,
}

/// Reads a PEM CSR (`spec.request`, already base64-decoded).
pub fn parse_request(pem: &[u8]) -> Result<RequestInfo, String> {
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    use x509_parser::prelude::FromDer;

    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("the request is not PEM: {e}"))?;
    if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
        return Err(format!(
            "the request is a PEM `{}`, not a CERTIFICATE REQUEST",
            pem.label
        ));
    }
    let (_, csr) = X509CertificationRequest::from_der(&pem.contents)
        .map_err(|e| format!("the request is not a valid PKCS#10 CSR: {e}"))?;
    let subject = &csr.certification_request_info.subject;
    let text = |a: &x509_parser::x509::AttributeTypeAndValue| a.as_str().unwrap_or("<not text>").to_string();
    let mut info = RequestInfo {
        common_names: subject.iter_common_name().map(text).collect(),
        organizations: subject.iter_organization().map(text).collect(),
        ..RequestInfo::default()
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::DNSName(d) => info.dns.push(d.to_string()),
                    GeneralName::IPAddress(bytes) => match bytes.len() {
                        4 => info
                            .ips
                            .push(IpAddr::from(<[u8; 4]>::try_from(*bytes).unwrap_or_default())),
                        16 => info
                            .ips
                            .push(IpAddr::from(<[u8; 16]>::try_from(*bytes).unwrap_or_default())),
                        n => info.other_sans.push(format!("an IP address of {n} bytes")),
                    },
                    other => info.other_sans.push(format!("{other}")),
                }
            }
        }
    }
    Ok(info)
}

/// The policy: `Ok(node)` when kbs may approve `csr` (a CertificateSigningRequest as JSON),
/// `Err(reason)` otherwise.
pub fn judge(csr: &Value, nodes: &BTreeMap<String, NodeIdentity>) -> Result<String, String> {
    let text = |p: &str| csr.pointer(p).and_then(Value::as_str).unwrap_or("");
    let signer = text("/spec/signerName");
    if signer != KUBELET_SERVING {
        return Err(format!("signer `{signer}` is not {KUBELET_SERVING}"));
    }
    let requestor = text("/spec/username");
    let Some(node) = requestor.strip_prefix("system:node:") else {
        return Err(format!(
            "requestor `{requestor}` is not a node (system:node:<name>)"
        ));
    };
    let Some(identity) = nodes.get(node) else {
        return Err(format!(
            "requestor `{requestor}`: `{node}` is not a node of the inventory"
        ));
    };
    let groups: Vec<&str> = csr
        .pointer("/spec/groups")
        .and_then(Value::as_array)
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !groups.contains(&"system:nodes") {
        return Err(format!("requestor `{requestor}` is not in group system:nodes"));
    }
    let usages: Vec<&str> = csr
        .pointer("/spec/usages")
        .and_then(Value::as_array)
        .map(|u| u.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(bad) = usages.iter().find(|u| !ALLOWED_USAGES.contains(u)) {
        return Err(format!(
            "usage `{bad}` is not allowed (only {})",
            ALLOWED_USAGES.join(", ")
        ));
    }
    if !usages.contains(&"server auth") {
        return Err("usages lack `server auth`".into());
    }
    use base64::Engine as _;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(text("/spec/request"))
        .map_err(|e| format!("spec.request is not base64: {e}"))?;
    let info = parse_request(&pem)?;
    if info.common_names != [requestor] {
        return Err(format!(
            "subject CN {:?} is not the requestor `{requestor}`",
            info.common_names
        ));
    }
    if info.organizations != ["system:nodes"] {
        return Err(format!(
            "subject O {:?} is not [\"system:nodes\"]",
            info.organizations
        ));
    }
    if let Some(other) = info.other_sans.first() {
        return Err(format!("SAN {other} is not allowed in a serving certificate"));
    }
    if info.dns.is_empty() && info.ips.is_empty() {
        return Err("the request names no DNS name or IP address".into());
    }
    if let Some(dns) = info.dns.iter().find(|d| !identity.names.contains(*d)) {
        return Err(format!(
            "DNS name `{dns}` is not a name of {node} in the inventory ({})",
            identity.names.iter().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    if let Some(ip) = info.ips.iter().find(|ip| !identity.ips.contains(ip)) {
        let known: Vec<String> = identity.ips.iter().map(ToString::to_string).collect();
        return Err(format!(
            "IP address {ip} is not an address of {node} in the inventory ({})",
            if known.is_empty() {
                "none known: set `nodeIp`".to_string()
            } else {
                known.join(", ")
            }
        ));
    }
    Ok(node.to_string())
}

fn has_condition(csr: &Value, ty: &str) -> bool {
    csr.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        })
}

fn issued(csr: &Value) -> bool {
    has_condition(csr, "Approved")
        && csr
            .pointer("/status/certificate")
            .and_then(Value::as_str)
            .is_some_and(|c| !c.is_empty())
}

async fn kubectl(remote: &Remote, step: &str, text: String) -> Result<String, CsrError> {
    let failed = |message: String, hint: Option<String>| CsrError::Remote {
        step: step.to_string(),
        message,
        hint: hint.unwrap_or_else(|| "check that the API server answers, then re-run kbs apply".into()),
    };
    let out = remote
        .exec(&Script::root(text))
        .await
        .map_err(|e| failed(e.message, e.hint))?;
    if out.success() {
        Ok(out.stdout)
    } else {
        Err(failed(out.tail(), None))
    }
}

/// Approves the kubelet serving CSRs the policy allows (kubectl runs on `kubectl_remote` with
/// admin.conf), polling with backoff until every node has an approved and issued serving
/// certificate, or `deadline` passes.
pub async fn approve_serving_csrs(
    inventory: &Inventory,
    kubectl_remote: &Remote,
    deadline: Duration,
) -> Result<CsrReport, CsrError> {
    let nodes = node_identities(inventory);
    let start = Instant::now();
    let mut delay = Duration::from_millis(500);
    let mut report = CsrReport::default();
    loop {
        let listing = kubectl(
            kubectl_remote,
            "kubectl get csr",
            format!("{KUBECTL} get certificatesigningrequests -o json"),
        )
        .await?;
        let list: Value = serde_json::from_str(&listing).map_err(|e| CsrError::Remote {
            step: "kubectl get csr".into(),
            message: format!("kubectl printed no JSON list: {e}"),
            hint: "re-run kbs apply".into(),
        })?;
        let items = list
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut with_cert = BTreeSet::new();
        report.refused.clear();
        for csr in &items {
            let name = csr
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let pending = !has_condition(csr, "Approved") && !has_condition(csr, "Denied");
            let serving = csr.pointer("/spec/signerName").and_then(Value::as_str) == Some(KUBELET_SERVING);
            if !serving {
                // Client certificates are Kubernetes' own business (its csrapproving controller).
                continue;
            }
            match judge(csr, &nodes) {
                Ok(node) if issued(csr) => {
                    with_cert.insert(node);
                }
                Ok(node) if pending => {
                    kubectl(
                        kubectl_remote,
                        &format!("kubectl certificate approve {name}"),
                        format!("{KUBECTL} certificate approve {}", sh_quote(&name)),
                    )
                    .await?;
                    report.approved.push((name, node));
                }
                Ok(_) => {}
                Err(reason) if pending => report.refused.push(Refusal {
                    csr: name,
                    requestor: csr
                        .pointer("/spec/username")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    reason,
                }),
                Err(_) => {}
            }
        }
        let missing: Vec<String> = nodes
            .keys()
            .filter(|n| !with_cert.contains(*n))
            .cloned()
            .collect();
        if missing.is_empty() {
            report.nodes = nodes.keys().cloned().collect();
            return Ok(report);
        }
        if start.elapsed() >= deadline {
            return Err(CsrError::Timeout {
                waited: start.elapsed(),
                missing,
                refused: report.refused,
            });
        }
        tokio::time::sleep(
            delay
                .min(deadline.saturating_sub(start.elapsed()))
                .max(Duration::from_millis(10)),
        )
        .await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}
