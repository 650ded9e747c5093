//! The kubeadm configs of the vagrant inventory, per role and supported minor: golden files
//! (`KBS_UPDATE_GOLDEN=1 cargo test -p kbs-cluster --test kubeadm_config` rewrites them; review
//! the diff), strict validation by kbs-sim's `kubeadm config validate` of the matching version,
//! and the rules that depend on the inventory. Also the CA pin against openssl and kbs-sim.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use kbs_cluster::kubeadm_config::{
    cert_sans, kubelet_may_self_set, labels_after_join, needs_low_node_ports, CA_HASH_PLACEHOLDER, REDACTED,
};
use kbs_cluster::{ca_cert_hash, kubeadm_config, ConfigInput, KubeadmRole, Secrets};
use kbs_inventory::Inventory;
use kbs_sim::config::{validate_file, HostFacts};
use kbs_sim::version::Version;
use serde_yaml::Value;

const TOKEN: &str = "abcdef.0123456789abcdef";
const CERT_KEY: &str = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3b4a5968778695a4b3c2d1e0f";
const CA_HASH: &str = "sha256:8e1a9d1fbb1b3c0e0e2c6e4a3cd4f8a2b1e9a7c6d5f4e3d2c1b0a99887766554";
/// A patch of each supported minor that the lab's packages carry.
const VERSIONS: [(u32, u32); 3] = [(35, 7), (36, 4), (37, 1)];

fn vagrant_yaml() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../inventory/vagrant.yaml"))
        .unwrap()
}

/// Inventory text loaded as `inventory/vagrant.yaml` is, with `~` in a temporary home that holds
/// the (empty) identity file the inventory names.
fn load(yaml: &str) -> Inventory {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".vagrant.d")).unwrap();
    std::fs::write(home.path().join(".vagrant.d/kbs_ed25519"), "").unwrap();
    let path = home.path().join("inventory.yaml");
    std::fs::write(&path, yaml).unwrap();
    kbs_inventory::Loader::new()
        .home_dir(home.path())
        .load(&path)
        .unwrap_or_else(|e| panic!("{e}"))
        .inventory
}

fn vagrant() -> Inventory {
    load(&vagrant_yaml())
}

fn input(minor: u32, patch: u32) -> ConfigInput {
    let secrets = Secrets::from_parts(TOKEN, CERT_KEY).unwrap();
    ConfigInput::new(format!("v1.{minor}.{patch}"), &secrets, Some(CA_HASH.into()))
}

fn config(inventory: &Inventory, host: &str, input: &ConfigInput) -> String {
    kubeadm_config(inventory, host, input)
        .unwrap()
        .text
        .expose()
        .to_string()
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("KBS_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
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

/// `kubeadm config validate --config F` of kubeadm v1.MM.P on `host`.
fn validate(text: &str, minor: u32, patch: u32, host: &str, ip: &str) -> Result<Vec<String>, String> {
    let facts = HostFacts {
        hostname: host.to_string(),
        default_address: Some(ip.parse::<IpAddr>().unwrap()),
    };
    validate_file(text, Version::new(1, minor, patch), &facts)
}

fn docs(text: &str) -> Vec<Value> {
    text.split("---\n")
        .map(|d| serde_yaml::from_str(d).unwrap())
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

#[test]
fn golden_configs_for_every_role_and_minor_pass_strict_validation() {
    let inventory = vagrant();
    let hosts = [
        ("host01", "192.168.61.11", KubeadmRole::Init),
        ("host02", "192.168.61.12", KubeadmRole::JoinControlPlane),
        ("host04", "192.168.61.14", KubeadmRole::Worker),
    ];
    for (minor, patch) in VERSIONS {
        for (host, ip, role) in hosts {
            let generated = kubeadm_config(&inventory, host, &input(minor, patch)).unwrap();
            assert_eq!(generated.role, role);
            let text = generated.text.expose();
            golden(&format!("{}-{host}-1.{minor}.yaml", role.as_str()), text);
            let warnings = validate(text, minor, patch, host, ip)
                .unwrap_or_else(|e| panic!("1.{minor} {host}: kubeadm config validate: {e}\n{text}"));
            assert!(warnings.is_empty(), "1.{minor} {host}: {warnings:?}");
            for d in docs(text) {
                let api = d["apiVersion"].as_str().unwrap();
                assert!(
                    api == "kubeadm.k8s.io/v1beta4" || api == "kubelet.config.k8s.io/v1beta1",
                    "{api}"
                );
            }
            assert!(!text.contains("unsafeSkipCAVerification"));
            assert!(!text.contains("ControlPlaneKubeletLocalMode"));
            assert!(!text.contains("WaitForAllControlPlaneComponents"));
        }
    }
}

#[test]
fn the_strict_check_bites_on_map_shaped_kubelet_extra_args() {
    let inventory = vagrant();
    let text = config(&inventory, "host04", &input(36, 4));
    assert!(validate(&text, 36, 4, "host04", "192.168.61.14").is_ok());
    let mut doc: Value = serde_yaml::from_str(&text).unwrap();
    doc["nodeRegistration"]["kubeletExtraArgs"] = serde_yaml::from_str("node-ip: 192.168.61.14").unwrap();
    let broken = serde_yaml::to_string(&doc).unwrap();
    let err = validate(&broken, 36, 4, "host04", "192.168.61.14").unwrap_err();
    assert!(err.contains("cannot unmarshal object"), "{err}");
    // An unknown field (v1beta3's discovery.timeout) is an error too.
    let mut doc: Value = serde_yaml::from_str(&text).unwrap();
    doc["discovery"]["timeout"] = Value::from("5m0s");
    let err = validate(
        &serde_yaml::to_string(&doc).unwrap(),
        36,
        4,
        "host04",
        "192.168.61.14",
    )
    .unwrap_err();
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn init_config_carries_secrets_endpoint_and_kubelet_settings() {
    let inventory = vagrant();
    let text = config(&inventory, "host01", &input(36, 4));
    let d = docs(&text);
    let init = kind(&d, "InitConfiguration");
    assert_eq!(init["bootstrapTokens"][0]["token"], TOKEN);
    assert!(init["bootstrapTokens"][0]["ttl"].is_string());
    assert_eq!(init["certificateKey"], CERT_KEY);
    assert_eq!(init["localAPIEndpoint"]["advertiseAddress"], "192.168.61.11");
    let reg = &init["nodeRegistration"];
    assert_eq!(reg["name"], "host01");
    assert_eq!(reg["criSocket"], "unix:///run/containerd/containerd.sock");
    assert_eq!(
        reg["kubeletExtraArgs"],
        serde_yaml::from_str::<Value>("[{name: node-ip, value: 192.168.61.11}]").unwrap()
    );
    // Not schedulable: no taints written, so kubeadm adds the control-plane taint.
    assert!(reg.get("taints").is_none());
    let cluster = kind(&d, "ClusterConfiguration");
    assert_eq!(cluster["kubernetesVersion"], "v1.36.4");
    assert_eq!(cluster["controlPlaneEndpoint"], "192.168.61.10:6443");
    assert_eq!(cluster["networking"]["podSubnet"], "172.31.0.0/16");
    assert_eq!(cluster["networking"]["serviceSubnet"], "10.96.0.0/12");
    let kubelet = kind(&d, "KubeletConfiguration");
    assert_eq!(kubelet["cgroupDriver"], "systemd");
    assert_eq!(kubelet["serverTLSBootstrap"], true);
}

#[test]
fn joins_pin_the_ca_and_only_control_planes_carry_the_certificate_key() {
    let inventory = vagrant();
    let cp = serde_yaml::from_str::<Value>(&config(&inventory, "host02", &input(37, 1))).unwrap();
    let bt = &cp["discovery"]["bootstrapToken"];
    assert_eq!(bt["apiServerEndpoint"], "192.168.61.10:6443");
    assert_eq!(bt["token"], TOKEN);
    assert_eq!(bt["caCertHashes"][0], CA_HASH);
    assert_eq!(
        cp["controlPlane"]["localAPIEndpoint"]["advertiseAddress"],
        "192.168.61.12"
    );
    assert_eq!(cp["controlPlane"]["certificateKey"], CERT_KEY);
    assert!(cp["timeouts"]["discovery"].is_string());
    assert!(cp["discovery"].get("timeout").is_none());

    let worker_text = config(&inventory, "host05", &input(37, 1));
    let worker = serde_yaml::from_str::<Value>(&worker_text).unwrap();
    assert!(worker.get("controlPlane").is_none());
    assert!(!worker_text.contains(CERT_KEY));
    assert_eq!(
        worker["nodeRegistration"]["kubeletExtraArgs"][0]["value"],
        "192.168.61.15"
    );

    // No CA pin, no join config: kbs never falls back to unsafeSkipCAVerification.
    let mut no_pin = input(37, 1);
    no_pin.ca_cert_hash = None;
    let err = kubeadm_config(&inventory, "host04", &no_pin).unwrap_err();
    assert!(err.to_string().contains("CA"), "{err}");
}

fn api_server_extra_args(inventory: &Inventory) -> Value {
    let text = config(inventory, "host01", &input(36, 4));
    kind(&docs(&text), "ClusterConfiguration")["apiServer"]["extraArgs"].clone()
}

#[test]
fn node_port_range_is_widened_only_for_the_ingress_addon() {
    let with = vagrant();
    assert!(needs_low_node_ports(&with));
    assert_eq!(
        api_server_extra_args(&with),
        serde_yaml::from_str::<Value>("[{name: service-node-port-range, value: 80-32767}]").unwrap()
    );
    let without = load(&vagrant_yaml().replace(
        "controller: ingress-nginx",
        "controller: ingress-nginx\n    enabled: false",
    ));
    assert!(!needs_low_node_ports(&without));
    assert!(api_server_extra_args(&without).is_null());
    let unlisted = load(&vagrant_yaml().replace("  ingress:\n    controller: ingress-nginx\n", ""));
    assert!(api_server_extra_args(&unlisted).is_null());
}

fn taints(inventory: &Inventory, host: &str) -> Option<Value> {
    let text = config(inventory, host, &input(36, 4));
    let reg = &docs(&text)[0]["nodeRegistration"];
    reg.get("taints").cloned()
}

#[test]
fn taints_follow_schedulability_and_the_inventory() {
    let schedulable =
        load(&vagrant_yaml().replace("  hostSubnet:", "  controlPlaneSchedulable: true\n  hostSubnet:"));
    assert_eq!(taints(&schedulable, "host01"), Some(Value::Sequence(vec![])));
    assert_eq!(taints(&schedulable, "host02"), Some(Value::Sequence(vec![])));
    // A control plane that is also a worker runs workloads.
    let both = load(&vagrant_yaml().replacen("roles: [control-plane]", "roles: [control-plane, worker]", 1));
    assert_eq!(taints(&both, "host01"), Some(Value::Sequence(vec![])));
    assert_eq!(taints(&both, "host02"), None);
    let strict = vagrant();
    assert_eq!(taints(&strict, "host01"), None);
    assert_eq!(taints(&strict, "host02"), None);
    assert_eq!(taints(&strict, "host04"), None);

    // Host taints and labels; a tainted control plane keeps the control-plane taint.
    let yaml = vagrant_yaml()
        .replace(
            "    address: 192.168.61.12\n    roles: [control-plane]\n",
            "    address: 192.168.61.12\n    roles: [control-plane]\n    taints: [\"dedicated=infra:NoExecute\"]\n",
        )
        .replace(
            "    address: 192.168.61.14\n    roles: [worker]\n",
            "    address: 192.168.61.14\n    roles: [worker]\n    labels: {disk: ssd, zone: a, node-role.kubernetes.io/worker: \"\"}\n    taints: [\"gpu:NoSchedule\"]\n",
        );
    let inventory = load(&yaml);
    assert_eq!(
        taints(&inventory, "host02"),
        Some(
            serde_yaml::from_str(
                "[{key: node-role.kubernetes.io/control-plane, effect: NoSchedule}, {key: dedicated, value: infra, effect: NoExecute}]"
            )
            .unwrap()
        )
    );
    assert_eq!(
        taints(&inventory, "host04"),
        Some(serde_yaml::from_str("[{key: gpu, effect: NoSchedule}]").unwrap())
    );
    let worker = serde_yaml::from_str::<Value>(&config(&inventory, "host04", &input(36, 4))).unwrap();
    assert_eq!(
        worker["nodeRegistration"]["kubeletExtraArgs"],
        serde_yaml::from_str::<Value>(
            "[{name: node-ip, value: 192.168.61.14}, {name: node-labels, value: 'disk=ssd,zone=a'}]"
        )
        .unwrap()
    );
    // The kubelet refuses to start with a node-role label: that one is set through the API.
    let after = labels_after_join(inventory.host("host04").unwrap());
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        ["node-role.kubernetes.io/worker"]
    );
    for host in ["host02", "host04"] {
        let text = config(&inventory, host, &input(36, 4));
        validate(&text, 36, 4, host, "192.168.61.14").unwrap_or_else(|e| panic!("{host}: {e}"));
    }
}

#[test]
fn kubelet_self_labels_follow_the_node_restriction_rules() {
    for ok in [
        "disk",
        "example.com/tier",
        "topology.kubernetes.io/zone",
        "node.kubernetes.io/pool",
        "x.kubelet.kubernetes.io/a",
        "kubernetes.io/arch",
    ] {
        assert!(kubelet_may_self_set(ok), "{ok}");
    }
    for refused in [
        "node-role.kubernetes.io/worker",
        "kubernetes.io/role",
        "k8s.io/x",
        "foo.k8s.io/x",
        "node-restriction.kubernetes.io/dedicated",
    ] {
        assert!(!kubelet_may_self_set(refused), "{refused}");
    }
}

#[test]
fn cert_sans_name_the_endpoint_and_every_control_plane() {
    let inventory = vagrant();
    assert_eq!(
        cert_sans(&inventory, &input(36, 4)).unwrap(),
        [
            "192.168.61.10",
            "host01",
            "192.168.61.11",
            "host02",
            "192.168.61.12",
            "host03",
            "192.168.61.13"
        ]
    );
    let text = config(&inventory, "host01", &input(36, 4));
    let docs = docs(&text);
    let sans = &kind(&docs, "ClusterConfiguration")["apiServer"]["certSANs"];
    assert_eq!(sans.as_sequence().unwrap().len(), 7);
}

#[test]
fn redacted_input_hides_every_secret() {
    let inventory = vagrant();
    let redacted = ConfigInput::redacted("v1.36.4");
    for host in ["host01", "host02", "host04"] {
        let text = config(&inventory, host, &redacted);
        assert!(text.contains(REDACTED), "{host}:\n{text}");
        assert!(!text.contains(TOKEN));
        if host != "host01" {
            assert!(text.contains(CA_HASH_PLACEHOLDER), "{host}:\n{text}");
        }
    }
    // The config's Debug never shows its text.
    let real = kubeadm_config(&inventory, "host02", &input(36, 4)).unwrap();
    assert!(!format!("{real:?}").contains(TOKEN));
}

#[test]
fn hosts_without_a_kubeadm_role_or_known_ip_are_refused() {
    let yaml = vagrant_yaml().replace(
        "  - name: host05\n    address: 192.168.61.15\n    roles: [worker]\n",
        "  - name: host05\n    address: host05.example\n    roles: [worker]\n  - name: lb1\n    address: 192.168.61.16\n    roles: [lb]\n",
    );
    let inventory = load(&yaml);
    let err = kubeadm_config(&inventory, "lb1", &input(36, 4)).unwrap_err();
    assert!(err.to_string().contains("lb1"), "{err}");
    let err = kubeadm_config(&inventory, "host05", &input(36, 4)).unwrap_err();
    assert!(err.to_string().contains("nodeIp"), "{err}");
    let mut with_facts = input(36, 4);
    with_facts
        .node_ips
        .insert("host05".into(), "192.168.61.15".parse().unwrap());
    assert!(kubeadm_config(&inventory, "host05", &with_facts).is_ok());
    assert!(kubeadm_config(&inventory, "nope", &input(36, 4)).is_err());
}

// ---- the CA pin ----

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn ca_hash_equals_openssl_for_rsa_and_ecdsa_cas() {
    assert!(
        openssl_available(),
        "openssl is needed for this test: apt-get install openssl"
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, key) in [
        ("rsa", "-newkey rsa:2048"),
        ("ec", "-newkey ec -pkeyopt ec_paramgen_curve:P-256"),
    ] {
        sh(
            dir.path(),
            &format!("openssl req -x509 {key} -nodes -keyout {name}.key -out {name}.crt -days 1 -subj /CN=kubernetes 2>/dev/null"),
        );
        let expected = sh(
            dir.path(),
            &format!(
                "openssl x509 -in {name}.crt -pubkey -noout | openssl pkey -pubin -outform der | sha256sum"
            ),
        );
        let expected = format!("sha256:{}", expected.split_whitespace().next().unwrap());
        let pem = std::fs::read_to_string(dir.path().join(format!("{name}.crt"))).unwrap();
        assert_eq!(ca_cert_hash(&pem).unwrap(), expected, "{name}");
        // A bundle: the first certificate counts.
        let bundle = format!(
            "{pem}{}",
            std::fs::read_to_string(dir.path().join("rsa.crt")).unwrap()
        );
        assert_eq!(ca_cert_hash(&bundle).unwrap(), expected, "{name} bundle");
    }
}

#[test]
fn ca_hash_equals_kbs_sim() {
    let ca = kbs_sim::pki::CertAuthority::generate(
        "kubernetes",
        kbs_sim::pki::KeyAlgo::EcdsaP256,
        std::time::SystemTime::now(),
    )
    .unwrap();
    assert_eq!(ca_cert_hash(&ca.cert_pem).unwrap(), ca.hash().unwrap());
}
