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

#[test]
fn kube_vip_manifest_runs_kube_vip_with_its_mounted_kubeconfig() {
    let m = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-vip\n  namespace: kube-system\nspec:\n  containers:\n  - args:\n    - manager\n    env:\n    - name: address\n      value: 10.61.0.10\n    - name: vip_arp\n      value: \"true\"\n    image: ghcr.io/kube-vip/kube-vip:v1.0.3\n    name: kube-vip\n    volumeMounts:\n    - mountPath: /etc/kubernetes/admin.conf\n      name: kubeconfig\n  hostNetwork: true\n  volumes:\n  - hostPath:\n      path: /etc/kubernetes/super-admin.conf\n    name: kubeconfig\n";
    let spec = static_pods::parse_manifest(m).unwrap();
    assert_eq!(
        spec.process(),
        Some(("kube-vip".to_string(), vec!["manager".to_string()]))
    );
    assert_eq!(
        spec.mounts,
        vec![(
            "/etc/kubernetes/admin.conf".to_string(),
            "/etc/kubernetes/super-admin.conf".to_string()
        )]
    );
    assert!(spec
        .env
        .contains(&("address".to_string(), "10.61.0.10".to_string())));
    assert!(spec.host_aliases.is_empty());
    let aliased = m.replace(
        "  hostNetwork: true\n",
        "  hostAliases:\n  - hostnames:\n    - kubernetes\n    ip: 127.0.0.1\n  hostNetwork: true\n",
    );
    let spec = static_pods::parse_manifest(&aliased).unwrap();
    assert_eq!(
        spec.host_aliases,
        vec![("127.0.0.1".to_string(), "kubernetes".to_string())]
    );
    assert_eq!(
        static_pods::host_alias("127.0.0.1 kubernetes", "kubernetes"),
        Some("127.0.0.1".parse().unwrap())
    );
    assert_eq!(static_pods::host_alias("", "kubernetes"), None);
    let etcd = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\nspec:\n  containers:\n  - command:\n    - etcd\n    image: registry.k8s.io/etcd:3.6.5-0\n";
    assert_eq!(
        static_pods::parse_manifest(etcd).unwrap().process(),
        None,
        "etcd runs inside the API server"
    );
}
