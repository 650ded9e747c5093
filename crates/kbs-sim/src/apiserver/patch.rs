//! Patches and field ownership: JSON merge patch (RFC 7386), JSON patch (RFC 6902),
//! strategic merge patch treated as merge patch (lists are replaced: a documented
//! difference, kbs patches scalars and maps), and server-side apply with field managers.
//!
//! Field ownership is tracked per leaf path (lists are leaves) in `metadata.managedFields`
//! in the real `FieldsV1` shape (`{"f:spec":{"f:replicas":{}}}`). An apply that changes a
//! leaf another manager owns is a conflict unless forced, with structured-merge-diff's
//! message (sigs.k8s.io/structured-merge-diff merge/conflict.go `Conflicts.Error`).

use serde_json::{Map, Value};

/// RFC 7386: null deletes, objects merge, everything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Some(t) = target.as_object_mut() {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// RFC 6902 `add`/`remove`/`replace`/`test`; error texts are the API server's
/// (`the server rejected our request due to an error in our request` is kubectl's
/// wrapper; the server says what failed).
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops
        .as_array()
        .ok_or("json patch must be an array of operations")?;
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("");
        let path = op.get("path").and_then(Value::as_str).unwrap_or("");
        let mut tokens: Vec<String> = path.split('/').skip(1).map(unescape).collect();
        let last = tokens.pop().ok_or_else(|| format!("invalid path \"{path}\""))?;
        let mut parent = &mut *target;
        for t in &tokens {
            parent = match parent {
                Value::Object(m) => m.get_mut(t),
                Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
                _ => None,
            }
            .ok_or_else(|| format!("doc is missing path: \"{path}\": missing value"))?;
        }
        let value = op.get("value").cloned().unwrap_or(Value::Null);
        match (kind, parent) {
            ("add", Value::Object(m)) | ("replace", Value::Object(m)) => {
                if kind == "replace" && !m.contains_key(&last) {
                    return Err(format!(
                        "replace operation does not apply: doc is missing key: {path}: missing value"
                    ));
                }
                m.insert(last, value);
            }
            ("add", Value::Array(a)) => {
                if last == "-" {
                    a.push(value);
                } else {
                    let i: usize = last.parse().map_err(|_| format!("invalid index in \"{path}\""))?;
                    if i > a.len() {
                        return Err(format!(
                            "add operation does not apply: doc is missing path: \"{path}\": missing value"
                        ));
                    }
                    a.insert(i, value);
                }
            }
            ("replace", Value::Array(a)) => {
                let slot = last.parse::<usize>().ok().and_then(|i| a.get_mut(i));
                *slot.ok_or_else(|| {
                    format!("replace operation does not apply: doc is missing key: {path}: missing value")
                })? = value;
            }
            ("remove", Value::Object(m)) => {
                m.remove(&last).ok_or_else(|| {
                    format!("remove operation does not apply: doc is missing path: \"{path}\": missing value")
                })?;
            }
            ("remove", Value::Array(a)) => match last.parse::<usize>() {
                Ok(i) if i < a.len() => {
                    a.remove(i);
                }
                _ => {
                    return Err(format!(
                        "remove operation does not apply: doc is missing path: \"{path}\": missing value"
                    ))
                }
            },
            ("test", p) => {
                let cur = match p {
                    Value::Object(m) => m.get(&last),
                    Value::Array(a) => last.parse::<usize>().ok().and_then(|i| a.get(i)),
                    _ => None,
                };
                if cur != Some(&value) {
                    return Err(format!("testing value {path} failed: test failed"));
                }
            }
            (k, _) => return Err(format!("Unexpected kind: {k}")),
        }
    }
    Ok(())
}

/// Leaf paths of an object, skipping identity fields and server-owned metadata.
pub fn leaf_paths(v: &Value) -> Vec<Vec<String>> {
    fn walk(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    let top = prefix.is_empty();
                    if top && matches!(k.as_str(), "apiVersion" | "kind" | "status") {
                        continue;
                    }
                    if prefix.len() == 1
                        && prefix[0] == "metadata"
                        && matches!(
                            k.as_str(),
                            "name"
                                | "namespace"
                                | "resourceVersion"
                                | "uid"
                                | "creationTimestamp"
                                | "managedFields"
                                | "generation"
                        )
                    {
                        continue;
                    }
                    prefix.push(k.clone());
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => out.push(prefix.clone()),
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

fn at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, k| cur.get(k))
}

fn fields_v1(paths: &[Vec<String>]) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut cur = &mut root;
        for k in p {
            cur = cur
                .entry(format!("f:{k}"))
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("inserted an object");
        }
    }
    Value::Object(root)
}

fn paths_of_fields(f: &Value) -> Vec<Vec<String>> {
    fn walk(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    prefix.push(k.strip_prefix("f:").unwrap_or(k).to_string());
                    walk(child, prefix, out);
                    prefix.pop();
                }
            }
            _ => {
                if !prefix.is_empty() {
                    out.push(prefix.clone())
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(f, &mut Vec::new(), &mut out);
    out
}

/// (manager, operation, paths) from `metadata.managedFields`.
fn managers(obj: &Value) -> Vec<(String, String, String, Vec<Vec<String>>)> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            (
                s("manager"),
                s("operation"),
                s("apiVersion"),
                paths_of_fields(e.get("fieldsV1").unwrap_or(&Value::Null)),
            )
        })
        .collect()
}

fn set_managers(obj: &mut Value, entries: Vec<(String, String, String, Vec<Vec<String>>)>, time: &str) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|(_, _, _, p)| !p.is_empty())
        .map(|(m, op, av, p)| {
            serde_json::json!({"manager": m, "operation": op, "apiVersion": av, "time": time,
                "fieldsType": "FieldsV1", "fieldsV1": fields_v1(&p)})
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("managedFields".into(), Value::Array(list));
    }
}

fn dotted(p: &[String]) -> String {
    p.iter().map(|k| format!(".{k}")).collect()
}

/// Records that `manager` (an Update: create, replace, patch) now owns the leaves whose
/// values changed from `old` to `new`.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, time: &str) {
    let mut entries = old.map(managers).unwrap_or_default();
    let changed: Vec<Vec<String>> = leaf_paths(new)
        .into_iter()
        .filter(|p| old.and_then(|o| at(o, p)) != at(new, p))
        .collect();
    if changed.is_empty() && old.is_some() {
        set_managers(new, entries, time);
        return;
    }
    for e in entries.iter_mut() {
        e.3.retain(|p| !changed.contains(p));
    }
    let av = new
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match entries.iter_mut().find(|e| e.0 == manager && e.1 == "Update") {
        Some(e) => e.3.extend(changed),
        None => entries.push((manager.to_string(), "Update".into(), av, changed)),
    }
    set_managers(new, entries, time);
}

/// Server-side apply of `applied` by `manager` onto `current` (None: create).
pub fn server_side_apply(
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    time: &str,
) -> Result<Value, String> {
    let mine = leaf_paths(applied);
    let mut entries = current.map(managers).unwrap_or_default();
    let mut conflicts: Vec<(String, String, Vec<String>)> = Vec::new();
    if let Some(cur) = current {
        for (m, op, av, paths) in &entries {
            if m == manager && op == "Apply" {
                continue;
            }
            for p in paths {
                if mine.contains(p) && at(cur, p) != at(applied, p) {
                    conflicts.push((m.clone(), av.clone(), p.clone()));
                }
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_message(&conflicts));
    }
    let mut out = current.cloned().unwrap_or_else(|| applied.clone());
    if current.is_some() {
        // Fields this manager applied before but dropped now are removed, as SSA does.
        let before: Vec<Vec<String>> = entries
            .iter()
            .filter(|e| e.0 == manager && e.1 == "Apply")
            .flat_map(|e| e.3.clone())
            .collect();
        for p in before.iter().filter(|p| !mine.contains(p)) {
            let owned_elsewhere = entries
                .iter()
                .any(|e| !(e.0 == manager && e.1 == "Apply") && e.3.contains(p));
            if !owned_elsewhere {
                remove_path(&mut out, p);
            }
        }
        merge_patch(&mut out, &strip_nulls(applied));
    }
    for e in entries.iter_mut() {
        if !(e.0 == manager && e.1 == "Apply") {
            // Forced: conflicting leaves change owner; equal values stay shared.
            e.3.retain(|p| !mine.contains(p) || current.and_then(|c| at(c, p)) == at(applied, p));
        }
    }
    entries.retain(|e| !(e.0 == manager && e.1 == "Apply"));
    let av = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    entries.push((manager.to_string(), "Apply".into(), av, mine));
    set_managers(&mut out, entries, time);
    Ok(out)
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn remove_path(v: &mut Value, p: &[String]) {
    let Some((last, parents)) = p.split_last() else {
        return;
    };
    let mut cur = v;
    for k in parents {
        match cur.get_mut(k) {
            Some(c) => cur = c,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// `Apply failed with N conflict(s): …` as structured-merge-diff words it.
pub fn conflict_message(conflicts: &[(String, String, Vec<String>)]) -> String {
    let n = conflicts.len();
    if n == 1 {
        let (m, av, p) = &conflicts[0];
        return format!(
            "Apply failed with 1 conflict: conflict with \"{m}\" using {av}: {}",
            dotted(p)
        );
    }
    let mut by_manager: Vec<(String, String, Vec<String>)> = Vec::new();
    for (m, av, p) in conflicts {
        match by_manager.iter_mut().find(|e| &e.0 == m) {
            Some(e) => e.2.push(dotted(p)),
            None => by_manager.push((m.clone(), av.clone(), vec![dotted(p)])),
        }
    }
    let body: Vec<String> = by_manager
        .iter()
        .map(|(m, av, paths)| {
            if paths.len() == 1 {
                format!("conflict with \"{m}\" using {av}: {}", paths[0])
            } else {
                format!("conflicts with \"{m}\" using {av}:\n- {}", paths.join("\n- "))
            }
        })
        .collect();
    format!("Apply failed with {n} conflicts: {}", body.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_and_json_patch() {
        let mut v = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut v, &json!({"a": {"b": null, "d": 3}, "l": [9]}));
        assert_eq!(v, json!({"a": {"c": 2, "d": 3}, "l": [9]}));
        json_patch(&mut v, &json!([{"op": "replace", "path": "/l/0", "value": 80}, {"op": "add", "path": "/l/-", "value": 5}])).unwrap();
        assert_eq!(v["l"], json!([80, 5]));
        assert!(json_patch(&mut v, &json!([{"op": "remove", "path": "/zz"}])).is_err());
    }

    #[test]
    fn apply_conflicts_with_another_manager_unless_forced() {
        let t = "2026-11-22T00:00:00Z";
        let base = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}});
        let mut created = base.clone();
        record_update(None, &mut created, "kubectl-client-side-apply", t);
        let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 3}});
        assert_eq!(
            server_side_apply(Some(&created), &applied, "kubectl", false, t).unwrap_err(),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"
        );
        let forced = server_side_apply(Some(&created), &applied, "kubectl", true, t).unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        // Same value: no conflict, shared ownership.
        assert!(server_side_apply(Some(&created), &base, "kubectl", false, t).is_ok());
    }
}
