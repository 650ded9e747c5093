//! Facts: what a host is, learned once per run in ONE remote script (one round trip).
//!
//! The script prints `key=value` lines (keys may repeat); [`parse`] turns them into [`Facts`],
//! tolerating missing tools and unknown keys, so an odd host gives partial facts rather than an error.
//! Templates and `when:` conditions see them as `host.facts`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

/// Packages whose installed versions matter to kbs.
pub const WATCHED_PACKAGES: &[&str] = &[
    "kubelet",
    "kubeadm",
    "kubectl",
    "cri-tools",
    "kubernetes-cni",
    "containerd",
    "containerd.io",
    "runc",
    "open-iscsi",
    "nfs-common",
    "haproxy",
];

/// Prints the PID and command name holding the dpkg lock, if any, as `PID COMM`.
///
/// apt and dpkg take POSIX (fcntl) locks, which `flock -n` cannot see, so this reads `/proc/locks`
/// and matches the lock files' inode numbers (not the device: a false match would need another file
/// with the same inode holding a lock at the same moment). It needs no tool that may be missing
/// (fuser is in psmisc, lsof is rarely installed).
pub const DPKG_LOCK_HOLDER_FN: &str = r#"kbs_dpkg_lock_holder() {
  for f in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock; do
    [ -e "$f" ] || continue
    ino=$(stat -c %i "$f" 2>/dev/null) || continue
    pid=$(awk -v ino="$ino" '$2 != "->" { n = split($6, p, ":"); if (p[n] == ino) { print $5; exit } }' /proc/locks 2>/dev/null)
    if [ -n "$pid" ]; then
      echo "$pid $(cat /proc/$pid/comm 2>/dev/null)"
      return 0
    fi
  done
}
"#;

/// Whether kubeadm has already been run on the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KubeadmState {
    #[default]
    Nothing,
    /// `/etc/kubernetes/admin.conf` and the API server's static pod manifest exist.
    ControlPlane,
    /// `/etc/kubernetes/kubelet.conf` exists (a joined worker, or a control plane half set up).
    Joined,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub interface: String,
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstalledPackage {
    pub version: String,
    /// `apt-mark hold` is set.
    pub held: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    pub pid: u32,
    /// The kernel's 15-character command name, e.g. `unattended-upgr`.
    pub command: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.command.is_empty() {
            write!(f, "PID {}", self.pid)
        } else {
            write!(f, "PID {} ({})", self.pid, self.command)
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// `/etc/os-release` ID, e.g. `ubuntu`, `debian`.
    pub os_id: String,
    /// `/etc/os-release` ID_LIKE, e.g. `debian` on Ubuntu and its derivatives.
    pub os_like: String,
    pub os_version: String,
    pub os_codename: String,
    /// dpkg's architecture name, e.g. `amd64`, `arm64`.
    pub arch: String,
    pub kernel: String,
    pub hostname: String,
    pub cpus: u32,
    pub memory_mb: u64,
    /// Active swap devices or files (`/proc/swaps`).
    pub swap_devices: Vec<String>,
    pub addresses: Vec<Address>,
    /// The node IP as the inventory gives it, else the connection address if the host holds it.
    pub node_ip: Option<String>,
    /// The interface holding the node IP.
    pub node_interface: Option<String>,
    /// Interface name → MAC address (loopback left out); kubeadm needs them unique across nodes.
    pub macs: BTreeMap<String, String>,
    pub product_uuid: String,
    /// `/sys/fs/cgroup` is cgroup2 (the kubelet refuses cgroup v1 by default since 1.35).
    pub cgroup_v2: bool,
    /// Host clock, seconds since the epoch (skew breaks certificates and tokens).
    pub time: i64,
    pub packages: BTreeMap<String, InstalledPackage>,
    /// Major version of the installed containerd, which picks its config format.
    pub containerd_major: Option<u32>,
    pub kubeadm_state: KubeadmState,
    pub dpkg_lock: Option<LockHolder>,
}

/// The facts script: one round trip, read-only, run privileged (product_uuid is root-only).
pub fn script() -> String {
    let packages = WATCHED_PACKAGES.join(" ");
    format!(
        r#"LC_ALL=C; export LC_ALL
{DPKG_LOCK_HOLDER_FN}
if [ -r /etc/os-release ]; then . /etc/os-release; fi
echo "os_id=${{ID:-}}"
echo "os_like=${{ID_LIKE:-}}"
echo "os_version=${{VERSION_ID:-}}"
echo "os_codename=${{VERSION_CODENAME:-}}"
echo "arch=$(dpkg --print-architecture 2>/dev/null || uname -m)"
echo "kernel=$(uname -r)"
echo "hostname=$(hostname 2>/dev/null || cat /proc/sys/kernel/hostname)"
echo "cpus=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
awk '/^MemTotal:/ {{ print "mem_kb=" $2 }}' /proc/meminfo
tail -n +2 /proc/swaps 2>/dev/null | awk '{{ print "swap=" $1 }}'
ip -o addr show 2>/dev/null | awk '{{ split($4, a, "/"); print "addr=" $2 " " a[1] }}'
for i in /sys/class/net/*; do n=${{i##*/}}; [ "$n" = lo ] && continue; echo "mac=$n $(cat "$i/address" 2>/dev/null)"; done
echo "product_uuid=$(cat /sys/class/dmi/id/product_uuid 2>/dev/null)"
echo "cgroup_fs=$(stat -fc %T /sys/fs/cgroup 2>/dev/null)"
echo "time=$(date +%s)"
dpkg-query -W -f='pkg=${{db:Status-Abbrev}}|${{Package}}|${{Version}}\n' {packages} 2>/dev/null
if command -v containerd >/dev/null 2>&1; then echo "containerd_version=$(containerd --version 2>/dev/null | awk '{{ print $3 }}')"; fi
[ -f /etc/kubernetes/admin.conf ] && echo "k8s=admin.conf"
[ -f /etc/kubernetes/manifests/kube-apiserver.yaml ] && echo "k8s=apiserver"
[ -f /etc/kubernetes/kubelet.conf ] && echo "k8s=kubelet.conf"
echo "dpkg_lock=$(kbs_dpkg_lock_holder)"
true
"#
    )
}

/// Parses the facts script's output. `node_ip` is the inventory's node IP, if it has one;
/// `address` is where kbs connects (used as node IP when the host holds it).
pub fn parse(output: &str, node_ip: Option<IpAddr>, address: &str) -> Facts {
    let mut f = Facts::default();
    let mut k8s = Vec::new();
    let mut containerd_version = None;
    for line in output.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key {
            "os_id" => f.os_id = value.into(),
            "os_like" => f.os_like = value.into(),
            "os_version" => f.os_version = value.into(),
            "os_codename" => f.os_codename = value.into(),
            "arch" => f.arch = value.into(),
            "kernel" => f.kernel = value.into(),
            "hostname" => f.hostname = value.into(),
            "cpus" => f.cpus = value.parse().unwrap_or(0),
            "mem_kb" => f.memory_mb = value.parse::<u64>().unwrap_or(0) / 1024,
            "swap" if !value.is_empty() => f.swap_devices.push(value.into()),
            "addr" => {
                if let Some((interface, address)) = value.split_once(' ') {
                    f.addresses.push(Address {
                        interface: interface.into(),
                        address: address.into(),
                    });
                }
            }
            "mac" => {
                if let Some((interface, mac)) = value.split_once(' ') {
                    if !mac.is_empty() {
                        f.macs.insert(interface.into(), mac.into());
                    }
                }
            }
            "product_uuid" => f.product_uuid = value.into(),
            "cgroup_fs" => f.cgroup_v2 = value == "cgroup2fs",
            "time" => f.time = value.parse().unwrap_or(0),
            "pkg" => {
                let mut parts = value.splitn(3, '|');
                let (Some(status), Some(name), Some(version)) = (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                // Status-Abbrev: desired (h = hold), then state (i = installed), then error flag.
                let status: Vec<char> = status.chars().collect();
                if status.get(1) == Some(&'i') && !version.is_empty() {
                    f.packages.insert(
                        name.into(),
                        InstalledPackage {
                            version: version.into(),
                            held: status.first() == Some(&'h'),
                        },
                    );
                }
            }
            "containerd_version" if !value.is_empty() => containerd_version = Some(value.to_string()),
            "k8s" => k8s.push(value.to_string()),
            "dpkg_lock" => f.dpkg_lock = parse_lock_holder(value),
            _ => {}
        }
    }
    // The binary's own version wins; the package version covers hosts where it is not on PATH.
    let containerd_version = containerd_version.or_else(|| {
        ["containerd", "containerd.io"]
            .iter()
            .find_map(|p| f.packages.get(*p).map(|p| p.version.clone()))
    });
    f.containerd_major = containerd_version.as_deref().and_then(major_of);
    f.kubeadm_state = if k8s.iter().any(|k| k == "admin.conf") && k8s.iter().any(|k| k == "apiserver") {
        KubeadmState::ControlPlane
    } else if k8s.iter().any(|k| k == "kubelet.conf") {
        KubeadmState::Joined
    } else {
        KubeadmState::Nothing
    };
    f.node_ip = match node_ip {
        Some(ip) => Some(ip.to_string()),
        None => f
            .addresses
            .iter()
            .find(|a| a.address == address)
            .map(|a| a.address.clone()),
    };
    f.node_interface = f.node_ip.as_ref().and_then(|ip| {
        f.addresses
            .iter()
            .find(|a| &a.address == ip)
            .map(|a| a.interface.clone())
    });
    f
}

/// `PID COMM` → holder; empty → none.
pub fn parse_lock_holder(text: &str) -> Option<LockHolder> {
    let text = text.trim();
    let (pid, command) = text.split_once(' ').unwrap_or((text, ""));
    Some(LockHolder {
        pid: pid.parse().ok()?,
        command: command.trim().to_string(),
    })
}

/// `v2.1.4`, `2.1.4~ds1-1`, `1:1.7.24-1` → the major number.
fn major_of(version: &str) -> Option<u32> {
    let v = version.trim_start_matches('v');
    let v = v.split_once(':').map(|(_, rest)| rest).unwrap_or(v);
    let digits: String = v.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "os_id=ubuntu
os_version=24.04
os_codename=noble
arch=amd64
kernel=6.8.0-45-generic
hostname=host01
cpus=2
mem_kb=2030000
swap=/swap.img
addr=lo 127.0.0.1
addr=eth0 10.0.2.15
addr=eth1 192.168.61.11
mac=eth0 52:54:00:12:34:56
mac=eth1 08:00:27:aa:bb:cc
product_uuid=1B2C3D4E-0000-1111-2222-333344445555
cgroup_fs=cgroup2fs
time=1795000000
pkg=ii |containerd|2.1.4-0ubuntu1
pkg=hi |kubeadm|1.36.4-1.1
pkg=un |kubelet|
k8s=kubelet.conf
dpkg_lock=812 unattended-upgr
";

    #[test]
    fn parses_a_full_sample() {
        let f = parse(SAMPLE, None, "192.168.61.11");
        assert_eq!(f.os_id, "ubuntu");
        assert_eq!(f.cpus, 2);
        assert_eq!(f.memory_mb, 1982);
        assert_eq!(f.swap_devices, vec!["/swap.img"]);
        assert_eq!(f.node_ip.as_deref(), Some("192.168.61.11"));
        assert_eq!(f.node_interface.as_deref(), Some("eth1"));
        assert_eq!(f.macs.len(), 2);
        assert!(f.cgroup_v2);
        assert_eq!(f.containerd_major, Some(2));
        assert_eq!(
            f.packages["kubeadm"],
            InstalledPackage {
                version: "1.36.4-1.1".into(),
                held: true
            }
        );
        assert!(
            !f.packages.contains_key("kubelet"),
            "`un` means known but not installed"
        );
        assert_eq!(f.kubeadm_state, KubeadmState::Joined);
        assert_eq!(
            f.dpkg_lock,
            Some(LockHolder {
                pid: 812,
                command: "unattended-upgr".into()
            })
        );
    }

    #[test]
    fn inventory_node_ip_wins_and_missing_keys_give_defaults() {
        let f = parse(
            "addr=ens5 10.1.1.5\ngarbage line\ndpkg_lock=\n",
            "10.1.1.5".parse().ok(),
            "bastion-name",
        );
        assert_eq!(f.node_interface.as_deref(), Some("ens5"));
        assert_eq!(f.dpkg_lock, None);
        assert_eq!(f.kubeadm_state, KubeadmState::Nothing);
        assert_eq!(f.containerd_major, None);
    }

    #[test]
    fn control_plane_needs_admin_conf_and_manifest() {
        let f = parse("k8s=admin.conf\nk8s=apiserver\nk8s=kubelet.conf\n", None, "x");
        assert_eq!(f.kubeadm_state, KubeadmState::ControlPlane);
    }

    #[test]
    fn containerd_major_from_binary_or_package() {
        assert_eq!(major_of("v1.7.24"), Some(1));
        assert_eq!(major_of("1:2.0.0~rc1-1"), Some(2));
        let f = parse("pkg=ii |containerd.io|1.7.27-1\n", None, "x");
        assert_eq!(f.containerd_major, Some(1));
        let f = parse(
            "pkg=ii |containerd|1.7.27-1\ncontainerd_version=v2.1.0\n",
            None,
            "x",
        );
        assert_eq!(f.containerd_major, Some(2));
    }

    #[test]
    fn script_is_one_self_contained_sh_script() {
        let s = script();
        assert!(s.contains("dpkg-query -W"));
        assert!(s.contains("/proc/locks"));
        assert!(s.contains("kubelet kubeadm kubectl"));
        assert!(!s.contains("flock -n"), "flock cannot see dpkg's fcntl locks");
    }
}
