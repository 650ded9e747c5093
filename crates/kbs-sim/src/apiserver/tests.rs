//! The API server over TLS on loopback, driven with the shared client.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::kubeclient::{Client, Kubeconfig};
use crate::pki::{KeyAlgo, LeafSpec, Usage};

/// A CA, an API server on 127.0.0.1:<free port>, and kubeconfigs for a few users.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub ca: CertAuthority,
    pub running: Running,
    pub server: Arc<ApiServer>,
}

impl Fixture {
    pub fn start(range: PortRange) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let now = std::time::SystemTime::now();
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
            node_port_range: range,
            store_file: Some(p.join("etcd/member/kbs-sim-store.json")),
            version: crate::version::Version::new(1, 36, 4),
            store_upstream: None,
            advertise: None,
            proxy_cert_file: p.join("apiserver-kubelet-client.crt"),
            proxy_key_file: p.join("apiserver-kubelet-client.key"),
        };
        let server = Arc::new(
            ApiServer::from_config(config, Clock::with_offset_file(p.join("clock-offset"))).unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let running = serve(server.clone(), listener).unwrap();
        Fixture {
            _dir: dir,
            ca,
            running,
            server,
        }
    }

    pub fn kubeconfig(&self, user: Option<(&str, &[&str])>) -> Kubeconfig {
        let mut k = Kubeconfig {
            server: format!("https://{}", self.running.addr),
            ca_pem: self.ca.cert_pem.clone(),
            ..Default::default()
        };
        if let Some((cn, orgs)) = user {
            let (c, key) = self
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
                    std::time::SystemTime::now(),
                )
                .unwrap();
            k.client_cert_pem = Some(c);
            k.client_key_pem = Some(key.serialize_pem());
        }
        k
    }

    pub fn client(&self, user: Option<(&str, &[&str])>) -> Client {
        Client::new(self.kubeconfig(user)).unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.running.stop();
    }
}

pub const SUPER: (&str, &[&str]) = ("kubernetes-super-admin", &["system:masters"]);
pub const ADMIN: (&str, &[&str]) = ("kubernetes-admin", &["kubeadm:cluster-admins"]);

#[test]
fn health_version_and_tls_identity() {
    let f = Fixture::start(PortRange::default());
    let mut anon = f.client(None);
    let r = anon.get("/livez").unwrap();
    assert_eq!(
        (r.status, String::from_utf8_lossy(&r.raw).to_string()),
        (200, "ok".to_string())
    );
    assert_eq!(anon.get("/version").unwrap().body["gitVersion"], "v1.36.4");
    // Anonymous users get no discovery and no objects.
    let r = anon.get("/api/v1/nodes").unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        r.message(),
        "nodes is forbidden: User \"system:anonymous\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );
    // A client that does not trust the cluster CA fails the handshake.
    let other =
        CertAuthority::generate("kubernetes", KeyAlgo::EcdsaP256, std::time::SystemTime::now()).unwrap();
    let mut k = f.kubeconfig(None);
    k.ca_pem = other.cert_pem;
    let err = Client::new(k).unwrap().get("/livez").unwrap_err();
    assert!(err.contains("certificate signed by unknown authority"), "{err}");
}

#[test]
fn admin_conf_is_forbidden_until_the_cluster_admins_binding_exists() {
    let f = Fixture::start(PortRange::default());
    let mut admin = f.client(Some(ADMIN));
    let r = admin.get("/api/v1/nodes").unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(
        r.message(),
        "nodes is forbidden: User \"kubernetes-admin\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );
    let r = admin
        .get("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/plndr-cp-lock")
        .unwrap();
    assert_eq!(
        r.message(),
        "leases.coordination.k8s.io \"plndr-cp-lock\" is forbidden: User \"kubernetes-admin\" cannot get resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-system\""
    );
    let mut sup = f.client(Some(SUPER));
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "kubeadm:cluster-admins"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "kubeadm:cluster-admins"}]});
    let r = sup
        .send_json(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            &binding,
        )
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.message());
    assert_eq!(admin.get("/api/v1/nodes").unwrap().status, 200);
}

#[test]
fn crud_errors_node_ports_and_annotation_limit() {
    let f = Fixture::start(PortRange::default());
    let mut c = f.client(Some(SUPER));
    let r = c.get("/api/v1/namespaces/nope").unwrap();
    assert_eq!(
        (r.status, r.message()),
        (404, "namespaces \"nope\" not found".to_string())
    );
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1"}});
    let r = c
        .send_json("POST", "/api/v1/namespaces/nope/configmaps", &cm)
        .unwrap();
    assert_eq!(
        (r.status, r.message()),
        (404, "namespaces \"nope\" not found".to_string())
    );
    assert_eq!(
        c.send_json("POST", "/api/v1/namespaces/default/configmaps", &cm)
            .unwrap()
            .status,
        201
    );
    let r = c
        .send_json("POST", "/api/v1/namespaces/default/configmaps", &cm)
        .unwrap();
    assert_eq!(
        (r.status, r.message()),
        (409, "configmaps \"x\" already exists".to_string())
    );
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ingress-nginx-controller"},
        "spec": {"type": "NodePort", "ports": [{"name": "http", "port": 80, "nodePort": 80}]}});
    let r = c
        .send_json("POST", "/api/v1/namespaces/default/services", &svc)
        .unwrap();
    assert_eq!(r.status, 422);
    assert_eq!(r.reason(), "Invalid");
    assert_eq!(
        r.message(),
        "Service \"ingress-nginx-controller\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );
    let big = "x".repeat(262_145);
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "installations.operator.tigera.io",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": big}},
        "spec": {"group": "operator.tigera.io", "scope": "Cluster",
            "names": {"plural": "installations", "kind": "Installation"}, "versions": [{"name": "v1", "served": true}]}});
    let r = c
        .send_json(
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &crd,
        )
        .unwrap();
    assert_eq!(
        r.message(),
        "CustomResourceDefinition.apiextensions.k8s.io \"installations.operator.tigera.io\" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes"
    );
    // Without the annotation the CRD is accepted and its kind is served.
    let mut crd = crd;
    crd["metadata"]["annotations"] = json!({});
    assert_eq!(
        c.send_json(
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &crd
        )
        .unwrap()
        .status,
        201
    );
    let r = c.get("/apis/operator.tigera.io/v1/installations").unwrap();
    assert_eq!(r.status, 200);
    let r = c.get("/apis/example.com/v1/widgets").unwrap();
    assert_eq!(
        (r.status, r.message()),
        (
            404,
            "the server could not find the requested resource".to_string()
        )
    );
}

#[test]
fn node_port_range_from_the_manifest_flag() {
    let cfg = Config::from_args(&[
        "--service-node-port-range=80-32767".into(),
        "--secure-port=6443".into(),
    ])
    .unwrap();
    assert_eq!(cfg.node_port_range, PortRange(80, 32767));
    let f = Fixture::start(cfg.node_port_range);
    let mut c = f.client(Some(SUPER));
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}});
    assert_eq!(
        c.send_json("POST", "/api/v1/namespaces/default/services", &svc)
            .unwrap()
            .status,
        201
    );
    let svc2 = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web2"},
        "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}});
    let r = c
        .send_json("POST", "/api/v1/namespaces/default/services", &svc2)
        .unwrap();
    assert_eq!(
        r.message(),
        "Service \"web2\" is invalid: spec.ports[0].nodePort: Invalid value: 80: provided port is already allocated"
    );
}

#[test]
fn server_side_apply_conflicts_and_force() {
    let f = Fixture::start(PortRange::default());
    let mut c = f.client(Some(SUPER));
    let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 1}});
    let path = "/apis/apps/v1/namespaces/default/deployments/web";
    let r = c
        .request(
            "PATCH",
            &format!("{path}?fieldManager=kubectl-client-side-apply"),
            "application/apply-patch+yaml",
            d.to_string().as_bytes(),
        )
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.message());
    let d3 = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}});
    let r = c
        .request(
            "PATCH",
            &format!("{path}?fieldManager=kubectl"),
            "application/apply-patch+yaml",
            d3.to_string().as_bytes(),
        )
        .unwrap();
    assert_eq!(r.status, 409);
    assert_eq!(r.message(), "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas");
    let r = c
        .request(
            "PATCH",
            &format!("{path}?fieldManager=kubectl&force=true"),
            "application/apply-patch+yaml",
            d3.to_string().as_bytes(),
        )
        .unwrap();
    assert_eq!((r.status, r.body["spec"]["replicas"].clone()), (200, json!(3)));
    // Merge and JSON patches.
    let r = c
        .request(
            "PATCH",
            path,
            "application/merge-patch+json",
            br#"{"metadata":{"labels":{"a":"b"}}}"#,
        )
        .unwrap();
    assert_eq!(r.body["metadata"]["labels"]["a"], "b");
    let r = c
        .get("/apis/apps/v1/namespaces/default/deployments?labelSelector=a%3Db")
        .unwrap();
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = c
        .request(
            "PATCH",
            "/apis/apps/v1/namespaces/default/deployments/nope",
            "application/merge-patch+json",
            b"{}",
        )
        .unwrap();
    assert_eq!(r.message(), "deployments.apps \"nope\" not found");
}

fn csr(name: &str, signer: &str, cn: &str, orgs: &[&str]) -> Value {
    use base64::Engine as _;
    let (pem, _) = crate::pki::make_csr(
        &LeafSpec {
            common_name: cn.into(),
            organizations: orgs.iter().map(|s| s.to_string()).collect(),
            dns_names: vec!["host02".into()],
            ips: vec!["10.61.0.12".parse().unwrap()],
            usage: Usage::Client,
        },
        KeyAlgo::EcdsaP256,
    )
    .unwrap();
    json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
        "spec": {"signerName": signer, "request": base64::engine::general_purpose::STANDARD.encode(pem),
            "usages": ["digital signature", "server auth"]}})
}

#[test]
fn bootstrap_token_csrs_are_auto_approved_serving_csrs_wait_for_approval() {
    let f = Fixture::start(PortRange::default());
    let now = f.server.clock.now();
    let tok = crate::token::BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
    crate::store::bootstrap::create_token(&mut f.server.store(), &tok, crate::token::DEFAULT_TOKEN_TTL, now)
        .unwrap();
    // kubeadm's RBAC for bootstrappers (phases/bootstraptoken/node).
    let mut sup = f.client(Some(SUPER));
    let crb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "kubeadm:kubelet-bootstrap"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node-bootstrapper"},
        "subjects": [{"kind": "Group", "name": "system:bootstrappers:kubeadm:default-node-token"}]});
    assert_eq!(
        sup.send_json(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            &crb
        )
        .unwrap()
        .status,
        201
    );

    let mut k = f.kubeconfig(None);
    k.token = Some(tok.to_string());
    let mut boot = Client::new(k.clone()).unwrap();
    let r = boot
        .send_json(
            "POST",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            &csr(
                "node-csr-1",
                "kubernetes.io/kube-apiserver-client-kubelet",
                "system:node:host02",
                &["system:nodes"],
            ),
        )
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.message());
    assert_eq!(r.body["spec"]["username"], "system:bootstrap:abcdef");
    let got = sup
        .get("/apis/certificates.k8s.io/v1/certificatesigningrequests/node-csr-1")
        .unwrap();
    assert_eq!(got.body["status"]["conditions"][0]["type"], "Approved");
    assert!(got.body["status"]["certificate"].is_string());
    // The bootstrap token may not list nodes; a wrong secret is 401.
    assert_eq!(boot.get("/api/v1/nodes").unwrap().status, 403);
    k.token = Some("abcdef.ffffffffffffffff".into());
    let r = Client::new(k).unwrap().get("/api/v1/nodes").unwrap();
    assert_eq!((r.status, r.message()), (401, "Unauthorized".to_string()));

    // A kubelet-serving CSR from the node stays pending until approved.
    let mut node = f.client(Some(("system:node:host02", &["system:nodes"])));
    let r = node
        .send_json(
            "POST",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests",
            &csr(
                "csr-serving",
                "kubernetes.io/kubelet-serving",
                "system:node:host02",
                &["system:nodes"],
            ),
        )
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.message());
    let path = "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-serving";
    let mut pending = sup.get(path).unwrap().body;
    assert!(pending["status"].get("conditions").is_none());
    pending["status"]["conditions"] =
        json!([{"type": "Approved", "status": "True", "reason": "KubectlApprove"}]);
    assert_eq!(
        sup.send_json("PUT", &format!("{path}/approval"), &pending)
            .unwrap()
            .status,
        200
    );
    assert!(sup.get(path).unwrap().body["status"]["certificate"].is_string());
    let mut both = sup.get(path).unwrap().body;
    both["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Denied", "status": "True"}));
    let r = sup.send_json("PUT", &format!("{path}/approval"), &both).unwrap();
    assert_eq!(
        r.message(),
        "CertificateSigningRequest.certificates.k8s.io \"csr-serving\" is invalid: status.conditions[1].type: Invalid value: \"Denied\": Approved and Denied conditions are mutually exclusive"
    );
}

#[test]
fn calico_pool_must_lie_within_the_pod_subnet_for_nodes_to_become_ready() {
    let f = Fixture::start(PortRange::default());
    let mut c = f.client(Some(SUPER));
    let post = |c: &mut Client, path: &str, v: Value| {
        let r = c.send_json("POST", path, &v).unwrap();
        assert!(r.ok(), "{}", r.message());
    };
    post(
        &mut c,
        "/api/v1/namespaces/kube-system/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kubeadm-config"}, "data": {"ClusterConfiguration": "networking:\n  podSubnet: 172.31.0.0/16\n"}}),
    );
    post(
        &mut c,
        "/api/v1/nodes",
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "host01"}}),
    );
    post(
        &mut c,
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tigera-operator"}}),
    );
    post(
        &mut c,
        "/apis/apps/v1/namespaces/tigera-operator/deployments",
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "tigera-operator"}, "spec": {"template": {"spec": {"hostNetwork": true}}}}),
    );
    post(
        &mut c,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        json!({"apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition", "metadata": {"name": "installations.operator.tigera.io"},
        "spec": {"group": "operator.tigera.io", "scope": "Cluster", "names": {"plural": "installations", "kind": "Installation"},
            "versions": [{"name": "v1", "served": true}]}}),
    );
    post(
        &mut c,
        "/apis/operator.tigera.io/v1/installations",
        json!({"apiVersion": "operator.tigera.io/v1", "kind": "Installation",
        "metadata": {"name": "default"}, "spec": {"calicoNetwork": {"ipPools": [{"cidr": "192.168.0.0/16"}]}}}),
    );
    f.server.tick();
    let node = c.get("/api/v1/nodes/host01").unwrap().body;
    assert_eq!(node["status"]["conditions"][0]["status"], "False");
    assert_eq!(node["spec"]["taints"][0]["key"], "node.kubernetes.io/not-ready");
    let s = f.server.store();
    let ts = s
        .get(&ObjectKey::new(
            "operator.tigera.io/v1",
            "TigeraStatus",
            "",
            "calico",
        ))
        .unwrap()
        .clone();
    drop(s);
    assert_eq!(
        ts["status"]["conditions"][2]["message"],
        "Could not resolve CalicoNetwork IPPool and kubeadm configuration: IPPool 192.168.0.0/16 is not within the platform's configured pod network CIDR(s) [172.31.0.0/16]"
    );
    // The operator itself runs (hostNetwork) even while nodes are NotReady.
    let op = c
        .get("/apis/apps/v1/namespaces/tigera-operator/deployments/tigera-operator")
        .unwrap()
        .body;
    assert_eq!(op["status"]["availableReplicas"], 1);
    let pods = c.get("/api/v1/namespaces/tigera-operator/pods").unwrap().body;
    assert_eq!(pods["items"][0]["status"]["phase"], "Running", "{pods}");

    let r = c
        .request(
            "PATCH",
            "/apis/operator.tigera.io/v1/installations/default",
            "application/merge-patch+json",
            br#"{"spec":{"calicoNetwork":{"ipPools":[{"cidr":"172.31.0.0/16"}]}}}"#,
        )
        .unwrap();
    assert!(r.ok(), "{}", r.message());
    // Calico runs: the pool is published on the Node, but the node is Ready only once its runtime
    // sees a CNI config there.
    let node = c.get("/api/v1/nodes/host01").unwrap().body;
    assert_eq!(
        node["metadata"]["annotations"][controllers::ANN_CNI_CIDR],
        "172.31.0.0/16"
    );
    assert_eq!(node["status"]["conditions"][0]["status"], "False");
    // The node's kubelet writes calico-node's CNI config from it, and reports it.
    let dir = tempfile::tempdir().unwrap();
    let root = crate::kubelet::Root(dir.path().to_path_buf());
    assert!(!crate::kubelet::cni_config_present(&root));
    let mut node_client = f.client(Some(("system:node:host01", &["system:nodes"])));
    assert!(crate::kubelet::write_cni_config(&root, &mut node_client, "host01").unwrap());
    let conf = std::fs::read_to_string(dir.path().join("etc/cni/net.d/10-calico.conflist")).unwrap();
    let conf: Value = serde_json::from_str(&conf).unwrap();
    assert_eq!(conf["plugins"][0]["ipam"]["ipv4_pools"], json!(["172.31.0.0/16"]));
    let facts = crate::kubelet::NodeFacts {
        name: "host01".into(),
        ips: vec!["10.61.0.11".parse().unwrap()],
        kubelet_version: "v1.36.4".into(),
        iscsid_active: true,
        nfs_common: true,
        cni_config: crate::kubelet::cni_config_present(&root),
    };
    crate::kubelet::register(&mut node_client, &facts).unwrap();
    f.server.tick();
    let node = c.get("/api/v1/nodes/host01").unwrap().body;
    assert_eq!(node["status"]["conditions"][0]["status"], "True", "{node}");
    assert!(node["spec"].get("taints").is_none(), "{node}");
}

#[test]
fn state_survives_a_restart() {
    let f = Fixture::start(PortRange::default());
    let mut c = f.client(Some(SUPER));
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}});
    assert_eq!(
        c.send_json("POST", "/api/v1/namespaces/default/configmaps", &cm)
            .unwrap()
            .status,
        201
    );
    let again = ApiServer::from_config(f.server.config.clone(), Clock::default()).unwrap();
    assert!(again
        .store()
        .get(&ObjectKey::new("v1", "ConfigMap", "default", "keep"))
        .is_ok());
}

#[test]
fn malformed_bodies_are_bad_requests_not_crashes() {
    let f = Fixture::start(PortRange::default());
    let mut c = f.client(Some(SUPER));
    for body in [
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": 5}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "annotations": ["a"]}}),
        json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": "c"}, "spec": "x"}),
    ] {
        let path = if body["kind"] == "ConfigMap" {
            "/api/v1/namespaces/default/configmaps"
        } else {
            "/apis/certificates.k8s.io/v1/certificatesigningrequests"
        };
        let r = c.send_json("POST", path, &body).unwrap();
        assert_eq!(r.status, 400, "{body}: {}", r.message());
    }
    let r = c
        .request(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/x?fieldManager=m",
            "application/apply-patch+yaml",
            b"metadata: [1]",
        )
        .unwrap();
    assert_eq!(r.status, 400);
    let r = c
        .request(
            "PATCH",
            "/api/v1/namespaces/default/configmaps/x?fieldManager=m",
            "application/apply-patch+yaml",
            b"- just a list",
        )
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(c.get("/livez").unwrap().status, 200, "the server is still up");
}

/// The token cleaner is a controller, and controllers write: a follower that ran them on a
/// health probe would move its copy of the store ahead of the leader's, and the next election
/// (most up-to-date wins) would hand it the lead with a store that lacks the leader's writes.
#[test]
fn only_the_leader_runs_controllers_a_followers_health_probe_leaves_its_copy_alone() {
    let f = Fixture::start(PortRange::default());
    let copy = ApiServer::from_config(f.server.config.clone(), Clock::default()).unwrap();
    let now = std::time::SystemTime::now();
    let token = crate::token::BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
    let expired =
        crate::token::TokenRecord::new(token, now - Duration::from_secs(120), Duration::from_secs(60));
    copy.store()
        .create(crate::store::bootstrap::token_secret(&expired), now)
        .unwrap();
    let before = copy.store().revision();
    let healthz = crate::http::Request {
        method: "GET".into(),
        path: "/healthz".into(),
        ..Default::default()
    };
    for follower in [
        replication::Role::Follower("https://127.0.0.1:1".into()),
        replication::Role::NoQuorum,
    ] {
        *copy.role.lock().unwrap() = follower.clone();
        assert_eq!(copy.handle(&healthz, None).status, 200, "{follower:?}");
        assert_eq!(copy.store().revision(), before, "{follower:?} changed its copy");
    }
    *copy.role.lock().unwrap() = replication::Role::Leader;
    assert_eq!(copy.handle(&healthz, None).status, 200);
    assert!(
        copy.store().revision() > before,
        "the leader's token cleaner deletes the expired token"
    );
}

fn candidate(name: &str, revision: u64, leads: bool) -> replication::Candidate {
    replication::Candidate {
        name: name.into(),
        url: format!("https://{name}:6443"),
        revision,
        leads,
    }
}

fn elected(voters: usize, reachable: &[replication::Candidate]) -> Option<String> {
    replication::elect(voters, reachable).map(|c| c.name.clone())
}

#[test]
fn a_leader_keeps_office_while_it_has_a_quorum() {
    // host01 caught up with host02, which leads: a tie on revision does not move the lead
    // (two API servers would take writes until both noticed).
    let caught_up = [
        candidate("host01", 120, false),
        candidate("host02", 120, true),
        candidate("host03", 118, false),
    ];
    assert_eq!(elected(3, &caught_up).as_deref(), Some("host02"));
    // Nobody in office (the leader stopped or was removed): the most up-to-date voter, ties
    // to the lowest name, so every API server seeing the same replicas picks the same one.
    let vacant = [candidate("host02", 130, false), candidate("host03", 131, false)];
    assert_eq!(elected(3, &vacant).as_deref(), Some("host03"));
    let tie = [candidate("host03", 131, false), candidate("host02", 131, false)];
    assert_eq!(elected(3, &tie).as_deref(), Some("host02"));
    // A healed partition left two in office: the more up-to-date one stays.
    let two = [
        candidate("host01", 140, true),
        candidate("host02", 142, true),
        candidate("host03", 150, false),
    ];
    assert_eq!(elected(3, &two).as_deref(), Some("host02"));
    // A restarted control plane with a stale copy does not lead, whatever its name.
    let stale = [candidate("host01", 90, false), candidate("host03", 150, false)];
    assert_eq!(elected(3, &stale).as_deref(), Some("host03"));
    // No majority of the voters reachable: no leader (1 of 3, 2 of 4).
    assert_eq!(elected(3, &[candidate("host01", 1, true)]), None);
    assert_eq!(elected(4, &vacant), None);
}
