//! Add-ons and CSR approval against kbs-sim's real (simulated) API server on loopback, with
//! kbs-sim's kubectl standing in for the one on the first control plane, and the lab's mirror
//! (`kbs_lab::addon_manifests`) as a local manifest directory: the add-on rules of
//! kbs-sim/src/apiserver/controllers.rs decide readiness, as they will in the lab.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use kbs_cluster::addons::kubectl::answer_batch;
use kbs_cluster::addons::{install, AddonContext, Deadlines};
use kbs_cluster::csr::approve_serving_csrs;
use kbs_engine::testing::{ok_with, FakeTransport};
use kbs_engine::{ExecResult, Remote, Script};
use kbs_sim::apiserver::admission::PortRange;
use kbs_sim::apiserver::{serve, ApiServer, Config, Running};
use kbs_sim::kubeclient::{Client, Kubeconfig};
use kbs_sim::pki::{CertAuthority, KeyAlgo, LeafSpec, Usage};
use serde_json::json;

struct Sim {
    dir: tempfile::TempDir,
    ca: CertAuthority,
    running: Running,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.running.stop();
    }
}

impl Sim {
    fn start() -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let ca = CertAuthority::generate("kubernetes", KeyAlgo::EcdsaP256, now).unwrap();
        let (cert, key) = ca
            .issue(
                &LeafSpec {
                    common_name: "kube-apiserver".into(),
                    organizations: vec![],
                    dns_names: vec!["kubernetes".into()],
                    ips: vec!["127.0.0.1".parse().unwrap()],
                    usage: Usage::Server,
                },
                KeyAlgo::EcdsaP256,
                now,
            )
            .unwrap();
        let p = dir.path();
        std::fs::write(p.join("ca.crt"), &ca.cert_pem).unwrap();
        std::fs::write(p.join("ca.key"), ca.key.serialize_pem()).unwrap();
        std::fs::write(p.join("apiserver.crt"), cert).unwrap();
        std::fs::write(p.join("apiserver.key"), key.serialize_pem()).unwrap();
        let config = Config {
            bind: "127.0.0.1:0".parse().unwrap(),
            cert_file: p.join("apiserver.crt"),
            key_file: p.join("apiserver.key"),
            client_ca_file: p.join("ca.crt"),
            // The book's range, which kbs' kubeadm config sets when ingress is enabled.
            node_port_range: PortRange(80, 32767),
            store_file: None,
            version: kbs_sim::version::Version::new(1, 36, 4),
            store_upstream: None,
            advertise: None,
            proxy_cert_file: p.join("apiserver-kubelet-client.crt"),
            proxy_key_file: p.join("apiserver-kubelet-client.key"),
        };
        let clock = kbs_sim::clock::Clock::with_offset_file(p.join("clock-offset"));
        let server = Arc::new(ApiServer::from_config(config, clock).unwrap());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let running = serve(server, listener).unwrap();
        Sim { dir, ca, running }
    }

    fn kubeconfig(&self, cn: &str, orgs: &[&str]) -> Kubeconfig {
        let (cert, key) = self
            .ca
            .issue(
                &LeafSpec {
                    common_name: cn.into(),
                    organizations: orgs.iter().map(|s| s.to_string()).collect(),
                    dns_names: vec![],
                    ips: vec![],
                    usage: Usage::Client,
                },
                KeyAlgo::EcdsaP256,
                SystemTime::now(),
            )
            .unwrap();
        Kubeconfig {
            server: format!("https://{}", self.running.addr),
            ca_pem: self.ca.cert_pem.clone(),
            client_cert_pem: Some(cert),
            client_key_pem: Some(key.serialize_pem()),
            token: None,
        }
    }

    fn admin(&self) -> Client {
        Client::new(self.kubeconfig("kubernetes-super-admin", &["system:masters"])).unwrap()
    }
}

/// Splits a command line into words, keeping '…' together (kbs quotes only that way).
fn words(line: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The first control plane: kubectl lines run kbs-sim's kubectl as the cluster admin, uploaded
/// files live under `files`, the rest (mkdir, Longhorn's preflight) succeeds.
fn control_plane(kubeconfig: Kubeconfig, files: PathBuf) -> Arc<FakeTransport> {
    let upload_root = files.clone();
    let run = move |script: &Script| -> ExecResult { run_line(&kubeconfig, &files, script) };
    Arc::new(FakeTransport::new(run).on_upload(move |u| {
        let path = upload_root.join(u.path.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &u.contents).unwrap();
    }))
}

/// One script as the control plane's shell would run it.
fn run_line(kubeconfig: &Kubeconfig, files: &Path, script: &Script) -> ExecResult {
    if let Some(answer) = answer_batch(script, |s| run_line(kubeconfig, files, s)) {
        return answer;
    }
    let text = script.text.as_str();
    if text.contains("iscsid") {
        return ok_with("iscsid=active\nnfs-common=installed\nmultipathd=inactive\n");
    }
    let Some(line) = text.strip_prefix("kubectl --kubeconfig /etc/kubernetes/admin.conf ") else {
        return ok_with("");
    };
    let (first, stdin) = match line.split_once(" <<'KBS_EOF'\n") {
        Some((cmd, rest)) => (cmd, rest.trim_end().trim_end_matches("KBS_EOF").to_string()),
        None => (line.trim_end(), String::new()),
    };
    let argv: Vec<String> = words(first)
        .into_iter()
        .map(|w| match w.strip_prefix('/') {
            Some(rest) if w.starts_with("/etc/kubernetes/kbs/") => files.join(rest).display().to_string(),
            _ => w,
        })
        .collect();
    let mut k = kbs_sim::kubectl::Kubectl::new(kubeconfig.clone()).unwrap();
    k.poll = Duration::from_millis(20);
    let code = k.run(&argv, &stdin);
    ExecResult {
        code: Some(code as u32),
        stdout: k.out,
        stderr: k.err,
    }
}

/// What kubeadm and the kubelets would have done: kubeadm-config with the pod subnet, two
/// Nodes that report iscsid, nfs-common and a CNI config (what their kubelets report once
/// calico-node has written it), and each kubelet's serving CSR.
fn seed(sim: &Sim, nodes: &[(&str, &str)]) {
    let mut admin = sim.admin();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
        "data": {"ClusterConfiguration": "networking:\n  podSubnet: 172.31.0.0/16\n"}});
    let r = admin
        .send_json("POST", "/api/v1/namespaces/kube-system/configmaps", &cm)
        .unwrap();
    assert!(r.ok(), "{}", r.message());
    for (name, ip) in nodes {
        let node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {
                kbs_sim::apiserver::controllers::ANN_ISCSID: "true",
                kbs_sim::apiserver::controllers::ANN_NFS: "true",
                kbs_sim::apiserver::controllers::ANN_CNI_CONFIG: "true"}},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]}});
        let r = admin.send_json("POST", "/api/v1/nodes", &node).unwrap();
        assert!(r.ok(), "{}", r.message());
        let user = format!("system:node:{name}");
        let (csr, _key) = kbs_sim::pki::make_csr(
            &LeafSpec {
                common_name: user.clone(),
                organizations: vec!["system:nodes".into()],
                dns_names: vec![name.to_string()],
                ips: vec![ip.parse().unwrap()],
                usage: Usage::Server,
            },
            KeyAlgo::EcdsaP256,
        )
        .unwrap();
        use base64::Engine as _;
        let body = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "csr-"},
            "spec": {"signerName": "kubernetes.io/kubelet-serving",
                "request": base64::engine::general_purpose::STANDARD.encode(csr),
                "usages": ["digital signature", "server auth"]}});
        let mut node_client = Client::new(sim.kubeconfig(&user, &["system:nodes"])).unwrap();
        let r = node_client
            .send_json(
                "POST",
                "/apis/certificates.k8s.io/v1/certificatesigningrequests",
                &body,
            )
            .unwrap();
        assert!(r.ok(), "{}", r.message());
    }
}

fn inventory(dir: &Path, mirror: &Path, minor: &str, addons: &str) -> kbs_inventory::Inventory {
    let path = dir.join("lab.yaml");
    std::fs::write(
        &path,
        format!(
            "cluster:\n  podSubnet: 172.31.0.0/16\n  kubernetesVersion: \"{minor}\"\n  endpoint: {{mode: haproxy, port: 8443}}\nhosts:\n  - {{name: host01, address: 10.61.0.11, roles: [control-plane, lb]}}\n  - {{name: host02, address: 10.61.0.12, roles: [worker]}}\naddons:\n  manifests: {{directory: {}}}\n{addons}",
            mirror.display()
        ),
    )
    .unwrap();
    kbs_inventory::load(&path).unwrap().inventory
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrs_then_every_addon_ready_in_the_simulated_cluster_and_a_second_run_changes_nothing() {
    let sim = Sim::start();
    seed(&sim, &[("host01", "10.61.0.11"), ("host02", "10.61.0.12")]);
    let mirror = sim.dir.path().join("mirror");
    kbs_lab::addon_manifests::publish(&mirror).unwrap();
    let inventory = inventory(
        sim.dir.path(),
        &mirror,
        "1.36",
        "  calico:\n  longhorn:\n  ingress:\n  metricsServer:\n",
    );
    let fake = control_plane(
        sim.kubeconfig("kubernetes-super-admin", &["system:masters"]),
        sim.dir.path().join("host01"),
    );
    let cp = Remote::new(fake.clone());

    // Serving certificates first: metrics-server's rule needs them.
    let csrs = approve_serving_csrs(&inventory, &cp, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(csrs.nodes, ["host01", "host02"]);
    assert_eq!(csrs.approved.len(), 2, "{csrs:?}");

    let mut ctx = AddonContext::new(&inventory, 36, "host01", &cp, vec![("host01".into(), &cp)]).unwrap();
    ctx.deadlines = Deadlines {
        ready: Duration::from_secs(20),
        crds: Duration::from_secs(5),
    };
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = events.clone();
    let t0 = std::time::Instant::now();
    let progress = move |e: &kbs_cluster::addons::AddonEvent| {
        eprintln!("{:6.2}s {e}", t0.elapsed().as_secs_f64());
        log.lock().unwrap().push(e.to_string())
    };
    let report = install(&ctx, &progress)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{:#?}", events.lock().unwrap()));
    let names: Vec<&str> = report.addons.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["calico", "longhorn", "traefik", "metrics-server"]);
    assert!(report.changed());

    // What the book's acceptance looks at, read back from the API server.
    let mut admin = sim.admin();
    let svc = admin
        .get("/api/v1/namespaces/traefik/services/traefik")
        .unwrap()
        .body;
    let node_ports: BTreeMap<String, u64> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["nodePort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        node_ports,
        BTreeMap::from([("web".into(), 80), ("websecure".into(), 443)])
    );
    let class = admin
        .get("/apis/networking.k8s.io/v1/ingressclasses/traefik")
        .unwrap()
        .body;
    assert_eq!(
        class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"],
        "true"
    );
    let nodes = admin.get("/api/v1/nodes").unwrap().body;
    for n in nodes["items"].as_array().unwrap() {
        let ready = n["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        assert!(ready, "{n}");
    }

    let again = install(&ctx, &progress).await.unwrap();
    assert!(!again.changed(), "{again:#?}");
    assert!(!again.lock_written);
}

/// The book's exact setup on 1.35: ingress-nginx's upstream NodePort Service is patched to 80/443
/// and its IngressClass `nginx` becomes the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_books_ingress_nginx_gets_nodeports_80_443_and_the_default_class() {
    let sim = Sim::start();
    seed(&sim, &[("host01", "10.61.0.11"), ("host02", "10.61.0.12")]);
    let mirror = sim.dir.path().join("mirror");
    kbs_lab::addon_manifests::publish(&mirror).unwrap();
    let inventory = inventory(
        sim.dir.path(),
        &mirror,
        "1.35",
        "  calico:\n  ingress: {controller: ingress-nginx}\n",
    );
    let fake = control_plane(
        sim.kubeconfig("kubernetes-super-admin", &["system:masters"]),
        sim.dir.path().join("host01"),
    );
    let cp = Remote::new(fake);
    let mut ctx = AddonContext::new(&inventory, 35, "host01", &cp, vec![("host01".into(), &cp)]).unwrap();
    ctx.deadlines.ready = Duration::from_secs(20);
    let report = install(&ctx, &|_| {}).await.unwrap();
    assert!(
        report.warnings.is_empty(),
        "tested with 1.35: {:?}",
        report.warnings
    );
    let mut admin = sim.admin();
    let svc = admin
        .get("/api/v1/namespaces/ingress-nginx/services/ingress-nginx-controller")
        .unwrap()
        .body;
    let ports: Vec<(u64, u64)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["port"].as_u64().unwrap(), p["nodePort"].as_u64().unwrap()))
        .collect();
    assert_eq!(ports, [(80, 80), (443, 443)]);
    let class = admin
        .get("/apis/networking.k8s.io/v1/ingressclasses/nginx")
        .unwrap()
        .body;
    assert_eq!(
        class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"],
        "true"
    );
    let again = install(&ctx, &|_| {}).await.unwrap();
    assert!(!again.changed(), "{again:#?}");
}
