//! kube-vip's static pod and HAProxy's config, rendered from the embedded templates: the kube-vip
//! kubeconfig rule of kube-vip#684, YAML the kubelet (kbs-sim's) can run, and a HAProxy config
//! the real `haproxy -c` accepts.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use kbs_cluster::{for_minor, Haproxy, KubeVip, KubeVipKubeconfig};
use kbs_engine::{Library, Renderer};
use kbs_inventory::Inventory;
use serde_yaml::Value;

fn renderer() -> Renderer {
    Renderer::new(&Library::embedded().unwrap())
}

fn vagrant_yaml() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../inventory/vagrant.yaml"))
        .unwrap()
}

fn load(yaml: &str) -> Result<Inventory, String> {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".vagrant.d")).unwrap();
    std::fs::write(home.path().join(".vagrant.d/kbs_ed25519"), "").unwrap();
    let path = home.path().join("inventory.yaml");
    std::fs::write(&path, yaml).unwrap();
    kbs_inventory::Loader::new()
        .home_dir(home.path())
        .load(&path)
        .map(|l| l.inventory)
        .map_err(|e| e.to_string())
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("KBS_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with KBS_UPDATE_GOLDEN=1", path.display()));
    assert_eq!(
        actual, expected,
        "{name} differs from its golden file (KBS_UPDATE_GOLDEN=1 to accept)"
    );
}

fn kube_vip(inventory: &Inventory, host: &str, iface: Option<&str>) -> String {
    KubeVip::for_host(inventory, host, for_minor(36).unwrap(), iface)
        .unwrap()
        .render(&renderer())
        .unwrap()
}

fn env(manifest: &Value, name: &str) -> Option<String> {
    manifest["spec"]["containers"][0]["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str().map(str::to_string))
}

#[test]
fn kube_vip_mounts_super_admin_on_the_init_node_and_admin_elsewhere() {
    let inventory = load(&vagrant_yaml()).unwrap();
    let init_text = kube_vip(&inventory, "host01", Some("eth1"));
    let join_text = kube_vip(&inventory, "host02", Some("eth1"));
    golden("kube-vip-host01.yaml", &init_text);
    golden("kube-vip-host02.yaml", &join_text);
    let init: Value = serde_yaml::from_str(&init_text).unwrap();
    let join: Value = serde_yaml::from_str(&join_text).unwrap();
    let host_path = |m: &Value| {
        m["spec"]["volumes"][0]["hostPath"]["path"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(host_path(&init), "/etc/kubernetes/super-admin.conf");
    assert_eq!(host_path(&join), "/etc/kubernetes/admin.conf");
    for m in [&init, &join] {
        assert_eq!(m["kind"], "Pod");
        assert_eq!(m["spec"]["hostNetwork"], true);
        assert_eq!(
            m["spec"]["containers"][0]["volumeMounts"][0]["mountPath"],
            "/etc/kubernetes/admin.conf"
        );
        assert_eq!(
            m["spec"]["containers"][0]["image"],
            "ghcr.io/kube-vip/kube-vip:v1.2.3"
        );
        assert_eq!(env(m, "address").as_deref(), Some("192.168.61.10"));
        assert_eq!(env(m, "port").as_deref(), Some("6443"));
        assert_eq!(env(m, "vip_interface").as_deref(), Some("eth1"));
        assert_eq!(env(m, "vip_arp").as_deref(), Some("true"));
        assert_eq!(env(m, "cp_enable").as_deref(), Some("true"));
        assert_eq!(env(m, "vip_leaderelection").as_deref(), Some("true"));
        assert_eq!(env(m, "vip_cidr").as_deref(), Some("32"));
    }
    // After init the init node can switch back to admin.conf.
    let after = KubeVip::for_host(&inventory, "host01", for_minor(36).unwrap(), Some("eth1"))
        .unwrap()
        .with_kubeconfig(KubeVipKubeconfig::Admin);
    assert_eq!(after.kubeconfig, "/etc/kubernetes/admin.conf");
}

#[test]
fn kube_vip_manifest_is_what_the_simulated_kubelet_runs() {
    let inventory = load(&vagrant_yaml()).unwrap();
    for (host, kubeconfig) in [
        ("host01", "/etc/kubernetes/super-admin.conf"),
        ("host03", "/etc/kubernetes/admin.conf"),
    ] {
        let text = kube_vip(&inventory, host, Some("eth1"));
        let pod = kbs_sim::kubelet::static_pods::parse_manifest(&text).expect("a pod the kubelet parses");
        assert_eq!(
            pod.process(),
            Some(("kube-vip".to_string(), vec!["manager".to_string()]))
        );
        assert_eq!(
            pod.mounts,
            [("/etc/kubernetes/admin.conf".to_string(), kubeconfig.to_string())]
        );
        let settings = kbs_sim::kube_vip::Settings::from_env(
            |k| pod.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            host,
        )
        .unwrap();
        assert_eq!(settings.address, "192.168.61.10");
        assert_eq!(settings.interface, "eth1");
        assert_eq!(settings.lease_name, "plndr-cp-lock");
        assert_eq!(settings.cidr, 32);
    }
}

#[test]
fn kube_vip_interface_from_inventory_beats_facts_and_one_is_needed() {
    let yaml = vagrant_yaml().replace("    port: 6443\n", "    port: 6443\n    interface: enp0s8\n");
    let inventory = load(&yaml).unwrap();
    let m: Value = serde_yaml::from_str(&kube_vip(&inventory, "host02", Some("eth0"))).unwrap();
    assert_eq!(env(&m, "vip_interface").as_deref(), Some("enp0s8"));
    let plain = load(&vagrant_yaml()).unwrap();
    let err = KubeVip::for_host(&plain, "host02", for_minor(36).unwrap(), None).unwrap_err();
    assert!(err.to_string().contains("interface"), "{err}");
    let err = KubeVip::for_host(&plain, "host04", for_minor(36).unwrap(), Some("eth1")).unwrap_err();
    assert!(err.to_string().contains("not a control plane"), "{err}");
    // kube-vip holds an address, not a port: the API servers answer on 6443 only.
    let other_port = load(&vagrant_yaml().replace("    port: 6443\n", "    port: 8443\n")).unwrap();
    let err = KubeVip::for_host(&other_port, "host01", for_minor(36).unwrap(), Some("eth1")).unwrap_err();
    assert!(err.to_string().contains("6443"), "{err}");
}

const HAPROXY_INVENTORY: &str = "cluster:
  podSubnet: 172.31.0.0/16
  endpoint:
    mode: haproxy
    port: 8443
hosts:
  - name: host01
    address: 192.168.61.11
    roles: [control-plane, lb]
  - name: host02
    address: 192.168.61.12
    roles: [control-plane]
  - name: host03
    address: 192.168.61.13
    roles: [control-plane]
  - name: host04
    address: 192.168.61.14
    roles: [worker]
";

fn haproxy_check(config: &str) -> Result<(), String> {
    let found = Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "this test runs the real `haproxy -c`; install it: sudo apt-get install haproxy"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let out = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn haproxy_config_balances_every_control_plane_and_passes_haproxy_check() {
    let inventory = load(HAPROXY_INVENTORY).unwrap();
    let config = Haproxy::for_inventory(&inventory, &BTreeMap::new())
        .unwrap()
        .render(&renderer())
        .unwrap();
    golden("haproxy.cfg", &config);
    haproxy_check(&config).unwrap_or_else(|e| panic!("haproxy -c refused:\n{e}\n{config}"));
    assert!(config.contains("  bind *:8443\n"), "{config}");
    assert!(config.contains("  mode tcp\n"));
    assert!(config.contains("  option httpchk GET /healthz\n"));
    assert!(config.contains("  default_backend kube-apiservers\n"));
    for (name, ip) in [
        ("host01", "192.168.61.11"),
        ("host02", "192.168.61.12"),
        ("host03", "192.168.61.13"),
    ] {
        assert!(
            config.contains(&format!("  server {name} {ip}:6443 check check-ssl verify none")),
            "{config}"
        );
    }
    assert!(!config.contains("192.168.61.14"), "workers are no backends");
    // The check bites: a broken line is refused.
    assert!(haproxy_check(&config.replace("mode tcp", "mode tcpp")).is_err());
}

#[test]
fn haproxy_on_a_control_plane_cannot_take_the_api_server_port() {
    let err = load(&HAPROXY_INVENTORY.replace("    port: 8443\n", "")).unwrap_err();
    assert!(
        err.contains("cannot listen on the API server's port 6443"),
        "{err}"
    );
}

#[test]
fn haproxy_balances_ingress_80_and_443_to_the_ingress_nodes_and_passes_haproxy_check() {
    let inventory = load(&format!("{HAPROXY_INVENTORY}addons:\n  ingress:\n")).unwrap();
    let config = Haproxy::for_inventory(&inventory, &BTreeMap::new())
        .unwrap()
        .render(&renderer())
        .unwrap();
    haproxy_check(&config).unwrap_or_else(|e| panic!("haproxy -c refused:\n{e}\n{config}"));
    assert!(
        config.contains("frontend ingress-http\n  bind *:80\n  default_backend ingress-http\n"),
        "{config}"
    );
    assert!(
        config.contains("frontend ingress-https\n  bind *:443\n  default_backend ingress-https\n"),
        "{config}"
    );
    // host04 is the only worker: it runs the controller; each server is health-checked.
    assert!(
        config.contains("  server host04 192.168.61.14:80 check inter 2s fall 3 rise 2\n"),
        "{config}"
    );
    assert!(
        config.contains("  server host04 192.168.61.14:443 check inter 2s fall 3 rise 2\n"),
        "{config}"
    );
    assert!(
        !config.contains("192.168.61.11:80"),
        "control planes run no ingress here:\n{config}"
    );
    // Schedulable control planes run it too.
    let schedulable = load(&format!("{HAPROXY_INVENTORY}addons:\n  ingress:\n").replace(
        "    port: 8443\n",
        "    port: 8443\n  controlPlaneSchedulable: true\n",
    ))
    .unwrap();
    let config = Haproxy::for_inventory(&schedulable, &BTreeMap::new())
        .unwrap()
        .render(&renderer())
        .unwrap();
    assert!(
        config.contains("  server host01 192.168.61.11:443 check"),
        "{config}"
    );
    haproxy_check(&config).unwrap();
    // Without the ingress add-on there are no application frontends.
    let plain = Haproxy::for_inventory(&load(HAPROXY_INVENTORY).unwrap(), &BTreeMap::new())
        .unwrap()
        .render(&renderer())
        .unwrap();
    assert!(!plain.contains("ingress"), "{plain}");
}
