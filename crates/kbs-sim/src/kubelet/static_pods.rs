//! Static pods: the manifests in /etc/kubernetes/manifests, "run" as child processes of
//! the kubelet (the same kbs-sim binary under the component's name), restarted when the
//! manifest changes and stopped when it disappears (kubeadm reset removes them). The state
//! goes to `containerd::`-readable /run/kbs-sim/pods.json for `crictl ps`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command};

use serde_json::{json, Value};

use super::Root;

pub const MANIFESTS: &str = "/etc/kubernetes/manifests";
pub const PODS_STATE: &str = "/run/kbs-sim/pods.json";
/// `ip name;ip name` of the pod's `hostAliases`, for the process the kubelet starts.
pub const HOST_ALIASES_ENV: &str = "KBS_SIM_HOST_ALIASES";

/// The address `name` has in a static pod's `hostAliases` (from [`HOST_ALIASES_ENV`]).
pub fn host_alias(aliases: &str, name: &str) -> Option<std::net::IpAddr> {
    aliases.split(';').find_map(|pair| {
        let (ip, host) = pair.trim().split_once(' ')?;
        (host.trim() == name).then(|| ip.parse().ok()).flatten()
    })
}

/// A static pod's container: its name, image and command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSpec {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    /// `env` name/value pairs.
    pub env: Vec<(String, String)>,
    /// (mountPath, hostPath) of hostPath volumes.
    pub mounts: Vec<(String, String)>,
    /// `hostAliases`: (ip, hostname) pairs the pod's /etc/hosts gets.
    pub host_aliases: Vec<(String, String)>,
}

impl PodSpec {
    /// The tool to run and its arguments: the image's name when it is a simulated
    /// component (kube-vip's manifest has only `args: [manager]`), else `command[0]`.
    pub fn process(&self) -> Option<(String, Vec<String>)> {
        let from_image = self.image.rsplit('/').next()?.split(':').next()?.to_string();
        if PROCESSES.contains(&from_image.as_str()) {
            let args = match self.command.first() {
                Some(c) if c.ends_with(&from_image) => self.command[1..].to_vec(),
                _ => self.command.clone(),
            };
            return Some((from_image, args));
        }
        let first = self.command.first()?;
        let tool = std::path::Path::new(first).file_name()?.to_str()?.to_string();
        PROCESSES
            .contains(&tool.as_str())
            .then(|| (tool, self.command[1..].to_vec()))
    }

    /// The image tag as a version (`registry.k8s.io/kube-apiserver:v1.36.4` → `1.36.4`).
    pub fn version(&self) -> Option<String> {
        let tag = self.image.rsplit(':').next()?;
        crate::version::Version::parse(tag).map(|v| format!("{}.{}.{}", v.major, v.minor, v.patch))
    }
}

/// Parses a static pod manifest (first container; `command` plus `args`).
pub fn parse_manifest(text: &str) -> Option<PodSpec> {
    let v: Value = serde_yaml::from_str(text).ok()?;
    let c = v.pointer("/spec/containers/0")?;
    let mut command: Vec<String> = c
        .get("command")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    command.extend(
        c.get("args")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    let env = c
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some((
                e.get("name")?.as_str()?.to_string(),
                e.get("value").and_then(Value::as_str).unwrap_or("").to_string(),
            ))
        })
        .collect();
    let volumes = v
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mounts = c
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            let name = m.get("name")?.as_str()?;
            let host = volumes
                .iter()
                .find(|vol| vol.get("name").and_then(Value::as_str) == Some(name))?
                .pointer("/hostPath/path")?
                .as_str()?;
            Some((m.get("mountPath")?.as_str()?.to_string(), host.to_string()))
        })
        .collect();
    let host_aliases = v
        .pointer("/spec/hostAliases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            let ip = a.get("ip")?.as_str()?.to_string();
            let names = a.get("hostnames")?.as_array()?;
            Some(
                names
                    .iter()
                    .filter_map(|n| Some((ip.clone(), n.as_str()?.to_string())))
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect();
    Some(PodSpec {
        name: v.pointer("/metadata/name")?.as_str()?.to_string(),
        image: c.get("image").and_then(Value::as_str).unwrap_or("").to_string(),
        command,
        env,
        mounts,
        host_aliases,
    })
}

/// Components that are processes; the rest run inside the API server.
const PROCESSES: &[&str] = &["kube-apiserver", "kube-vip"];

pub struct StaticPods {
    root: Root,
    running: BTreeMap<String, Running>,
}

/// A static pod as the kubelet runs it.
struct Running {
    spec: PodSpec,
    child: Option<Child>,
    /// When its container (process) started, in the lab clock's unix seconds.
    started: i64,
    /// Restarts of the container since the kubelet started the pod (crictl's ATTEMPT).
    attempt: u32,
}

impl StaticPods {
    pub fn new(root: Root) -> StaticPods {
        StaticPods {
            root,
            running: BTreeMap::new(),
        }
    }

    fn wanted(&self) -> BTreeMap<String, PodSpec> {
        manifests(&self.root)
    }
}

/// The static pods in the manifest directory, by name.
pub fn manifests(root: &Root) -> BTreeMap<String, PodSpec> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(root.path(MANIFESTS))
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = e.path();
        let is_manifest = p
            .extension()
            .is_some_and(|x| x == "yaml" || x == "yml" || x == "json");
        if let Some(spec) = is_manifest
            .then(|| std::fs::read_to_string(&p).ok())
            .flatten()
            .and_then(|t| parse_manifest(&t))
        {
            out.insert(spec.name.clone(), spec);
        }
    }
    out
}

impl StaticPods {
    fn start(&self, spec: &PodSpec) -> Option<Child> {
        let exe = std::env::current_exe().ok()?;
        let (tool, args) = spec.process()?;
        let mut cmd = Command::new(exe);
        cmd.arg(&tool).args(args);
        if let Some(v) = spec.version() {
            cmd.env(
                format!("KBS_SIM_{}_VERSION", tool.to_uppercase().replace('-', "_")),
                v,
            );
        }
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        // The container's /etc/hosts would hold the pod's hostAliases; the process reads them here.
        let aliases: Vec<String> = spec
            .host_aliases
            .iter()
            .map(|(ip, name)| format!("{ip} {name}"))
            .collect();
        cmd.env(HOST_ALIASES_ENV, aliases.join(";"));
        // kube-vip reads /etc/kubernetes/admin.conf inside its container: the host file
        // mounted there (admin.conf or super-admin.conf) is what it really uses.
        if let Some((_, host)) = spec
            .mounts
            .iter()
            .find(|(m, _)| m == "/etc/kubernetes/admin.conf")
        {
            cmd.env("KBS_SIM_KUBE_VIP_KUBECONFIG", self.root.path(host));
        }
        cmd.spawn().ok()
    }

    /// Starts, restarts and stops processes to match the manifests; writes the pod list.
    pub fn sync(&mut self) {
        let wanted = self.wanted();
        let now = crate::clock::unix_seconds(crate::clock::Clock::default().now());
        let gone: Vec<String> = self
            .running
            .iter()
            .filter(|(name, r)| wanted.get(*name) != Some(&r.spec))
            .map(|(n, _)| n.clone())
            .collect();
        for name in gone {
            if let Some(Running {
                child: Some(mut child),
                ..
            }) = self.running.remove(&name)
            {
                stop(&mut child);
            }
        }
        for (name, spec) in wanted {
            match self.running.get_mut(&name) {
                None => {
                    let child = self.start(&spec);
                    self.running.insert(
                        name,
                        Running {
                            spec,
                            child,
                            started: now,
                            attempt: 0,
                        },
                    );
                }
                Some(r) => {
                    let exited = r
                        .child
                        .as_mut()
                        .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
                    if exited {
                        let child = self.start(&spec);
                        if let Some(r) = self.running.get_mut(&name) {
                            r.child = child;
                            r.started = now;
                            r.attempt += 1;
                        }
                    }
                }
            }
        }
        let node = hostname();
        let pods: Vec<Value> = self
            .running
            .iter()
            .enumerate()
            .map(|(i, (name, r))| {
                json!({"id": format!("{:013x}", i + 1), "name": name, "image": r.spec.image,
                    "imageId": image_id(&r.spec.image), "pod": format!("{name}-{node}"),
                    "podId": format!("{:013x}", 100 + i), "pid": r.child.as_ref().map(Child::id),
                    "kubeletPid": std::process::id(),
                    "createdAt": r.started, "attempt": r.attempt})
            })
            .collect();
        let path: PathBuf = self.root.path(PODS_STATE);
        if let Some(d) = path.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let _ = std::fs::write(path, serde_json::to_vec(&pods).unwrap_or_default());
    }
}

/// crictl's IMAGE column: the first 13 hex digits of the image's digest (here: of its name).
fn image_id(image: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, image.as_bytes())
        .as_ref()
        .iter()
        .take(7)
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..13]
        .to_string()
}

impl Drop for StaticPods {
    fn drop(&mut self) {
        for r in self.running.values_mut() {
            if let Some(c) = &mut r.child {
                stop(c);
            }
        }
    }
}

/// Stops a container's process as the kubelet does: SIGTERM, a grace period, then SIGKILL (the
/// grace is shorter than a pod's 30 s: the simulated components clean up within a second).
fn stop(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on our own child's pid, which is not reaped until wait below.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
