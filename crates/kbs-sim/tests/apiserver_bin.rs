//! The multi-call binary as the guests run it: `kube-apiserver` as a process on loopback
//! with its manifest-style flags, and `kubectl` processes against it.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use kbs_sim::pki::{kubeconfig, CertAuthority, KeyAlgo, LeafSpec, Usage};

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        // Only the process this test started, by its handle.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn kubectl(kc: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kbs-sim"))
        .arg("kubectl")
        .arg(format!("--kubeconfig={kc}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kube_apiserver_process_serves_kubectl_processes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let now = SystemTime::now();
    let ca = CertAuthority::generate("kubernetes", KeyAlgo::EcdsaP256, now).unwrap();
    let leaf = |cn: &str, orgs: &[&str], usage| LeafSpec {
        common_name: cn.into(),
        organizations: orgs.iter().map(|s| s.to_string()).collect(),
        dns_names: vec![],
        ips: vec!["127.0.0.1".parse().unwrap()],
        usage,
    };
    let (cert, key) = ca
        .issue(
            &leaf("kube-apiserver", &[], Usage::Server),
            KeyAlgo::EcdsaP256,
            now,
        )
        .unwrap();
    std::fs::write(p.join("ca.crt"), &ca.cert_pem).unwrap();
    std::fs::write(p.join("ca.key"), ca.key.serialize_pem()).unwrap();
    std::fs::write(p.join("apiserver.crt"), cert).unwrap();
    std::fs::write(p.join("apiserver.key"), key.serialize_pem()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("https://127.0.0.1:{port}");
    let (c, k) = ca
        .issue(
            &leaf("kubernetes-super-admin", &["system:masters"], Usage::Client),
            KeyAlgo::EcdsaP256,
            now,
        )
        .unwrap();
    let kc = p.join("super-admin.conf");
    std::fs::write(
        &kc,
        kubeconfig(
            &server,
            "kubernetes",
            "kubernetes-super-admin",
            &ca.cert_pem,
            &c,
            &k.serialize_pem(),
        ),
    )
    .unwrap();
    let kc = kc.display().to_string();

    let _api = Child(
        Command::new(env!("CARGO_BIN_EXE_kbs-sim"))
            .arg("kube-apiserver")
            .arg("--advertise-address=127.0.0.1")
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={port}"))
            .arg(format!("--tls-cert-file={}", p.join("apiserver.crt").display()))
            .arg(format!(
                "--tls-private-key-file={}",
                p.join("apiserver.key").display()
            ))
            .arg(format!("--client-ca-file={}", p.join("ca.crt").display()))
            .arg("--service-node-port-range=80-32767")
            .arg(format!("--kbs-store-dir={}", p.join("etcd").display()))
            .env("KBS_SIM_KUBE_APISERVER_VERSION", "1.37.1")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    loop {
        let (code, out, _) = kubectl(&kc, &["get", "ns", "-o", "name"], "");
        if code == 0 {
            assert!(out.contains("namespace/kube-system"), "{out}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the API server did not come up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, out, _) = kubectl(&kc, &["version"], "");
    assert!(out.contains("Server Version: v1.37.1"), "{out}");
    // The book's NodePort 80 works with the widened range.
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: ingress-nginx-controller\n  namespace: default\nspec:\n  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 80\n";
    let (code, out, err) = kubectl(&kc, &["apply", "-f", "-"], svc);
    assert_eq!(
        (code, out.as_str()),
        (0, "service/ingress-nginx-controller created\n"),
        "{err}"
    );
    let (code, _, err) = kubectl(&kc, &["get", "widgets"], "");
    assert_eq!(
        (code, err.as_str()),
        (1, "error: the server doesn't have a resource type \"widgets\"\n")
    );
    assert!(
        p.join("etcd/member/kbs-sim-store.json").exists(),
        "the store persists under the etcd data dir"
    );
}
