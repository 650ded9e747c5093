//! Rules that relate several values of a decoded inventory: uniqueness, subnets, the endpoint
//! against the hosts, control-plane counts and group references.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::decode::{ClusterDraft, Draft};
use crate::findings::Findings;
use crate::model::{EndpointMode, Host, Role};
use crate::suggest;

pub(crate) fn validate(draft: &Draft, findings: &mut Findings) {
    unique_names(&draft.hosts, findings);
    unique_addresses(&draft.hosts, findings);
    unique_node_ips(&draft.hosts, findings);
    subnets_disjoint(&draft.cluster, findings);
    hosts_in_host_subnet(draft, findings);
    endpoint_fits_hosts(draft, findings);
    groups_defined(draft, findings);
    // Counting roles when some failed to decode would report phantom problems.
    if !draft.roles_incomplete {
        control_plane_count(draft, findings);
        endpoint_needs_roles(draft, findings);
        something_schedulable(draft, findings);
    }
}

fn host_field(index: usize, field: &str) -> String {
    format!("hosts[{index}].{field}")
}

fn unique_names(hosts: &[Host], findings: &mut Findings) {
    for (i, host) in hosts.iter().enumerate() {
        let first = hosts[..i]
            .iter()
            .position(|other| !host.name.is_empty() && other.name == host.name);
        if let Some(first) = first {
            let first_line = findings.pos_of(&host_field(first, "name")).line;
            findings.error(
                findings.pos_of(&host_field(i, "name")),
                format!("duplicate host name `{}` (also at line {first_line})", host.name),
                Some("host names become node names and must be unique".to_string()),
            );
        }
    }
}

fn same_address(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.eq_ignore_ascii_case(b),
    }
}

fn unique_addresses(hosts: &[Host], findings: &mut Findings) {
    for (i, host) in hosts.iter().enumerate() {
        let first = hosts[..i]
            .iter()
            .position(|other| !host.address.is_empty() && same_address(&other.address, &host.address));
        if let Some(first) = first {
            let first_line = findings.pos_of(&host_field(first, "address")).line;
            findings.error(
                findings.pos_of(&host_field(i, "address")),
                format!(
                    "duplicate host address {} (also used by {} at line {first_line})",
                    host.address, hosts[first].name
                ),
                Some("every host needs its own address".to_string()),
            );
        }
    }
}

/// Only node IPs written out are checked: defaulted ones repeat their address, already checked.
fn unique_node_ips(hosts: &[Host], findings: &mut Findings) {
    for (i, host) in hosts.iter().enumerate() {
        let Some(ip) = host.node_ip else { continue };
        let explicit = findings.was_written(&host_field(i, "nodeIp"));
        let first = hosts[..i].iter().enumerate().position(|(j, other)| {
            other.node_ip == Some(ip) && (explicit || findings.was_written(&host_field(j, "nodeIp")))
        });
        if let Some(first) = first {
            let first_line = findings.pos_of(&node_ip_field(first, findings)).line;
            findings.error(
                findings.pos_of(&node_ip_field(i, findings)),
                format!(
                    "duplicate node IP {ip} (also used by {} at line {first_line})",
                    hosts[first].name
                ),
                Some(
                    "every node needs its own IP; set `nodeIp` to the address on the cluster network"
                        .to_string(),
                ),
            );
        }
    }
}

/// Where a host's node IP was written: `nodeIp`, or `address` it defaulted from.
fn node_ip_field(index: usize, findings: &Findings) -> String {
    let explicit = host_field(index, "nodeIp");
    if findings.was_written(&explicit) {
        explicit
    } else {
        host_field(index, "address")
    }
}

fn subnets_disjoint(cluster: &ClusterDraft, findings: &mut Findings) {
    let subnets: [(&str, &str, Option<IpNet>); 3] = [
        ("pod subnet", "cluster.podSubnet", cluster.pod_subnet),
        ("service subnet", "cluster.serviceSubnet", cluster.service_subnet),
        ("host subnet", "cluster.hostSubnet", cluster.host_subnet),
    ];
    for (i, (name_a, field_a, a)) in subnets.iter().enumerate() {
        for (name_b, field_b, b) in &subnets[i + 1..] {
            let (Some(a), Some(b)) = (a, b) else { continue };
            if a.contains(&b.network()) || b.contains(&a.network()) {
                // Point at whichever of the two the user wrote later; a defaulted one was not written.
                let pos = findings.pos_of(field_a).max(findings.pos_of(field_b));
                let hint = if findings.was_written(field_b) || *field_b != "cluster.serviceSubnet" {
                    "the pod, service and host networks must not share addresses"
                } else {
                    "the service subnet defaults to 10.96.0.0/12; set `serviceSubnet` to a free range"
                };
                findings.error(
                    pos,
                    format!("{name_a} {a} overlaps {name_b} {b}"),
                    Some(hint.to_string()),
                );
            }
        }
    }
}

fn hosts_in_host_subnet(draft: &Draft, findings: &mut Findings) {
    let Some(subnet) = draft.cluster.host_subnet else {
        return;
    };
    for (i, host) in draft.hosts.iter().enumerate() {
        let Some(ip) = host.node_ip else { continue };
        if !subnet.contains(&ip) {
            let field = node_ip_field(i, findings);
            let what = if field.ends_with("nodeIp") {
                "node IP"
            } else {
                "address"
            };
            findings.error(
                findings.pos_of(&field),
                format!("{what} {ip} of {} is outside the host subnet {subnet}", host.name),
                Some("fix the address, set `nodeIp` to the host's address on that subnet, or fix `cluster.hostSubnet`".to_string()),
            );
        }
    }
}

fn control_plane_count(draft: &Draft, findings: &mut Findings) {
    if draft.hosts.is_empty() {
        if findings.was_written("hosts") {
            findings.error(
                findings.pos_of("hosts"),
                "`hosts` is empty",
                Some("list the machines, each with name, address and roles".to_string()),
            );
        }
        return;
    }
    let control_planes: Vec<usize> = (0..draft.hosts.len())
        .filter(|&i| draft.hosts[i].has_role(Role::ControlPlane))
        .collect();
    let Some(&last) = control_planes.last() else {
        findings.error(
            findings.pos_of("hosts"),
            "no host has the control-plane role",
            Some("give at least one host `roles: [control-plane]`".to_string()),
        );
        return;
    };
    let count = control_planes.len();
    if count > 1 && count.is_multiple_of(2) {
        findings.warning(
            findings.pos_of(&host_field(last, "roles")),
            format!(
                "{count} control planes: etcd's quorum tolerates no more failures than with {}",
                count - 1
            ),
            Some("use an odd number of control planes, e.g. 3 or 5".to_string()),
        );
    }
    if count > 1
        && draft
            .cluster
            .endpoint
            .as_ref()
            .is_some_and(|e| e.mode == EndpointMode::None)
    {
        findings.error(
            findings.pos_of("cluster.endpoint.mode"),
            format!("{count} control planes but no shared API endpoint"),
            Some("set `cluster.endpoint.mode` to kube-vip (a virtual IP), haproxy (lb hosts) or external (your load balancer)".to_string()),
        );
    }
}

fn endpoint_fits_hosts(draft: &Draft, findings: &mut Findings) {
    let Some(endpoint) = &draft.cluster.endpoint else {
        return;
    };
    let mode_pos = findings.pos_of("cluster.endpoint.mode");
    let address_pos = findings.pos_of("cluster.endpoint.address");
    if endpoint.interface.is_some() && endpoint.mode != EndpointMode::KubeVip {
        findings.error(
            findings.pos_of("cluster.endpoint.interface"),
            format!(
                "`interface` is used only by kube-vip, not by mode {}",
                endpoint.mode
            ),
            Some("remove `interface`".to_string()),
        );
    }
    match endpoint.mode {
        EndpointMode::KubeVip => kube_vip(draft, findings),
        EndpointMode::External
            if endpoint.address.is_none() && !findings.was_written("cluster.endpoint.address") =>
        {
            findings.error(
                mode_pos,
                "endpoint mode external needs `address`",
                Some("set `cluster.endpoint.address` to your load balancer's IP or DNS name".to_string()),
            );
        }
        EndpointMode::External => {}
        EndpointMode::Haproxy => {}
        EndpointMode::None => {
            if endpoint.address.is_some() {
                findings.error(
                    address_pos,
                    "endpoint mode none has no address",
                    Some("remove `address`, or choose mode kube-vip, haproxy or external".to_string()),
                );
            }
        }
    }
}

/// Endpoint rules that count roles: haproxy needs lb hosts, lb hosts need haproxy.
fn endpoint_needs_roles(draft: &Draft, findings: &mut Findings) {
    let Some(endpoint) = &draft.cluster.endpoint else {
        return;
    };
    if endpoint.mode == EndpointMode::Haproxy {
        haproxy(draft, findings);
    }
    let lbs: Vec<usize> = (0..draft.hosts.len())
        .filter(|&i| draft.hosts[i].has_role(Role::Lb))
        .collect();
    if let (Some(&first), false) = (lbs.first(), endpoint.mode == EndpointMode::Haproxy) {
        findings.warning(
            findings.pos_of(&host_field(first, "roles")),
            format!(
                "{} has the lb role, but the endpoint mode is {}",
                draft.hosts[first].name, endpoint.mode
            ),
            Some("lb hosts run HAProxy only with `cluster.endpoint.mode: haproxy`".to_string()),
        );
    }
}

fn kube_vip(draft: &Draft, findings: &mut Findings) {
    let mode_pos = findings.pos_of("cluster.endpoint.mode");
    let Some(address) = draft.cluster.endpoint.as_ref().and_then(|e| e.address.as_deref()) else {
        if !findings.was_written("cluster.endpoint.address") {
            findings.error(
                mode_pos,
                "endpoint mode kube-vip needs `address`, the virtual IP",
                Some("set `cluster.endpoint.address` to a free IP in the hosts' subnet".to_string()),
            );
        }
        return;
    };
    let address_pos = findings.pos_of("cluster.endpoint.address");
    let Ok(vip) = address.parse::<IpAddr>() else {
        findings.error(
            address_pos,
            format!("kube-vip address `{address}` must be an IP address, not a name"),
            Some("kube-vip announces the virtual IP itself; pick a free IP in the hosts' subnet".to_string()),
        );
        return;
    };
    match draft.cluster.host_subnet {
        Some(subnet) if !subnet.contains(&vip) => findings.error(
            address_pos,
            format!("kube-vip address {vip} is outside the host subnet {subnet}"),
            Some(
                "kube-vip announces the VIP by ARP, so it must be a free IP in the hosts' subnet".to_string(),
            ),
        ),
        Some(_) => {}
        None if !findings.was_written("cluster.hostSubnet") => findings.error(
            mode_pos,
            "endpoint mode kube-vip needs `cluster.hostSubnet`",
            Some("set `cluster.hostSubnet` to the hosts' L2 subnet, e.g. 192.168.61.0/24".to_string()),
        ),
        None => {}
    }
    for (i, host) in draft.hosts.iter().enumerate() {
        let is_address = host.address.parse::<IpAddr>().ok() == Some(vip);
        if is_address || host.node_ip == Some(vip) {
            let line = findings.pos_of(&node_ip_field(i, findings)).line;
            findings.error(
                address_pos,
                format!(
                    "kube-vip address {vip} is also the address of {} (line {line})",
                    host.name
                ),
                Some("the virtual IP must be a free address that no host uses".to_string()),
            );
        }
    }
}

fn haproxy(draft: &Draft, findings: &mut Findings) {
    let Some(endpoint) = &draft.cluster.endpoint else {
        return;
    };
    let lbs: Vec<&Host> = draft.hosts.iter().filter(|h| h.has_role(Role::Lb)).collect();
    if lbs.is_empty() {
        if !draft.hosts.is_empty() {
            findings.error(
                findings.pos_of("cluster.endpoint.mode"),
                "endpoint mode haproxy needs a host with the lb role",
                Some("add `lb` to the roles of the host that should run HAProxy".to_string()),
            );
        }
        return;
    }
    if endpoint.port == crate::decode::DEFAULT_API_PORT {
        if let Some(both) = lbs.iter().find(|h| h.has_role(Role::ControlPlane)) {
            findings.error(
                findings.pos_of("cluster.endpoint.port"),
                format!(
                    "{} is both lb and control plane, so HAProxy cannot listen on the API server's port 6443",
                    both.name
                ),
                Some("set `cluster.endpoint.port` to another port, e.g. 8443".to_string()),
            );
        }
    }
}

fn groups_defined(draft: &Draft, findings: &mut Findings) {
    for (i, host) in draft.hosts.iter().enumerate() {
        for (j, group) in host.groups.iter().enumerate() {
            if draft.groups.contains_key(group) {
                continue;
            }
            let suggestion = suggest::did_you_mean(group, draft.groups.keys().map(String::as_str));
            let hint = if draft.groups.is_empty() {
                "define it under the top-level `groups:`".to_string()
            } else {
                let names: Vec<&str> = draft.groups.keys().map(String::as_str).collect();
                format!("defined groups: {}", names.join(", "))
            };
            findings.error(
                findings.pos_of(&format!("hosts[{i}].groups[{j}]")),
                format!(
                    "group `{group}` is not defined{}",
                    suggest::suffix(suggestion.as_deref())
                ),
                Some(hint),
            );
        }
    }
}

/// Pods need somewhere to run; without workers the control planes must take them.
fn something_schedulable(draft: &Draft, findings: &mut Findings) {
    let has_workers = draft.hosts.iter().any(|h| h.has_role(Role::Worker));
    let has_control_planes = draft.hosts.iter().any(|h| h.has_role(Role::ControlPlane));
    if !has_workers && has_control_planes && !draft.cluster.control_plane_schedulable {
        findings.warning(
            findings.pos_of("hosts"),
            "no host can run workloads: there are no workers and control planes are not schedulable",
            Some(
                "add a host with `roles: [worker]` or set `cluster.controlPlaneSchedulable: true`"
                    .to_string(),
            ),
        );
    }
}
