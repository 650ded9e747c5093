//! Validation the API server applies on every write, with apimachinery's texts:
//! total annotation size (apimachinery pkg/api/validation/objectmeta.go
//! `ValidateAnnotationsSize`, `TotalAnnotationSizeLimitB` = 256 KiB; `field.TooLong` reads
//! `may not be more than N bytes` since apimachinery unified its TooLong errors, as 2026
//! reports show, e.g. arkmq-org/arkmq-org-broker-operator#1392; older servers said
//! `must have at most N bytes`), Service NodePorts
//! against `--service-node-port-range` (pkg/registry/core/service/portallocator:
//! `provided port is not in the valid range. The range of valid ports is 30000-32767`,
//! `provided port is already allocated`), and CSR approval conditions
//! (pkg/apis/certificates/validation).

use serde_json::{json, Value};

use crate::store::Store;

pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// An Invalid error: `<Kind>[.<group>] "<name>" is invalid: <causes>`.
pub fn invalid(kind: &str, group: &str, name: &str, causes: &[String]) -> String {
    let qk = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let body = if causes.len() == 1 {
        causes[0].clone()
    } else {
        format!("[{}]", causes.join(", "))
    };
    format!("{qk} \"{name}\" is invalid: {body}")
}

/// `--service-node-port-range` as `(first, last)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange(pub u16, pub u16);

impl Default for PortRange {
    fn default() -> Self {
        PortRange(30000, 32767)
    }
}

impl PortRange {
    /// `80-32767` or `30000+2767` (k8s.io/apimachinery pkg/util/net `ParsePortRange`).
    pub fn parse(s: &str) -> Option<PortRange> {
        if let Some((a, b)) = s.split_once('-') {
            let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
            return (a <= b).then_some(PortRange(a, b));
        }
        let (a, n) = s.split_once('+')?;
        let a: u16 = a.trim().parse().ok()?;
        let n: u16 = n.trim().parse().ok()?;
        Some(PortRange(a, a.checked_add(n)?))
    }
    pub fn contains(&self, p: i64) -> bool {
        p >= self.0 as i64 && p <= self.1 as i64
    }
}

/// Checks metadata common to every object.
pub fn validate_meta(obj: &Value, kind: &str, group: &str, name: &str) -> Result<(), String> {
    let size: usize = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| k.len() + v.as_str().map(str::len).unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    if size > TOTAL_ANNOTATION_SIZE_LIMIT {
        return Err(invalid(
            kind,
            group,
            name,
            &[format!(
                "metadata.annotations: Too long: may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"
            )],
        ));
    }
    Ok(())
}

fn used_node_ports(store: &Store, except: (&str, &str)) -> Vec<i64> {
    store
        .list("v1", "Service", None)
        .into_iter()
        .filter(|s| {
            (
                s.pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                s.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(""),
            ) != except
        })
        .flat_map(|s| {
            s.pointer("/spec/ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Validates and allocates a Service's NodePorts and cluster IP in place.
pub fn admit_service(store: &Store, svc: &mut Value, range: PortRange) -> Result<(), String> {
    let ns = svc
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let name = svc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let ty = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    let wants_node_ports = ty == "NodePort" || ty == "LoadBalancer";
    let mut used = used_node_ports(store, (&ns, &name));
    let mut causes = Vec::new();
    if let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for (i, p) in ports.iter_mut().enumerate() {
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) if !wants_node_ports => {
                    causes.push(format!("spec.ports[{i}].nodePort: Forbidden: may not be used when `type` is '{ty}'"));
                    let _ = np;
                }
                Some(np) if !range.contains(np) => causes.push(format!(
                    "spec.ports[{i}].nodePort: Invalid value: {np}: provided port is not in the valid range. The range of valid ports is {}-{}",
                    range.0, range.1
                )),
                Some(np) if used.contains(&np) => {
                    causes.push(format!("spec.ports[{i}].nodePort: Invalid value: {np}: provided port is already allocated"))
                }
                Some(np) => used.push(np),
                None if wants_node_ports => {
                    if let Some(free) = (range.0..=range.1).map(i64::from).find(|n| !used.contains(n)) {
                        used.push(free);
                        p["nodePort"] = json!(free);
                    }
                }
                None => {}
            }
        }
    }
    if !causes.is_empty() {
        return Err(invalid("Service", "", &name, &causes));
    }
    if svc.pointer("/spec/clusterIP").is_none() && svc.get("spec").is_some() {
        let n = store.list("v1", "Service", None).len() as u32 + 10;
        svc["spec"]["clusterIP"] = json!(format!("10.96.{}.{}", n / 250, n % 250 + 1));
    }
    Ok(())
}

/// `status.conditions` of a CSR `/approval` update: Approved and Denied exclude each other.
pub fn validate_approval(csr: &Value) -> Result<(), String> {
    let conds: Vec<&str> = csr
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("type").and_then(Value::as_str))
        .collect();
    if conds.contains(&"Approved") && conds.contains(&"Denied") {
        let i = conds
            .iter()
            .rposition(|c| *c == "Approved" || *c == "Denied")
            .unwrap_or(0);
        let name = csr
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        return Err(invalid(
            "CertificateSigningRequest",
            "certificates.k8s.io",
            name,
            &[format!(
                "status.conditions[{i}].type: Invalid value: \"{}\": Approved and Denied conditions are mutually exclusive",
                conds[i]
            )],
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_port_range_and_annotation_limit() {
        let s = Store::new();
        let mut svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ingress-nginx-controller", "namespace": "ingress-nginx"},
            "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}, {"port": 443}]}});
        assert_eq!(
            admit_service(&s, &mut svc.clone(), PortRange::default()).unwrap_err(),
            "Service \"ingress-nginx-controller\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        admit_service(&s, &mut svc, PortRange::parse("80-32767").unwrap()).unwrap();
        assert_eq!(svc["spec"]["ports"][1]["nodePort"], 81);
        let big = "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT);
        let crd =
            json!({"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": big}}});
        assert_eq!(
            validate_meta(&crd, "CustomResourceDefinition", "apiextensions.k8s.io", "installations.operator.tigera.io").unwrap_err(),
            "CustomResourceDefinition.apiextensions.k8s.io \"installations.operator.tigera.io\" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes"
        );
    }
}
