//! [`RealHost`]: the preflight probe on the machine kubeadm runs on (a lab guest).

use std::io::ErrorKind;
use std::net::{TcpListener, ToSocketAddrs};
use std::path::Path;
use std::process::Command;

use super::{HostProbe, ServiceState};

/// Reads the live system: /proc, systemctl, sockets, $PATH.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealHost;

fn errno_text(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::NotFound => "no such file or directory".into(),
        ErrorKind::ConnectionRefused => "connection refused".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

impl HostProbe for RealHost {
    fn read_file(&self, path: &str) -> std::io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn exists(&self, path: &str) -> bool {
        Path::new(path).exists()
    }

    fn dir_is_empty(&self, path: &str) -> std::io::Result<bool> {
        match std::fs::read_dir(path) {
            Ok(mut entries) => Ok(entries.next().is_none()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(true),
            Err(e) => Err(e),
        }
    }

    fn port_in_use(&self, port: u16) -> bool {
        // Go's net.Listen("tcp", ":port") binds the dual-stack wildcard; fall back to IPv4
        // where the guest has no IPv6.
        match TcpListener::bind(("::", port)) {
            Ok(_) => false,
            Err(e) if e.kind() == ErrorKind::AddrInUse => true,
            Err(_) => TcpListener::bind(("0.0.0.0", port)).is_err(),
        }
    }

    fn service_state(&self, name: &str) -> ServiceState {
        let unit = format!("{name}.service");
        match Command::new("systemctl").args(["is-enabled", &unit]).output() {
            Ok(out) if out.status.success() => ServiceState::Enabled,
            Ok(out) => {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                if text.contains("not-found") || text.contains("No such file") {
                    ServiceState::Missing
                } else {
                    ServiceState::Disabled
                }
            }
            Err(_) => ServiceState::Missing,
        }
    }

    fn service_active(&self, name: &str) -> bool {
        Command::new("systemctl")
            .args(["is-active", "--quiet", name])
            .status()
            .is_ok_and(|s| s.success())
    }

    fn num_cpu(&self) -> usize {
        // Go's runtime.NumCPU is the affinity mask, not cgroup quotas.
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("Cpus_allowed_list:")
                        .map(|v| count_cpu_list(v.trim()))
                })
            })
            .filter(|n| *n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
    }

    fn mem_total_mb(&self) -> u64 {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("MemTotal:")
                        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                })
            })
            .map(|kb| kb / 1024)
            .unwrap_or(0)
    }

    fn kubelet_version(&self) -> Result<String, String> {
        match Command::new("kubelet").arg("--version").output() {
            Ok(out) => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(
                "cannot execute 'kubelet --version': exec: \"kubelet\": executable file not found in $PATH"
                    .to_string(),
            ),
            Err(e) => Err(format!("cannot execute 'kubelet --version': {e}")),
        }
    }

    fn in_path(&self, executable: &str) -> bool {
        let path = std::env::var("PATH")
            .unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        path.split(':').any(|dir| {
            let p = Path::new(dir).join(executable);
            std::fs::metadata(&p).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    }

    fn hostname_resolves(&self, name: &str) -> bool {
        (name, 0).to_socket_addrs().is_ok_and(|mut a| a.next().is_some())
    }

    fn is_root(&self) -> bool {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("Uid:")
                        .map(|v| v.split_whitespace().nth(1) == Some("0"))
                })
            })
            .unwrap_or(false)
    }

    fn cri_connect(&self, path: &str) -> Result<(), String> {
        std::os::unix::net::UnixStream::connect(path)
            .map(|_| ())
            .map_err(|e| errno_text(&e))
    }

    fn tcp_dial(&self, hostport: &str) -> Result<(), String> {
        let addr = hostport
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("dial tcp: lookup {hostport}: no such host"))?;
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(10))
            .map(|_| ())
            .map_err(|e| {
                let why = match e.kind() {
                    ErrorKind::ConnectionRefused => "connect: connection refused".to_string(),
                    ErrorKind::TimedOut | ErrorKind::WouldBlock => "i/o timeout".to_string(),
                    _ if e.raw_os_error() == Some(113) => "connect: no route to host".to_string(),
                    _ if e.raw_os_error() == Some(101) => "connect: network is unreachable".to_string(),
                    _ => format!("connect: {}", errno_text(&e)),
                };
                format!("dial tcp {hostport}: {why}")
            })
    }
}

/// Counts a kernel CPU list such as `0-3,6,8-9`.
fn count_cpu_list(list: &str) -> usize {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|part| match part.split_once('-') {
            Some((a, b)) => match (a.parse::<usize>(), b.parse::<usize>()) {
                (Ok(a), Ok(b)) if b >= a => b - a + 1,
                _ => 0,
            },
            None => usize::from(part.parse::<usize>().is_ok()),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0-3,6,8-9"), 7);
        assert_eq!(count_cpu_list("0"), 1);
    }

    #[test]
    fn real_host_port_probe_sees_a_bound_port() {
        let l = TcpListener::bind(("::", 0))
            .or_else(|_| TcpListener::bind(("0.0.0.0", 0)))
            .unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(RealHost.port_in_use(port));
    }
}
