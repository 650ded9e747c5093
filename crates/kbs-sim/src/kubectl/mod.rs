//! The simulated `kubectl`: the commands and flags kbs (and the book) use, against the
//! simulated API server, printing what kubectl prints (k8s.io/kubectl pkg/cmd/*).
//!
//! Flags are parsed by hand: kubectl accepts them anywhere on the line, `-n ns`, `-nns`,
//! `--namespace=ns`, and repeated `-f`.

pub mod output;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::kubeclient::{Client, Kubeconfig, Reply};

pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Parsed command line: positional words and flag values (last wins; `-f` accumulates).
#[derive(Debug, Default, Clone)]
pub struct Args {
    pub words: Vec<String>,
    pub flags: BTreeMap<String, Vec<String>>,
}

/// Flags that take no value.
const BOOL_FLAGS: &[&str] = &[
    "all-namespaces",
    "server-side",
    "force-conflicts",
    "overwrite",
    "all",
    "ignore-not-found",
    "watch",
    "wait",
    "show-labels",
    "no-headers",
    "dry-run",
    "save-config",
    "short",
    "client",
    "force",
];

fn long_name(short: char) -> Option<&'static str> {
    Some(match short {
        'n' => "namespace",
        'A' => "all-namespaces",
        'o' => "output",
        'f' => "filename",
        'l' => "selector",
        'p' => "patch",
        'w' => "watch",
        _ => return None,
    })
}

impl Args {
    pub fn parse(argv: &[String]) -> Result<Args, String> {
        let mut a = Args::default();
        let mut i = 0;
        while i < argv.len() {
            let w = &argv[i];
            i += 1;
            let (name, inline) = if let Some(l) = w.strip_prefix("--") {
                match l.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (l.to_string(), None),
                }
            } else if w.len() > 1 && w.starts_with('-') && w != "-" {
                let c = w.chars().nth(1).unwrap_or(' ');
                let name =
                    long_name(c).ok_or_else(|| format!("error: unknown shorthand flag: '{c}' in {w}"))?;
                let rest = &w[2..];
                let rest = rest.strip_prefix('=').unwrap_or(rest);
                (name.to_string(), (!rest.is_empty()).then(|| rest.to_string()))
            } else {
                a.words.push(w.clone());
                continue;
            };
            let value = if BOOL_FLAGS.contains(&name.as_str()) {
                inline.unwrap_or_else(|| "true".into())
            } else {
                match inline {
                    Some(v) => v,
                    None => {
                        let v = argv
                            .get(i)
                            .cloned()
                            .ok_or_else(|| format!("error: flag needs an argument: --{name}"))?;
                        i += 1;
                        v
                    }
                }
            };
            a.flags.entry(name).or_default().push(value);
        }
        Ok(a)
    }
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags.get(name).and_then(|v| v.last()).map(String::as_str)
    }
    pub fn on(&self, name: &str) -> bool {
        self.flag(name).is_some_and(|v| v != "false")
    }
}

/// A resource as discovery describes it.
#[derive(Debug, Clone)]
pub struct ApiResource {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
}

impl ApiResource {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    /// `deployment.apps`, `node`: how kubectl names objects in its output.
    fn display(&self) -> String {
        let k = self.kind.to_lowercase();
        if self.group.is_empty() {
            k
        } else {
            format!("{k}.{}", self.group)
        }
    }
    fn path(&self, ns: &str, name: &str) -> String {
        let r = crate::apiserver::resources::Resource {
            group: self.group.clone(),
            version: self.version.clone(),
            plural: self.plural.clone(),
            kind: self.kind.clone(),
            namespaced: self.namespaced,
            short_names: vec![],
        };
        crate::apiserver::resources::object_path(&r, ns, name)
    }
}

/// One kubectl run: client, discovery cache, output buffers.
pub struct Kubectl {
    pub client: Client,
    resources: Option<Vec<ApiResource>>,
    pub out: String,
    pub err: String,
    pub poll: Duration,
}

/// How a command ended: exit status 1 with its error text already in `err`.
type Res = Result<(), ()>;

impl Kubectl {
    pub fn new(config: Kubeconfig) -> Result<Kubectl, String> {
        let mut client = Client::new(config)?;
        client.user_agent = "kubectl/v1.36.0 (linux/amd64) kubernetes/kbs-sim".into();
        Ok(Kubectl {
            client,
            resources: None,
            out: String::new(),
            err: String::new(),
            poll: Duration::from_millis(500),
        })
    }

    fn fail<T>(&mut self, msg: impl AsRef<str>) -> Result<T, ()> {
        self.err.push_str(msg.as_ref());
        self.err.push('\n');
        Err(())
    }

    fn say(&mut self, line: impl AsRef<str>) {
        self.out.push_str(line.as_ref());
        self.out.push('\n');
    }

    fn req(&mut self, method: &str, path: &str, ct: &str, body: &[u8]) -> Result<Reply, ()> {
        match self.client.request(method, path, ct, body) {
            Ok(r) => Ok(r),
            Err(e) => {
                let (hp, _) = self.client.config.host_port().unwrap_or_default();
                let _: Res = self.fail(format!(
                    "The connection to the server {hp} was refused - did you specify the right host or port?"
                ));
                self.err.push_str(&format!("({e})\n"));
                Err(())
            }
        }
    }

    fn discover(&mut self, refresh: bool) -> Result<Vec<ApiResource>, ()> {
        if let (Some(r), false) = (&self.resources, refresh) {
            return Ok(r.clone());
        }
        let mut gvs = vec![(String::new(), "v1".to_string())];
        let groups = self.req("GET", "/apis", "", b"")?;
        if groups.status == 401 || groups.status == 403 {
            let msg = output::server_error(&groups);
            self.fail(msg)?;
        }
        for g in groups.body["groups"].as_array().cloned().unwrap_or_default() {
            for v in g["versions"].as_array().cloned().unwrap_or_default() {
                gvs.push((
                    g["name"].as_str().unwrap_or("").into(),
                    v["version"].as_str().unwrap_or("").into(),
                ));
            }
        }
        let mut out = Vec::new();
        for (g, v) in gvs {
            let path = if g.is_empty() {
                format!("/api/{v}")
            } else {
                format!("/apis/{g}/{v}")
            };
            let list = self.req("GET", &path, "", b"")?;
            for r in list.body["resources"].as_array().cloned().unwrap_or_default() {
                out.push(ApiResource {
                    group: g.clone(),
                    version: v.clone(),
                    plural: r["name"].as_str().unwrap_or("").into(),
                    kind: r["kind"].as_str().unwrap_or("").into(),
                    namespaced: r["namespaced"].as_bool().unwrap_or(false),
                    short_names: r["shortNames"]
                        .as_array()
                        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                        .unwrap_or_default(),
                });
            }
        }
        self.resources = Some(out.clone());
        Ok(out)
    }

    /// `nodes`, `node`, `no`, `deployments.apps`, `Deployment`: kubectl's resource lookup.
    fn resource(&mut self, word: &str) -> Result<ApiResource, ()> {
        let w = word.to_lowercase();
        let (name, group) = match w.split_once('.') {
            Some((n, g)) => (n.to_string(), Some(g.to_string())),
            None => (w.clone(), None),
        };
        for refresh in [false, true] {
            let all = self.discover(refresh)?;
            let found = all.into_iter().find(|r| {
                (r.plural == name || r.kind.to_lowercase() == name || r.short_names.contains(&name))
                    && group.as_ref().is_none_or(|g| &r.group == g)
            });
            if let Some(r) = found {
                return Ok(r);
            }
        }
        self.fail(format!(
            "error: the server doesn't have a resource type \"{word}\""
        ))?;
        Err(())
    }

    fn resource_for(&mut self, api_version: &str, kind: &str) -> Result<Option<ApiResource>, ()> {
        for refresh in [false, true] {
            let all = self.discover(refresh)?;
            if let Some(r) = all
                .into_iter()
                .find(|r| r.api_version() == api_version && r.kind == kind)
            {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    fn namespace(args: &Args) -> String {
        args.flag("namespace").unwrap_or("default").to_string()
    }

    /// Objects from `-f` files (`-` = stdin text given, http URLs fetched), `List`s unrolled.
    fn objects(&mut self, args: &Args, stdin: &str) -> Result<Vec<(String, Value)>, ()> {
        let files = args.flags.get("filename").cloned().unwrap_or_default();
        if files.is_empty() {
            return self.fail("error: must specify one of -f and -k");
        }
        let mut out = Vec::new();
        for f in files {
            let text = if f == "-" {
                stdin.to_string()
            } else if f.starts_with("http://") {
                match fetch_http(&f) {
                    Ok(t) => t,
                    Err(e) => {
                        return self.fail(format!("error: unable to read URL \"{f}\", server reported {e}"))
                    }
                }
            } else {
                match std::fs::read_to_string(&f) {
                    Ok(t) => t,
                    Err(_) => return self.fail(format!("error: the path \"{f}\" does not exist")),
                }
            };
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let v: Value = match serde::Deserialize::deserialize(doc) {
                    Ok(v) => v,
                    Err(e) => {
                        return self.fail(format!(
                            "error: error parsing {f}: error converting YAML to JSON: {e}"
                        ))
                    }
                };
                if v.is_null() {
                    continue;
                }
                let bad_meta = v.get("metadata").is_some_and(|m| {
                    !m.is_object()
                        || m.get("annotations")
                            .is_some_and(|a| !a.is_object() && !a.is_null())
                });
                if !v.is_object() || bad_meta {
                    return self.fail(format!(
                        "error: error validating \"{f}\": error validating data: invalid object; if you choose to ignore these errors, turn validation off with --validate=false"
                    ));
                }
                if v.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List"))
                    && v.get("items").is_some()
                {
                    for item in v["items"].as_array().cloned().unwrap_or_default() {
                        out.push((f.clone(), item));
                    }
                } else {
                    out.push((f.clone(), v));
                }
            }
        }
        Ok(out)
    }

    /// Resolves an object from a manifest to (resource, namespace, name) or kubectl's mapping error.
    fn locate(
        &mut self,
        source: &str,
        obj: &Value,
        args: &Args,
    ) -> Result<(ApiResource, String, String), String> {
        let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ns_in_obj = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if av.is_empty() || kind.is_empty() {
            return Err(format!("error: error validating \"{source}\": error validating data: [apiVersion not set, kind not set]; if you choose to ignore these errors, turn validation off with --validate=false"));
        }
        if name.is_empty() && obj.pointer("/metadata/generateName").is_none() {
            return Err("error: resource name may not be empty".into());
        }
        let r = match self.resource_for(av, kind) {
            Ok(Some(r)) => r,
            Ok(None) => {
                let ns = if ns_in_obj.is_empty() { "" } else { ns_in_obj };
                return Err(format!(
                    "error: resource mapping not found for name: \"{name}\" namespace: \"{ns}\" from \"{source}\": no matches for kind \"{kind}\" in version \"{av}\"\nensure CRDs are installed first"
                ));
            }
            Err(()) => return Err(String::new()),
        };
        let ns = if !r.namespaced {
            String::new()
        } else if let Some(flag_ns) = args.flag("namespace") {
            if !ns_in_obj.is_empty() && ns_in_obj != flag_ns {
                return Err(format!("error: the namespace from the provided object \"{ns_in_obj}\" does not match the namespace \"{flag_ns}\". You must pass '--namespace={ns_in_obj}' to perform this operation."));
            }
            flag_ns.to_string()
        } else if ns_in_obj.is_empty() {
            "default".into()
        } else {
            ns_in_obj.to_string()
        };
        Ok((r, ns, name))
    }

    fn apply(&mut self, args: &Args, stdin: &str) -> Res {
        let objs = self.objects(args, stdin)?;
        let server_side = args.on("server-side");
        let manager = args
            .flag("field-manager")
            .unwrap_or(if server_side {
                "kubectl"
            } else {
                "kubectl-client-side-apply"
            })
            .to_string();
        let mut errors = Vec::new();
        for (src, obj) in objs {
            let (r, ns, name) = match self.locate(&src, &obj, args) {
                Ok(x) => x,
                Err(e) => {
                    if !e.is_empty() {
                        errors.push(e);
                    }
                    continue;
                }
            };
            let shown = format!("{}/{name}", r.display());
            if server_side {
                let mut q = format!("?fieldManager={}", crate::http::url_encode(&manager));
                if args.on("force-conflicts") {
                    q.push_str("&force=true");
                }
                let body = serde_json::to_vec(&obj).unwrap_or_default();
                let resp = self.req(
                    "PATCH",
                    &format!("{}{q}", r.path(&ns, &name)),
                    "application/apply-patch+yaml",
                    &body,
                )?;
                if resp.ok() {
                    self.say(format!("{shown} serverside-applied"));
                } else if resp.reason() == "Conflict" && resp.message().starts_with("Apply failed") {
                    errors.push(format!("error: {}\nPlease review the fields above--they currently have other managers. Here\nare the ways you can resolve this warning:\n* If you intend to manage all of these fields, please re-run the apply\n  command with the `--force-conflicts` flag.\n* If you do not intend to manage all of the fields, please edit your\n  manifest to remove references to the fields that should keep their\n  current managers.\n* You may co-own fields by updating your manifest to match the existing\n  value; in this case, you'll become the manager if the other manager(s)\n  stop managing the field (remove it from their configuration).\nSee https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts", resp.message()));
                } else {
                    errors.push(output::server_error(&resp));
                }
                continue;
            }
            // Client-side apply: the last-applied annotation carries the whole manifest.
            let mut desired = obj.clone();
            let mut clean = obj.clone();
            if let Some(a) = clean
                .pointer_mut("/metadata/annotations")
                .and_then(Value::as_object_mut)
            {
                a.remove(LAST_APPLIED);
            }
            let last = serde_json::to_string(&clean).unwrap_or_default();
            if desired.get("metadata").is_none_or(Value::is_null) {
                desired["metadata"] = json!({});
            }
            if desired
                .pointer("/metadata/annotations")
                .is_none_or(Value::is_null)
            {
                desired["metadata"]["annotations"] = json!({});
            }
            desired["metadata"]["annotations"][LAST_APPLIED] = json!(format!("{last}\n"));
            let path = r.path(&ns, &name);
            let cur = self.req("GET", &path, "", b"")?;
            let q = format!("?fieldManager={}", crate::http::url_encode(&manager));
            if cur.status == 404 {
                desired["metadata"]["namespace"] = json!(ns);
                if !r.namespaced {
                    if let Some(m) = desired["metadata"].as_object_mut() {
                        m.remove("namespace");
                    }
                }
                let body = serde_json::to_vec(&desired).unwrap_or_default();
                let resp = self.req(
                    "POST",
                    &format!("{}{q}", r.path(&ns, "")),
                    "application/json",
                    &body,
                )?;
                if resp.ok() {
                    self.say(format!("{shown} created"));
                } else {
                    errors.push(output::server_error(&resp));
                }
                continue;
            }
            if !cur.ok() {
                errors.push(output::server_error(&cur));
                continue;
            }
            let current = cur.body;
            let old_last: Value = current
                .pointer(&format!(
                    "/metadata/annotations/{}",
                    LAST_APPLIED.replace('/', "~1")
                ))
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(Value::Null);
            if old_last.is_null() {
                self.err.push_str(&format!("Warning: resource {}/{name} is missing the {LAST_APPLIED} annotation which is required by kubectl apply. kubectl apply should only be used on resources created declaratively by either kubectl create --save-config or kubectl apply. The missing annotation will be patched automatically.\n", r.plural));
            }
            let mut patch = desired.clone();
            add_deletions(&mut patch, &old_last);
            let mut merged = current.clone();
            crate::apiserver::patch::merge_patch(&mut merged, &patch);
            if merged == current {
                self.say(format!("{shown} unchanged"));
                continue;
            }
            let body = serde_json::to_vec(&patch).unwrap_or_default();
            let resp = self.req(
                "PATCH",
                &format!("{path}{q}"),
                "application/merge-patch+json",
                &body,
            )?;
            if resp.ok() {
                self.say(format!("{shown} configured"));
            } else {
                errors.push(output::server_error(&resp));
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        self.fail(errors.join("\n"))
    }

    fn create(&mut self, args: &Args, stdin: &str) -> Res {
        // `kubectl create namespace NAME` (k8s.io/kubectl pkg/cmd/create/create_namespace.go).
        if !args.flags.contains_key("filename")
            && matches!(args.words.get(1).map(String::as_str), Some("namespace" | "ns"))
        {
            let Some(name) = args.words.get(2) else {
                return self.fail("error: exactly one NAME is required, got 0");
            };
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
            let resp = self.req(
                "POST",
                "/api/v1/namespaces?fieldManager=kubectl-create",
                "application/json",
                body.to_string().as_bytes(),
            )?;
            return if resp.ok() {
                self.say(format!("namespace/{name} created"));
                Ok(())
            } else {
                self.fail(output::server_error(&resp))
            };
        }
        let objs = self.objects(args, stdin)?;
        let mut errors = Vec::new();
        for (src, mut obj) in objs {
            let (r, ns, name) = match self.locate(&src, &obj, args) {
                Ok(x) => x,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            if r.namespaced {
                obj["metadata"]["namespace"] = json!(ns);
            }
            let body = serde_json::to_vec(&obj).unwrap_or_default();
            let resp = self.req(
                "POST",
                &format!("{}?fieldManager=kubectl-create", r.path(&ns, "")),
                "application/json",
                &body,
            )?;
            if resp.ok() {
                self.say(format!("{}/{name} created", r.display()));
            } else {
                errors.push(output::server_error(&resp));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            self.fail(errors.join("\n"))
        }
    }

    /// `TYPE NAME...`, `TYPE/NAME...`, or `-f FILE`: the objects a command acts on.
    fn targets(
        &mut self,
        args: &Args,
        words: &[String],
        stdin: &str,
    ) -> Result<Vec<(ApiResource, String, String)>, ()> {
        if args.flags.contains_key("filename") {
            let objs = self.objects(args, stdin)?;
            let mut out = Vec::new();
            for (src, obj) in objs {
                match self.locate(&src, &obj, args) {
                    Ok(x) => out.push(x),
                    Err(e) => {
                        self.fail(e)?;
                    }
                }
            }
            return Ok(out);
        }
        let ns = Self::namespace(args);
        let mut out = Vec::new();
        let mut kind: Option<ApiResource> = None;
        for w in words {
            if let Some((t, n)) = w.split_once('/') {
                let r = self.resource(t)?;
                let ns = if r.namespaced { ns.clone() } else { String::new() };
                out.push((r, ns, n.to_string()));
            } else if let Some(r) = &kind {
                let ns = if r.namespaced { ns.clone() } else { String::new() };
                out.push((r.clone(), ns, w.clone()));
            } else {
                kind = Some(self.resource(w)?);
            }
        }
        if out.is_empty() {
            if let (Some(r), true) = (&kind, args.on("all") || args.flag("selector").is_some()) {
                let r = r.clone();
                let ns = if r.namespaced { ns.clone() } else { String::new() };
                let q = args
                    .flag("selector")
                    .map(|l| format!("?labelSelector={}", crate::http::url_encode(l)))
                    .unwrap_or_default();
                let list = self.req("GET", &format!("{}{q}", r.path(&ns, "")), "", b"")?;
                for item in list.body["items"].as_array().cloned().unwrap_or_default() {
                    let n = item
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    out.push((r.clone(), ns.clone(), n));
                }
                return Ok(out);
            }
            self.fail(match kind {
                Some(r) => format!("error: resource(s) were provided, but no name was specified for {}", r.plural),
                None => "error: you must specify the type of resource to get. Use \"kubectl api-resources\" for a complete list of supported resources.".into(),
            })?;
        }
        Ok(out)
    }

    fn get(&mut self, args: &Args) -> Res {
        let words = args.words[1..].to_vec();
        let Some(first) = words.first().cloned() else {
            return self.fail("You must specify the type of resource to get. Use \"kubectl api-resources\" for a complete list of supported resources.\n\nerror: Required resource not specified.\nUse \"kubectl explain <resource>\" for a detailed description of that resource (e.g. kubectl explain pods).\nSee 'kubectl get -h' for help and examples");
        };
        let all_ns = args.on("all-namespaces");
        let ns = Self::namespace(args);
        let out_fmt = args.flag("output").unwrap_or("").to_string();
        let mut items: Vec<(ApiResource, Value)> = Vec::new();
        let mut single = false;
        let mut errors = Vec::new();
        if words.len() == 1 && !first.contains('/') {
            for t in first.split(',') {
                let r = self.resource(t)?;
                let mut q = Vec::new();
                if let Some(f) = args.flag("field-selector") {
                    q.push(format!("fieldSelector={}", crate::http::url_encode(f)));
                }
                if let Some(l) = args.flag("selector") {
                    q.push(format!("labelSelector={}", crate::http::url_encode(l)));
                }
                let rns = if r.namespaced && !all_ns {
                    ns.clone()
                } else {
                    String::new()
                };
                let q = if q.is_empty() {
                    String::new()
                } else {
                    format!("?{}", q.join("&"))
                };
                let resp = self.req("GET", &format!("{}{q}", r.path(&rns, "")), "", b"")?;
                if !resp.ok() {
                    return self.fail(output::server_error(&resp));
                }
                for i in resp.body["items"].as_array().cloned().unwrap_or_default() {
                    items.push((r.clone(), i));
                }
            }
        } else {
            single = true;
            for (r, ns, name) in self.targets(args, &words, "")? {
                let resp = self.req("GET", &r.path(&ns, &name), "", b"")?;
                if resp.ok() {
                    items.push((r, resp.body));
                } else if !(resp.status == 404 && args.on("ignore-not-found")) {
                    errors.push(output::server_error(&resp));
                }
            }
        }
        let single_obj = single && items.len() == 1 && errors.is_empty();
        let as_value = |items: &[(ApiResource, Value)]| -> Value {
            if single_obj {
                items[0].1.clone()
            } else {
                json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                    "items": items.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>()})
            }
        };
        match out_fmt.as_str() {
            "json" => {
                let v = as_value(&items);
                self.say(serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            "yaml" => {
                let v = as_value(&items);
                let text = serde_yaml::to_string(&v).unwrap_or_default();
                self.out.push_str(&text);
            }
            "name" => {
                for (r, v) in &items {
                    let line = format!("{}/{}", r.display(), v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(""));
                    self.say(line);
                }
            }
            f if f.starts_with("jsonpath=") || f.starts_with("jsonpath-as-json=") => {
                let tpl = f.split_once('=').map(|x| x.1).unwrap_or("");
                let v = as_value(&items);
                match output::jsonpath(tpl, &v) {
                    Ok(s) => self.out.push_str(&s),
                    Err(e) => errors.push(format!("error: {e}")),
                }
            }
            "" | "wide" => {
                if items.is_empty() && errors.is_empty() {
                    let msg = if all_ns || items.is_empty() && words.len() == 1 && !self.resource(&first).map(|r| r.namespaced).unwrap_or(false) {
                        "No resources found".to_string()
                    } else {
                        format!("No resources found in {ns} namespace.")
                    };
                    self.err.push_str(&format!("{msg}\n"));
                }
                let mut by_kind: Vec<(String, Vec<Value>)> = Vec::new();
                for (r, v) in &items {
                    match by_kind.iter_mut().find(|k| k.0 == r.kind) {
                        Some(k) => k.1.push(v.clone()),
                        None => by_kind.push((r.kind.clone(), vec![v.clone()])),
                    }
                }
                let now = crate::clock::Clock::default().now();
                for (k, vs) in by_kind {
                    let t = output::table(&k, &vs, now, all_ns);
                    self.out.push_str(&t);
                }
            }
            other => errors.push(format!("error: unable to match a printer suitable for the output format \"{other}\", allowed formats are: custom-columns,custom-columns-file,go-template,go-template-file,json,jsonpath,jsonpath-as-json,jsonpath-file,name,template,templatefile,wide,yaml")),
        }
        if errors.is_empty() {
            Ok(())
        } else {
            self.fail(errors.join("\n"))
        }
    }

    fn delete(&mut self, args: &Args, stdin: &str) -> Res {
        let words = args.words[1..].to_vec();
        let mut errors = Vec::new();
        for (r, ns, name) in self.targets(args, &words, stdin)? {
            let resp = self.req("DELETE", &r.path(&ns, &name), "", b"")?;
            if resp.ok() {
                self.say(format!("{} \"{name}\" deleted", r.display()));
            } else if !(resp.status == 404 && args.on("ignore-not-found")) {
                errors.push(output::server_error(&resp));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            self.fail(errors.join("\n"))
        }
    }

    fn patch(&mut self, args: &Args) -> Res {
        let words = args.words[1..].to_vec();
        let Some(p) = args.flag("patch").map(str::to_string) else {
            return self.fail("error: must specify -p to patch");
        };
        let ct = match args.flag("type").unwrap_or("strategic") {
            "json" => "application/json-patch+json",
            "merge" => "application/merge-patch+json",
            "strategic" => "application/strategic-merge-patch+json",
            other => {
                return self.fail(format!(
                    "error: --type must be one of [json merge strategic], not \"{other}\""
                ))
            }
        };
        let patch_json: Value = match serde_yaml::from_str(&p) {
            Ok(v) => v,
            Err(e) => return self.fail(format!("error: unable to parse \"{p}\": {e}")),
        };
        let body = serde_json::to_vec(&patch_json).unwrap_or_default();
        let sub = args
            .flag("subresource")
            .map(|s| format!("/{s}"))
            .unwrap_or_default();
        for (r, ns, name) in self.targets(args, &words, "")? {
            let before = self.req("GET", &r.path(&ns, &name), "", b"")?;
            let resp = self.req(
                "PATCH",
                &format!("{}{sub}?fieldManager=kubectl-patch", r.path(&ns, &name)),
                ct,
                &body,
            )?;
            if !resp.ok() {
                return self.fail(output::server_error(&resp));
            }
            let same = before.body.pointer("/metadata/resourceVersion")
                == resp.body.pointer("/metadata/resourceVersion");
            let word = if same { "patched (no change)" } else { "patched" };
            self.say(format!("{}/{name} {word}", r.display()));
        }
        Ok(())
    }

    /// `annotate`/`label`: `k=v` sets, `k-` removes; an existing different value needs --overwrite.
    fn meta(&mut self, args: &Args, field: &str) -> Res {
        let words = args.words[1..].to_vec();
        let (pairs, objs): (Vec<String>, Vec<String>) = words
            .iter()
            .cloned()
            .partition(|w| w.contains('=') || w.ends_with('-'));
        if pairs.is_empty() {
            return self.fail(format!(
                "error: at least one {} update is required",
                if field == "labels" { "label" } else { "annotation" }
            ));
        }
        for (r, ns, name) in self.targets(args, &objs, "")? {
            let cur = self.req("GET", &r.path(&ns, &name), "", b"")?;
            if !cur.ok() {
                return self.fail(output::server_error(&cur));
            }
            let mut m = serde_json::Map::new();
            for p in &pairs {
                if let Some(k) = p.strip_suffix('-') {
                    m.insert(k.to_string(), Value::Null);
                    continue;
                }
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                let existing = cur
                    .body
                    .pointer(&format!("/metadata/{field}"))
                    .and_then(|a| a.get(k))
                    .and_then(Value::as_str);
                if existing.is_some_and(|e| e != v) && !args.on("overwrite") {
                    return self.fail(format!(
                        "error: '{k}' already has a value ({}), and --overwrite is false",
                        existing.unwrap_or("")
                    ));
                }
                m.insert(k.to_string(), json!(v));
            }
            let body = serde_json::to_vec(&json!({"metadata": {field: m}})).unwrap_or_default();
            let resp = self.req(
                "PATCH",
                &r.path(&ns, &name),
                "application/merge-patch+json",
                &body,
            )?;
            if !resp.ok() {
                return self.fail(output::server_error(&resp));
            }
            let verb = if field == "labels" { "labeled" } else { "annotated" };
            self.say(format!("{}/{name} {verb}", r.display()));
        }
        Ok(())
    }

    /// `taint nodes NAME|--all key[=value]:Effect[-]` (k8s.io/kubectl pkg/cmd/taint).
    fn taint(&mut self, args: &Args) -> Res {
        let words = args.words[1..].to_vec();
        let (specs, objs): (Vec<String>, Vec<String>) = words
            .iter()
            .cloned()
            .partition(|w| w.contains(':') || w.ends_with('-'));
        if specs.is_empty() {
            return self.fail("error: at least one taint update is required");
        }
        for (r, ns, name) in self.targets(args, &objs, "")? {
            let cur = self.req("GET", &r.path(&ns, &name), "", b"")?;
            if !cur.ok() {
                return self.fail(output::server_error(&cur));
            }
            let mut taints: Vec<Value> = cur
                .body
                .pointer("/spec/taints")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut removed = false;
            for spec in &specs {
                if let Some(t) = spec.strip_suffix('-') {
                    let (key, effect) = match t.split_once(':') {
                        Some((k, e)) => (k.split('=').next().unwrap_or(k).to_string(), Some(e.to_string())),
                        None => (t.to_string(), None),
                    };
                    let before = taints.len();
                    taints.retain(|x| {
                        !(x["key"] == key.as_str()
                            && effect.as_ref().is_none_or(|e| x["effect"] == e.as_str()))
                    });
                    if taints.len() == before {
                        return self.fail(format!("error: taint {t:?} not found"));
                    }
                    removed = true;
                    continue;
                }
                let Some((kv, effect)) = spec.split_once(':') else {
                    return self.fail(format!("error: invalid taint spec: {spec}"));
                };
                if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
                    return self.fail(format!(
                        "error: invalid taint spec: {spec}, unsupported taint effect {effect:?}"
                    ));
                }
                let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
                if taints.iter().any(|x| x["key"] == key && x["effect"] == effect) {
                    if !args.on("overwrite") {
                        return self.fail(format!("error: node {name} already has {key} taint(s) with same effect(s) and --overwrite is false"));
                    }
                    taints.retain(|x| !(x["key"] == key && x["effect"] == effect));
                }
                let mut t = json!({"key": key, "effect": effect});
                if !value.is_empty() {
                    t["value"] = json!(value);
                }
                taints.push(t);
            }
            let body =
                json!({"spec": {"taints": if taints.is_empty() { Value::Null } else { json!(taints) }}});
            let resp = self.req(
                "PATCH",
                &r.path(&ns, &name),
                "application/merge-patch+json",
                &serde_json::to_vec(&body).unwrap_or_default(),
            )?;
            if !resp.ok() {
                return self.fail(output::server_error(&resp));
            }
            let verb = if removed && specs.iter().all(|s| s.ends_with('-')) {
                "untainted"
            } else {
                "tainted"
            };
            self.say(format!("{}/{name} {verb}", r.display()));
        }
        Ok(())
    }

    fn certificate(&mut self, args: &Args) -> Res {
        let action = args.words.get(1).cloned().unwrap_or_default();
        let (ty, reason, message) = match action.as_str() {
            "approve" => (
                "Approved",
                "KubectlApprove",
                "This CSR was approved by kubectl certificate approve.",
            ),
            "deny" => (
                "Denied",
                "KubectlDeny",
                "This CSR was denied by kubectl certificate deny.",
            ),
            _ => {
                return self.fail(format!(
                    "error: unknown command \"{action}\" for \"kubectl certificate\""
                ))
            }
        };
        let names = args.words[2..].to_vec();
        if names.is_empty() && !args.flags.contains_key("filename") {
            return self.fail("error: one or more CSRs must be specified as <name> or -f <filename>");
        }
        let r = self.resource("certificatesigningrequests")?;
        for name in names {
            let path = r.path("", &name);
            let cur = self.req("GET", &path, "", b"")?;
            if !cur.ok() {
                return self.fail(output::server_error(&cur));
            }
            let mut csr = cur.body;
            let conds = csr
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if conds.iter().any(|c| c["type"] == ty) {
                self.say(format!(
                    "{}/{name} {}",
                    r.display(),
                    if ty == "Approved" { "approved" } else { "denied" }
                ));
                continue;
            }
            let mut conds = conds;
            let now = crate::clock::rfc3339(crate::clock::Clock::default().now());
            conds.push(json!({"type": ty, "status": "True", "reason": reason, "message": message, "lastUpdateTime": now}));
            csr["status"]["conditions"] = json!(conds);
            let resp = self.req(
                "PUT",
                &format!("{path}/approval"),
                "application/json",
                &serde_json::to_vec(&csr).unwrap_or_default(),
            )?;
            if !resp.ok() {
                return self.fail(output::server_error(&resp));
            }
            self.say(format!(
                "{}/{name} {}",
                r.display(),
                if ty == "Approved" { "approved" } else { "denied" }
            ));
        }
        Ok(())
    }

    fn wait(&mut self, args: &Args) -> Res {
        let Some(cond) = args.flag("for").map(str::to_string) else {
            return self.fail("error: --for must be specified");
        };
        let timeout = args
            .flag("timeout")
            .and_then(|t| crate::config::duration::parse_go_duration(t).ok())
            .unwrap_or(Duration::from_secs(30));
        let words = args.words[1..].to_vec();
        let targets = self.targets(args, &words, "")?;
        for (r, ns, name) in targets {
            let start = Instant::now();
            loop {
                let resp = self.req("GET", &r.path(&ns, &name), "", b"")?;
                let met = if cond == "delete" {
                    resp.status == 404
                } else if !resp.ok() {
                    if resp.status == 404 && start.elapsed() < timeout {
                        false
                    } else {
                        return self.fail(output::server_error(&resp));
                    }
                } else if let Some(c) = cond.strip_prefix("condition=") {
                    let (ty, want) = c.split_once('=').unwrap_or((c, "True"));
                    resp.body
                        .pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .is_some_and(|cs| {
                            cs.iter().any(|x| {
                                x["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(ty))
                                    && x["status"].as_str().is_some_and(|s| s.eq_ignore_ascii_case(want))
                            })
                        })
                } else if let Some(j) = cond.strip_prefix("jsonpath=") {
                    let (expr, want) = match j.rsplit_once('=') {
                        Some((e, w)) if e.ends_with('}') => (e.to_string(), Some(w.to_string())),
                        _ => (j.to_string(), None),
                    };
                    let expr = if expr.starts_with('{') {
                        expr
                    } else {
                        format!("{{{expr}}}")
                    };
                    let got = output::jsonpath(&expr, &resp.body).unwrap_or_default();
                    match want {
                        Some(w) => got == w.trim_matches(|c| c == '\'' || c == '"'),
                        None => !got.is_empty(),
                    }
                } else {
                    return self.fail(format!("error: unrecognized condition: \"{cond}\""));
                };
                if met {
                    let what = if cond == "delete" {
                        "deleted"
                    } else {
                        "condition met"
                    };
                    self.say(format!("{}/{name} {what}", r.display()));
                    break;
                }
                if start.elapsed() >= timeout {
                    return self.fail(format!(
                        "error: timed out waiting for the condition on {}/{name}",
                        r.plural
                    ));
                }
                std::thread::sleep(
                    self.poll
                        .min(timeout.saturating_sub(start.elapsed()))
                        .max(Duration::from_millis(10)),
                );
            }
        }
        Ok(())
    }

    /// `rollout status` for Deployments, DaemonSets, StatefulSets (k8s.io/kubectl
    /// pkg/polymorphichelpers/rollout_status.go texts).
    fn rollout(&mut self, args: &Args) -> Res {
        if args.words.get(1).map(String::as_str) != Some("status") {
            return self.fail("error: only `kubectl rollout status` is simulated");
        }
        let words = args.words[2..].to_vec();
        let timeout = args
            .flag("timeout")
            .and_then(|t| crate::config::duration::parse_go_duration(t).ok())
            .unwrap_or(Duration::from_secs(300));
        for (r, ns, name) in self.targets(args, &words, "")? {
            let start = Instant::now();
            let mut last = String::new();
            loop {
                let resp = self.req("GET", &r.path(&ns, &name), "", b"")?;
                if !resp.ok() {
                    return self.fail(output::server_error(&resp));
                }
                let v = &resp.body;
                let n = |p: &str| v.pointer(p).and_then(Value::as_i64).unwrap_or(0);
                let (done, msg) = match r.kind.as_str() {
                    "Deployment" => {
                        let want = v.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
                        let av = n("/status/availableReplicas");
                        if av >= want && n("/status/observedGeneration") >= n("/metadata/generation") {
                            (true, format!("deployment \"{name}\" successfully rolled out"))
                        } else {
                            (false, format!("Waiting for deployment \"{name}\" rollout to finish: {av} of {want} updated replicas are available..."))
                        }
                    }
                    "DaemonSet" => {
                        let want = n("/status/desiredNumberScheduled");
                        let av = n("/status/numberAvailable");
                        if av >= want && want > 0 {
                            (true, format!("daemon set \"{name}\" successfully rolled out"))
                        } else {
                            (false, format!("Waiting for daemon set \"{name}\" rollout to finish: {av} of {want} updated pods are available..."))
                        }
                    }
                    "StatefulSet" => {
                        let want = v.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
                        let ready = n("/status/readyReplicas");
                        if ready >= want {
                            (
                                true,
                                format!(
                                    "partitioned roll out complete: {want} new pods have been updated..."
                                ),
                            )
                        } else {
                            (false, format!("Waiting for {} pods to be ready...", want - ready))
                        }
                    }
                    _ => {
                        return self.fail(format!(
                            "error: no status viewer has been implemented for {}",
                            r.kind
                        ))
                    }
                };
                if msg != last {
                    self.say(&msg);
                    last = msg;
                }
                if done {
                    break;
                }
                if start.elapsed() >= timeout {
                    return self.fail("error: timed out waiting for the condition");
                }
                std::thread::sleep(self.poll);
            }
        }
        Ok(())
    }

    fn version(&mut self, args: &Args) -> Res {
        let client = crate::version::Version::current_for("kubectl");
        self.say(format!("Client Version: {}", client.git_version()));
        self.say("Kustomize Version: v5.7.1");
        if args.on("client") {
            return Ok(());
        }
        let resp = self.req("GET", "/version", "", b"")?;
        let server = resp.body["gitVersion"].as_str().unwrap_or("").to_string();
        self.say(format!("Server Version: {server}"));
        Ok(())
    }

    /// Runs `argv` (without the program name); `stdin` is what `-f -` reads.
    pub fn run(&mut self, argv: &[String], stdin: &str) -> i32 {
        let args = match Args::parse(argv) {
            Ok(a) => a,
            Err(e) => {
                self.err.push_str(&e);
                self.err.push('\n');
                return 1;
            }
        };
        let cmd = args.words.first().cloned().unwrap_or_default();
        let r = match cmd.as_str() {
            "get" => self.get(&args),
            "apply" => self.apply(&args, stdin),
            "create" => self.create(&args, stdin),
            "delete" => self.delete(&args, stdin),
            "patch" => self.patch(&args),
            "annotate" => self.meta(&args, "annotations"),
            "label" => self.meta(&args, "labels"),
            "taint" => self.taint(&args),
            "certificate" => self.certificate(&args),
            "wait" => self.wait(&args),
            "rollout" => self.rollout(&args),
            "version" => self.version(&args),
            "" => self.fail("kubectl controls the Kubernetes cluster manager (simulated by kbs-sim)."),
            other => self.fail(format!("error: unknown command \"{other}\" for \"kubectl\"")),
        };
        i32::from(r.is_err())
    }
}

/// Client-side apply's deletions: fields in the last applied configuration that the new
/// manifest no longer has become nulls in the merge patch.
fn add_deletions(patch: &mut Value, old: &Value) {
    let (Some(p), Some(o)) = (patch.as_object_mut(), old.as_object()) else {
        return;
    };
    for (k, ov) in o {
        match p.get_mut(k) {
            None => {
                p.insert(k.clone(), Value::Null);
            }
            Some(pv) if pv.is_object() && ov.is_object() => add_deletions(pv, ov),
            _ => {}
        }
    }
}

/// Plain HTTP GET for `-f http://…` (the lab's mirror of the add-on manifests).
fn fetch_http(url: &str) -> Result<String, String> {
    use std::io::BufReader;
    let rest = url.strip_prefix("http://").ok_or("not an http URL")?;
    let (hp, path) = rest
        .split_once('/')
        .map(|(h, p)| (h.to_string(), format!("/{p}")))
        .unwrap_or((rest.to_string(), "/".into()));
    let hp = if hp.contains(':') { hp } else { format!("{hp}:80") };
    use std::net::ToSocketAddrs;
    let addr = hp
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let mut sock =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    crate::http::write_request(
        &mut sock,
        "GET",
        &path,
        &hp,
        &[("Connection".into(), "close".into())],
        b"",
    )
    .map_err(|e| e.to_string())?;
    let resp = crate::http::read_response(&mut BufReader::new(sock)).map_err(|e| e.to_string())?;
    if resp.status != 200 {
        return Err(format!("status code {}", resp.status));
    }
    Ok(String::from_utf8_lossy(&resp.body).into_owned())
}

/// Which kubeconfig: `--kubeconfig`, `$KUBECONFIG` (first existing entry), `~/.kube/config`.
pub fn kubeconfig_path(args: &Args) -> std::path::PathBuf {
    if let Some(p) = args.flag("kubeconfig") {
        return p.into();
    }
    if let Ok(k) = std::env::var("KUBECONFIG") {
        if let Some(p) = k
            .split(':')
            .find(|p| !p.is_empty() && std::path::Path::new(p).exists())
        {
            return p.into();
        }
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    std::path::Path::new(&home).join(".kube/config")
}

/// The `kubectl` binary.
pub fn main(argv: &[String]) -> i32 {
    let args = match Args::parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if args.words.first().map(String::as_str) == Some("version") && args.on("client") {
        let v = crate::version::Version::current_for("kubectl");
        println!("Client Version: {}\nKustomize Version: v5.7.1", v.git_version());
        return 0;
    }
    let path = kubeconfig_path(&args);
    let cfg = match Kubeconfig::load(&path) {
        Ok(c) => c,
        Err(_) if args.words.first().map(String::as_str) == Some("version") && args.on("client") => {
            Kubeconfig::default()
        }
        Err(_) => {
            eprintln!("E0000 memcache.go:265] \"Unhandled Error\" err=\"couldn't get current server API group list: Get \\\"http://localhost:8080/api?timeout=32s\\\": dial tcp 127.0.0.1:8080: connect: connection refused\"");
            eprintln!("The connection to the server localhost:8080 was refused - did you specify the right host or port?");
            return 1;
        }
    };
    let mut k = match Kubectl::new(cfg) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let mut stdin = String::new();
    if args
        .flags
        .get("filename")
        .is_some_and(|f| f.iter().any(|x| x == "-"))
    {
        use std::io::Read;
        let _ = std::io::stdin().read_to_string(&mut stdin);
    }
    let code = k.run(argv, &stdin);
    print!("{}", k.out);
    eprint!("{}", k.err);
    code
}

#[cfg(test)]
mod tests;
