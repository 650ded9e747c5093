//! One failing inventory per validation rule, asserting the exact rendered diagnostic:
//! position, value, message and hint.

mod common;

use common::{base_with, errors, warnings, BASE};

#[test]
fn base_inventory_is_valid_and_quiet() {
    assert_eq!(warnings(BASE), "");
}

// ---- structure: keys and types ----

#[test]
fn unknown_key_suggests_the_closest_known_key() {
    let yaml = base_with(&[(
        "    address: 192.168.61.12\n",
        "    address: 192.168.61.12\n    nodeIP: 192.168.61.12\n",
    )]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:16:5: error: unknown key `nodeIP` in host `host02`\n  hint: did you mean `nodeIp`?"
    );
}

#[test]
fn unknown_key_without_a_close_match_lists_the_known_keys() {
    let yaml = format!("{BASE}colour: red\n");
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:17:1: error: unknown key `colour` at the top level\n  \
         hint: known keys here: cluster, ssh, groups, hosts, addons"
    );
}

#[test]
fn misspelt_required_key_reports_both_the_typo_and_the_missing_key() {
    let yaml = base_with(&[("  podSubnet:", "  podSubnt:")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:1:1: error: missing required key `podSubnet` in `cluster`\n  \
         hint: the pods' network, e.g. `podSubnet: 172.31.0.0/16`\n\n\
         inventory.yaml:4:3: error: unknown key `podSubnt` in `cluster`\n  \
         hint: did you mean `podSubnet`?"
    );
}

#[test]
fn wrong_type_names_the_expected_and_found_kind() {
    let yaml = base_with(&[("    roles: [worker]", "    roles: worker")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:16:12: error: `roles` must be a list, found `worker`\n  \
         hint: write `roles: [control-plane]` or `roles: [worker]`"
    );
    let yaml = base_with(&[(
        "  endpoint:\n    mode: kube-vip\n    address: 192.168.61.10\n",
        "  endpoint: [kube-vip]\n",
    )]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:7:3: error: `cluster.endpoint` must be a mapping, found a list\n  \
         hint: write `key: value` lines indented under it"
    );
    let yaml = base_with(&[("  name: book", "  name: {first: book}")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:2:3: error: `name` must be a single value, found a mapping\n  \
         hint: write it on the same line as its key, e.g. `key: value`"
    );
}

#[test]
fn booleans_and_ports_are_checked() {
    let yaml = base_with(&[("  name: book\n", "  name: book\n  controlPlaneSchedulable: yes\n")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:3:28: error: `controlPlaneSchedulable` must be true or false, found `yes`\n  \
         hint: write true or false"
    );
    let yaml = base_with(&[(
        "    address: 192.168.61.10\n",
        "    address: 192.168.61.10\n    port: 70000\n",
    )]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:10:11: error: `port` must be a port number from 1 to 65535, found `70000`\n  \
         hint: write a whole number, e.g. 22 for SSH or 6443 for the API server"
    );
}

#[test]
fn missing_sections_and_host_keys_are_reported_where_they_belong() {
    assert_eq!(
        errors("ssh:\n  user: root\n"),
        "inventory.yaml:1:1: error: missing required key `cluster` in the inventory\n  \
         hint: add a `cluster:` section with at least `podSubnet`\n\n\
         inventory.yaml:1:1: error: missing required key `hosts` in the inventory\n  \
         hint: list the machines under `hosts:`, each with name, address and roles"
    );
    let yaml = base_with(&[(
        "  - name: host02\n    address: 192.168.61.12\n    roles: [worker]\n",
        "  - name: host02\n",
    )]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:14:5: error: missing required key `address` in host `host02`\n  \
         hint: every host needs an `address:` to connect to\n\n\
         inventory.yaml:14:5: error: missing required key `roles` in host `host02`\n  \
         hint: give at least one of control-plane, worker, lb, e.g. `roles: [worker]`"
    );
}

#[test]
fn a_host_without_a_name_is_named_by_its_index() {
    let yaml = base_with(&[("  - name: host02\n", "  - nmae: host02\n")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:14:5: error: unknown key `nmae` in `hosts[1]`\n  \
         hint: did you mean `name`?\n\n\
         inventory.yaml:14:5: error: missing required key `name` in `hosts[1]`\n  \
         hint: every host needs a `name:`, its node name"
    );
}

#[test]
fn empty_roles_and_empty_hosts_are_errors() {
    let yaml = base_with(&[("    roles: [worker]", "    roles: []")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:16:5: error: `roles` of host `host02` is empty\n  \
         hint: give at least one of control-plane, worker, lb"
    );
    assert_eq!(
        errors("cluster:\n  podSubnet: 172.31.0.0/16\nhosts: []\n"),
        "inventory.yaml:3:1: error: `hosts` is empty\n  \
         hint: list the machines, each with name, address and roles"
    );
}

// ---- YAML itself ----

#[test]
fn yaml_syntax_errors_have_a_position() {
    assert_eq!(
        errors("cluster:\n  podSubnet: [172.31.0.0/16\n"),
        "inventory.yaml:3:1: error: YAML syntax error: while parsing a flow sequence, expected ',' or ']'\n  \
         hint: check the indentation and quoting"
    );
}

#[test]
fn a_second_yaml_document_is_refused() {
    assert_eq!(
        errors(&format!("---\n{BASE}---\nhosts: []\n")),
        "inventory.yaml:18:1: error: a second YAML document starts here; an inventory is a single document\n  \
         hint: remove the `---` line, or move the rest into a file of its own"
    );
}

#[test]
fn duplicate_keys_name_both_lines() {
    let yaml = base_with(&[(
        "  serviceSubnet: 10.96.0.0/12\n",
        "  serviceSubnet: 10.96.0.0/12\n  podSubnet: 172.30.0.0/16\n",
    )]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:6:3: error: duplicate key `podSubnet` (first at line 4)\n  \
         hint: each key may appear once per mapping; remove or merge one of them"
    );
}

#[test]
fn anchors_are_refused_with_an_alternative() {
    let yaml = base_with(&[("    roles: [control-plane]", "    roles: &cp [control-plane]")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:13:16: error: YAML anchors and aliases are not supported in inventories\n  \
         hint: write the values out; use `groups:` to share SSH settings between hosts"
    );
}

#[test]
fn a_top_level_list_is_not_an_inventory() {
    assert_eq!(
        errors("- host01\n"),
        "inventory.yaml:1:1: error: the inventory must be a YAML mapping\n  \
         hint: start with `cluster:`, `ssh:` and `hosts:` sections"
    );
}

// ---- names ----

#[test]
fn cluster_and_host_names_must_be_dns_names() {
    let yaml = base_with(&[
        ("  name: book", "  name: Book_1"),
        ("  - name: host02", "  - name: host_02"),
    ]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:2:9: error: cluster name `Book_1` is not a DNS-1123 label\n  \
         hint: use lowercase letters, digits and `-`, starting and ending with a letter or digit (at most 63)\n\n\
         inventory.yaml:14:11: error: host name `host_02` is not a valid DNS-1123 name\n  \
         hint: use lowercase letters, digits, `-` and `.`, e.g. host01"
    );
}

#[test]
fn duplicate_host_names() {
    let yaml = base_with(&[("  - name: host02", "  - name: host01")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:14:11: error: duplicate host name `host01` (also at line 11)\n  \
         hint: host names become node names and must be unique"
    );
}

// ---- addresses and subnets ----

#[test]
fn duplicate_host_addresses() {
    let yaml = base_with(&[("    address: 192.168.61.12", "    address: 192.168.61.11")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:15:14: error: duplicate host address 192.168.61.11 (also used by host01 at line 12)\n  \
         hint: every host needs its own address"
    );
}

#[test]
fn duplicate_node_ips() {
    let yaml = base_with(&[(
        "    address: 192.168.61.12\n",
        "    address: 192.168.61.12\n    nodeIp: 192.168.61.11\n",
    )]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:16:13: error: duplicate node IP 192.168.61.11 (also used by host01 at line 12)\n  \
         hint: every node needs its own IP; set `nodeIp` to the address on the cluster network"
    );
}

#[test]
fn invalid_addresses_and_ips() {
    let yaml = base_with(&[(
        "    address: 192.168.61.12\n",
        "    address: 192.168.61.300\n    nodeIp: host02.lan\n",
    )]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:15:14: error: address `192.168.61.300` is neither an IP address nor a DNS name\n  \
         hint: write an address like 192.168.61.11 or a name like host01.example.com\n\n\
         inventory.yaml:16:13: error: nodeIp `host02.lan` is not a valid IP address\n  \
         hint: write an address like 192.168.61.11"
    );
}

#[test]
fn invalid_cidrs() {
    let yaml = base_with(&[
        ("  podSubnet: 172.31.0.0/16", "  podSubnet: 172.31.0.0/33"),
        ("  serviceSubnet: 10.96.0.0/12", "  serviceSubnet: 10.96.0.1/12"),
    ]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:4:14: error: pod subnet `172.31.0.0/33` is not a valid CIDR\n  \
         hint: write a network address and prefix length, e.g. 172.31.0.0/16\n\n\
         inventory.yaml:5:18: error: service subnet `10.96.0.1/12` has host bits set\n  \
         hint: did you mean `10.96.0.0/12`?"
    );
}

#[test]
fn overlapping_subnets_name_both() {
    let yaml = base_with(&[
        ("  podSubnet: 172.31.0.0/16", "  podSubnet: 10.100.0.0/16"),
        ("  serviceSubnet: 10.96.0.0/12\n", ""),
    ]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:4:14: error: pod subnet 10.100.0.0/16 overlaps service subnet 10.96.0.0/12\n  \
         hint: the service subnet defaults to 10.96.0.0/12; set `serviceSubnet` to a free range"
    );
    let yaml = base_with(&[("  podSubnet: 172.31.0.0/16", "  podSubnet: 192.168.0.0/16")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:6:15: error: pod subnet 192.168.0.0/16 overlaps host subnet 192.168.61.0/24\n  \
         hint: the pod, service and host networks must not share addresses"
    );
}

#[test]
fn hosts_must_lie_in_the_host_subnet() {
    let yaml = base_with(&[("    address: 192.168.61.12\n", "    address: 10.0.0.12\n")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:15:14: error: address 10.0.0.12 of host02 is outside the host subnet 192.168.61.0/24\n  \
         hint: fix the address, set `nodeIp` to the host's address on that subnet, or fix `cluster.hostSubnet`"
    );
    // A management address elsewhere is fine when nodeIp is on the host subnet.
    let yaml = base_with(&[(
        "    address: 192.168.61.12\n",
        "    address: 10.0.0.12\n    nodeIp: 192.168.61.12\n",
    )]);
    assert_eq!(warnings(&yaml), "");
}

// ---- endpoint ----

#[test]
fn kube_vip_address_must_be_in_the_host_subnet() {
    let yaml = base_with(&[("    address: 192.168.61.10", "    address: 192.168.62.10")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:9:14: error: kube-vip address 192.168.62.10 is outside the host subnet 192.168.61.0/24\n  \
         hint: kube-vip announces the VIP by ARP, so it must be a free IP in the hosts' subnet"
    );
}

#[test]
fn kube_vip_address_must_not_be_a_host_address() {
    let yaml = base_with(&[("    address: 192.168.61.10", "    address: 192.168.61.11")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:9:14: error: kube-vip address 192.168.61.11 is also the address of host01 (line 12)\n  \
         hint: the virtual IP must be a free address that no host uses"
    );
}

#[test]
fn kube_vip_needs_an_ip_address_and_a_host_subnet() {
    let yaml = base_with(&[("    address: 192.168.61.10\n", "")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:8:11: error: endpoint mode kube-vip needs `address`, the virtual IP\n  \
         hint: set `cluster.endpoint.address` to a free IP in the hosts' subnet"
    );
    let yaml = base_with(&[("    address: 192.168.61.10", "    address: api.example.com")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:9:14: error: kube-vip address `api.example.com` must be an IP address, not a name\n  \
         hint: kube-vip announces the virtual IP itself; pick a free IP in the hosts' subnet"
    );
    let yaml = base_with(&[("  hostSubnet: 192.168.61.0/24\n", "")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:7:11: error: endpoint mode kube-vip needs `cluster.hostSubnet`\n  \
         hint: set `cluster.hostSubnet` to the hosts' L2 subnet, e.g. 192.168.61.0/24"
    );
}

#[test]
fn unknown_endpoint_mode_suggests_one() {
    let yaml = base_with(&[("    mode: kube-vip", "    mode: kubevip")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:8:11: error: unknown endpoint mode `kubevip` (did you mean `kube-vip`?)\n  \
         hint: modes are kube-vip, haproxy, external, none"
    );
}

const TWO_CONTROL_PLANES: &str = "cluster:
  podSubnet: 172.31.0.0/16
hosts:
  - name: host01
    address: 192.168.61.11
    roles: [control-plane, worker]
  - name: host02
    address: 192.168.61.12
    roles: [control-plane, worker]
  - name: host03
    address: 192.168.61.13
    roles: [control-plane, worker]
";

#[test]
fn several_control_planes_need_an_endpoint() {
    assert_eq!(
        errors(TWO_CONTROL_PLANES),
        "inventory.yaml:1:1: error: 3 control planes but no shared API endpoint\n  \
         hint: set `cluster.endpoint.mode` to kube-vip (a virtual IP), haproxy (lb hosts) or external (your load balancer)"
    );
    let yaml = TWO_CONTROL_PLANES.replace(
        "  podSubnet: 172.31.0.0/16\n",
        "  podSubnet: 172.31.0.0/16\n  endpoint: {mode: none}\n",
    );
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:3:20: error: 3 control planes but no shared API endpoint\n  \
         hint: set `cluster.endpoint.mode` to kube-vip (a virtual IP), haproxy (lb hosts) or external (your load balancer)"
    );
}

#[test]
fn an_even_number_of_control_planes_is_a_warning() {
    let yaml = base_with(&[(
        "  - name: host02\n",
        "  - name: host03\n    address: 192.168.61.13\n    roles: [control-plane]\n  - name: host02\n",
    )]);
    assert_eq!(
        warnings(&yaml),
        "inventory.yaml:16:5: warning: 2 control planes: etcd's quorum tolerates no more failures than with 1\n  \
         hint: use an odd number of control planes, e.g. 3 or 5"
    );
}

#[test]
fn there_must_be_a_control_plane() {
    let yaml = base_with(&[("    roles: [control-plane]", "    roles: [worker]")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:10:1: error: no host has the control-plane role\n  \
         hint: give at least one host `roles: [control-plane]`"
    );
}

#[test]
fn haproxy_needs_an_lb_host() {
    let yaml = base_with(&[(
        "    mode: kube-vip\n    address: 192.168.61.10\n",
        "    mode: haproxy\n",
    )]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:8:11: error: endpoint mode haproxy needs a host with the lb role\n  \
         hint: add `lb` to the roles of the host that should run HAProxy"
    );
}

#[test]
fn haproxy_on_a_control_plane_cannot_use_port_6443() {
    let yaml = base_with(&[
        (
            "    mode: kube-vip\n    address: 192.168.61.10\n",
            "    mode: haproxy\n",
        ),
        ("    roles: [control-plane]", "    roles: [control-plane, lb]"),
    ]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:7:3: error: host01 is both lb and control plane, so HAProxy cannot listen on the API server's port 6443\n  \
         hint: set `cluster.endpoint.port` to another port, e.g. 8443"
    );
    let fixed = yaml.replace("    mode: haproxy\n", "    mode: haproxy\n    port: 8443\n");
    assert_eq!(warnings(&fixed), "");
}

#[test]
fn lb_hosts_without_haproxy_are_a_warning() {
    let yaml = base_with(&[("    roles: [worker]", "    roles: [worker, lb]")]);
    assert_eq!(
        warnings(&yaml),
        "inventory.yaml:16:5: warning: host02 has the lb role, but the endpoint mode is kube-vip\n  \
         hint: lb hosts run HAProxy only with `cluster.endpoint.mode: haproxy`"
    );
}

#[test]
fn external_needs_an_address() {
    let yaml = base_with(&[(
        "    mode: kube-vip\n    address: 192.168.61.10\n",
        "    mode: external\n",
    )]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:8:11: error: endpoint mode external needs `address`\n  \
         hint: set `cluster.endpoint.address` to your load balancer's IP or DNS name"
    );
}

#[test]
fn mode_none_takes_no_address_and_interface_is_kube_vip_only() {
    let yaml = base_with(&[("    mode: kube-vip\n", "    mode: none\n    interface: eth1\n")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:9:16: error: `interface` is used only by kube-vip, not by mode none\n  \
         hint: remove `interface`\n\n\
         inventory.yaml:10:14: error: endpoint mode none has no address\n  \
         hint: remove `address`, or choose mode kube-vip, haproxy or external"
    );
}

// ---- versions ----

#[test]
fn unsupported_kubernetes_version_lists_the_supported_ones() {
    let yaml = base_with(&[("  kubernetesVersion: \"1.36\"", "  kubernetesVersion: \"1.34\"")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:3:22: error: Kubernetes 1.34 is not supported\n  \
         hint: supported versions are 1.35, 1.36, 1.37, written as 1.MM or 1.MM.P"
    );
    // Unquoted, YAML would read 1.30 as the number 1.3; the inventory keeps the text as written.
    let yaml = base_with(&[("  kubernetesVersion: \"1.36\"", "  kubernetesVersion: 1.30")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:3:22: error: Kubernetes 1.30 is not supported\n  \
         hint: supported versions are 1.35, 1.36, 1.37, written as 1.MM or 1.MM.P"
    );
    let yaml = base_with(&[("  kubernetesVersion: \"1.36\"", "  kubernetesVersion: v1.36")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:3:22: error: Kubernetes version `v1.36` is not of the form 1.MM or 1.MM.P\n  \
         hint: supported versions are 1.35, 1.36, 1.37"
    );
}

// ---- roles, taints, labels, groups ----

#[test]
fn unknown_role_suggests_one() {
    let yaml = base_with(&[("    roles: [worker]", "    roles: [wroker]")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:16:13: error: unknown role `wroker` (did you mean `worker`?)\n  \
         hint: roles are control-plane, worker, lb"
    );
    let yaml = base_with(&[("    roles: [control-plane]", "    roles: [master]")]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:13:13: error: unknown role `master` (did you mean `control-plane`?)\n  \
         hint: roles are control-plane, worker, lb"
    );
}

#[test]
fn bad_taints() {
    let yaml = base_with(&[(
        "    roles: [worker]\n",
        "    roles: [worker]\n    taints: [\"dedicated=db:NoScheduel\", \"gpu\", \"bad key:NoSchedule\"]\n",
    )]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:17:14: error: taint `dedicated=db:NoScheduel` has an unknown effect `NoScheduel` (did you mean `NoSchedule`?)\n  \
         hint: the effect is one of NoSchedule, PreferNoSchedule, NoExecute\n\n\
         inventory.yaml:17:41: error: taint `gpu` has no `:Effect`\n  \
         hint: write key[=value]:Effect, e.g. dedicated=db:NoSchedule\n\n\
         inventory.yaml:17:48: error: taint `bad key:NoSchedule` has an invalid key `bad key`\n  \
         hint: write key[=value]:Effect, e.g. dedicated=db:NoSchedule"
    );
}

#[test]
fn bad_labels() {
    let yaml = base_with(&[(
        "    roles: [worker]\n",
        "    roles: [worker]\n    labels:\n      disk type: ssd\n      zone: \"-a\"\n",
    )]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:18:7: error: label key `disk type` is not valid\n  \
         hint: write [prefix/]name: a name of letters, digits, `-`, `_`, `.` (at most 63), prefix a DNS name\n\n\
         inventory.yaml:19:13: error: label value `-a` of `zone` is not valid\n  \
         hint: at most 63 letters, digits, `-`, `_`, `.`, starting and ending with a letter or digit"
    );
}

#[test]
fn undefined_group_suggests_a_defined_one() {
    let yaml = base_with(&[(
        "    roles: [worker]\n",
        "    roles: [worker]\n    groups: [dmx]\n",
    )]);
    assert_eq!(
        errors(&format!(
            "{yaml}groups:\n  dmz: {{ssh: {{user: ops}}}}\n  lab: {{}}\n"
        )),
        "inventory.yaml:17:14: error: group `dmx` is not defined (did you mean `dmz`?)\n  \
         hint: defined groups: dmz, lab"
    );
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:17:14: error: group `dmx` is not defined\n  \
         hint: define it under the top-level `groups:`"
    );
}

#[test]
fn unknown_ingress_controller_suggests_one() {
    let yaml = format!("{BASE}addons:\n  ingress: {{controller: nginx}}\n");
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:18:25: error: unknown ingress controller `nginx` (did you mean `ingress-nginx`?)\n  \
         hint: controllers are ingress-nginx, traefik; leave it out for kbs' default"
    );
}

// ---- ssh ----

#[test]
fn bad_bastion_and_duration() {
    let yaml = format!("{BASE}ssh:\n  bastion: \"admin@:22\"\n  connectTimeout: 10 seconds\ngroups:\n  dmz:\n    ssh: {{bastion: \"jump:ssh\"}}\n");
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:18:12: error: bastion `admin@:22` has no valid host\n  \
         hint: write [user@]host[:port], e.g. admin@jump.example:22\n\n\
         inventory.yaml:19:19: error: duration `10 seconds` is not valid\n  \
         hint: write a number with a unit: ms, s, m or h, e.g. 10s or 1m30s\n\n\
         inventory.yaml:22:20: error: bastion `jump:ssh` has an invalid port `ssh`\n  \
         hint: write [user@]host[:port], e.g. admin@jump.example:22"
    );
}

#[test]
fn unknown_ssh_key_in_a_host_override() {
    let yaml = base_with(&[(
        "    roles: [worker]\n",
        "    roles: [worker]\n    ssh: {identity_file: /k}\n",
    )]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:17:11: error: unknown key `identity_file` in `ssh` of host `host02`\n  \
         hint: did you mean `identityFile`?"
    );
}

// ---- scheduling ----

#[test]
fn no_schedulable_node_is_a_warning() {
    let yaml = base_with(&[
        ("    roles: [worker]", "    roles: [lb]"),
        (
            "    mode: kube-vip\n    address: 192.168.61.10\n",
            "    mode: haproxy\n",
        ),
    ]);
    assert_eq!(
        warnings(&yaml),
        "inventory.yaml:9:1: warning: no host can run workloads: there are no workers and control planes are not schedulable\n  \
         hint: add a host with `roles: [worker]` or set `cluster.controlPlaneSchedulable: true`"
    );
    let yaml = yaml.replace(
        "  name: book\n",
        "  name: book\n  controlPlaneSchedulable: true\n",
    );
    assert_eq!(warnings(&yaml), "");
}

// ---- all at once ----

#[test]
fn all_errors_are_collected_in_file_order() {
    let yaml = base_with(&[
        ("  kubernetesVersion: \"1.36\"", "  kubernetesVersion: \"1.30\""),
        ("    address: 192.168.61.10", "    address: 192.168.61.12"),
        ("    roles: [worker]", "    roles: [worker, db]"),
    ]);
    let rendered = errors(&yaml);
    let headlines: Vec<&str> = rendered
        .lines()
        .filter(|l| l.starts_with("inventory.yaml:"))
        .collect();
    assert_eq!(
        headlines,
        [
            "inventory.yaml:3:22: error: Kubernetes 1.30 is not supported",
            "inventory.yaml:9:14: error: kube-vip address 192.168.61.12 is also the address of host02 (line 15)",
            "inventory.yaml:16:21: error: unknown role `db`",
        ]
    );
}

// ---- package repository ----

#[test]
fn package_repository_must_be_an_http_url() {
    let yaml = base_with(&[(
        "  name: book\n",
        "  name: book\n  packageRepository: ftp://mirror.lan/k8s\n",
    )]);
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:3:22: error: package repository `ftp://mirror.lan/k8s` is not an http(s) URL\n  \
         hint: give the base URL of a pkgs.k8s.io mirror, e.g. `https://pkgs.k8s.io` or `http://mirror.lan/k8s`"
    );
}

#[test]
fn package_repository_is_kept_without_its_trailing_slash() {
    let yaml = base_with(&[(
        "  name: book\n",
        "  name: book\n  packageRepository: http://10.61.0.1/\n",
    )]);
    let loaded = common::load(&yaml);
    assert_eq!(
        loaded.inventory.cluster.package_repository.as_deref(),
        Some("http://10.61.0.1")
    );
}

#[test]
fn allow_cgroup_v1_is_a_boolean_defaulting_to_false() {
    assert!(!common::load(BASE).inventory.cluster.allow_cgroup_v1);
    let yaml = base_with(&[("  name: book\n", "  name: book\n  allowCgroupV1: true\n")]);
    assert!(common::load(&yaml).inventory.cluster.allow_cgroup_v1);
}

// ---- add-on manifest sources and checksums ----

#[test]
fn manifest_mirror_must_be_an_http_url() {
    let yaml = format!("{BASE}addons:\n  manifests:\n    mirror: ftp://10.61.0.1/manifests\n");
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:19:13: error: manifest mirror `ftp://10.61.0.1/manifests` is not an http(s) URL\n  \
         hint: give the base URL under which `<upstream host>/<upstream path>` is served, e.g. `http://10.61.0.1/manifests`"
    );
}

#[test]
fn manifest_mirror_and_directory_exclude_each_other() {
    let yaml =
        format!("{BASE}addons:\n  manifests:\n    mirror: http://10.61.0.1/manifests\n    directory: /\n");
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:20:16: error: `mirror` and `directory` are both set: manifests come from one place\n  \
         hint: keep `mirror` (an http(s) server) or `directory` (files on this machine)"
    );
}

#[test]
fn manifest_directory_must_exist() {
    let yaml = format!("{BASE}addons:\n  manifests: {{directory: no-such-dir}}\n");
    let err = errors(&yaml);
    assert!(
        err.starts_with("inventory.yaml:18:26: error: manifest directory "),
        "{err}"
    );
    assert!(err.contains("no-such-dir does not exist"), "{err}");
}

#[test]
fn manifest_checksum_must_be_64_hex_digits_and_keyed_by_file_name() {
    let yaml = format!(
        "{BASE}addons:\n  calico:\n    sha256:\n      operator-crds.yaml: abc\n      manifests/x.yaml: {}\n",
        "0".repeat(64)
    );
    assert_eq!(
        errors(&yaml),
        "inventory.yaml:20:27: error: SHA-256 `abc` of `operator-crds.yaml` is not 64 hex digits\n  \
         hint: print it with `sha256sum FILE`\n\n\
         inventory.yaml:21:7: error: `manifests/x.yaml` is not a manifest file name\n  \
         hint: use the last part of the manifest's URL, e.g. `operator-crds.yaml`"
    );
}
