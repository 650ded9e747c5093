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
        "ListContainers" => serde_json::json!({ "containers": [] }),
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
        Some("ps") => call(socket, "ListContainers")
            .map(|_| "CONTAINER           IMAGE               CREATED             STATE               NAME                ATTEMPT             POD ID              POD".to_string()),
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
}
