use super::*;

#[test]
fn missing_config_is_the_kubelets_error_and_manifests_parse() {
    let dir = tempfile::tempdir().unwrap();
    let root = Root(dir.path().to_path_buf());
    assert_eq!(
        load_config(&root).unwrap_err(),
        "failed to load kubelet config file, path: /var/lib/kubelet/config.yaml, error: failed to load Kubelet config file /var/lib/kubelet/config.yaml, error failed to read kubelet config file \"/var/lib/kubelet/config.yaml\", error: open /var/lib/kubelet/config.yaml: no such file or directory"
    );
    let m = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\nspec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --secure-port=6443\n    image: registry.k8s.io/kube-apiserver:v1.36.4\n";
    let spec = static_pods::parse_manifest(m).unwrap();
    assert_eq!(spec.command, vec!["kube-apiserver", "--secure-port=6443"]);
    assert_eq!(spec.version().as_deref(), Some("1.36.4"));
    assert!(static_pods::parse_manifest("not: [a pod").is_none());
    // Without kubelet.conf or a bootstrap kubeconfig there is no client.
    let err = client_kubeconfig(&root, "host01", Duration::from_millis(10)).unwrap_err();
    assert!(err.contains("unable to load bootstrap kubeconfig"), "{err}");
}
