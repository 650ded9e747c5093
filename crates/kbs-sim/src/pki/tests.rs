//! PKI tests, checked against the openssl CLI where kubeadm users would check.

use std::net::IpAddr;
use std::process::Command;

use x509_parser::extensions::GeneralName;

use super::*;
use crate::config::{load_init, HostFacts};
use crate::version::Version;

fn sh(script: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(script).output().expect("sh");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The documented way to compute `--discovery-token-ca-cert-hash` (kubeadm-join docs).
fn openssl_hash(ca_crt: &Path) -> String {
    let out = sh(&format!(
        "openssl x509 -pubkey -noout -in {} | openssl pkey -pubin -outform der | sha256sum",
        ca_crt.display()
    ));
    format!("sha256:{}", out.split_whitespace().next().unwrap_or_default())
}

fn cfg(extra_cluster: &str, algo: &str) -> crate::config::InitConfig {
    let text = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 10.61.0.11\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: {algo}\ncontrolPlaneEndpoint: 10.61.0.10:6443\n{extra_cluster}"
    );
    let host = HostFacts {
        hostname: "host01".into(),
        default_address: None,
    };
    load_init(&text, Version::new(1, 36, 4), &host).unwrap()
}

#[test]
fn ca_hash_matches_openssl_for_ecdsa_and_rsa() {
    let dir = tempfile::tempdir().unwrap();
    for (name, algo) in [("ec", KeyAlgo::EcdsaP256), ("rsa", KeyAlgo::Rsa(2048))] {
        let ca = CertAuthority::generate("kubernetes", algo, SystemTime::now()).unwrap();
        let path = dir.path().join(format!("{name}.crt"));
        std::fs::write(&path, &ca.cert_pem).unwrap();
        let ours = ca.hash().unwrap();
        assert_eq!(ours, openssl_hash(&path), "{name}");
        assert_eq!(ours.len(), "sha256:".len() + 64);
        // The pin also equals the hash of the key's own SPKI.
        assert_eq!(ours, spki_hash(&ca.key.subject_public_key_info()));
    }
}

#[test]
fn init_pki_has_kubeadms_files_sans_and_modes() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    let cfg = cfg(
        "apiServer:\n  certSANs:\n  - k8s.example.internal\n",
        "ECDSA-P256",
    );
    let (out, ca) = create_pki(&pki, &cfg, SystemTime::now()).unwrap();
    for f in [
        "ca.crt",
        "ca.key",
        "apiserver.crt",
        "apiserver.key",
        "apiserver-kubelet-client.crt",
        "front-proxy-ca.crt",
        "front-proxy-client.crt",
        "etcd/ca.crt",
        "etcd/server.crt",
        "etcd/peer.crt",
        "etcd/healthcheck-client.crt",
        "apiserver-etcd-client.crt",
        "sa.key",
        "sa.pub",
    ] {
        assert!(pki.join(f).exists(), "{f}");
    }
    let mode = |f: &str| std::fs::metadata(pki.join(f)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("ca.key"), 0o600);
    assert_eq!(mode("ca.crt"), 0o644);
    assert_eq!(out.ca_hash, openssl_hash(&pki.join("ca.crt")));
    assert_eq!(out.ca_hash, ca.hash().unwrap());
    assert!(out
        .lines
        .contains(&"[certs] Generating \"ca\" certificate and key".to_string()));

    // The chain verifies with openssl, and the API server cert carries kubeadm's SANs.
    sh(&format!(
        "openssl verify -CAfile {0}/ca.crt {0}/apiserver.crt",
        pki.display()
    ));
    sh(&format!(
        "openssl verify -CAfile {0}/etcd/ca.crt {0}/etcd/server.crt",
        pki.display()
    ));
    let pem = std::fs::read(pki.join("apiserver.crt")).unwrap();
    let (_, p) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = p.parse_x509().unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for n in &san.value.general_names {
        match n {
            GeneralName::DNSName(d) => dns.push(d.to_string()),
            GeneralName::IPAddress(b) if b.len() == 4 => ips.push(IpAddr::from([b[0], b[1], b[2], b[3]])),
            _ => {}
        }
    }
    assert_eq!(
        dns,
        vec![
            "host01",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "k8s.example.internal"
        ]
    );
    let want: Vec<IpAddr> = ["10.96.0.1", "10.61.0.11", "10.61.0.10"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(ips, want);
    assert!(cert.subject().to_string().contains("CN=kube-apiserver"));

    // A second run reuses the CA, so the pin does not change.
    let (again, _) = create_pki(&pki, &cfg, SystemTime::now()).unwrap();
    assert_eq!(again.ca_hash, out.ca_hash);
    assert!(again
        .lines
        .contains(&"[certs] Using existing ca certificate authority".to_string()));
}

#[test]
fn kubeconfigs_have_kubeadms_users_groups_and_servers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = cfg("", "ECDSA-P256");
    let (_, ca) = create_pki(&dir.path().join("pki"), &cfg, SystemTime::now()).unwrap();
    create_kubeconfigs(dir.path(), &cfg, &ca, SystemTime::now()).unwrap();
    let read = |f: &str| -> serde_yaml::Value {
        serde_yaml::from_str(&std::fs::read_to_string(dir.path().join(f)).unwrap()).unwrap()
    };
    let subject = |kc: &serde_yaml::Value| -> String {
        let b64 = kc["users"][0]["user"]["client-certificate-data"]
            .as_str()
            .unwrap();
        let pem = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
        let (_, p) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        p.parse_x509().unwrap().subject().to_string()
    };
    let admin = read("admin.conf");
    assert_eq!(
        admin["clusters"][0]["cluster"]["server"].as_str(),
        Some("https://10.61.0.10:6443")
    );
    assert_eq!(
        admin["current-context"].as_str(),
        Some("kubernetes-admin@kubernetes")
    );
    assert_eq!(subject(&admin), "O=kubeadm:cluster-admins, CN=kubernetes-admin");
    assert_eq!(
        subject(&read("super-admin.conf")),
        "O=system:masters, CN=kubernetes-super-admin"
    );
    let kubelet = read("kubelet.conf");
    assert_eq!(subject(&kubelet), "O=system:nodes, CN=system:node:host01");
    assert_eq!(
        kubelet["clusters"][0]["cluster"]["server"].as_str(),
        Some("https://10.61.0.11:6443")
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("admin.conf"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}
