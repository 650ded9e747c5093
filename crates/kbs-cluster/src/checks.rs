//! `kbs check`: is every host fit for the cluster, judged from its facts before anything changes?
//! Errors are what kubeadm or the kubelet would refuse later (too few CPUs on a control plane,
//! cgroup v1, duplicate product_uuid or MAC); warnings are what `apply` fixes or works around
//! (swap on, a held dpkg lock, an old containerd).
//!
//! Besides the facts, the rules see which TCP ports each host listens on: a port Kubernetes needs
//! that is already taken fails kubeadm's preflight (`Port-6443`, `Port-10250`).

use std::collections::BTreeMap;

use kbs_engine::{Facts, KubeadmState};
use kbs_inventory::{Inventory, Role};

use crate::versions::MinorVersions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
}

/// One thing wrong with one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub host: String,
    pub level: Level,
    /// Short stable name, e.g. `cpus`, `duplicate-product-uuid`.
    pub check: &'static str,
    pub message: String,
    pub hint: String,
}

/// kubeadm preflight's minimums on control planes (NumCPU, Mem).
pub const CONTROL_PLANE_MIN_CPUS: u32 = 2;
pub const CONTROL_PLANE_MIN_MEMORY_MB: u64 = 1700;
/// Beyond this, certificates and bootstrap tokens may look not yet valid or expired.
pub const MAX_CLOCK_SKEW_SECS: i64 = 30;
/// Below the error bound, but enough that something is not keeping time.
pub const WARN_CLOCK_SKEW_SECS: i64 = 5;
/// The oldest releases kbs prepares (their containerd, systemd and cgroup v2 defaults).
const MIN_DEBIAN_MAJOR: u32 = 12;
const MIN_UBUNTU_MAJOR: u32 = 22;

/// Findings for every host with facts; `listening` holds each host's listening TCP ports and
/// `local_time` is this machine's clock (seconds since the epoch).
pub fn fitness(
    inventory: &Inventory,
    facts: &BTreeMap<String, Facts>,
    listening: &BTreeMap<String, Vec<u16>>,
    versions: &MinorVersions,
    local_time: i64,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for host in &inventory.hosts {
        let Some(f) = facts.get(&host.name) else { continue };
        let mut add = |level, check, message: String, hint: &str| {
            out.push(Finding {
                host: host.name.clone(),
                level,
                check,
                message,
                hint: hint.to_string(),
            })
        };
        let apt_based = ["debian", "ubuntu"].contains(&f.os_id.as_str())
            || f.os_like
                .split_whitespace()
                .any(|l| l == "debian" || l == "ubuntu");
        if !apt_based {
            add(
                Level::Error,
                "os",
                format!("`{}` is not an apt-based system", f.os_id),
                "kbs prepares Debian, Ubuntu and their derivatives only",
            );
        }
        let major: u32 = f
            .os_version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let too_old = match f.os_id.as_str() {
            "debian" => major < MIN_DEBIAN_MAJOR,
            "ubuntu" => major < MIN_UBUNTU_MAJOR,
            _ => false,
        };
        if too_old {
            add(
                Level::Error,
                "os-version",
                format!("{} {} is too old", f.os_id, f.os_version),
                "use Debian 12 or newer, or Ubuntu 22.04 or newer",
            );
        }
        if !["amd64", "arm64"].contains(&f.arch.as_str()) {
            add(
                Level::Error,
                "arch",
                format!("architecture `{}` is not supported", f.arch),
                "kbs supports amd64 and arm64 hosts",
            );
        }
        // A node kubeadm already set up listens on these ports itself.
        if f.kubeadm_state == KubeadmState::Nothing {
            let taken = listening.get(&host.name);
            let mut needed = vec![10250];
            if host.has_role(Role::ControlPlane) {
                needed.insert(0, 6443);
            }
            for port in needed
                .into_iter()
                .filter(|p| taken.is_some_and(|t| t.contains(p)))
            {
                add(
                    Level::Error,
                    "port",
                    format!("port {port} is already in use"),
                    "stop what listens on it (`ss -ltnp` shows it); Kubernetes needs it",
                );
            }
        }
        if host.has_role(Role::ControlPlane) {
            if f.cpus < CONTROL_PLANE_MIN_CPUS {
                add(
                    Level::Error,
                    "cpus",
                    format!(
                        "{} CPU(s); a control plane needs at least {CONTROL_PLANE_MIN_CPUS}",
                        f.cpus
                    ),
                    "give the machine more CPUs (kubeadm's preflight NumCPU check fails otherwise)",
                );
            }
            if f.memory_mb < CONTROL_PLANE_MIN_MEMORY_MB {
                add(
                    Level::Error,
                    "memory",
                    format!(
                        "{} MB of memory; a control plane needs at least {CONTROL_PLANE_MIN_MEMORY_MB} MB",
                        f.memory_mb
                    ),
                    "give the machine more memory (kubeadm's preflight Mem check fails otherwise)",
                );
            }
        }
        if !f.cgroup_v2 && inventory.cluster.allow_cgroup_v1 {
            add(
                Level::Warning,
                "cgroup-v2",
                "the host uses cgroup v1; allowed by `allowCgroupV1`, so the kubelet gets `failCgroupV1: false`"
                    .into(),
                "cgroup v1 support is deprecated upstream; move the host to cgroup v2 when you can",
            );
        } else if !f.cgroup_v2 {
            add(
                Level::Error,
                "cgroup-v2",
                "the host uses cgroup v1, which the kubelet refuses by default since 1.35".into(),
                "boot with the unified cgroup hierarchy (systemd.unified_cgroup_hierarchy=1), use a newer OS \
                 release, or set `cluster.allowCgroupV1: true` to run on it anyway",
            );
        }
        match (&f.node_ip, &f.node_interface) {
            (None, _) => add(
                Level::Error,
                "node-ip",
                format!("cannot tell the node IP: the host does not hold {}", host.address),
                "set `nodeIp` for this host in the inventory",
            ),
            (Some(ip), None) => add(
                Level::Error,
                "node-ip",
                format!("node IP {ip} is not on any interface of the host"),
                "fix `nodeIp` in the inventory",
            ),
            _ => {}
        }
        if !f.swap_devices.is_empty() {
            add(
                Level::Warning,
                "swap",
                format!("swap is on ({})", f.swap_devices.join(", ")),
                "`kbs apply` turns it off and comments it out of /etc/fstab",
            );
        }
        if let Some(holder) = &f.dpkg_lock {
            add(
                Level::Warning,
                "dpkg-lock",
                format!("the dpkg lock is held by {holder}"),
                "`kbs apply` waits for it; unattended-upgrades usually finishes within minutes of boot",
            );
        }
        if let Some(major) = f.containerd_major {
            if major < versions.containerd_min_major {
                add(
                    Level::Warning,
                    "containerd",
                    format!(
                        "containerd {major}.x is installed; Kubernetes 1.{} needs {}.x or newer",
                        versions.minor, versions.containerd_min_major
                    ),
                    "`kbs apply` installs a newer containerd if the repositories offer one",
                );
            }
        }
        let skew = (f.time - local_time).abs();
        if f.time != 0 && skew > WARN_CLOCK_SKEW_SECS {
            let level = if skew > MAX_CLOCK_SKEW_SECS {
                Level::Error
            } else {
                Level::Warning
            };
            add(
                level,
                "clock",
                format!("the host's clock is {}s off this machine's", f.time - local_time),
                "enable time synchronisation (systemd-timesyncd or chrony) on the host; certificates and tokens depend on it",
            );
        }
    }
    duplicates(
        inventory,
        facts,
        "duplicate-product-uuid",
        "product_uuid",
        |f| vec![f.product_uuid.clone()],
        &mut out,
    );
    duplicates(
        inventory,
        facts,
        "duplicate-mac",
        "MAC address",
        |f| f.macs.values().cloned().collect(),
        &mut out,
    );
    duplicates(
        inventory,
        facts,
        "duplicate-hostname",
        "hostname",
        |f| vec![f.hostname.clone()],
        &mut out,
    );
    out
}

/// Cloned VMs share these; kubeadm and the CNI need them unique.
fn duplicates(
    inventory: &Inventory,
    facts: &BTreeMap<String, Facts>,
    check: &'static str,
    what: &str,
    values: impl Fn(&Facts) -> Vec<String>,
    out: &mut Vec<Finding>,
) {
    let mut seen: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for host in &inventory.hosts {
        if let Some(f) = facts.get(&host.name) {
            for v in values(f).into_iter().filter(|v| !v.is_empty()) {
                let hosts = seen.entry(v).or_default();
                if !hosts.contains(&host.name.as_str()) {
                    hosts.push(&host.name);
                }
            }
        }
    }
    for (value, hosts) in seen.into_iter().filter(|(_, h)| h.len() > 1) {
        for host in &hosts {
            out.push(Finding {
                host: host.to_string(),
                level: Level::Error,
                check,
                message: format!("{what} {value} is shared by {}", hosts.join(", ")),
                hint: "cloned machines must get their own identity (regenerate it, or re-create the VM)"
                    .into(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn inventory() -> Inventory {
        let yaml = "cluster:\n  podSubnet: 172.31.0.0/16\nhosts:\n  - name: cp\n    address: 10.0.0.1\n    roles: [control-plane]\n  - name: w\n    address: 10.0.0.2\n    roles: [worker]\n";
        Inventory::from_str(yaml, Path::new("inventory.yaml"))
            .unwrap()
            .inventory
    }

    fn good(n: u8) -> Facts {
        let text = format!(
            "os_id=ubuntu\nos_version=24.04\narch=amd64\ncpus=2\nmem_kb=2000000\ncgroup_fs=cgroup2fs\naddr=eth1 10.0.0.{n}\nmac=eth1 08:00:27:00:00:0{n}\nproduct_uuid=uuid-{n}\nhostname=h{n}\ntime=1000\n"
        );
        kbs_engine::facts::parse(&text, None, &format!("10.0.0.{n}"))
    }

    fn run(cp: Facts, w: Facts) -> Vec<(String, &'static str, Level)> {
        run_listening(cp, w, BTreeMap::new())
    }

    fn run_listening(
        cp: Facts,
        w: Facts,
        listening: BTreeMap<String, Vec<u16>>,
    ) -> Vec<(String, &'static str, Level)> {
        let facts = BTreeMap::from([("cp".to_string(), cp), ("w".to_string(), w)]);
        fitness(
            &inventory(),
            &facts,
            &listening,
            crate::versions::for_minor(36).unwrap(),
            1005,
        )
        .into_iter()
        .map(|f| (f.host, f.check, f.level))
        .collect()
    }

    #[test]
    fn fit_hosts_have_no_findings() {
        assert_eq!(run(good(1), good(2)), vec![]);
    }

    #[test]
    fn small_control_plane_and_cgroup_v1_are_errors_small_worker_is_fine() {
        let mut cp = good(1);
        cp.cpus = 1;
        cp.memory_mb = 900;
        let mut w = good(2);
        w.cpus = 1;
        w.cgroup_v2 = false;
        assert_eq!(
            run(cp, w),
            vec![
                ("cp".into(), "cpus", Level::Error),
                ("cp".into(), "memory", Level::Error),
                ("w".into(), "cgroup-v2", Level::Error)
            ]
        );
    }

    #[test]
    fn cloned_vms_are_caught() {
        let mut w = good(2);
        w.product_uuid = "uuid-1".into();
        w.macs = good(1).macs;
        let found = run(good(1), w);
        assert_eq!(
            found.iter().filter(|f| f.1 == "duplicate-product-uuid").count(),
            2
        );
        assert_eq!(found.iter().filter(|f| f.1 == "duplicate-mac").count(), 2);
    }

    #[test]
    fn warnings_for_what_apply_fixes() {
        let mut cp = good(1);
        cp.swap_devices = vec!["/swap.img".into()];
        cp.containerd_major = Some(1);
        cp.time = 1012;
        cp.dpkg_lock = kbs_engine::facts::parse_lock_holder("812 unattended-upgr");
        let checks: Vec<_> = run(cp, good(2)).into_iter().map(|f| (f.1, f.2)).collect();
        assert_eq!(
            checks,
            vec![
                ("swap", Level::Warning),
                ("dpkg-lock", Level::Warning),
                ("containerd", Level::Warning),
                ("clock", Level::Warning)
            ]
        );
    }

    #[test]
    fn node_ip_must_be_on_the_host_and_os_must_be_apt_based() {
        let mut cp = good(1);
        cp.node_ip = None;
        let mut w = good(2);
        w.os_id = "fedora".into();
        let checks: Vec<_> = run(cp, w).into_iter().map(|f| (f.0, f.1)).collect();
        assert_eq!(
            checks,
            vec![("cp".to_string(), "node-ip"), ("w".to_string(), "os")]
        );
    }

    #[test]
    fn a_clock_far_off_is_an_error() {
        let mut w = good(2);
        w.time = 1005 - 45;
        assert_eq!(run(good(1), w), vec![("w".into(), "clock", Level::Error)]);
    }

    #[test]
    fn old_releases_and_foreign_architectures_are_errors() {
        let mut cp = good(1);
        cp.os_id = "debian".into();
        cp.os_version = "11".into();
        let mut w = good(2);
        w.arch = "riscv64".into();
        assert_eq!(
            run(cp, w),
            vec![
                ("cp".into(), "os-version", Level::Error),
                ("w".into(), "arch", Level::Error)
            ]
        );
    }

    #[test]
    fn taken_ports_are_errors_unless_kubeadm_already_runs_there() {
        let listening = BTreeMap::from([
            ("cp".to_string(), vec![22, 6443, 10250]),
            ("w".to_string(), vec![6443, 10250]),
        ]);
        assert_eq!(
            run_listening(good(1), good(2), listening.clone()),
            vec![
                ("cp".into(), "port", Level::Error),
                ("cp".into(), "port", Level::Error),
                // 6443 is only a control plane's.
                ("w".into(), "port", Level::Error),
            ]
        );
        let mut running = good(1);
        running.kubeadm_state = KubeadmState::ControlPlane;
        let mut joined = good(2);
        joined.kubeadm_state = KubeadmState::Joined;
        assert_eq!(run_listening(running, joined, listening), vec![]);
    }

    #[test]
    fn cgroup_v1_is_only_a_warning_when_the_inventory_allows_it() {
        let yaml = "cluster:\n  podSubnet: 172.31.0.0/16\n  allowCgroupV1: true\nhosts:\n  - name: cp\n    address: 10.0.0.1\n    roles: [control-plane]\n  - name: w\n    address: 10.0.0.2\n    roles: [worker]\n";
        let inventory = Inventory::from_str(yaml, Path::new("inventory.yaml"))
            .unwrap()
            .inventory;
        let mut w = good(2);
        w.cgroup_v2 = false;
        let facts = BTreeMap::from([("cp".to_string(), good(1)), ("w".to_string(), w)]);
        let found: Vec<_> = fitness(
            &inventory,
            &facts,
            &BTreeMap::new(),
            crate::versions::for_minor(36).unwrap(),
            1005,
        )
        .into_iter()
        .map(|f| (f.host, f.check, f.level))
        .collect();
        assert_eq!(found, vec![("w".to_string(), "cgroup-v2", Level::Warning)]);
    }
}
