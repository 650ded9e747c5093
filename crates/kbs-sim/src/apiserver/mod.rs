//! The simulated kube-apiserver: the shared [`Store`] behind Kubernetes' REST paths,
//! with its authentication, authorization, admission and error texts.
//!
//! [`ApiServer::handle`] is the whole request pipeline without sockets (tests drive it
//! in-process); [`serve`] puts it behind rustls on a TCP listener with one thread per
//! connection. Where the state lives and how control planes share it: docs/simulation.md.

pub mod admission;
pub mod authz;
pub mod controllers;
pub mod patch;
pub mod replication;
pub mod resources;
mod serve;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Value};

pub use authz::Identity;
pub use serve::{main, serve, Running};

use crate::clock::Clock;
use crate::http::{Request, Response};
use crate::pki::CertAuthority;
use crate::store::{ApiError, ObjectKey, Store};
use admission::PortRange;
use authz::Attributes;
use resources::Resource;

/// What a kube-apiserver process is started with (the flags of its static pod manifest).
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: std::net::SocketAddr,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_ca_file: PathBuf,
    pub node_port_range: PortRange,
    /// Where the store persists (`None`: memory only).
    pub store_file: Option<PathBuf>,
    pub version: crate::version::Version,
    /// `--kbs-store-upstream`: serve the store of that API server instead of a local one
    /// (joined control planes; docs/simulation.md), authenticating as
    /// `--kubelet-client-certificate`/`--kubelet-client-key`.
    pub store_upstream: Option<String>,
    /// `--advertise-address`: with the port, this API server's URL in the member list.
    pub advertise: Option<String>,
    pub proxy_cert_file: PathBuf,
    pub proxy_key_file: PathBuf,
}

impl Config {
    /// From kube-apiserver flags (`--secure-port=6443 --tls-cert-file=…`); unknown flags
    /// are accepted as the real binary's many flags would be.
    pub fn from_args(args: &[String]) -> Result<Config, String> {
        let flag = |name: &str| {
            args.iter()
                .find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_string))
        };
        let port: u16 = flag("secure-port")
            .unwrap_or_else(|| "6443".into())
            .parse()
            .map_err(|_| "invalid --secure-port".to_string())?;
        let bind_ip = flag("bind-address").unwrap_or_else(|| "0.0.0.0".into());
        let bind = format!("{bind_ip}:{port}")
            .parse()
            .or_else(|_| format!("[{bind_ip}]:{port}").parse())
            .map_err(|_| format!("invalid --bind-address {bind_ip}"))?;
        let pki = "/etc/kubernetes/pki";
        let range = match flag("service-node-port-range") {
            Some(r) => PortRange::parse(&r).ok_or_else(|| {
                format!("invalid argument \"{r}\" for \"--service-node-port-range\" flag: invalid port range")
            })?,
            None => PortRange::default(),
        };
        let etcd_dir = flag("kbs-store-dir").unwrap_or_else(|| "/var/lib/etcd".into());
        Ok(Config {
            bind,
            cert_file: flag("tls-cert-file")
                .unwrap_or_else(|| format!("{pki}/apiserver.crt"))
                .into(),
            key_file: flag("tls-private-key-file")
                .unwrap_or_else(|| format!("{pki}/apiserver.key"))
                .into(),
            client_ca_file: flag("client-ca-file")
                .unwrap_or_else(|| format!("{pki}/ca.crt"))
                .into(),
            node_port_range: range,
            store_file: Some(PathBuf::from(etcd_dir).join("member/kbs-sim-store.json")),
            version: crate::version::Version::current_for("kube-apiserver"),
            store_upstream: flag("kbs-store-upstream"),
            advertise: flag("advertise-address"),
            proxy_cert_file: flag("kubelet-client-certificate")
                .unwrap_or_else(|| format!("{pki}/apiserver-kubelet-client.crt"))
                .into(),
            proxy_key_file: flag("kubelet-client-key")
                .unwrap_or_else(|| format!("{pki}/apiserver-kubelet-client.key"))
                .into(),
        })
    }
}

/// The CN a forwarding peer API server presents, and the identity headers it sets.
const PROXY_USER: &str = "kube-apiserver-kubelet-client";
const HDR_USER: &str = "X-Remote-User";
const HDR_GROUP: &str = "X-Remote-Group";
const HDR_FORWARDED: &str = "X-Kbs-Sim-Forwarded";

/// One API server: configuration, the store, the CA that signs CSRs.
pub struct ApiServer {
    pub config: Config,
    store: Mutex<Store>,
    role: Mutex<replication::Role>,
    ca: Option<CertAuthority>,
    pub clock: Clock,
}

/// A kube-apiserver `Status` failure.
fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Response {
    let mut v = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    if let Some(d) = details {
        v["details"] = d;
    }
    Response::json(code, &v)
}

fn api_error(e: &ApiError, r: &Resource, name: &str) -> Response {
    let (reason, details) = match e {
        ApiError::NotFound { .. } => (
            "NotFound",
            json!({"name": name, "group": r.group, "kind": r.plural}),
        ),
        ApiError::AlreadyExists { .. } => (
            "AlreadyExists",
            json!({"name": name, "group": r.group, "kind": r.plural}),
        ),
        ApiError::Conflict { .. } => (
            "Conflict",
            json!({"name": name, "group": r.group, "kind": r.plural}),
        ),
        ApiError::Invalid(_) => ("Invalid", json!({"name": name, "group": r.group, "kind": r.kind})),
    };
    status(e.status(), reason, &e.to_string(), Some(details))
}

fn invalid(msg: String, r: &Resource, name: &str) -> Response {
    status(
        422,
        "Invalid",
        &msg,
        Some(json!({"name": name, "group": r.group, "kind": r.kind})),
    )
}

fn bad_request(msg: &str) -> Response {
    status(400, "BadRequest", msg, None)
}

fn not_found_path() -> Response {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

/// The shapes the handlers index into: `metadata`, `spec`, `status` must be objects when
/// present (the real decoder rejects anything else with a type error).
fn well_formed(v: &Value) -> Result<(), Response> {
    for field in ["metadata", "spec", "status"] {
        if let Some(x) = v.get(field) {
            if !x.is_object() && !x.is_null() {
                let kind = v.get("kind").and_then(Value::as_str).unwrap_or("Object");
                return Err(bad_request(&format!(
                    "json: cannot unmarshal {} into Go struct field {kind}.{field}",
                    match x {
                        Value::String(_) => "string",
                        Value::Number(_) => "number",
                        Value::Bool(_) => "bool",
                        _ => "array",
                    }
                )));
            }
        }
    }
    if let Some(m) = v.get("metadata").and_then(Value::as_object) {
        for f in ["annotations", "labels"] {
            if m.get(f).is_some_and(|x| !x.is_object() && !x.is_null()) {
                return Err(bad_request(&format!("json: cannot unmarshal into Go struct field ObjectMeta.metadata.{f} of type map[string]string")));
            }
        }
    }
    Ok(())
}

/// Label selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-joined.
pub fn label_selector_matches(sel: &str, obj: &Value) -> bool {
    let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    sel.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .all(|term| {
            if let Some((k, v)) = term.split_once("!=") {
                get(k.trim()) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once('=') {
                get(k.trim()) == Some(v.trim_start_matches('=').trim())
            } else if let Some(k) = term.strip_prefix('!') {
                get(k).is_none()
            } else {
                get(term).is_some()
            }
        })
}

/// Field selectors over dotted paths (`spec.signerName=…`, `metadata.name!=x`).
pub fn field_selector_matches(sel: &str, obj: &Value) -> bool {
    sel.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .all(|term| {
            let (path, want, negate) = match term.split_once("!=") {
                Some((p, v)) => (p, v, true),
                None => match term.split_once('=') {
                    Some((p, v)) => (p, v.trim_start_matches('='), false),
                    None => return false,
                },
            };
            let pointer = format!("/{}", path.trim().replace('.', "/"));
            let have = match obj.pointer(&pointer) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            };
            (have == want.trim()) != negate
        })
}

fn random_suffix() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 5];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    // apiserver's generateName alphabet (k8s.io/apimachinery util/rand: no vowels).
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    b.iter()
        .map(|x| ALPHA[*x as usize % ALPHA.len()] as char)
        .collect()
}

impl ApiServer {
    /// An API server over `store`; `ca` signs approved CSRs (None: they stay unsigned).
    pub fn new(config: Config, mut store: Store, ca: Option<CertAuthority>, clock: Clock) -> ApiServer {
        let now = clock.now();
        for obj in authz::bootstrap_policy() {
            if let Some(k) = ObjectKey::of(&obj) {
                if store.get(&k).is_err() {
                    let _ = store.create(obj, now);
                }
            }
        }
        ApiServer {
            config,
            store: Mutex::new(store),
            role: Mutex::new(replication::Role::Unknown),
            ca,
            clock,
        }
    }

    /// Loads the configured files: TLS material, the CA key (next to the client CA), the store.
    pub fn from_config(config: Config, clock: Clock) -> Result<ApiServer, String> {
        let ca_pem = std::fs::read_to_string(&config.client_ca_file)
            .map_err(|e| format!("failed to read {}: {e}", config.client_ca_file.display()))?;
        let ca_key = config.client_ca_file.with_file_name("ca.key");
        let ca = std::fs::read_to_string(&ca_key)
            .ok()
            .and_then(|k| CertAuthority::load(&ca_pem, &k).ok());
        let store = match &config.store_file {
            Some(f) => match std::fs::read(f) {
                Ok(b) => Store::restore(&serde_json::from_slice(&b).unwrap_or(Value::Null)),
                Err(_) => Store::new(),
            },
            None => Store::new(),
        };
        Ok(ApiServer::new(config, store, ca, clock))
    }

    /// The store, locked (tests and in-process tools).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One controller pass (see [`controllers`]).
    pub fn tick(&self) {
        let now = self.clock.now();
        let mut s = self.store();
        let before = s.revision();
        controllers::tick(&mut s, self.ca.as_ref(), now);
        if s.revision() != before {
            self.persist(&s);
        }
    }

    pub(crate) fn persist(&self, s: &Store) {
        let Some(f) = &self.config.store_file else { return };
        if let Some(dir) = f.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = f.with_extension("tmp");
        if std::fs::write(&tmp, serde_json::to_vec(&s.snapshot()).unwrap_or_default()).is_ok() {
            let _ = std::fs::rename(&tmp, f);
        }
    }

    fn version_info(&self) -> Value {
        let v = self.config.version;
        json!({"major": v.major.to_string(), "minor": v.minor.to_string(), "emulationMajor": v.major.to_string(),
            "emulationMinor": v.minor.to_string(), "gitVersion": v.git_version(), "gitCommit": "kbs-sim",
            "gitTreeState": "clean", "buildDate": "2026-11-01T00:00:00Z", "goVersion": "go1.25.3",
            "compiler": "gc", "platform": "linux/amd64"})
    }

    /// Authenticates and serves one request. `peer_cert` is the verified client
    /// certificate (DER) if the client presented one.
    pub fn handle(&self, req: &Request, peer_cert: Option<&[u8]>) -> Response {
        let peer_id = peer_cert.and_then(crate::tls::subject_identity);
        let from_peer = peer_id.as_ref().is_some_and(|(cn, _)| cn == PROXY_USER);
        if req.path == "/kbs-sim/replica" {
            return if from_peer {
                Response::json(200, &self.replica())
            } else {
                status(
                    403,
                    "Forbidden",
                    "forbidden: User cannot get path \"/kbs-sim/replica\"",
                    None,
                )
            };
        }
        // Where object requests go: here (None), to the store's leader, or nowhere (Err).
        let upstream = match self.role() {
            replication::Role::Leader => Ok(None),
            replication::Role::Follower(url) => Ok(Some(url)),
            replication::Role::Unknown => Ok(self.config.store_upstream.clone()),
            replication::Role::NoQuorum => Err("etcdserver: request timed out"),
        };
        let leads = matches!(upstream, Ok(None));
        // Health, version and discovery come from this API server's own state; only object
        // requests need the store's leader.
        if resources::parse_path(&req.path).is_some() {
            match upstream {
                Err(msg) => return status(500, "", msg, None),
                Ok(Some(url)) => {
                    // One hop only: a forwarded request reaching a non-leader means the leader moved.
                    if req.header(HDR_FORWARDED).is_some() {
                        return status(500, "", "etcdserver: leader changed", None);
                    }
                    return self.forward(&url, req, peer_cert);
                }
                Ok(None) => {}
            }
        }
        // Controllers write, so only the leader runs them: a follower that did, on a health
        // probe, would move its copy ahead of the leader's and split the store.
        if leads {
            self.tick();
        }
        let now = self.clock.now();
        // A peer API server forwarding for its client (see `forward`).
        if peer_id.as_ref().is_some_and(|(cn, _)| cn == PROXY_USER) {
            if let Some(user) = req.header(HDR_USER) {
                let groups = req
                    .header(HDR_GROUP)
                    .map(|g| {
                        g.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                return self.handle_as(
                    req,
                    &Identity {
                        user: user.to_string(),
                        groups,
                    },
                );
            }
            if req.header("Authorization").is_some() {
                let id = {
                    let s = self.store();
                    authz::authenticate(&s, None, req.header("Authorization"), now)
                };
                return match id {
                    Ok(id) => self.handle_as(req, &id),
                    Err(_) => status(401, "Unauthorized", "Unauthorized", None),
                };
            }
        }
        let id = {
            let s = self.store();
            match authz::authenticate(&s, peer_cert, req.header("Authorization"), now) {
                Ok(id) => id,
                Err(_) => return status(401, "Unauthorized", "Unauthorized", None),
            }
        };
        self.handle_as(req, &id)
    }

    /// Forwards a request to the API server that holds the store, with the caller's
    /// identity in request headers (the requestheader pattern of kube-aggregator; here the
    /// trusted peer is any holder of an `apiserver-kubelet-client` certificate).
    fn forward(&self, upstream: &str, req: &Request, peer_cert: Option<&[u8]>) -> Response {
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
        let kc = crate::kubeclient::Kubeconfig {
            server: upstream.to_string(),
            ca_pem: read(&self.config.client_ca_file),
            client_cert_pem: Some(read(&self.config.proxy_cert_file)),
            client_key_pem: Some(read(&self.config.proxy_key_file)),
            token: None,
        };
        let mut client = match crate::kubeclient::Client::new(kc) {
            Ok(c) => c,
            Err(e) => {
                return status(
                    503,
                    "ServiceUnavailable",
                    &format!("etcdserver: request timed out ({e})"),
                    None,
                )
            }
        };
        let mut headers: Vec<(String, String)> = vec![(HDR_FORWARDED.into(), "1".into())];
        match peer_cert.and_then(crate::tls::subject_identity) {
            // Already forwarded once by a peer: pass its identity headers on.
            Some((cn, _)) if cn == PROXY_USER && req.header(HDR_USER).is_some() => {
                headers.push((HDR_USER.into(), req.header(HDR_USER).unwrap_or("").to_string()));
                headers.push((HDR_GROUP.into(), req.header(HDR_GROUP).unwrap_or("").to_string()));
            }
            Some((user, mut groups)) => {
                groups.push("system:authenticated".into());
                headers.push((HDR_USER.into(), user));
                headers.push((HDR_GROUP.into(), groups.join(",")));
            }
            None => match req.header("Authorization") {
                Some(a) => headers.push(("Authorization".into(), a.to_string())),
                None => {
                    headers.push((HDR_USER.into(), "system:anonymous".into()));
                    headers.push((HDR_GROUP.into(), "system:unauthenticated".into()));
                }
            },
        }
        let query: Vec<String> = req
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", crate::http::url_encode(k), crate::http::url_encode(v)))
            .collect();
        let target = if query.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{}", req.path, query.join("&"))
        };
        let ct = req.header("Content-Type").unwrap_or("").to_string();
        match client.request_with_headers(&req.method, &target, &ct, &headers, &req.body) {
            Ok(r) => Response {
                status: r.status,
                content_type: "application/json".into(),
                body: r.raw,
            },
            // The store is unreachable: what an API server says when etcd has no quorum.
            Err(_) => status(500, "", "etcdserver: request timed out", None),
        }
    }

    /// Serves a request for an authenticated identity.
    pub fn handle_as(&self, req: &Request, id: &Identity) -> Response {
        let path = req.path.trim_end_matches('/');
        match path {
            "/healthz" | "/livez" | "/readyz" => return Response::text(200, "ok"),
            "/version" => return Response::json(200, &self.version_info()),
            _ => {}
        }
        let Some(target) = resources::parse_path(path) else {
            return self.discovery(path, id);
        };
        let s = self.store();
        let Some(r) = resources::by_plural(&s, &target.group, &target.version, &target.plural) else {
            return not_found_path();
        };
        drop(s);
        let verb = match (req.method.as_str(), target.name.is_empty()) {
            ("GET", true) => "list",
            ("GET", false) => "get",
            ("POST", true) => "create",
            ("PUT", false) => "update",
            ("PATCH", false) => "patch",
            ("DELETE", false) => "delete",
            ("DELETE", true) => "deletecollection",
            _ => {
                return status(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                    None,
                )
            }
        };
        // A namespaced object's namespace: from the path, else the body (create in `default`).
        let attrs = Attributes {
            verb: verb.to_string(),
            group: r.group.clone(),
            resource: r.plural.clone(),
            subresource: target.subresource.clone(),
            namespace: if r.namespaced {
                target.namespace.clone()
            } else {
                String::new()
            },
            name: target.name.clone(),
        };
        {
            let s = self.store();
            if !authz::authorize(&s, id, &attrs) {
                let msg = authz::forbidden_message(id, &attrs, &r.qualified());
                return status(
                    403,
                    "Forbidden",
                    &msg,
                    Some(json!({"name": target.name, "group": r.group, "kind": r.plural})),
                );
            }
        }
        let resp = match verb {
            "list" => self.list(req, &r, &attrs.namespace),
            "get" => self.get(&r, &attrs),
            "create" => self.create(req, &r, &attrs, id),
            "update" => self.update(req, &r, &attrs),
            "patch" => self.patch(req, &r, &attrs),
            _ => self.delete(&r, &attrs),
        };
        if matches!(verb, "create" | "update" | "patch" | "delete") && resp.status < 300 {
            self.tick();
            let s = self.store();
            self.persist(&s);
        }
        resp
    }

    fn discovery(&self, path: &str, id: &Identity) -> Response {
        if !id.in_group("system:authenticated") {
            return status(
                403,
                "Forbidden",
                &authz::forbidden_path_message(id, "get", path),
                Some(json!({})),
            );
        }
        let s = self.store();
        let all = resources::all(&s);
        match path {
            "/api" => Response::json(
                200,
                &json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": self.config.bind.to_string()}]}),
            ),
            "/apis" => {
                let mut groups: Vec<(String, Vec<String>)> = Vec::new();
                for r in all.iter().filter(|r| !r.group.is_empty()) {
                    match groups.iter_mut().find(|g| g.0 == r.group) {
                        Some(g) if !g.1.contains(&r.version) => g.1.push(r.version.clone()),
                        Some(_) => {}
                        None => groups.push((r.group.clone(), vec![r.version.clone()])),
                    }
                }
                let groups: Vec<Value> = groups
                    .into_iter()
                    .map(|(g, vs)| {
                        let versions: Vec<Value> = vs
                            .iter()
                            .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                            .collect();
                        json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
                    })
                    .collect();
                Response::json(
                    200,
                    &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
                )
            }
            _ => {
                let gv = path
                    .strip_prefix("/api/")
                    .map(|v| (String::new(), v.to_string()))
                    .or_else(|| {
                        let rest = path.strip_prefix("/apis/")?;
                        let (g, v) = rest.split_once('/')?;
                        Some((g.to_string(), v.to_string()))
                    });
                let Some((g, v)) = gv else { return not_found_path() };
                let list: Vec<Value> = all
                    .iter()
                    .filter(|r| r.group == g && r.version == v)
                    .map(|r| json!({"name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced,
                        "kind": r.kind, "shortNames": r.short_names,
                        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}))
                    .collect();
                if list.is_empty() {
                    return not_found_path();
                }
                let gv = if g.is_empty() { v } else { format!("{g}/{v}") };
                Response::json(
                    200,
                    &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
                )
            }
        }
    }

    fn key(r: &Resource, a: &Attributes) -> ObjectKey {
        ObjectKey::new(&r.api_version(), &r.kind, &a.namespace, &a.name)
    }

    fn list(&self, req: &Request, r: &Resource, ns: &str) -> Response {
        let s = self.store();
        let ns = (r.namespaced && !ns.is_empty()).then_some(ns);
        let items: Vec<Value> = s
            .list(&r.api_version(), &r.kind, ns)
            .into_iter()
            .filter(|o| {
                req.param("labelSelector")
                    .is_none_or(|sel| label_selector_matches(sel, o))
            })
            .filter(|o| {
                req.param("fieldSelector")
                    .is_none_or(|sel| field_selector_matches(sel, o))
            })
            .cloned()
            .collect();
        Response::json(
            200,
            &json!({"apiVersion": r.api_version(), "kind": format!("{}List", r.kind),
            "metadata": {"resourceVersion": s.revision().to_string()}, "items": items}),
        )
    }

    fn get(&self, r: &Resource, a: &Attributes) -> Response {
        let s = self.store();
        match s.get(&Self::key(r, a)) {
            Ok(v) => Response::json(200, v),
            Err(e) => api_error(&e, r, &a.name),
        }
    }

    fn body(req: &Request) -> Result<Value, Response> {
        let text = String::from_utf8_lossy(&req.body);
        let v: Value = if req.header("Content-Type").is_some_and(|c| c.contains("yaml")) {
            serde_yaml::from_str(&text).map_err(|e| bad_request(&format!("error decoding YAML: {e}")))?
        } else {
            serde_json::from_str(&text)
                .map_err(|e| bad_request(&format!("couldn't get version/kind; json parse error: {e}")))?
        };
        if !v.is_object() {
            return Err(bad_request("Object 'Kind' is missing in request body"));
        }
        well_formed(&v)?;
        Ok(v)
    }

    /// Defaults, identity checks and admission shared by create, update and patch.
    fn admit(&self, s: &Store, obj: &mut Value, r: &Resource, a: &Attributes) -> Result<(), Response> {
        if obj.get("apiVersion").is_none() {
            obj["apiVersion"] = json!(r.api_version());
        }
        if obj.get("kind").is_none() {
            obj["kind"] = json!(r.kind);
        }
        if obj.get("kind").and_then(Value::as_str) != Some(r.kind.as_str()) {
            return Err(bad_request(&format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                obj["apiVersion"].as_str().unwrap_or(""),
                r.api_version()
            )));
        }
        if r.namespaced {
            let body_ns = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if !body_ns.is_empty() && body_ns != a.namespace {
                return Err(bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            obj["metadata"]["namespace"] = json!(a.namespace);
            if s.get(&ObjectKey::new("v1", "Namespace", "", &a.namespace))
                .is_err()
            {
                return Err(status(
                    404,
                    "NotFound",
                    &format!("namespaces \"{}\" not found", a.namespace),
                    Some(json!({"name": a.namespace, "kind": "namespaces"})),
                ));
            }
        } else if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("namespace");
        }
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        admission::validate_meta(obj, &r.kind, &r.group, &name).map_err(|m| invalid(m, r, &name))?;
        if r.kind == "Service" && r.group.is_empty() {
            admission::admit_service(s, obj, self.config.node_port_range)
                .map_err(|m| invalid(m, r, &name))?;
        }
        if r.kind == "EtcdMember" && obj.pointer("/spec/isLearner").and_then(Value::as_bool) == Some(true) {
            // etcd allows one learner at a time (server/etcdserver `ErrTooManyLearners`,
            // `maxLearners` = 1): a second concurrent control-plane join fails here.
            let other_learner = s.list(&r.api_version(), &r.kind, None).into_iter().any(|m| {
                m.pointer("/spec/isLearner").and_then(Value::as_bool) == Some(true)
                    && m.pointer("/metadata/name") != obj.pointer("/metadata/name")
            });
            if other_learner {
                return Err(status(
                    500,
                    "InternalError",
                    "etcdserver: too many learner members in cluster",
                    None,
                ));
            }
        }
        if r.kind == "Namespace" && obj.get("status").is_none() {
            obj["status"] = json!({"phase": "Active"});
        }
        Ok(())
    }

    fn manager(req: &Request, default: &str) -> String {
        req.param("fieldManager").map(str::to_string).unwrap_or_else(|| {
            req.header("User-Agent")
                .and_then(|u| u.split('/').next())
                .filter(|u| !u.is_empty())
                .unwrap_or(default)
                .to_string()
        })
    }

    fn create(&self, req: &Request, r: &Resource, a: &Attributes, id: &Identity) -> Response {
        let mut obj = match Self::body(req) {
            Ok(v) => v,
            Err(resp) => return resp,
        };
        if obj.get("metadata").is_none_or(Value::is_null) {
            obj["metadata"] = json!({});
        }
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() {
            match obj.pointer("/metadata/generateName").and_then(Value::as_str) {
                Some(g) => obj["metadata"]["name"] = json!(format!("{g}{}", random_suffix())),
                None => {
                    return invalid(
                        format!(
                        "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                        r.kind
                    ),
                        r,
                        "",
                    )
                }
            }
        }
        if r.kind == "CertificateSigningRequest" {
            if obj.get("spec").is_none_or(Value::is_null) {
                obj["spec"] = json!({});
            }
            obj["spec"]["username"] = json!(id.user);
            obj["spec"]["groups"] = json!(id.groups);
            obj["status"] = json!({});
        }
        let mut s = self.store();
        if let Err(resp) = self.admit(&s, &mut obj, r, a) {
            return resp;
        }
        if obj.pointer("/metadata/generation").is_none() {
            obj["metadata"]["generation"] = json!(1);
        }
        let now = self.clock.now();
        patch::record_update(
            None,
            &mut obj,
            &Self::manager(req, "unknown"),
            &crate::clock::rfc3339(now),
        );
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        match s.create(obj, now) {
            Ok(v) => Response::json(201, &v),
            Err(e) => api_error(&e, r, &name),
        }
    }

    fn write(
        &self,
        s: &mut Store,
        req: &Request,
        r: &Resource,
        a: &Attributes,
        mut obj: Value,
        current: Option<&Value>,
    ) -> Response {
        if let Err(resp) = self.admit(s, &mut obj, r, a) {
            return resp;
        }
        let now = self.clock.now();
        if let Some(cur) = current {
            if cur.get("spec") != obj.get("spec") {
                let g = cur
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                obj["metadata"]["generation"] = json!(g + 1);
            }
        }
        patch::record_update(
            current,
            &mut obj,
            &Self::manager(req, "unknown"),
            &crate::clock::rfc3339(now),
        );
        match s.update(obj, now) {
            Ok(v) => Response::json(200, &v),
            Err(e) => api_error(&e, r, &a.name),
        }
    }

    fn update(&self, req: &Request, r: &Resource, a: &Attributes) -> Response {
        let body = match Self::body(req) {
            Ok(v) => v,
            Err(resp) => return resp,
        };
        let mut s = self.store();
        let current = match s.get(&Self::key(r, a)) {
            Ok(v) => v.clone(),
            Err(e) => return api_error(&e, r, &a.name),
        };
        if body.pointer("/metadata/name").and_then(Value::as_str) != Some(a.name.as_str()) {
            return bad_request("the name of the object does not match the name on the URL");
        }
        let obj = match a.subresource.as_str() {
            "status" => {
                let mut o = current.clone();
                o["status"] = body.get("status").cloned().unwrap_or(json!({}));
                if let Some(rv) = body.pointer("/metadata/resourceVersion") {
                    o["metadata"]["resourceVersion"] = rv.clone();
                }
                o
            }
            "approval" if r.kind == "CertificateSigningRequest" => {
                let mut o = current.clone();
                o["status"]["conditions"] = body.pointer("/status/conditions").cloned().unwrap_or(json!([]));
                if let Err(m) = admission::validate_approval(&o) {
                    return invalid(m, r, &a.name);
                }
                o
            }
            "" => {
                let mut o = body;
                if let Some(st) = current.get("status") {
                    o["status"] = st.clone();
                }
                o
            }
            _ => return not_found_path(),
        };
        self.write(&mut s, req, r, a, obj, Some(&current))
    }

    fn patch(&self, req: &Request, r: &Resource, a: &Attributes) -> Response {
        let ct = req.header("Content-Type").unwrap_or("").to_string();
        let text = String::from_utf8_lossy(&req.body).to_string();
        let mut s = self.store();
        let current = s.get(&Self::key(r, a)).ok().cloned();
        let now = self.clock.now();
        if ct.starts_with("application/apply-patch") {
            let mut applied: Value = match serde_yaml::from_str(&text) {
                Ok(v) => v,
                Err(e) => return bad_request(&format!("error decoding YAML: {e}")),
            };
            if !applied.is_object() {
                return bad_request("Object 'Kind' is missing in request body");
            }
            if let Err(resp) = well_formed(&applied) {
                return resp;
            }
            if applied.get("metadata").is_none_or(Value::is_null) {
                applied["metadata"] = json!({});
            }
            applied["metadata"]["name"] = json!(a.name);
            let Some(manager) = req.param("fieldManager") else {
                return invalid(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
                    r,
                    &a.name,
                );
            };
            let force = req.param("force") == Some("true");
            let mut merged = match patch::server_side_apply(
                current.as_ref(),
                &applied,
                manager,
                force,
                &crate::clock::rfc3339(now),
            ) {
                Ok(v) => v,
                Err(m) => {
                    return status(
                        409,
                        "Conflict",
                        &m,
                        Some(json!({"name": a.name, "group": r.group, "kind": r.plural})),
                    )
                }
            };
            if let Err(resp) = self.admit(&s, &mut merged, r, a) {
                return resp;
            }
            return match current {
                Some(cur) => {
                    if cur.get("status").is_some() {
                        merged["status"] = cur["status"].clone();
                    }
                    if cur.get("spec") != merged.get("spec") {
                        let g = cur
                            .pointer("/metadata/generation")
                            .and_then(Value::as_i64)
                            .unwrap_or(1);
                        merged["metadata"]["generation"] = json!(g + 1);
                    }
                    if let Some(m) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("resourceVersion");
                    }
                    match s.update(merged, now) {
                        Ok(v) => Response::json(200, &v),
                        Err(e) => api_error(&e, r, &a.name),
                    }
                }
                None => {
                    merged["metadata"]["generation"] = json!(1);
                    match s.create(merged, now) {
                        Ok(v) => Response::json(201, &v),
                        Err(e) => api_error(&e, r, &a.name),
                    }
                }
            };
        }
        let Some(current) = current else {
            return api_error(
                &ApiError::NotFound {
                    resource: r.qualified(),
                    name: a.name.clone(),
                },
                r,
                &a.name,
            );
        };
        let p: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => return bad_request(&format!("error decoding patch: {e}")),
        };
        let mut obj = current.clone();
        if ct.starts_with("application/json-patch") {
            if let Err(m) = patch::json_patch(&mut obj, &p) {
                return status(422, "Invalid", &m, None);
            }
        } else if ct.starts_with("application/merge-patch")
            || ct.starts_with("application/strategic-merge-patch")
        {
            patch::merge_patch(&mut obj, &p);
        } else {
            return status(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json", None);
        }
        if let Err(resp) = well_formed(&obj) {
            return resp;
        }
        if a.subresource != "status" {
            if let Some(st) = current.get("status") {
                obj["status"] = st.clone();
            }
        }
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        self.write(&mut s, req, r, a, obj, Some(&current))
    }

    fn delete(&self, r: &Resource, a: &Attributes) -> Response {
        let mut s = self.store();
        match s.delete(&Self::key(r, a)) {
            Ok(v) => {
                if r.kind == "Namespace" {
                    s.delete_namespace_contents(&a.name);
                }
                Response::json(200, &v)
            }
            Err(e) => api_error(&e, r, &a.name),
        }
    }
}

/// Shared handle for serving threads.
pub type Shared = Arc<ApiServer>;

#[cfg(test)]
pub(crate) mod tests;
