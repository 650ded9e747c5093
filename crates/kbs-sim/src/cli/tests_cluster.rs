//! kubeadm init, join (worker and control plane), tokens and uploaded certs against real
//! API servers on loopback (127.0.0.1–127.0.0.4), with a test "kubelet" per node that
//! starts the kube-apiserver static pod in-process and registers the Node.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use super::*;
use crate::apiserver::{ApiServer, Config as ApiConfig};
use crate::clock::Clock;
use crate::config::HostFacts;
use crate::kubeclient::{Client, Kubeconfig};
use crate::kubelet::{NodeFacts, Root};
use crate::preflight::tests::FakeHost;
use crate::version::Version;

const V136: Version = Version::new(1, 36, 4);
const TOKEN: &str = "abcdef.0123456789abcdef";
const KEY: &str = "2b6a3e5b5f1c0a9d8e7f6a5b4c3d2e1f00112233445566778899aabbccddeeff";

fn free_port(ip: &str) -> u16 {
    TcpListener::bind(format!("{ip}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One simulated node: its root, name, address and a kubelet thread.
struct Node {
    root: tempfile::TempDir,
    name: String,
    ip: String,
    stop: Arc<AtomicBool>,
}

fn under(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap_or(p))
}

impl Node {
    fn new(name: &str, ip: &str) -> Node {
        let node = Node {
            root: tempfile::tempdir().unwrap(),
            name: name.into(),
            ip: ip.into(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (root, name, ip, stop) = (
            node.root.path().to_path_buf(),
            node.name.clone(),
            node.ip.clone(),
            node.stop.clone(),
        );
        std::thread::spawn(move || kubelet_loop(&root, &name, &ip, &stop));
        node
    }

    fn ctx(&self) -> Context {
        let host = FakeHost {
            dial: Ok(()),
            ..Default::default()
        };
        Context {
            version: V136,
            probe: Box::new(host),
            clock: Clock::with_offset_file(self.root.path().join("clock-offset")),
            root: self.root.path().to_path_buf(),
            host: HostFacts {
                hostname: self.name.clone(),
                default_address: Some(self.ip.parse().unwrap()),
            },
            stdout: String::new(),
            stderr: String::new(),
            live: false,
            stdin_line: None,
            control_plane_timeout: Duration::from_secs(20),
        }
    }

    fn kubeadm(&self, args: &[&str]) -> (Result<(), Failure>, String, String) {
        let mut ctx = self.ctx();
        let mut argv = vec!["kubeadm".to_string()];
        argv.extend(
            args.iter()
                .map(|a| a.replace("{root}", &self.root.path().display().to_string())),
        );
        let r = run(Kubeadm::try_parse_from(argv).unwrap(), &mut ctx);
        (r, ctx.stdout, ctx.stderr)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.root.path().join(name), text).unwrap();
    }

    fn admin(&self) -> Client {
        Client::new(Kubeconfig::load(&self.root.path().join("etc/kubernetes/admin.conf")).unwrap()).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The test kubelet: the kube-apiserver static pod in-process, then TLS bootstrap and Node
/// registration once kubeadm wrote the kubelet's files.
fn kubelet_loop(root: &Path, name: &str, ip: &str, stop: &AtomicBool) {
    let mut server: Option<crate::apiserver::Running> = None;
    let mut kc: Option<Kubeconfig> = None;
    let r = Root(root.to_path_buf());
    while !stop.load(Ordering::SeqCst) {
        let manifest = root.join("etc/kubernetes/manifests/kube-apiserver.yaml");
        if server.is_none() {
            if let Some(spec) = std::fs::read_to_string(&manifest)
                .ok()
                .and_then(|t| crate::kubelet::static_pods::parse_manifest(&t))
            {
                let mut cfg = ApiConfig::from_args(&spec.command[1..]).unwrap();
                cfg.bind = format!("{ip}:{}", cfg.bind.port()).parse().unwrap();
                for p in [
                    &mut cfg.cert_file,
                    &mut cfg.key_file,
                    &mut cfg.client_ca_file,
                    &mut cfg.proxy_cert_file,
                    &mut cfg.proxy_key_file,
                ] {
                    *p = under(root, p);
                }
                cfg.store_file = cfg.store_file.as_ref().map(|f| under(root, f));
                cfg.version = V136;
                let api = Arc::new(
                    ApiServer::from_config(cfg.clone(), Clock::with_offset_file(root.join("clock-offset")))
                        .unwrap(),
                );
                let listener = TcpListener::bind(cfg.bind).unwrap();
                server = Some(crate::apiserver::serve(api, listener).unwrap());
            }
        }
        if kc.is_none()
            && root.join("var/lib/kubelet/config.yaml").exists()
            && (root.join("etc/kubernetes/kubelet.conf").exists()
                || root.join("etc/kubernetes/bootstrap-kubelet.conf").exists())
        {
            kc = crate::kubelet::client_kubeconfig(&r, name, Duration::from_secs(2)).ok();
        }
        if let Some(k) = &kc {
            let facts = NodeFacts {
                name: name.into(),
                ips: vec![ip.parse().unwrap()],
                kubelet_version: "v1.36.4".into(),
                iscsid_active: true,
                nfs_common: true,
                cni_config: false,
            };
            if let Ok(mut c) = Client::new(k.clone()) {
                if crate::kubelet::register(&mut c, &facts).is_ok() {
                    let _ = crate::kubelet::sync_mirror_pods(&r, &mut c, name);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    if let Some(s) = server {
        s.stop();
    }
}

fn init_config(port: u16) -> String {
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens:\n- token: {TOKEN}\ncertificateKey: {KEY}\nlocalAPIEndpoint:\n  advertiseAddress: 127.0.0.1\n  bindPort: {port}\nnodeRegistration:\n  name: host01\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\ncontrolPlaneEndpoint: 127.0.0.1:{port}\nencryptionAlgorithm: ECDSA-P256\nnetworking:\n  podSubnet: 172.31.0.0/16\n---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nserverTLSBootstrap: true\n"
    )
}

fn join_config(port: u16, hash: &str, control_plane: Option<(&str, u16)>, name: &str) -> String {
    let mut s = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nnodeRegistration:\n  name: {name}\ndiscovery:\n  bootstrapToken:\n    apiServerEndpoint: 127.0.0.1:{port}\n    token: {TOKEN}\n    caCertHashes: [\"{hash}\"]\n"
    );
    if let Some((ip, p)) = control_plane {
        s.push_str(&format!("controlPlane:\n  certificateKey: {KEY}\n  localAPIEndpoint:\n    advertiseAddress: {ip}\n    bindPort: {p}\n"));
    }
    s
}

#[test]
fn init_join_worker_and_control_plane_tokens_and_uploaded_certs() {
    let port = free_port("127.0.0.1");
    let host01 = Node::new("host01", "127.0.0.1");
    host01.write("kubeadm.yaml", &init_config(port));
    let (r, out, err) = host01.kubeadm(&["init", "--config", "{root}/kubeadm.yaml", "--upload-certs"]);
    assert!(r.is_ok(), "{r:?}\n{out}\n{err}");
    assert!(
        out.contains("[upload-certs] Using certificate key:\n2b6a3e5b"),
        "{out}"
    );
    assert!(out.contains("[bootstrap-token] Using token: abcdef.0123456789abcdef\n"));
    assert!(out.contains("Your Kubernetes control-plane has initialized successfully!"));
    let ca = std::fs::read_to_string(host01.root.path().join("etc/kubernetes/pki/ca.crt")).unwrap();
    let hash = crate::pki::ca_cert_hash(&ca).unwrap();
    assert!(out.contains(&format!("kubeadm join 127.0.0.1:{port} --token {TOKEN} \\\n\t--discovery-token-ca-cert-hash {hash} \\\n\t--control-plane --certificate-key {KEY}\n")), "{out}");

    // admin.conf works: init created the kubeadm:cluster-admins binding.
    let mut admin = host01.admin();
    let node = admin.get("/api/v1/nodes/host01").unwrap();
    assert!(node.ok(), "{}", node.message());
    assert_eq!(
        node.body["metadata"]["labels"]["node-role.kubernetes.io/control-plane"],
        ""
    );
    assert!(node.body["spec"]["taints"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["key"] == "node-role.kubernetes.io/control-plane"));

    // The kubelet's mirror pods show the control plane.
    std::thread::sleep(Duration::from_millis(400));
    let pods = admin
        .get("/api/v1/namespaces/kube-system/pods/kube-apiserver-host01")
        .unwrap();
    assert_eq!(pods.body["status"]["phase"], "Running", "{}", pods.message());

    // A worker joins through discovery and the kubelet's TLS bootstrap.
    let host03 = Node::new("host03", "127.0.0.3");
    host03.write("join.yaml", &join_config(port, &hash, None, "host03"));
    let (r, out, err) = host03.kubeadm(&["join", "--config", "{root}/join.yaml"]);
    assert!(r.is_ok(), "{r:?}\n{out}\n{err}");
    assert!(out.contains("This node has joined the cluster:\n"), "{out}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(admin.get("/api/v1/nodes/host03").unwrap().ok());

    // A wrong pin is refused with kubeadm's message.
    let other = crate::pki::CertAuthority::generate(
        "kubernetes",
        crate::pki::KeyAlgo::EcdsaP256,
        std::time::SystemTime::now(),
    )
    .unwrap();
    let host09 = Node::new("host09", "127.0.0.4");
    host09.write(
        "join.yaml",
        &join_config(port, &other.hash().unwrap(), None, "host09"),
    );
    let (r, _, _) = host09.kubeadm(&["join", "--config", "{root}/join.yaml"]);
    match r {
        Err(Failure::Phase { phase, msg }) => {
            assert_eq!(phase, "preflight");
            assert!(msg.starts_with("couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"sha256:") || msg.contains("none of the public keys"), "{msg}");
        }
        other => panic!("{other:?}"),
    }

    // A control plane joins: certs from kubeadm-certs, an etcd learner promoted, its API
    // server serving the shared store.
    let port2 = free_port("127.0.0.2");
    let host02 = Node::new("host02", "127.0.0.2");
    host02.write(
        "join.yaml",
        &join_config(port, &hash, Some(("127.0.0.2", port2)), "host02"),
    );
    let (r, out, err) = host02.kubeadm(&["join", "--config", "{root}/join.yaml"]);
    assert!(r.is_ok(), "{r:?}\n{out}\n{err}");
    assert!(
        out.contains("This node has joined the cluster and a new control plane instance was created:"),
        "{out}"
    );
    assert!(!host02
        .root
        .path()
        .join("etc/kubernetes/super-admin.conf")
        .exists());
    let member = admin.get("/apis/kbs-sim.io/v1/etcdmembers/host02").unwrap();
    assert_eq!(member.body["spec"]["isLearner"], false);
    let mut via2 = Kubeconfig::load(&host02.root.path().join("etc/kubernetes/admin.conf")).unwrap();
    via2.server = format!("https://127.0.0.2:{port2}");
    let nodes = Client::new(via2).unwrap().get("/api/v1/nodes").unwrap();
    assert_eq!(
        nodes.body["items"].as_array().map(Vec::len),
        Some(3),
        "{}",
        nodes.message()
    );

    // etcd takes one learner at a time.
    let learner =
        |n: &str| super::cluster::etcd_member(n, "https://127.0.0.9:2380", "https://127.0.0.9:6443", true);
    assert!(admin
        .send_json("POST", super::cluster::ETCD_MEMBER_PATH, &learner("host05"))
        .unwrap()
        .ok());
    let r = admin
        .send_json("POST", super::cluster::ETCD_MEMBER_PATH, &learner("host06"))
        .unwrap();
    assert_eq!(
        (r.status, r.message()),
        (500, "etcdserver: too many learner members in cluster".to_string())
    );
    admin
        .request(
            "DELETE",
            &format!("{}/host05", super::cluster::ETCD_MEMBER_PATH),
            "",
            b"",
        )
        .unwrap();

    // Resetting a control plane removes its etcd member; its Node stays (kubectl delete node is the
    // operator's step, as with real kubeadm).
    let (r, out, err) = host02.kubeadm(&["reset", "-f"]);
    assert!(r.is_ok(), "{r:?}\n{out}\n{err}");
    assert!(!err.contains("Failed to remove etcd member"), "{err}");
    let members = admin.get(super::cluster::ETCD_MEMBER_PATH).unwrap();
    let names: Vec<&str> = members.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["host01"], "{}", members.message());
    assert!(admin.get("/api/v1/nodes/host02").unwrap().ok());

    // Tokens.
    let (r, out, _) = host01.kubeadm(&[
        "token",
        "create",
        "--ttl",
        "15m",
        "--kubeconfig",
        "/etc/kubernetes/admin.conf",
    ]);
    assert!(r.is_ok(), "{r:?}");
    let t = out.trim().to_string();
    assert!(crate::token::is_valid(&t), "{t}");
    let (_, out, _) = host01.kubeadm(&["token", "list", "--kubeconfig", "/etc/kubernetes/admin.conf"]);
    assert!(out.starts_with("TOKEN"), "{out}");
    assert!(
        out.contains(&format!("{t}   15m")) || out.contains(&format!("{t}   14m")),
        "{out}"
    );
    let id = &t[..6];
    let (_, out, _) = host01.kubeadm(&[
        "token",
        "delete",
        id,
        "--kubeconfig",
        "/etc/kubernetes/admin.conf",
    ]);
    assert_eq!(out, format!("bootstrap token \"{id}\" deleted\n"));

    // Two hours later the uploaded certs are gone; a control-plane join says so.
    std::fs::write(host01.root.path().join("clock-offset"), "7201").unwrap();
    let port4 = free_port("127.0.0.4");
    let host04 = Node::new("host04", "127.0.0.4");
    host04.write(
        "join.yaml",
        &join_config(port, &hash, Some(("127.0.0.4", port4)), "host04"),
    );
    let (r, _, _) = host04.kubeadm(&["join", "--config", "{root}/join.yaml"]);
    match r {
        Err(Failure::Phase { phase, msg }) => {
            assert_eq!(phase, "control-plane-prepare/download-certs");
            assert_eq!(msg, "error downloading certs: error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one");
        }
        other => panic!("{other:?}"),
    }
    let (r, out, _) = host01.kubeadm(&[
        "init",
        "phase",
        "upload-certs",
        "--upload-certs",
        "--certificate-key",
        KEY,
    ]);
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(out, format!("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n[upload-certs] Using certificate key:\n{KEY}\n"));
    assert!(admin
        .get("/api/v1/namespaces/kube-system/secrets/kubeadm-certs")
        .unwrap()
        .ok());

    // A day later the join token has expired: discovery finds no signature for it.
    std::fs::write(host01.root.path().join("clock-offset"), "86401").unwrap();
    let host05 = Node::new("host05", "127.0.0.4");
    host05.write("join.yaml", &join_config(port, &hash, None, "host05"));
    let (r, _, _) = host05.kubeadm(&["join", "--config", "{root}/join.yaml"]);
    match r {
        Err(Failure::Phase { phase, msg }) => {
            assert_eq!(phase, "preflight");
            assert_eq!(msg, "couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID \"abcdef\"");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn two_control_plane_joins_at_once_one_is_refused_by_etcd() {
    let port = free_port("127.0.0.1");
    let host01 = Node::new("host01", "127.0.0.1");
    host01.write("kubeadm.yaml", &init_config(port));
    let (r, out, err) = host01.kubeadm(&["init", "--config", "{root}/kubeadm.yaml", "--upload-certs"]);
    assert!(r.is_ok(), "{r:?}\n{out}\n{err}");
    let ca = std::fs::read_to_string(host01.root.path().join("etc/kubernetes/pki/ca.crt")).unwrap();
    let hash = crate::pki::ca_cert_hash(&ca).unwrap();
    let joins: Vec<_> = [("host02", "127.0.0.2"), ("host03", "127.0.0.3")]
        .into_iter()
        .map(|(name, ip)| {
            let node = Node::new(name, ip);
            node.write(
                "join.yaml",
                &join_config(port, &hash, Some((ip, free_port(ip))), name),
            );
            std::thread::spawn(move || {
                let (r, _, _) = node.kubeadm(&["join", "--config", "{root}/join.yaml"]);
                (r, node)
            })
        })
        .collect();
    let results: Vec<_> = joins.into_iter().map(|j| j.join().unwrap()).collect();
    let refused: Vec<String> = results
        .iter()
        .filter_map(|(r, _)| match r {
            Err(Failure::Phase { phase, msg }) => Some(format!("{phase}: {msg}")),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused,
        vec!["control-plane-join/etcd: error creating local etcd static pod manifest file: etcdserver: too many learner members in cluster".to_string()],
        "exactly one of two simultaneous control-plane joins fails"
    );
}

/// A client for `node`'s own API server (its admin.conf, pointed at its address).
fn local_admin(node: &Node, port: u16) -> Client {
    let mut kc = Kubeconfig::load(&node.root.path().join("etc/kubernetes/admin.conf")).unwrap();
    kc.server = format!("https://{}:{port}", node.ip);
    Client::new(kc).unwrap()
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(15), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn three_control_planes_survive_one_loss_and_refuse_without_quorum() {
    let port = free_port("127.0.0.1");
    let host01 = Node::new("host01", "127.0.0.1");
    host01.write("kubeadm.yaml", &init_config(port));
    let (r, out, err) = host01.kubeadm(&["init", "--config", "{root}/kubeadm.yaml", "--upload-certs"]);
    assert!(r.is_ok(), "{r:?}\n{out}\n{err}");
    let ca = std::fs::read_to_string(host01.root.path().join("etc/kubernetes/pki/ca.crt")).unwrap();
    let hash = crate::pki::ca_cert_hash(&ca).unwrap();
    let mut cps = Vec::new();
    for (name, ip) in [("host02", "127.0.0.2"), ("host03", "127.0.0.3")] {
        let p = free_port(ip);
        let node = Node::new(name, ip);
        node.write("join.yaml", &join_config(port, &hash, Some((ip, p)), name));
        let (r, out, err) = node.kubeadm(&["join", "--config", "{root}/join.yaml"]);
        assert!(r.is_ok(), "{r:?}\n{out}\n{err}");
        cps.push((node, p));
    }
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ha-check"}, "data": {"a": "1"}});
    assert!(host01
        .admin()
        .send_json("POST", "/api/v1/namespaces/default/configmaps", &cm)
        .unwrap()
        .ok());
    let (host02, p2) = cps.remove(0);
    let (host03, p3) = cps.remove(0);
    let path = "/api/v1/namespaces/default/configmaps/ha-check";
    // Followers pull the leader's copy within a second or two.
    std::thread::sleep(Duration::from_millis(2500));

    // host01 goes away: host02 and host03 are 2 of 3 voters and elect a leader.
    drop(host01);
    eventually("host02 serves after host01 is gone", || {
        local_admin(&host02, p2).get(path).is_ok_and(|r| r.ok())
    });
    let cm2 = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "written-after-loss"}});
    eventually("host03 accepts writes", || {
        local_admin(&host03, p3)
            .send_json("POST", "/api/v1/namespaces/default/configmaps", &cm2)
            .is_ok_and(|r| r.ok() || r.reason() == "AlreadyExists")
    });

    // host02 goes too: host03 alone has no quorum.
    drop(host02);
    eventually("host03 refuses without quorum", || {
        local_admin(&host03, p3)
            .get(path)
            .is_ok_and(|r| r.status == 500 && r.message() == "etcdserver: request timed out")
    });
    let mut k = crate::kubectl::Kubectl::new({
        let mut kc = Kubeconfig::load(&host03.root.path().join("etc/kubernetes/admin.conf")).unwrap();
        kc.server = format!("https://127.0.0.3:{p3}");
        kc
    })
    .unwrap();
    let code = k.run(&["get".into(), "configmap".into(), "ha-check".into()], "");
    assert_eq!(
        (code, k.err.as_str()),
        (1, "Error from server: etcdserver: request timed out\n")
    );
}
