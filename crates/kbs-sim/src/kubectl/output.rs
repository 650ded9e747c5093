//! How kubectl prints: default tables for the kinds kbs looks at, `-o json|yaml|name|wide`,
//! `-o jsonpath=…` (the subset: `{.a.b}`, `{.items[*].x}`, `{.a[0]}`, `{range}` not needed
//! by kbs), and kubectl's error wording (k8s.io/kubectl pkg/cmd/util/helpers.go
//! `StandardErrorMessage`).

use serde_json::Value;

use crate::kubeclient::Reply;

/// `Error from server (NotFound): …`, or for Invalid `The Service "x" is invalid: …`.
pub fn server_error(r: &Reply) -> String {
    let msg = r.message();
    let reason = r.reason();
    if reason == "Invalid" {
        let kind = r
            .body
            .pointer("/details/kind")
            .and_then(Value::as_str)
            .unwrap_or("");
        let name = r
            .body
            .pointer("/details/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some((_, causes)) = msg.split_once(" is invalid: ") {
            return format!("The {kind} \"{name}\" is invalid: {causes}");
        }
    }
    if reason.is_empty() {
        return format!("Error from server: {msg}");
    }
    format!("Error from server ({reason}): {msg}")
}

/// `5m`, `3h12m`, `2d`: kubectl's `duration.HumanDuration` of an object's age.
pub fn age(created: &str, now: std::time::SystemTime) -> String {
    let Some(t) = crate::store::bootstrap::parse_rfc3339(created) else {
        return "<unknown>".into();
    };
    let s = now.duration_since(t).map(|d| d.as_secs()).unwrap_or(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=599 => format!("{}m{}s", s / 60, s % 60).replace("m0s", "m"),
        600..=10799 => format!("{}m", s / 60),
        10800..=172799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn cond(v: &Value, ty: &str) -> Option<String> {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c["type"] == ty)
        .map(|c| s(c, "/status").to_string())
}

/// Columns and row cells for a kind.
fn columns(
    kind: &str,
    v: &Value,
    now: std::time::SystemTime,
    with_ns: bool,
) -> (Vec<&'static str>, Vec<String>) {
    let name = s(v, "/metadata/name").to_string();
    let a = age(s(v, "/metadata/creationTimestamp"), now);
    let (mut cols, mut row): (Vec<&str>, Vec<String>) = match kind {
        "Node" => {
            let ready = match cond(v, "Ready").as_deref() {
                Some("True") => "Ready",
                _ => "NotReady",
            };
            let roles: Vec<String> = v
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|l| {
                    l.keys()
                        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/").map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let roles = if roles.is_empty() {
                "<none>".into()
            } else {
                roles.join(",")
            };
            (
                vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
                vec![
                    name,
                    ready.into(),
                    roles,
                    a,
                    s(v, "/status/nodeInfo/kubeletVersion").into(),
                ],
            )
        }
        "CertificateSigningRequest" => {
            let mut c: Vec<String> = v
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .map(|cs| cs.iter().map(|c| s(c, "/type").to_string()).collect())
                .unwrap_or_default();
            if c.is_empty() {
                c.push("Pending".into());
            } else if v.pointer("/status/certificate").is_some() {
                c.push("Issued".into());
            }
            (
                vec![
                    "NAME",
                    "AGE",
                    "SIGNERNAME",
                    "REQUESTOR",
                    "REQUESTEDDURATION",
                    "CONDITION",
                ],
                vec![
                    name,
                    a,
                    s(v, "/spec/signerName").into(),
                    s(v, "/spec/username").into(),
                    "<none>".into(),
                    c.join(","),
                ],
            )
        }
        "Namespace" => (
            vec!["NAME", "STATUS", "AGE"],
            vec![name, s(v, "/status/phase").into(), a],
        ),
        "Pod" => {
            let total = v
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map(Vec::len)
                .unwrap_or(1)
                .max(1);
            let ready = if cond(v, "Ready").as_deref() == Some("True") {
                total
            } else {
                0
            };
            (
                vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
                vec![
                    name,
                    format!("{ready}/{total}"),
                    s(v, "/status/phase").into(),
                    "0".into(),
                    a,
                ],
            )
        }
        "Deployment" => {
            let want = v.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            let ready = v
                .pointer("/status/readyReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let upd = v
                .pointer("/status/updatedReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let av = v
                .pointer("/status/availableReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            (
                vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
                vec![
                    name,
                    format!("{ready}/{want}"),
                    upd.to_string(),
                    av.to_string(),
                    a,
                ],
            )
        }
        "Service" => {
            let ports: Vec<String> = v
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                            match p.get("nodePort").and_then(Value::as_i64) {
                                Some(np) => format!("{port}:{np}/{proto}"),
                                None => format!("{port}/{proto}"),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                vec!["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
                vec![
                    name,
                    v.pointer("/spec/type")
                        .and_then(Value::as_str)
                        .unwrap_or("ClusterIP")
                        .into(),
                    s(v, "/spec/clusterIP").into(),
                    "<none>".into(),
                    ports.join(","),
                    a,
                ],
            )
        }
        _ => (vec!["NAME", "AGE"], vec![name, a]),
    };
    if with_ns {
        cols.insert(0, "NAMESPACE");
        row.insert(0, s(v, "/metadata/namespace").into());
    }
    (cols, row)
}

/// A kubectl table (columns padded with three spaces, as the tabwriter does).
pub fn table(kind: &str, items: &[Value], now: std::time::SystemTime, with_ns: bool) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut header: Vec<&str> = Vec::new();
    for v in items {
        let (c, r) = columns(kind, v, now, with_ns);
        header = c;
        rows.push(r);
    }
    if rows.is_empty() {
        return String::new();
    }
    rows.insert(0, header.iter().map(|h| h.to_string()).collect());
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map(String::len).unwrap_or(0))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == r.len() {
                    c.clone()
                } else {
                    format!("{c:<w$}   ", w = widths[i])
                }
            })
            .collect();
        out.push_str(line.concat().trim_end());
        out.push('\n');
    }
    out
}

/// Evaluates a kubectl JSONPath template (`{.status.conditions[0].type}`,
/// `{.items[*].metadata.name}`, literal text between expressions).
pub fn jsonpath(template: &str, v: &Value) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("error parsing jsonpath {template}, unclosed action"))?
            + start;
        let expr = rest[start + 1..end].trim();
        let vals = eval(expr.trim_start_matches('$'), v)?;
        let text: Vec<String> = vals
            .iter()
            .map(|x| match x {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&text.join(" "));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn eval(expr: &str, root: &Value) -> Result<Vec<Value>, String> {
    let mut cur = vec![root.clone()];
    for seg in split_segments(expr) {
        let (name, index) = match seg.split_once('[') {
            Some((n, i)) => (n.to_string(), Some(i.trim_end_matches(']').to_string())),
            None => (seg.clone(), None),
        };
        let mut next = Vec::new();
        for c in cur {
            let base = if name.is_empty() {
                Some(c)
            } else {
                c.get(&name).cloned()
            };
            let Some(base) = base else { continue };
            match index.as_deref() {
                None => next.push(base),
                Some("*") => next.extend(base.as_array().cloned().unwrap_or_default()),
                Some(i) if i.starts_with("?(") => {
                    // ?(@.type=="Ready")
                    let inner = i.trim_start_matches("?(").trim_end_matches(')');
                    let (lhs, rhs) = inner.split_once("==").ok_or("unsupported filter")?;
                    let key = lhs.trim().trim_start_matches("@.");
                    let want = rhs.trim().trim_matches(|c| c == '"' || c == '\'');
                    for e in base.as_array().cloned().unwrap_or_default() {
                        if e.pointer(&format!("/{}", key.replace('.', "/")))
                            .and_then(Value::as_str)
                            == Some(want)
                        {
                            next.push(e);
                        }
                    }
                }
                Some(i) => {
                    let n: i64 = i.parse().map_err(|_| format!("invalid array index {i}"))?;
                    let arr = base.as_array().cloned().unwrap_or_default();
                    let idx = if n < 0 { arr.len() as i64 + n } else { n };
                    match arr.get(idx as usize) {
                        Some(e) if idx >= 0 => next.push(e.clone()),
                        _ => return Err("array index out of bounds".to_string()),
                    }
                }
            }
        }
        cur = next;
    }
    Ok(cur)
}

/// `.a.b[0].c` → ["a", "b[0]", "c"], keeping dots inside `[...]` (filters) together.
fn split_segments(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for ch in expr.chars() {
        match ch {
            '[' => {
                depth += 1;
                cur.push(ch)
            }
            ']' => {
                depth -= 1;
                cur.push(ch)
            }
            '.' if depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(ch),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn jsonpath_subset() {
        let v = json!({"items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}],
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(jsonpath("{.items[*].metadata.name}", &v).unwrap(), "a b");
        assert_eq!(
            jsonpath("{.status.conditions[?(@.type==\"Ready\")].status}", &v).unwrap(),
            "True"
        );
        assert_eq!(jsonpath("x={.items[0].metadata.name}", &v).unwrap(), "x=a");
    }
}
