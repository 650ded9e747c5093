//! The kubeadm front in-process: a fake host, a temporary root, collected output.

use clap::Parser;

use super::*;
use crate::clock::Clock;
use crate::config::HostFacts;
use crate::preflight::tests::FakeHost;
use crate::version::Version;

struct Run {
    result: Result<(), Failure>,
    stdout: String,
    stderr: String,
    root: tempfile::TempDir,
}

fn run_with(args: &[&str], host: FakeHost, version: Version, files: &[(&str, &str)]) -> Run {
    let root = tempfile::tempdir().unwrap();
    let mut argv = vec!["kubeadm".to_string()];
    for a in args {
        argv.push(a.replace("{root}", &root.path().display().to_string()));
    }
    for (name, text) in files {
        std::fs::write(root.path().join(name), text).unwrap();
    }
    let mut ctx = Context {
        version,
        probe: Box::new(host),
        clock: Clock::with_offset_file(root.path().join("clock-offset")),
        root: root.path().to_path_buf(),
        host: HostFacts {
            hostname: "host01".into(),
            default_address: Some("10.61.0.11".parse().unwrap()),
        },
        stdout: String::new(),
        stderr: String::new(),
        live: false,
        stdin_line: Some("n\n".to_string()),
        control_plane_timeout: std::time::Duration::from_millis(300),
    };
    let parsed = Kubeadm::try_parse_from(argv).unwrap();
    let result = run(parsed, &mut ctx);
    Run {
        result,
        stdout: ctx.stdout,
        stderr: ctx.stderr,
        root,
    }
}

const V136: Version = Version::new(1, 36, 4);

const INIT: &str = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 10.61.0.11\nnodeRegistration:\n  name: host01\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: 10.61.0.10:6443\nencryptionAlgorithm: ECDSA-P256\nnetworking:\n  podSubnet: 172.31.0.0/16\n";

#[test]
fn init_fails_preflight_on_ip_forward_like_kubeadm() {
    let mut host = FakeHost::default();
    host.files
        .insert("/proc/sys/net/ipv4/ip_forward".into(), b"0\n".to_vec());
    let r = run_with(
        &["init", "--config", "{root}/kubeadm.yaml"],
        host,
        V136,
        &[("kubeadm.yaml", INIT)],
    );
    let failure = r.result.unwrap_err();
    assert_eq!(
        failure.render(),
        "error: error execution phase preflight: preflight checks failed\nTo see the stack trace of this error execute with --v=5 or higher\n"
    );
    assert!(
        r.stdout
            .starts_with("[init] Using Kubernetes version: v1.36.4\n[preflight] Running pre-flight checks\n"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("\t[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1\n"));
    assert!(
        !r.root.path().join("etc/kubernetes/pki/ca.crt").exists(),
        "nothing is written after a failed preflight"
    );
}

#[test]
fn init_writes_pki_kubeconfigs_and_manifests() {
    let r = run_with(
        &["init", "--config", "{root}/kubeadm.yaml", "--upload-certs"],
        FakeHost::default(),
        V136,
        &[("kubeadm.yaml", INIT)],
    );
    match r.result {
        Err(Failure::Phase { ref phase, .. }) => assert_eq!(phase, "wait-control-plane"),
        other => panic!("{other:?}"),
    }
    let root = r.root.path();
    for f in [
        "etc/kubernetes/pki/ca.crt",
        "etc/kubernetes/pki/apiserver.crt",
        "etc/kubernetes/admin.conf",
        "etc/kubernetes/super-admin.conf",
        "etc/kubernetes/kubelet.conf",
        "etc/kubernetes/manifests/kube-apiserver.yaml",
        "etc/kubernetes/manifests/etcd.yaml",
        "var/lib/kubelet/config.yaml",
    ] {
        assert!(root.join(f).exists(), "{f}\n{}", r.stdout);
    }
    let cm =
        std::fs::read_to_string(root.join("etc/kubernetes/manifests/kube-controller-manager.yaml")).unwrap();
    assert!(cm.contains("--cluster-cidr=172.31.0.0/16"), "{cm}");
    assert!(r.stdout.contains("[kubeconfig] Writing \"super-admin.conf\"\n"));
}

#[test]
fn init_warns_on_unknown_fields_but_continues() {
    let text = INIT.replace("  name: host01\n", "  name: host01\n  kubeletExtraArg: []\n");
    let r = run_with(
        &["init", "--config", "{root}/kubeadm.yaml"],
        FakeHost::default(),
        V136,
        &[("kubeadm.yaml", &text)],
    );
    assert!(r.stderr.contains("initconfiguration.go:332] error unmarshaling configuration schema.GroupVersionKind{Group:\"kubeadm.k8s.io\", Version:\"v1beta4\", Kind:\"InitConfiguration\"}: strict decoding error: unknown field \"nodeRegistration.kubeletExtraArg\"\n"), "{}", r.stderr);
    assert!(r.stdout.contains("[certs] Generating \"ca\" certificate and key"));
}

#[test]
fn config_and_certificate_key_flags_do_not_mix() {
    let r = run_with(
        &["init", "--config", "{root}/k.yaml", "--certificate-key", "00"],
        FakeHost::default(),
        V136,
        &[("k.yaml", INIT)],
    );
    assert_eq!(
        r.result.unwrap_err().render(),
        "error: can not mix '--config' with arguments [certificate-key]\nTo see the stack trace of this error execute with --v=5 or higher\n"
    );
}

#[test]
fn config_validate_prints_ok_or_the_error() {
    let r = run_with(
        &["config", "validate", "--config", "{root}/k.yaml"],
        FakeHost::default(),
        V136,
        &[("k.yaml", INIT)],
    );
    assert!(r.result.is_ok());
    assert_eq!(r.stdout, "ok\n");
    let bad = INIT.replace("podSubnet", "podCIDR");
    let r = run_with(
        &["config", "validate", "--config", "{root}/k.yaml"],
        FakeHost::default(),
        V136,
        &[("k.yaml", &bad)],
    );
    assert_eq!(
        r.result.unwrap_err().render(),
        "error: error unmarshaling configuration schema.GroupVersionKind{Group:\"kubeadm.k8s.io\", Version:\"v1beta4\", Kind:\"ClusterConfiguration\"}: strict decoding error: unknown field \"networking.podCIDR\"\nTo see the stack trace of this error execute with --v=5 or higher\n"
    );
}

#[test]
fn join_rejects_a_malformed_ca_pin() {
    let r = run_with(
        &[
            "join",
            "10.61.0.10:6443",
            "--token",
            "abcdef.0123456789abcdef",
            "--discovery-token-ca-cert-hash",
            "sha256:1234",
        ],
        FakeHost::default(),
        V136,
        &[],
    );
    assert_eq!(
        r.result.unwrap_err().render(),
        "error: error execution phase preflight: couldn't validate the identity of the API Server: invalid discovery token CA certificate hash: invalid hash \"sha256:1234\", expected a 32 byte SHA-256 hash, found 2 bytes\nTo see the stack trace of this error execute with --v=5 or higher\n"
    );
}

#[test]
fn join_without_pin_or_unsafe_skip() {
    let r = run_with(
        &["join", "10.61.0.10:6443", "--token", "abcdef.0123456789abcdef"],
        FakeHost::default(),
        V136,
        &[],
    );
    assert!(
        matches!(r.result, Err(Failure::Plain(ref m)) if m.starts_with("discovery.bootstrapToken.caCertHashes: Invalid value: \"\": using token-based discovery without caCertHashes can be unsafe."))
    );
}

#[test]
fn version_short() {
    let r = run_with(
        &["version", "-o", "short"],
        FakeHost::default(),
        Version::new(1, 35, 2),
        &[],
    );
    assert_eq!(r.stdout, "v1.35.2\n");
    let r = run_with(&["version", "-o", "xml"], FakeHost::default(), V136, &[]);
    assert_eq!(
        r.result.unwrap_err().render().lines().next(),
        Some("error: invalid output format: xml")
    );
}

#[test]
fn token_generate_and_certificate_key() {
    let r = run_with(&["token", "generate"], FakeHost::default(), V136, &[]);
    assert!(crate::token::is_valid(r.stdout.trim()), "{}", r.stdout);
    let r = run_with(&["certs", "certificate-key"], FakeHost::default(), V136, &[]);
    let key = r.stdout.trim();
    assert_eq!(key.len(), 64);
    assert!(crate::certs_upload::CertificateKey::parse(key, "certificateKey").is_ok());
}

#[test]
fn reset_undoes_init_and_asks_first() {
    // Without -f the answer "n" aborts, as kubeadm does.
    let r = run_with(&["reset"], FakeHost::default(), V136, &[]);
    assert_eq!(
        r.result.unwrap_err().render().lines().next(),
        Some("error: aborted reset operation")
    );
    assert!(r
        .stderr
        .contains("[reset] Are you sure you want to proceed? [y/N]: "));

    let r = run_with(
        &["init", "--config", "{root}/kubeadm.yaml"],
        FakeHost::default(),
        V136,
        &[("kubeadm.yaml", INIT)],
    );
    assert!(r.root.path().join("etc/kubernetes/pki/ca.crt").exists());
    let root = r.root;
    std::fs::create_dir_all(root.path().join("var/lib/etcd/member")).unwrap();
    let mut ctx = Context {
        version: V136,
        probe: Box::new(FakeHost::default()),
        clock: Clock::with_offset_file(root.path().join("clock-offset")),
        root: root.path().to_path_buf(),
        host: HostFacts {
            hostname: "host01".into(),
            default_address: None,
        },
        stdout: String::new(),
        stderr: String::new(),
        live: false,
        stdin_line: None,
        control_plane_timeout: std::time::Duration::from_millis(300),
    };
    run(
        Kubeadm::try_parse_from(["kubeadm", "reset", "-f"]).unwrap(),
        &mut ctx,
    )
    .unwrap();
    assert!(!root.path().join("etc/kubernetes/pki/ca.crt").exists());
    assert!(!root.path().join("etc/kubernetes/admin.conf").exists());
    assert!(!root.path().join("etc/kubernetes/manifests/etcd.yaml").exists());
    assert!(!root.path().join("var/lib/etcd/member").exists());
    assert!(
        ctx.stdout
            .contains("[reset] Deleted contents of the etcd data directory: /var/lib/etcd\n"),
        "{}",
        ctx.stdout
    );
    assert!(ctx.stdout.contains("[reset] Deleting files: [/etc/kubernetes/admin.conf /etc/kubernetes/super-admin.conf /etc/kubernetes/kubelet.conf /etc/kubernetes/bootstrap-kubelet.conf /etc/kubernetes/controller-manager.conf /etc/kubernetes/scheduler.conf]\n"));
    assert!(ctx.stderr.contains("[reset] Unable to fetch the kubeadm-config ConfigMap from cluster: failed to get config map: Get \"https://10.61.0.10:6443/api/v1/namespaces/kube-system/configmaps/kubeadm-config?timeout=10s\": dial tcp 10.61.0.10:6443: connect: connection refused\n"), "{}", ctx.stderr);
    // After a reset, init's preflight passes again on the same host.
    let mut ctx2 = Context {
        stdout: String::new(),
        stderr: String::new(),
        ..ctx
    };
    std::fs::write(root.path().join("kubeadm.yaml"), INIT).unwrap();
    let cfg = root.path().join("kubeadm.yaml").display().to_string();
    let res = run(
        Kubeadm::try_parse_from(["kubeadm", "init", "--config", &cfg]).unwrap(),
        &mut ctx2,
    );
    assert!(
        matches!(res, Err(Failure::Phase { ref phase, .. }) if phase == "wait-control-plane"),
        "{res:?}\n{}",
        ctx2.stderr
    );
}
