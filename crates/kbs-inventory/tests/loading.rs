//! Loading from files: the shipped examples, path resolution, read errors and defaults.

mod common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{base_with, load, BASE};
use kbs_inventory::{
    EndpointMode, IngressController, Inventory, InventoryError, KubernetesVersion, Loader, Role, Severity,
};

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

/// A home directory holding the key the Vagrant inventory names.
fn vagrant_home() -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(home.path().join(".vagrant.d")).expect("mkdir");
    std::fs::write(home.path().join(".vagrant.d/kbs_ed25519"), "key").expect("write key");
    home
}

#[test]
fn vagrant_inventory_loads_without_errors_or_warnings() {
    let home = vagrant_home();
    let loaded = match Loader::new()
        .home_dir(home.path())
        .load(&repo_file("inventory/vagrant.yaml"))
    {
        Ok(loaded) => loaded,
        Err(error) => panic!("vagrant.yaml must load:\n{error}"),
    };
    assert!(loaded.warnings.is_empty(), "warnings: {:?}", loaded.warnings);
    let inventory = loaded.inventory;
    assert_eq!(inventory.cluster.name, "book");
    assert_eq!(
        inventory.cluster.kubernetes_version,
        Some(KubernetesVersion {
            minor: 36,
            patch: None
        })
    );
    assert_eq!(inventory.cluster.endpoint.mode, EndpointMode::KubeVip);
    assert_eq!(
        inventory.api_endpoint().map(|e| e.to_string()).as_deref(),
        Some("192.168.61.10:6443")
    );
    let names = |hosts: Vec<&kbs_inventory::Host>| hosts.iter().map(|h| h.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(inventory.control_planes().collect()),
        ["host01", "host02", "host03"]
    );
    assert_eq!(names(inventory.workers().collect()), ["host04", "host05"]);
    assert_eq!(inventory.lbs().count(), 0);
    let host01 = inventory.host("host01").expect("host01");
    assert_eq!(
        host01.node_ip,
        Some("192.168.61.11".parse::<IpAddr>().expect("ip"))
    );
    let ssh = inventory.ssh_settings(host01);
    assert_eq!(ssh.user.as_deref(), Some("vagrant"));
    assert_eq!(
        ssh.identity_file,
        Some(home.path().join(".vagrant.d/kbs_ed25519"))
    );
    assert!(ssh.uses_sudo());
    let addons = &inventory.addons;
    assert!(addons.calico.enabled && addons.longhorn.enabled && addons.metrics_server.enabled);
    assert!(addons.ingress.enabled);
    assert_eq!(addons.ingress.controller, Some(IngressController::IngressNginx));
}

#[test]
fn every_example_inventory_loads() {
    let home = vagrant_home();
    let dir = repo_file("inventory");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("inventory dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            count += 1;
            if let Err(error) = Loader::new().home_dir(home.path()).load(&path) {
                panic!("{} must load:\n{error}", path.display());
            }
        }
    }
    assert!(count >= 1);
}

#[test]
fn unreadable_file_names_the_file() {
    let error = kbs_inventory::load(Path::new("/nonexistent/inventory.yaml")).expect_err("must fail");
    assert!(matches!(error, InventoryError::Read { .. }));
    assert_eq!(
        error.to_string(),
        "cannot read inventory /nonexistent/inventory.yaml: No such file or directory (os error 2)"
    );
}

#[test]
fn missing_identity_file_names_the_resolved_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let inventory_path = dir.path().join("site/inventory.yaml");
    let yaml = format!("{BASE}ssh:\n  identityFile: keys/id_ed25519\n");
    let error = Inventory::from_str(&yaml, &inventory_path).expect_err("key is missing");
    assert_eq!(
        error.to_string(),
        format!(
            "{}:18:17: error: identity file {} does not exist\n  \
             hint: `~` is your home directory; relative paths start at the inventory file's directory",
            inventory_path.display(),
            dir.path().join("site/keys/id_ed25519").display()
        )
    );

    let home = tempfile::tempdir().expect("temp dir");
    let yaml = base_with(&[(
        "    roles: [worker]\n",
        "    roles: [worker]\n    ssh: {identityFile: ~/.ssh/nope}\n",
    )]);
    let error = Loader::new()
        .home_dir(home.path())
        .parse(&yaml, Path::new("inventory.yaml"))
        .expect_err("missing");
    assert_eq!(
        error.to_string(),
        format!(
            "inventory.yaml:17:25: error: identity file {} does not exist\n  \
             hint: `~` is your home directory; relative paths start at the inventory file's directory",
            home.path().join(".ssh/nope").display()
        )
    );
}

#[test]
fn relative_paths_start_at_the_inventory_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("keys")).expect("mkdir");
    std::fs::write(dir.path().join("keys/id"), "key").expect("write");
    let path = dir.path().join("inventory.yaml");
    std::fs::write(
        &path,
        format!("{BASE}ssh:\n  identityFile: ./keys/id\n  knownHostsFile: known_hosts\n"),
    )
    .expect("write inventory");
    let inventory = kbs_inventory::load(&path).expect("loads").inventory;
    assert_eq!(inventory.ssh.identity_file, Some(dir.path().join("keys/id")));
    // knownHostsFile need not exist yet: kbs may create it.
    assert_eq!(
        inventory.ssh.known_hosts_file,
        Some(dir.path().join("known_hosts"))
    );
}

#[test]
fn defaults_apply_when_keys_are_left_out() {
    let yaml = "cluster:
  podSubnet: 172.31.0.0/16
hosts:
  - name: host01
    address: host01.lan
    roles: [control-plane, worker]
addons:
  calico:
  longhorn: {enabled: false}
  ingress: {}
";
    let inventory = load(yaml).inventory;
    let cluster = &inventory.cluster;
    assert_eq!(cluster.name, "kubernetes");
    assert_eq!(cluster.kubernetes_version, None);
    assert_eq!(cluster.service_subnet.to_string(), "10.96.0.0/12");
    assert_eq!(cluster.host_subnet, None);
    assert!(!cluster.control_plane_schedulable);
    assert_eq!(cluster.endpoint.mode, EndpointMode::None);
    assert_eq!(cluster.endpoint.port, 6443);
    let host = &inventory.hosts[0];
    assert_eq!(host.node_ip, None, "a DNS address gives no node IP");
    assert_eq!(host.roles, [Role::ControlPlane, Role::Worker]);
    assert_eq!(
        inventory.api_endpoint().map(|e| e.to_string()).as_deref(),
        Some("host01.lan:6443")
    );
    assert!(inventory.addons.calico.enabled, "listed with no value is enabled");
    assert!(!inventory.addons.longhorn.enabled);
    assert!(inventory.addons.ingress.enabled);
    assert_eq!(
        inventory.addons.ingress.controller, None,
        "the default controller is chosen later"
    );
    assert!(
        !inventory.addons.metrics_server.enabled,
        "not listed is not installed"
    );
}

#[test]
fn full_schema_round_trip() {
    let yaml = "cluster:
  name: lab
  kubernetesVersion: 1.37.2
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
  endpoint:
    mode: haproxy
    port: 8443
ssh:
  user: ops
  port: 2200
  bastion: jump@10.0.0.1:2222
  sudo: false
  connectTimeout: 1m30s
groups:
  dmz:
    ssh: {user: dmz}
hosts:
  - name: lb01
    address: 10.0.0.5
    roles: [lb]
  - name: cp01
    address: 10.0.0.11
    roles: [control-plane]
    nodeIp: 10.1.0.11
    labels: {disk: ssd, example.com/tier: \"1\"}
    taints: [\"dedicated=db:NoSchedule\", \"gpu:NoExecute\"]
    groups: [dmz]
    ssh: {port: 22}
  - name: w01
    address: 10.0.0.21
    roles: [worker]
addons:
  metricsServer: {version: 0.9.1}
";
    let inventory = load(yaml).inventory;
    assert_eq!(
        inventory
            .cluster
            .kubernetes_version
            .map(|v| v.to_string())
            .as_deref(),
        Some("1.37.2")
    );
    assert_eq!(
        inventory.api_endpoint().map(|e| e.to_string()).as_deref(),
        Some("10.0.0.5:8443")
    );
    let cp01 = inventory.host("cp01").expect("cp01");
    assert_eq!(cp01.node_ip, Some("10.1.0.11".parse().expect("ip")));
    assert_eq!(cp01.labels.get("example.com/tier").map(String::as_str), Some("1"));
    let taints: Vec<String> = cp01.taints.iter().map(ToString::to_string).collect();
    assert_eq!(taints, ["dedicated=db:NoSchedule", "gpu:NoExecute"]);
    let ssh = inventory.ssh_settings(cp01);
    assert_eq!(ssh.user.as_deref(), Some("dmz"));
    assert_eq!(ssh.port, Some(22));
    assert_eq!(
        ssh.bastion.as_ref().map(|b| b.to_string()).as_deref(),
        Some("jump@10.0.0.1:2222")
    );
    assert_eq!(ssh.connect_timeout, Some(Duration::from_secs(90)));
    assert!(!ssh.uses_sudo());
    assert_eq!(inventory.addons.metrics_server.version.as_deref(), Some("0.9.1"));
}

#[test]
fn diagnostics_are_structured_too() {
    let yaml = base_with(&[("    address: 192.168.61.12", "    address: 192.168.61.11")]);
    let error = Inventory::from_str(&yaml, Path::new("inv.yaml")).expect_err("duplicate");
    assert_eq!(error.error_count(), 1);
    let diagnostic = &error.diagnostics()[0];
    assert_eq!(diagnostic.severity, Severity::Error);
    assert_eq!(diagnostic.path, Path::new("inv.yaml"));
    assert_eq!((diagnostic.line, diagnostic.column), (15, 14));
    assert_eq!(
        diagnostic.hint.as_deref(),
        Some("every host needs its own address")
    );
}

#[test]
fn odd_inputs_give_diagnostics_not_panics() {
    for yaml in [
        "",
        "---\n",
        "a: 1\n---\nb: 2\n",
        "cluster: ~\nhosts: ~\n",
        "hosts:\n  - ~\n  - [a]\n  - name: 5\n",
        "cluster: {endpoint: {}}\nhosts: [{}]\n",
        "cluster:\n  podSubnet: \"\"\n",
        "hosts: {a: 1}\ngroups: [x]\nssh: 5\naddons: {calico: 3}\n",
        "\t",
        "cluster:\n  podSubnet: 172.31.0.0/16\nhosts:\n  - name: a\n    address: 10.0.0.1\n    roles: [control-plane]\n    labels: [x]\n    taints: {a: b}\n    groups: x\n",
    ] {
        let result = Inventory::from_str(yaml, Path::new("odd.yaml"));
        let error = result.expect_err(yaml);
        assert!(error.error_count() > 0, "{yaml:?}");
        for diagnostic in error.diagnostics() {
            assert!(diagnostic.line >= 1 && diagnostic.column >= 1, "{yaml:?}: {diagnostic}");
            assert!(diagnostic.hint.is_some(), "{yaml:?}: {diagnostic} has no hint");
        }
    }
}

#[test]
fn manifest_sources_and_checksums_load() {
    use kbs_inventory::ManifestSource;
    let sum = "AB".repeat(32);
    let yaml = format!(
        "{}addons:\n  manifests:\n    mirror: http://10.61.0.1/manifests/\n  calico:\n    sha256: {{operator-crds.yaml: \"sha256:{sum}\"}}\n  ingress: {{controller: traefik, sha256: {{kubernetes-crd-rbac.yml: {sum}}}}}\n",
        common::BASE
    );
    let inventory = common::load(&yaml).inventory;
    assert_eq!(
        inventory.addons.manifests,
        ManifestSource::Mirror("http://10.61.0.1/manifests".into())
    );
    assert_eq!(
        inventory
            .addons
            .calico
            .sha256
            .get("operator-crds.yaml")
            .map(String::as_str),
        Some("ab".repeat(32).as_str())
    );
    assert_eq!(inventory.addons.ingress.sha256.len(), 1);
    // Without `manifests`, the upstream URLs.
    let plain = common::load(&format!("{}addons:\n  calico:\n", common::BASE)).inventory;
    assert_eq!(plain.addons.manifests, ManifestSource::Upstream);

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mirror")).unwrap();
    let path = dir.path().join("inventory.yaml");
    std::fs::write(
        &path,
        format!("{}addons:\n  manifests: {{directory: mirror}}\n", common::BASE),
    )
    .unwrap();
    let inventory = kbs_inventory::load(&path).unwrap().inventory;
    assert_eq!(
        inventory.addons.manifests,
        ManifestSource::Directory(std::path::absolute(dir.path().join("mirror")).unwrap())
    );
}
