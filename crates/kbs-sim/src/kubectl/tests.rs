//! kubectl against a live API server on loopback: outputs and error texts.

use serde_json::json;

use super::*;
use crate::apiserver::admission::PortRange;
use crate::apiserver::tests::{Fixture, ADMIN, SUPER};

fn kubectl(f: &Fixture, user: (&str, &[&str]), line: &str, stdin: &str) -> (i32, String, String) {
    let mut k = Kubectl::new(f.kubeconfig(Some(user))).unwrap();
    k.poll = Duration::from_millis(20);
    let argv: Vec<String> = shell_words(line);
    let code = k.run(&argv, stdin);
    (code, k.out, k.err)
}

/// Splits on spaces, keeping single-quoted parts together.
fn shell_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
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

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  replicas: 1\n  template:\n    metadata:\n      labels:\n        app: web\n";

#[test]
fn get_errors_and_formats() {
    let f = Fixture::start(PortRange::default());
    let (code, _, err) = kubectl(&f, SUPER, "get widgets", "");
    assert_eq!(
        (code, err.as_str()),
        (1, "error: the server doesn't have a resource type \"widgets\"\n")
    );
    let (code, _, err) = kubectl(&f, SUPER, "get ns nope", "");
    assert_eq!(
        (code, err.as_str()),
        (1, "Error from server (NotFound): namespaces \"nope\" not found\n")
    );
    let (code, out, _) = kubectl(&f, SUPER, "create namespace ingress-nginx", "");
    assert_eq!((code, out.as_str()), (0, "namespace/ingress-nginx created\n"));
    let (code, _, err) = kubectl(&f, SUPER, "create ns ingress-nginx", "");
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error from server (AlreadyExists): namespaces \"ingress-nginx\" already exists\n"
        )
    );
    let (code, out, _) = kubectl(&f, SUPER, "get ns -o name", "");
    assert_eq!(code, 0);
    assert!(out.contains("namespace/kube-system\n"), "{out}");
    let (_, out, _) = kubectl(
        &f,
        SUPER,
        "get namespace kube-public -o jsonpath={.status.phase}",
        "",
    );
    assert_eq!(out, "Active");
    let (_, out, _) = kubectl(&f, SUPER, "get ns default -o json", "");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kind"], "Namespace");
    let (_, out, _) = kubectl(&f, SUPER, "get ns", "");
    assert!(out.starts_with("NAME"), "{out}");
    let (code, _, err) = kubectl(&f, ADMIN, "get nodes", "");
    assert_eq!(code, 1);
    assert!(err.contains("Error from server (Forbidden): nodes is forbidden: User \"kubernetes-admin\" cannot list resource \"nodes\""), "{err}");
}

#[test]
fn apply_create_patch_annotate_label_delete() {
    let f = Fixture::start(PortRange::default());
    let (code, out, err) = kubectl(&f, SUPER, "apply -f -", DEPLOY);
    assert_eq!(
        (code, out.as_str()),
        (0, "deployment.apps/web created\n"),
        "{err}"
    );
    let (_, out, _) = kubectl(&f, SUPER, "apply -f -", DEPLOY);
    assert_eq!(out, "deployment.apps/web unchanged\n");
    let (_, out, _) = kubectl(
        &f,
        SUPER,
        "apply -f -",
        &DEPLOY.replace("replicas: 1", "replicas: 2"),
    );
    assert_eq!(out, "deployment.apps/web configured\n");
    // Server-side apply of a field client-side apply owns: conflict, then forced.
    let three = DEPLOY.replace("replicas: 1", "replicas: 3");
    let (code, _, err) = kubectl(&f, SUPER, "apply --server-side -f -", &three);
    assert_eq!(code, 1);
    assert!(err.starts_with("error: Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas\n"), "{err}");
    let (code, out, _) = kubectl(&f, SUPER, "apply --server-side --force-conflicts -f -", &three);
    assert_eq!(
        (code, out.as_str()),
        (0, "deployment.apps/web serverside-applied\n")
    );
    let (code, _, err) = kubectl(&f, SUPER, "create -f -", DEPLOY);
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error from server (AlreadyExists): deployments.apps \"web\" already exists\n"
        )
    );
    let (_, out, _) = kubectl(
        &f,
        SUPER,
        "patch deployment web --type=merge -p {\"spec\":{\"paused\":true}}",
        "",
    );
    assert_eq!(out, "deployment.apps/web patched\n");
    let (_, out, _) = kubectl(&f, SUPER, "annotate deployment/web a=b", "");
    assert_eq!(out, "deployment.apps/web annotated\n");
    let (code, _, err) = kubectl(&f, SUPER, "annotate deployment/web a=c", "");
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "error: 'a' already has a value (b), and --overwrite is false\n"
        )
    );
    let (_, out, _) = kubectl(&f, SUPER, "label deploy web tier=front", "");
    assert_eq!(out, "deployment.apps/web labeled\n");
    let (_, out, _) = kubectl(&f, SUPER, "get deploy -l tier=front -o name", "");
    assert_eq!(out, "deployment.apps/web\n");
    let (_, out, _) = kubectl(&f, SUPER, "delete deployment web", "");
    assert_eq!(out, "deployment.apps \"web\" deleted\n");
    let (code, _, err) = kubectl(&f, SUPER, "delete deployment web", "");
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error from server (NotFound): deployments.apps \"web\" not found\n"
        )
    );
}

#[test]
fn big_crd_client_side_apply_fails_create_and_server_side_work() {
    let f = Fixture::start(PortRange::default());
    let big = "x".repeat(300_000);
    let crd = format!("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: installations.operator.tigera.io\nspec:\n  group: operator.tigera.io\n  scope: Cluster\n  names:\n    plural: installations\n    kind: Installation\n  versions:\n  - name: v1\n    served: true\n    schema:\n      description: {big}\n");
    let inst = "apiVersion: operator.tigera.io/v1\nkind: Installation\nmetadata:\n  name: default\nspec:\n  calicoNetwork:\n    ipPools:\n    - cidr: 172.31.0.0/16\n";
    let (code, _, err) = kubectl(&f, SUPER, "apply -f -", inst);
    assert_eq!(code, 1);
    assert_eq!(err, "error: resource mapping not found for name: \"default\" namespace: \"\" from \"-\": no matches for kind \"Installation\" in version \"operator.tigera.io/v1\"\nensure CRDs are installed first\n");
    let (code, _, err) = kubectl(&f, SUPER, "apply -f -", &crd);
    assert_eq!(code, 1);
    assert_eq!(err, "The CustomResourceDefinition \"installations.operator.tigera.io\" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes\n");
    let (code, out, err) = kubectl(&f, SUPER, "apply --server-side -f -", &crd);
    assert_eq!((code, out.as_str()), (0, "customresourcedefinition.apiextensions.k8s.io/installations.operator.tigera.io serverside-applied\n"), "{err}");
    let (code, out, _) = kubectl(&f, SUPER, "apply -f -", inst);
    assert_eq!(
        (code, out.as_str()),
        (0, "installation.operator.tigera.io/default created\n")
    );
}

#[test]
fn csr_approve_wait_and_rollout() {
    let f = Fixture::start(PortRange::default());
    let (pem, _) = crate::pki::make_csr(
        &crate::pki::LeafSpec {
            common_name: "system:node:host01".into(),
            organizations: vec!["system:nodes".into()],
            dns_names: vec!["host01".into()],
            ips: vec![],
            usage: crate::pki::Usage::Server,
        },
        crate::pki::KeyAlgo::EcdsaP256,
    )
    .unwrap();
    use base64::Engine as _;
    let csr = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": "csr-abc"},
        "spec": {"signerName": "kubernetes.io/kubelet-serving", "request": base64::engine::general_purpose::STANDARD.encode(pem), "usages": ["server auth"]}});
    let (code, _, err) = kubectl(
        &f,
        ("system:node:host01", &["system:nodes"]),
        "create -f -",
        &csr.to_string(),
    );
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = kubectl(&f, SUPER, "get csr", "");
    assert!(
        out.contains("kubernetes.io/kubelet-serving") && out.contains("Pending"),
        "{out}"
    );
    let (code, _, err) = kubectl(
        &f,
        SUPER,
        "wait --for=condition=Approved csr/csr-abc --timeout=200ms",
        "",
    );
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "error: timed out waiting for the condition on certificatesigningrequests/csr-abc\n"
        )
    );
    let (_, out, _) = kubectl(&f, SUPER, "certificate approve csr-abc", "");
    assert_eq!(
        out,
        "certificatesigningrequest.certificates.k8s.io/csr-abc approved\n"
    );
    let (_, out, _) = kubectl(
        &f,
        SUPER,
        "get csr --field-selector=spec.signerName=kubernetes.io/kubelet-serving",
        "",
    );
    assert!(out.contains("Approved,Issued"), "{out}");
    let (code, out, _) = kubectl(
        &f,
        SUPER,
        "wait --for=condition=Approved csr/csr-abc --timeout=2s",
        "",
    );
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "certificatesigningrequest.certificates.k8s.io/csr-abc condition met\n"
        )
    );
    // A Deployment becomes available only once a node is Ready (no CNI: never).
    kubectl(&f, SUPER, "apply -f -", DEPLOY);
    let (code, out, err) = kubectl(&f, SUPER, "rollout status deployment/web --timeout=100ms", "");
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "Waiting for deployment \"web\" rollout to finish: 0 of 1 updated replicas are available...\n"
    );
    assert_eq!(err, "error: timed out waiting for the condition\n");
    let (_, out, _) = kubectl(&f, SUPER, "get pods", "");
    assert!(out.contains("0/1") && out.contains("Pending"), "{out}");
    let (code, _, _) = kubectl(
        &f,
        SUPER,
        "wait --for=condition=Ready pod -l app=web --all --timeout=100ms",
        "",
    );
    assert_eq!(code, 1, "the pod stays Pending without a Ready node");
    let (code, out, _) = kubectl(
        &f,
        SUPER,
        "wait --for=jsonpath={.status.replicas}=1 deployment/web --timeout=1s",
        "",
    );
    assert_eq!((code, out.as_str()), (0, "deployment.apps/web condition met\n"));
    let (_, out, _) = kubectl(&f, SUPER, "version", "");
    assert!(out.contains("Server Version: v1.36.4"), "{out}");
}

#[test]
fn taint_and_untaint_nodes() {
    let f = Fixture::start(PortRange::default());
    let node = "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"host01\"},\"spec\":{\"taints\":[{\"key\":\"node-role.kubernetes.io/control-plane\",\"effect\":\"NoSchedule\"}]}}";
    assert_eq!(kubectl(&f, SUPER, "create -f -", node).0, 0);
    let (code, _, err) = kubectl(
        &f,
        SUPER,
        "taint nodes host01 node-role.kubernetes.io/control-plane:NoSchedule",
        "",
    );
    assert_eq!((code, err.as_str()), (1, "error: node host01 already has node-role.kubernetes.io/control-plane taint(s) with same effect(s) and --overwrite is false\n"));
    let (code, out, _) = kubectl(
        &f,
        SUPER,
        "taint nodes --all node-role.kubernetes.io/control-plane-",
        "",
    );
    assert_eq!((code, out.as_str()), (0, "node/host01 untainted\n"));
    let (code, _, err) = kubectl(
        &f,
        SUPER,
        "taint nodes host01 node-role.kubernetes.io/control-plane:NoSchedule-",
        "",
    );
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "error: taint \"node-role.kubernetes.io/control-plane:NoSchedule\" not found\n"
        )
    );
    let (_, out, _) = kubectl(&f, SUPER, "taint node host01 dedicated=infra:NoExecute", "");
    assert_eq!(out, "node/host01 tainted\n");
}

#[test]
fn malformed_manifests_are_refused_without_crashing() {
    let f = Fixture::start(PortRange::default());
    for doc in [
        "- a\n- b\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: 5\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  annotations: [1]\n",
        "a: [unclosed\n",
    ] {
        let (code, _, err) = kubectl(&f, SUPER, "apply -f -", doc);
        assert_eq!(code, 1, "{doc}");
        assert!(err.starts_with("error: "), "{err}");
    }
    // A manifest without metadata still gets kubectl's own error, not a panic.
    let (code, _, err) = kubectl(&f, SUPER, "apply -f -", "apiVersion: v1\nkind: ConfigMap\n");
    assert_eq!(
        (code, err.as_str()),
        (1, "error: resource name may not be empty\n")
    );
}
