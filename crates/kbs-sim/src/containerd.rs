//! Simulated containerd and crictl: a daemon that reads the real `/etc/containerd/config.toml`,
//! answers on the CRI socket, and a `crictl` that talks to it.
//!
//! No container ever runs in the lab; what matters to kbs is what it configures and checks: the
//! service starts and stays up, the socket exists (kubeadm's `CRI` preflight check), the config's
//! format fits the version (`version = 3` for 2.x, `2` still read by 2.x with a migration note,
//! `1` refused since 2.0), and the cgroup driver and sandbox image kbs wrote — which the simulated
//! kubelet compares with its own settings. The wire protocol is a line of JSON each way, not gRPC:
//! only the simulated crictl and kubelet speak it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const CONFIG_PATH: &str = "/etc/containerd/config.toml";
pub const SOCKET_PATH: &str = "/run/containerd/containerd.sock";
/// The containerd release the packages simulate.
pub const VERSION: &str = "v2.1.4";
const REVISION: &str = "75cb2b7193e4e490e9fbdc236c0e811ccaba3376";

/// What containerd made of its configuration, as `crictl info` and the kubelet see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    pub config_version: i64,
    /// `SystemdCgroup` of the runc runtime: must match the kubelet's `cgroupDriver: systemd`.
    pub systemd_cgroup: bool,
    pub sandbox_image: String,
}

/// Reads the config the way containerd 2.x does: absent file = defaults; version 1 refused.
pub fn load_config(text: Option<&str>) -> Result<RuntimeConfig, String> {
    let Some(text) = text else {
        return Ok(RuntimeConfig {
            config_version: 3,
            systemd_cgroup: false,
            sandbox_image: "registry.k8s.io/pause:3.10".into(),
        });
    };
    let value: toml::Table = text
        .parse()
        .map_err(|error| format!("failed to load TOML from {CONFIG_PATH}: {error}"))?;
    // containerd treats a config without `version` as version 1.
    let version = value
        .get("version")
        .and_then(toml::Value::as_integer)
        .unwrap_or(1);
    let (runtime, sandbox) = match version {
        3 => (
            "io.containerd.cri.v1.runtime",
            lookup(
                &value,
                &[
                    "plugins",
                    "io.containerd.cri.v1.images",
                    "pinned_images",
                    "sandbox",
                ],
            ),
        ),
        2 => (
            "io.containerd.grpc.v1.cri",
            lookup(&value, &["plugins", "io.containerd.grpc.v1.cri", "sandbox_image"]),
        ),
        other => {
            return Err(format!(
                "failed to load TOML from {CONFIG_PATH}: unsupported config version `{other}`: \
                 version 1 was removed in containerd 2.0, use version 2 or 3"
            ))
        }
    };
    let systemd_cgroup = lookup(
        &value,
        &[
            "plugins",
            runtime,
            "containerd",
            "runtimes",
            "runc",
            "options",
            "SystemdCgroup",
        ],
    )
    .and_then(|v| v.as_bool())
    .unwrap_or(false);
    Ok(RuntimeConfig {
        config_version: version,
        systemd_cgroup,
        sandbox_image: sandbox
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_else(|| "registry.k8s.io/pause:3.10".into()),
    })
}

fn lookup<'a>(table: &'a toml::Table, path: &[&str]) -> Option<&'a toml::Value> {
    let (last, parents) = path.split_last()?;
    let mut current = table;
    for key in parents {
        current = current.get(*key)?.as_table()?;
    }
    current.get(*last)
}

/// `containerd [--version | config default]`, or the daemon with no arguments.
pub fn main(args: &[String]) -> i32 {
    match args.get(1).map(String::as_str) {
        Some("--version" | "-v") => {
            println!("containerd github.com/containerd/containerd/v2 {VERSION} {REVISION}");
            0
        }
        None => match serve(Path::new(CONFIG_PATH), Path::new(SOCKET_PATH)) {
            Ok(()) => 0,
            Err(message) => {
                eprintln!("containerd: {message}");
                1
            }
        },
        Some(other) => {
            eprintln!("containerd: unknown command or flag {other:?} (the lab's containerd is simulated)");
            1
        }
    }
}

/// Loads the config, binds the socket, and answers until killed (systemd stops it with SIGTERM).
pub fn serve(config: &Path, socket: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(config).ok();
    let runtime = load_config(text.as_deref())?;
    if runtime.config_version == 2 {
        eprintln!(
            "level=warning msg=\"Configuration migrated from version 2, use `containerd config migrate` to avoid migration\""
        );
    }
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // A socket left by a killed daemon would make bind fail.
    let _ = std::fs::remove_file(socket);
    let listener =
        UnixListener::bind(socket).map_err(|e| format!("failed to listen on {}: {e}", socket.display()))?;
    eprintln!(
        "level=info msg=\"containerd successfully booted\" version={VERSION} address={}",
        socket.display()
    );
    for stream in listener.incoming().flatten() {
        let runtime = runtime.clone();
        std::thread::spawn(move || answer(stream, &runtime));
    }
    Ok(())
}

fn answer(stream: UnixStream, runtime: &RuntimeConfig) {
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let reply = match request.trim() {
        "Version" => serde_json::json!({
            "version": "0.1.0",
            "runtimeName": "containerd",
            "runtimeVersion": VERSION,
            "runtimeApiVersion": "v1",
        }),
        "Info" => serde_json::json!({ "config": runtime }),
        "ListContainers" => {
            json!({ "containers": list_containers(Path::new(crate::kubelet::static_pods::PODS_STATE)) })
        }
        other => serde_json::json!({ "error": format!("unknown method {other:?}") }),
    };
    let _ = writeln!(&stream, "{reply}");
}

/// Asks the daemon at `socket` one question.
pub fn call(socket: &Path, method: &str) -> Result<serde_json::Value, String> {
    let unavailable = |reason: std::io::Error| {
        // crictl's wording when the runtime is not there (cri-tools, pkg/... validate connection).
        format!(
            "validate service connection: validate CRI v1 runtime API for endpoint \"unix://{}\": \
             rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: \
             dial unix {}: connect: {}\"",
            socket.display(),
            socket.display(),
            connect_reason(&reason)
        )
    };
    let mut stream = UnixStream::connect(socket).map_err(unavailable)?;
    writeln!(stream, "{method}").map_err(|e| e.to_string())?;
    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    serde_json::from_str(&line).map_err(|e| format!("bad answer from containerd: {e}"))
}

fn connect_reason(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory",
        std::io::ErrorKind::ConnectionRefused => "connection refused",
        std::io::ErrorKind::PermissionDenied => "permission denied",
        _ => "connection error",
    }
}

/// `crictl version | info | ps`, reading the endpoint from /etc/crictl.yaml like the real one.
pub fn crictl(args: &[String]) -> i32 {
    let socket = endpoint_from_crictl_yaml().unwrap_or_else(|| SOCKET_PATH.to_string());
    let socket = Path::new(&socket);
    let result = match args.get(1).map(String::as_str) {
        Some("version") => call(socket, "Version").map(|v| {
            format!(
                "Version:  {}\nRuntimeName:  {}\nRuntimeVersion:  {}\nRuntimeApiVersion:  {}",
                v["version"].as_str().unwrap_or(""),
                v["runtimeName"].as_str().unwrap_or(""),
                v["runtimeVersion"].as_str().unwrap_or(""),
                v["runtimeApiVersion"].as_str().unwrap_or("")
            )
        }),
        Some("info") => call(socket, "Info").map(|v| serde_json::to_string_pretty(&v).unwrap_or_default()),
        Some("ps") => call(socket, "ListContainers").map(|v| {
            let now = crate::clock::unix_seconds(crate::clock::Clock::default().now());
            ps_table(v["containers"].as_array().map(Vec::as_slice).unwrap_or(&[]), now)
        }),
        Some("--version") => Ok("crictl version v1.36.0".to_string()),
        _ => Err("usage: crictl version|info|ps (the lab's crictl is simulated)".to_string()),
    };
    match result {
        Ok(text) => {
            println!("{text}");
            0
        }
        Err(message) => {
            eprintln!(
                "time=\"{}\" level=fatal msg=\"{message}\"",
                crate::clock::rfc3339(crate::clock::Clock::default().now())
            );
            1
        }
    }
}

/// The containers "running" on this node: the kubelet's static pods (it writes them to `pods_state`).
/// A pod with a process is Running while that process lives and Exited after. etcd, the
/// controller-manager and the scheduler have no process of their own (their work is done inside the
/// API server), so they live and die with the node's kube-apiserver process, or with the kubelet's
/// when there is none.
pub fn list_containers(pods_state: &Path) -> Vec<Value> {
    let pods: Vec<Value> = std::fs::read(pods_state)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let alive = |pid: Option<u64>| pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
    let host = pods
        .iter()
        .find(|p| p["name"] == "kube-apiserver")
        .and_then(|p| p.get("pid"))
        .or_else(|| pods.first().and_then(|p| p.get("kubeletPid")))
        .and_then(Value::as_u64);
    pods.into_iter()
        .map(|mut p| {
            let running = match p.get("pid").and_then(Value::as_u64) {
                Some(pid) => alive(Some(pid)),
                None => alive(host),
            };
            p["state"] = json!(if running {
                "CONTAINER_RUNNING"
            } else {
                "CONTAINER_EXITED"
            });
            p
        })
        .collect()
}

/// `crictl ps`: running containers only, newest first, in crictl's table (cri-tools cmd/crictl:
/// truncated 13-hex IDs, a Go tabwriter with min width 20 and padding 3).
fn ps_table(containers: &[Value], now: i64) -> String {
    let mut running: Vec<&Value> = containers
        .iter()
        .filter(|c| c["state"] == "CONTAINER_RUNNING")
        .collect();
    running.sort_by_key(|c| std::cmp::Reverse(c["createdAt"].as_i64().unwrap_or(0)));
    let header = [
        "CONTAINER",
        "IMAGE",
        "CREATED",
        "STATE",
        "NAME",
        "ATTEMPT",
        "POD ID",
        "POD",
        "NAMESPACE",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for c in running {
        let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
        let age = now - c["createdAt"].as_i64().unwrap_or(now);
        rows.push(vec![
            s("id"),
            s("imageId"),
            ago(age),
            "Running".to_string(),
            s("name"),
            c["attempt"].as_u64().unwrap_or(0).to_string(),
            s("podId"),
            s("pod"),
            "kube-system".to_string(),
        ]);
    }
    tabwriter(&rows, 20, 3)
}

/// Go's text/tabwriter with padding by spaces: every column but the last is as wide as its widest
/// cell plus `padding`, and at least `min_width`.
fn tabwriter(rows: &[Vec<String>], min_width: usize, padding: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            let widest = rows
                .iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0);
            (widest + padding).max(min_width)
        })
        .collect();
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (i, cell) in r.iter().enumerate() {
                if i + 1 == r.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}", w = widths[i]));
                }
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `units.HumanDuration` + " ago", as crictl prints CREATED.
fn ago(seconds: i64) -> String {
    let s = seconds.max(0);
    let text = match s {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".to_string(),
        120..=2699 => format!("{} minutes", s / 60),
        2700..=5399 => "About an hour".to_string(),
        _ => format!("{} hours", s / 3600),
    };
    format!("{text} ago")
}

fn endpoint_from_crictl_yaml() -> Option<String> {
    let text = std::fs::read_to_string("/etc/crictl.yaml").ok()?;
    text.lines()
        .find_map(|line| line.trim().strip_prefix("runtime-endpoint:"))
        .map(|value| {
            value
                .trim()
                .trim_matches(['"', '\''])
                .trim_start_matches("unix://")
                .to_string()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3: &str = "version = 3\n\
        [plugins.'io.containerd.cri.v1.images'.pinned_images]\n  sandbox = 'registry.k8s.io/pause:3.10.1'\n\
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n  SystemdCgroup = true\n";

    #[test]
    fn a_version_3_config_gives_the_cgroup_driver_and_sandbox_image() {
        assert_eq!(
            load_config(Some(V3)),
            Ok(RuntimeConfig {
                config_version: 3,
                systemd_cgroup: true,
                sandbox_image: "registry.k8s.io/pause:3.10.1".into()
            })
        );
    }

    #[test]
    fn version_2_tables_are_read_and_version_1_is_refused() {
        let v2 = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.k8s.io/pause:3.9\"\n\
                  [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = false\n";
        let loaded = load_config(Some(v2)).unwrap();
        assert_eq!((loaded.config_version, loaded.systemd_cgroup), (2, false));
        assert_eq!(loaded.sandbox_image, "registry.k8s.io/pause:3.9");
        // v3 table names in a version 2 file are not where containerd 2.x reads version 2.
        let mixed = V3.replace("version = 3", "version = 2");
        assert!(!load_config(Some(&mixed)).unwrap().systemd_cgroup);
        let err = load_config(Some("[plugins]\n")).unwrap_err();
        assert!(err.contains("unsupported config version `1`"), "{err}");
    }

    #[test]
    fn the_daemon_answers_crictl_on_its_socket_and_a_missing_socket_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, V3).unwrap();
        let socket = dir.path().join("run/containerd.sock");
        let (config_c, socket_c) = (config.clone(), socket.clone());
        std::thread::spawn(move || serve(&config_c, &socket_c));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !socket.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let version = call(&socket, "Version").unwrap();
        assert_eq!(version["runtimeVersion"], VERSION);
        let info = call(&socket, "Info").unwrap();
        assert_eq!(info["config"]["systemdCgroup"], true);

        let missing = call(&dir.path().join("absent.sock"), "Version").unwrap_err();
        assert!(
            missing.ends_with("connect: no such file or directory\""),
            "{missing}"
        );
    }

    #[test]
    fn ps_lists_the_kubelets_running_static_pods_only() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("pods.json");
        let me = std::process::id();
        let gone = u32::MAX;
        std::fs::write(
            &state,
            json!([
                {"id": "0000000000001", "name": "etcd", "imageId": "a1b2c3d4e5f60", "pod": "etcd-host01",
                 "podId": "0000000000064", "pid": null, "createdAt": 1000},
                {"id": "0000000000002", "name": "kube-apiserver", "imageId": "a1b2c3d4e5f61",
                 "pod": "kube-apiserver-host01", "podId": "0000000000065", "pid": me, "createdAt": 1100},
                {"id": "0000000000003", "name": "kube-vip", "imageId": "a1b2c3d4e5f62", "pod": "kube-vip-host01",
                 "podId": "0000000000066", "pid": gone, "createdAt": 1000}
            ])
            .to_string(),
        )
        .unwrap();
        let listed = list_containers(&state);
        let states: Vec<&str> = listed.iter().map(|c| c["state"].as_str().unwrap()).collect();
        assert_eq!(
            states,
            ["CONTAINER_RUNNING", "CONTAINER_RUNNING", "CONTAINER_EXITED"]
        );
        let table = ps_table(&listed, 1200);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("CONTAINER           IMAGE"), "{table}");
        // A name longer than the minimum width widens its column (tabwriter), it never runs on.
        let long = ps_table(
            &[
                json!({"id": "0000000000004", "name": "kube-controller-manager", "imageId": "a1b2c3d4e5f63",
                "pod": "kube-controller-manager-host01", "podId": "0000000000067", "createdAt": 1190,
                "state": "CONTAINER_RUNNING"}),
            ],
            1200,
        );
        assert!(long.contains("kube-controller-manager   0                   0000000000067       kube-controller-manager-host01   kube-system"), "{long}");
        assert!(
            lines[1].contains("kube-apiserver") && lines[1].contains("About a minute ago"),
            "{table}"
        );
        assert!(
            lines[2].contains("etcd-host01") && lines[2].contains("3 minutes ago"),
            "{table}"
        );
        assert!(!table.contains("kube-vip"), "{table}");
        // With the API server's process gone, etcd (which lives inside it) is gone too.
        let text = std::fs::read_to_string(&state)
            .unwrap()
            .replace(&format!("\"pid\":{me}"), &format!("\"pid\":{gone}"));
        std::fs::write(&state, text).unwrap();
        let states: Vec<String> = list_containers(&state)
            .iter()
            .map(|c| c["state"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            states,
            ["CONTAINER_EXITED", "CONTAINER_EXITED", "CONTAINER_EXITED"]
        );
    }
}
