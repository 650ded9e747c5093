//! Is every host fit to become a node? The rules of `kbs check`, as a pure function of the
//! inventory and what was learned from the hosts, so each rule is tested without a host.
//!
//! Blocking findings are the ones kubeadm or the kubelet would refuse later (CPU, memory, ports,
//! clones with one product_uuid, clock skew that breaks certificates); warnings are what kbs fixes
//! itself or what works but is worth knowing.

use std::collections::BTreeMap;

use kbs_engine::{Facts, HostFailure, KubeadmState};
use kbs_inventory::{Host, Inventory, Role};

/// kubeadm's preflight minimums for control planes (`NumCPU`, `Mem`).
const MIN_CONTROL_PLANE_CPUS: u32 = 2;
const MIN_CONTROL_PLANE_MEMORY_MB: u64 = 1700;
/// Beyond this, certificates and bootstrap tokens are not yet valid or already expired on some node.
const MAX_CLOCK_SKEW_SECONDS: i64 = 30;
const WARN_CLOCK_SKEW_SECONDS: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Blocking,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub host: String,
    pub severity: Severity,
    pub problem: String,
    pub hint: String,
}

/// What kbs learned from each host: its facts (or why they could not be had) and its listening
/// TCP ports.
pub struct Observed<'a> {
    pub facts: &'a BTreeMap<String, Result<Facts, HostFailure>>,
    pub listening: &'a BTreeMap<String, Vec<u16>>,
    /// This machine's clock, seconds since the epoch, taken when the facts were gathered.
    pub local_time: i64,
}

pub fn evaluate(inventory: &Inventory, observed: &Observed) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut fit: Vec<(&Host, &Facts)> = Vec::new();
    for host in &inventory.hosts {
        match observed.facts.get(&host.name) {
            Some(Ok(facts)) => fit.push((host, facts)),
            Some(Err(failure)) => findings.push(finding(
                host,
                Severity::Blocking,
                format!("{}: {}", failure.step, failure.message),
                failure
                    .hint
                    .clone()
                    .unwrap_or_else(|| "make the host reachable over SSH, then run kbs check again".into()),
            )),
            None => findings.push(finding(
                host,
                Severity::Blocking,
                "no facts were gathered".into(),
                "run kbs check again; the log has the details".into(),
            )),
        }
    }
    for (host, facts) in &fit {
        operating_system(host, facts, &mut findings);
        resources(host, facts, &mut findings);
        ports(host, facts, observed.listening.get(&host.name), &mut findings);
        clock(host, facts, observed.local_time, &mut findings);
        state(host, facts, &mut findings);
    }
    unique_identities(&fit, &mut findings);
    findings.sort_by(|a, b| {
        let order = |f: &Finding| inventory.hosts.iter().position(|h| h.name == f.host);
        order(a).cmp(&order(b)).then(b.severity.cmp(&a.severity))
    });
    findings
}

fn finding(host: &Host, severity: Severity, problem: String, hint: String) -> Finding {
    Finding {
        host: host.name.clone(),
        severity,
        problem,
        hint,
    }
}

fn operating_system(host: &Host, facts: &Facts, findings: &mut Vec<Finding>) {
    let apt_based = facts.os_id == "debian"
        || facts.os_id == "ubuntu"
        || facts.os_like.split_whitespace().any(|like| like == "debian");
    if !apt_based {
        findings.push(finding(
            host,
            Severity::Blocking,
            format!("{} {} is not an apt-based system", facts.os_id, facts.os_version),
            "kbs prepares Debian, Ubuntu and their derivatives".into(),
        ));
        return;
    }
    let major: u32 = facts
        .os_version
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or(0);
    let too_old = match facts.os_id.as_str() {
        "debian" => major < 12,
        "ubuntu" => major < 22,
        _ => false,
    };
    if too_old {
        findings.push(finding(
            host,
            Severity::Blocking,
            format!("{} {} is too old", facts.os_id, facts.os_version),
            "use Debian 12 or newer, or Ubuntu 22.04 or newer".into(),
        ));
    } else if facts.os_id != "debian" && facts.os_id != "ubuntu" {
        findings.push(finding(
            host,
            Severity::Warning,
            format!(
                "{} {} is a Debian derivative kbs is not tested on",
                facts.os_id, facts.os_version
            ),
            "it should work; Debian 12+ and Ubuntu 22.04+ are tested".into(),
        ));
    }
    if facts.arch != "amd64" && facts.arch != "arm64" {
        findings.push(finding(
            host,
            Severity::Blocking,
            format!("architecture {} has no Kubernetes packages", facts.arch),
            "pkgs.k8s.io publishes amd64, arm64, ppc64el and s390x; kbs supports amd64 and arm64".into(),
        ));
    }
    if !facts.cgroup_v2 {
        findings.push(finding(
            host,
            Severity::Warning,
            "the host uses cgroup v1".into(),
            "the kubelet refuses cgroup v1 by default since Kubernetes 1.35; boot with cgroup v2 \
             (systemd.unified_cgroup_hierarchy=1)"
                .into(),
        ));
    }
}

fn resources(host: &Host, facts: &Facts, findings: &mut Vec<Finding>) {
    if !host.has_role(Role::ControlPlane) {
        return;
    }
    if facts.cpus < MIN_CONTROL_PLANE_CPUS {
        findings.push(finding(
            host,
            Severity::Blocking,
            format!(
                "{} CPU{} on a control plane; kubeadm requires at least {MIN_CONTROL_PLANE_CPUS} (NumCPU)",
                facts.cpus,
                if facts.cpus == 1 { "" } else { "s" }
            ),
            "give the machine more CPUs or make it a worker".into(),
        ));
    }
    if facts.memory_mb < MIN_CONTROL_PLANE_MEMORY_MB {
        findings.push(finding(
            host,
            Severity::Blocking,
            format!(
                "{} MB of memory on a control plane; kubeadm requires at least {MIN_CONTROL_PLANE_MEMORY_MB} MB (Mem)",
                facts.memory_mb
            ),
            "give the machine more memory (2 GiB or more) or make it a worker".into(),
        ));
    }
}

fn ports(host: &Host, facts: &Facts, listening: Option<&Vec<u16>>, findings: &mut Vec<Finding>) {
    // A node kubeadm already set up listens on these ports itself.
    if facts.kubeadm_state != KubeadmState::Nothing {
        return;
    }
    let mut needed = vec![10250];
    if host.has_role(Role::ControlPlane) {
        needed.insert(0, 6443);
    }
    for port in needed {
        if listening.is_some_and(|ports| ports.contains(&port)) {
            findings.push(finding(
                host,
                Severity::Blocking,
                format!("port {port} is already in use"),
                format!(
                    "stop what listens on it (`ss -ltnp 'sport = :{port}'` shows it); Kubernetes needs it"
                ),
            ));
        }
    }
}

fn clock(host: &Host, facts: &Facts, local_time: i64, findings: &mut Vec<Finding>) {
    let skew = facts.time - local_time;
    let severity = match skew.abs() {
        s if s > MAX_CLOCK_SKEW_SECONDS => Severity::Blocking,
        s if s > WARN_CLOCK_SKEW_SECONDS => Severity::Warning,
        _ => return,
    };
    let direction = if skew > 0 { "ahead of" } else { "behind" };
    findings.push(finding(
        host,
        severity,
        format!("the clock is {}s {direction} this machine's", skew.abs()),
        "run a time service (systemd-timesyncd or chrony) on every host; certificates and tokens depend on it"
            .into(),
    ));
}

fn state(host: &Host, facts: &Facts, findings: &mut Vec<Finding>) {
    if !facts.swap_devices.is_empty() {
        findings.push(finding(
            host,
            Severity::Warning,
            format!("swap is on ({})", facts.swap_devices.join(", ")),
            "kbs apply turns it off and comments it out of /etc/fstab".into(),
        ));
    }
    if let Some(holder) = &facts.dpkg_lock {
        findings.push(finding(
            host,
            Severity::Warning,
            format!("the dpkg lock is held by {holder}"),
            "kbs apply waits for it; if it never ends, stop it".into(),
        ));
    }
}

/// kubeadm and the kubelet identify nodes by hostname, MAC and product_uuid: cloned VMs share them.
fn unique_identities(fit: &[(&Host, &Facts)], findings: &mut Vec<Finding>) {
    let mut first_with: BTreeMap<(&str, String), &str> = BTreeMap::new();
    for (host, facts) in fit {
        let mut identities = vec![
            ("hostname", facts.hostname.clone()),
            ("product_uuid", facts.product_uuid.clone()),
        ];
        identities.extend(facts.macs.values().map(|mac| ("MAC address", mac.clone())));
        for (kind, value) in identities {
            if value.is_empty() {
                continue;
            }
            match first_with.get(&(kind, value.clone())) {
                Some(other) => findings.push(finding(
                    host,
                    Severity::Blocking,
                    format!("{kind} {value} is also {other}'s"),
                    "every node needs its own; a cloned VM needs a new machine identity".into(),
                )),
                None => {
                    first_with.insert((kind, value), &host.name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn inventory() -> Inventory {
        Inventory::from_str(
            "cluster:\n  podSubnet: 172.31.0.0/16\n  endpoint: { mode: external, address: 10.0.0.100 }\n\
             hosts:\n  - { name: cp1, address: 10.0.0.1, roles: [control-plane] }\n  \
             - { name: w1, address: 10.0.0.2, roles: [worker] }\n",
            Path::new("inventory.yaml"),
        )
        .unwrap()
        .inventory
    }

    fn healthy(name: &str, number: u8) -> Facts {
        Facts {
            os_id: "ubuntu".into(),
            os_version: "24.04".into(),
            arch: "amd64".into(),
            hostname: name.into(),
            cpus: 2,
            memory_mb: 2048,
            product_uuid: format!("uuid-{number}"),
            macs: [("eth0".to_string(), format!("52:54:00:00:00:0{number}"))].into(),
            cgroup_v2: true,
            time: 1_000,
            ..Facts::default()
        }
    }

    fn check(facts: Vec<(&str, Facts)>, listening: Vec<(&str, Vec<u16>)>) -> Vec<String> {
        let facts: BTreeMap<String, Result<Facts, HostFailure>> =
            facts.into_iter().map(|(h, f)| (h.to_string(), Ok(f))).collect();
        let listening: BTreeMap<String, Vec<u16>> =
            listening.into_iter().map(|(h, p)| (h.to_string(), p)).collect();
        let observed = Observed {
            facts: &facts,
            listening: &listening,
            local_time: 1_000,
        };
        evaluate(&inventory(), &observed)
            .into_iter()
            .map(|f| format!("{} {:?}: {} ({})", f.host, f.severity, f.problem, f.hint))
            .collect()
    }

    #[test]
    fn healthy_hosts_have_no_findings() {
        assert_eq!(
            check(vec![("cp1", healthy("cp1", 1)), ("w1", healthy("w1", 2))], vec![]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_small_control_plane_is_blocking_but_a_small_worker_is_not() {
        let small = |name, n| Facts {
            cpus: 1,
            memory_mb: 1024,
            ..healthy(name, n)
        };
        assert_eq!(
            check(vec![("cp1", small("cp1", 1)), ("w1", small("w1", 2))], vec![]),
            vec![
                "cp1 Blocking: 1 CPU on a control plane; kubeadm requires at least 2 (NumCPU) \
                 (give the machine more CPUs or make it a worker)",
                "cp1 Blocking: 1024 MB of memory on a control plane; kubeadm requires at least 1700 MB (Mem) \
                 (give the machine more memory (2 GiB or more) or make it a worker)",
            ]
        );
    }

    #[test]
    fn cloned_machines_and_busy_ports_are_blocking() {
        let clone = Facts {
            hostname: "cp1".into(),
            product_uuid: "uuid-1".into(),
            ..healthy("w1", 2)
        };
        let found = check(
            vec![("cp1", healthy("cp1", 1)), ("w1", clone)],
            vec![("cp1", vec![22, 6443]), ("w1", vec![10250])],
        );
        assert_eq!(
            found,
            vec![
                "cp1 Blocking: port 6443 is already in use (stop what listens on it (`ss -ltnp 'sport = :6443'` \
                 shows it); Kubernetes needs it)",
                "w1 Blocking: port 10250 is already in use (stop what listens on it (`ss -ltnp 'sport = :10250'` \
                 shows it); Kubernetes needs it)",
                "w1 Blocking: hostname cp1 is also cp1's (every node needs its own; a cloned VM needs a new \
                 machine identity)",
                "w1 Blocking: product_uuid uuid-1 is also cp1's (every node needs its own; a cloned VM needs \
                 a new machine identity)",
            ]
        );
    }

    #[test]
    fn ports_of_a_node_kubeadm_already_set_up_are_its_own() {
        let running = Facts {
            kubeadm_state: KubeadmState::ControlPlane,
            ..healthy("cp1", 1)
        };
        assert_eq!(
            check(
                vec![("cp1", running), ("w1", healthy("w1", 2))],
                vec![("cp1", vec![6443, 10250])]
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn clock_skew_warns_then_blocks_and_old_or_foreign_systems_are_named() {
        let skewed = Facts {
            time: 1_000 - 45,
            os_id: "debian".into(),
            os_version: "11".into(),
            ..healthy("cp1", 1)
        };
        let drifting = Facts {
            time: 1_000 + 7,
            os_id: "fedora".into(),
            os_like: "rhel".into(),
            ..healthy("w1", 2)
        };
        assert_eq!(
            check(vec![("cp1", skewed), ("w1", drifting)], vec![]),
            vec![
                "cp1 Blocking: debian 11 is too old (use Debian 12 or newer, or Ubuntu 22.04 or newer)",
                "cp1 Blocking: the clock is 45s behind this machine's (run a time service (systemd-timesyncd \
                 or chrony) on every host; certificates and tokens depend on it)",
                "w1 Blocking: fedora 24.04 is not an apt-based system (kbs prepares Debian, Ubuntu and their \
                 derivatives)",
                "w1 Warning: the clock is 7s ahead of this machine's (run a time service (systemd-timesyncd \
                 or chrony) on every host; certificates and tokens depend on it)",
            ]
        );
    }

    #[test]
    fn an_unreachable_host_is_blocking_with_the_transport_hint() {
        let mut facts: BTreeMap<String, Result<Facts, HostFailure>> = BTreeMap::new();
        facts.insert("cp1".into(), Ok(healthy("cp1", 1)));
        facts.insert(
            "w1".into(),
            Err(HostFailure {
                host: "w1".into(),
                step: "gather facts".into(),
                message: "cannot connect to w1 (10.0.0.2:22): timed out".into(),
                hint: Some("check that the host is up".into()),
            }),
        );
        let listening = BTreeMap::new();
        let observed = Observed {
            facts: &facts,
            listening: &listening,
            local_time: 1_000,
        };
        let found = evaluate(&inventory(), &observed);
        assert_eq!(
            found,
            vec![Finding {
                host: "w1".into(),
                severity: Severity::Blocking,
                problem: "gather facts: cannot connect to w1 (10.0.0.2:22): timed out".into(),
                hint: "check that the host is up".into(),
            }]
        );
    }
}
