//! `kbs check`: is every host fit for the cluster, judged from its facts before anything changes?
//! Errors are what kubeadm or the kubelet would refuse later (too few CPUs on a control plane,
//! cgroup v1, duplicate product_uuid or MAC); warnings are what `apply` fixes or works around
//! (swap on, a held dpkg lock, an old containerd).

use std::collections::BTreeMap;

use kbs_engine::Facts;
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

/// Findings for every host with facts; `local_time` is this machine's clock (seconds since the epoch).
pub fn fitness(
    inventory: &Inventory,
    facts: &BTreeMap<String, Facts>,
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
        if !f.cgroup_v2 {
            add(
                Level::Error,
                "cgroup-v2",
                "the host uses cgroup v1, which the kubelet refuses by default since 1.35".into(),
                "boot with the unified cgroup hierarchy (systemd.unified_cgroup_hierarchy=1) or use a newer OS release",
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
        if f.time != 0 && (f.time - local_time).abs() > MAX_CLOCK_SKEW_SECS {
            add(
                Level::Warning,
                "clock",
                format!("the host's clock is {}s off this machine's", f.time - local_time),
                "enable time synchronisation (systemd-timesyncd or chrony) on the host",
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
            "os_id=ubuntu\ncpus=2\nmem_kb=2000000\ncgroup_fs=cgroup2fs\naddr=eth1 10.0.0.{n}\nmac=eth1 08:00:27:00:00:0{n}\nproduct_uuid=uuid-{n}\nhostname=h{n}\ntime=1000\n"
        );
        kbs_engine::facts::parse(&text, None, &format!("10.0.0.{n}"))
    }

    fn run(cp: Facts, w: Facts) -> Vec<(String, &'static str, Level)> {
        let facts = BTreeMap::from([("cp".to_string(), cp), ("w".to_string(), w)]);
        fitness(
            &inventory(),
            &facts,
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
        cp.time = 2000;
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
}
