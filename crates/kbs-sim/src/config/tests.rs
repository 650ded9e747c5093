//! Config parsing tests: every expected message is kubeadm's text, asserted exactly.

use super::*;

fn host() -> HostFacts {
    HostFacts {
        hostname: "host01".into(),
        default_address: Some("10.61.0.11".parse().unwrap()),
    }
}

const V135: Version = Version::new(1, 35, 2);
const V136: Version = Version::new(1, 36, 4);

/// The kind of file kbs renders for the init node.
const GOOD_INIT: &str = r#"
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: abcdef.0123456789abcdef
  ttl: 24h0m0s
localAPIEndpoint:
  advertiseAddress: 10.61.0.11
  bindPort: 6443
certificateKey: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
nodeRegistration:
  name: host01
  criSocket: unix:///run/containerd/containerd.sock
  taints: []
  kubeletExtraArgs:
  - name: node-ip
    value: 10.61.0.11
  ignorePreflightErrors:
  - Swap
timeouts:
  controlPlaneComponentHealthCheck: 4m0s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.36.4
controlPlaneEndpoint: 10.61.0.10:6443
networking:
  podSubnet: 172.31.0.0/16
  serviceSubnet: 10.96.0.0/12
apiServer:
  certSANs:
  - 10.61.0.10
  - k8s.example.internal
  extraArgs:
  - name: service-node-port-range
    value: 80-32767
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
serverTLSBootstrap: true
"#;

const GOOD_JOIN: &str = r#"
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: 10.61.0.10:6443
    token: abcdef.0123456789abcdef
    caCertHashes:
    - sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
nodeRegistration:
  name: host04
  kubeletExtraArgs:
  - name: node-ip
    value: 10.61.0.14
"#;

#[test]
fn kbs_init_config_is_accepted_and_defaulted() {
    let cfg = load_init(GOOD_INIT, V136, &host()).unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert_eq!(cfg.init.node_registration.taints, Some(vec![]));
    assert_eq!(
        cfg.init.node_registration.kubelet_extra_args.get("node-ip"),
        Some("10.61.0.11")
    );
    assert_eq!(
        cfg.cluster.api_server.extra_args.get("service-node-port-range"),
        Some("80-32767")
    );
    assert_eq!(cfg.cluster.networking.dns_domain, "cluster.local");
    assert_eq!(cfg.cluster.etcd.local.as_ref().unwrap().data_dir, "/var/lib/etcd");
    assert!(cfg.kubelet.as_ref().unwrap().server_tls_bootstrap);
    assert_eq!(
        validate_file(GOOD_INIT, V136, &host()).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn omitted_taints_get_the_control_plane_taint() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n";
    let cfg = load_init(text, V136, &host()).unwrap();
    let taints = cfg.init.node_registration.taints.unwrap();
    assert_eq!(taints[0].key, "node-role.kubernetes.io/control-plane");
    assert_eq!(cfg.init.node_registration.name, "host01");
    assert_eq!(cfg.init.local_api_endpoint.advertise_address, "10.61.0.11");
    assert_eq!(cfg.cluster.kubernetes_version, "v1.36.4");
    // No kubernetesVersion means the `stable-1` label, which cannot be fetched offline.
    assert_eq!(cfg.warnings, vec![
        "could not fetch a Kubernetes version from the internet: unable to get URL \"https://dl.k8s.io/release/stable-1.txt\": Get \"https://dl.k8s.io/release/stable-1.txt\": dial tcp: lookup dl.k8s.io: no such host".to_string(),
        "falling back to the local client version: v1.36.4".to_string(),
    ]);
}

#[test]
fn control_plane_version_window() {
    let cc = |v: &str| {
        format!("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: {v}\n")
    };
    assert_eq!(
        load_init(&cc("1.35.9"), V136, &host())
            .unwrap()
            .cluster
            .kubernetes_version,
        "v1.35.9"
    );
    assert_eq!(
        load_init(&cc("v1.34.2"), V136, &host()).unwrap_err(),
        "this version of kubeadm only supports deploying clusters with the control plane version >= 1.35.0. Current version: v1.34.2"
    );
    assert_eq!(
        load_init(&cc("banana"), V136, &host()).unwrap_err(),
        "version \"banana\" doesn't match patterns for neither semantic version nor labels (stable, latest, ...)"
    );
}

#[test]
fn v1beta3_is_rejected_on_1_36() {
    let text = GOOD_INIT.replace("kubeadm.k8s.io/v1beta4", "kubeadm.k8s.io/v1beta3");
    let expected = "your configuration file uses an old API spec: \"kubeadm.k8s.io/v1beta3\" (kind: \"ClusterConfiguration\"). Please use kubeadm v1.35 instead and run 'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will write the new, similar spec using a newer API version.";
    assert_eq!(load_init(&text, V136, &host()).unwrap_err(), expected);
    assert_eq!(
        validate_file(&text, Version::new(1, 37, 0), &host()).unwrap_err(),
        expected
    );
}

#[test]
fn v1beta3_is_accepted_on_1_35_with_its_own_shapes() {
    let text = r#"
apiVersion: kubeadm.k8s.io/v1beta3
kind: InitConfiguration
nodeRegistration:
  kubeletExtraArgs:
    node-ip: 10.61.0.11
---
apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.35.2
apiServer:
  timeoutForControlPlane: 4m0s
  extraArgs:
    service-node-port-range: 80-32767
"#;
    let cfg = load_init(text, V135, &host()).unwrap();
    assert_eq!(
        cfg.init.node_registration.kubelet_extra_args.get("node-ip"),
        Some("10.61.0.11")
    );
    assert_eq!(
        cfg.warnings[0],
        "your configuration file uses a deprecated API spec: \"kubeadm.k8s.io/v1beta3\" (kind: \"ClusterConfiguration\"). Please use 'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will write the new, similar spec using a newer API version."
    );
    assert_eq!(validate_file(text, V135, &host()).unwrap(), Vec::<String>::new());
}

#[test]
fn map_shaped_kubelet_extra_args_fail_in_v1beta4() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  kubeletExtraArgs:\n    node-ip: 10.61.0.11\n";
    let decode = "json: cannot unmarshal object into Go struct field NodeRegistrationOptions.nodeRegistration.kubeletExtraArgs of type []v1beta4.Arg";
    assert_eq!(load_init(text, V136, &host()).unwrap_err(), decode);
    assert_eq!(
        validate_file(text, V136, &host()).unwrap_err(),
        format!("error unmarshaling configuration schema.GroupVersionKind{{Group:\"kubeadm.k8s.io\", Version:\"v1beta4\", Kind:\"InitConfiguration\"}}: {decode}")
    );
    let api = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  extraArgs:\n    service-node-port-range: 80-32767\n";
    assert_eq!(
        load_init(api, V136, &host()).unwrap_err(),
        "json: cannot unmarshal object into Go struct field APIServer.apiServer.extraArgs of type []v1beta4.Arg"
    );
}

#[test]
fn unknown_fields_warn_on_init_and_fail_validate() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  timeoutForControlPlane: 4m0s\nzzz: 1\nnetworking:\n  podCIDR: 10.0.0.0/16\n";
    let msg = "error unmarshaling configuration schema.GroupVersionKind{Group:\"kubeadm.k8s.io\", Version:\"v1beta4\", Kind:\"ClusterConfiguration\"}: strict decoding error: unknown field \"apiServer.timeoutForControlPlane\", unknown field \"networking.podCIDR\", unknown field \"zzz\"";
    let cfg = load_init(text, V136, &host()).unwrap();
    assert_eq!(cfg.warnings[0], msg);
    assert_eq!(validate_file(text, V136, &host()).unwrap_err(), msg);
}

#[test]
fn unknown_kubelet_field_is_strict_too() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroup-driver: systemd\n";
    assert_eq!(
        validate_file(text, V136, &host()).unwrap_err(),
        "error unmarshaling configuration schema.GroupVersionKind{Group:\"kubelet.config.k8s.io\", Version:\"v1beta1\", Kind:\"KubeletConfiguration\"}: strict decoding error: unknown field \"cgroup-driver\""
    );
}

#[test]
fn wrong_scalar_type() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  bindPort: \"6443\"\n";
    assert_eq!(
        load_init(text, V136, &host()).unwrap_err(),
        "json: cannot unmarshal string into Go struct field APIEndpoint.localAPIEndpoint.bindPort of type int32"
    );
}

#[test]
fn bad_bootstrap_token_in_init_configuration() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens:\n- token: abcdef-0123456789abcdef\n";
    assert_eq!(
        load_init(text, V136, &host()).unwrap_err(),
        r#"the bootstrap token "abcdef-0123456789abcdef" was not of the form "\\A([a-z0-9]{6})\\.([a-z0-9]{16})\\z""#
    );
}

#[test]
fn bad_token_in_join_configuration() {
    let text = GOOD_JOIN.replace("abcdef.0123456789abcdef", "abc.def");
    assert_eq!(
        load_join(&text, V136, &host()).unwrap_err(),
        "[discovery.bootstrapToken.token: Invalid value: \"abc.def\": the bootstrap token is invalid, discovery.tlsBootstrapToken: Invalid value: \"abc.def\": the bootstrap token is invalid]"
    );
}

#[test]
fn good_join_config() {
    let cfg = load_join(GOOD_JOIN, V136, &host()).unwrap();
    assert_eq!(cfg.join.discovery.tls_bootstrap_token, "abcdef.0123456789abcdef");
    assert_eq!(cfg.join.ca_cert_path, "/etc/kubernetes/pki/ca.crt");
    assert_eq!(cfg.join.node_registration.name, "host04");
    assert_eq!(
        validate_file(GOOD_JOIN, V136, &host()).unwrap(),
        Vec::<String>::new()
    );
}

#[test]
fn missing_discovery() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n";
    assert_eq!(
        load_join(text, V136, &host()).unwrap_err(),
        "discovery: Invalid value: \"\": bootstrapToken or file must be set"
    );
}

#[test]
fn discovery_without_ca_pin_needs_unsafe_skip() {
    let no_pin = GOOD_JOIN.replace(
        "    caCertHashes:\n    - sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
        "",
    );
    assert_eq!(
        load_join(&no_pin, V136, &host()).unwrap_err(),
        "discovery.bootstrapToken.caCertHashes: Invalid value: \"\": using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue"
    );
    let unsafe_skip = no_pin.replace(
        "    token: abcdef",
        "    unsafeSkipCAVerification: true\n    token: abcdef",
    );
    assert!(load_join(&unsafe_skip, V136, &host()).is_ok());
}

#[test]
fn endpoint_without_port() {
    let text = GOOD_JOIN.replace(
        "apiServerEndpoint: 10.61.0.10:6443",
        "apiServerEndpoint: 10.61.0.10",
    );
    assert_eq!(
        load_join(&text, V136, &host()).unwrap_err(),
        "discovery.bootstrapToken.apiServerEndpoint: Invalid value: \"10.61.0.10\": address 10.61.0.10: missing port in address"
    );
}

#[test]
fn bad_cidrs() {
    let cc = |net: &str| {
        format!("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n{net}")
    };
    assert_eq!(
        load_init(&cc("  podSubnet: 10.244.0.0/33\n"), V136, &host()).unwrap_err(),
        "networking.podSubnet: Invalid value: \"10.244.0.0/33\": couldn't parse subnet"
    );
    assert_eq!(
        load_init(&cc("  podSubnet: 10.244.0.0/25\n"), V136, &host()).unwrap_err(),
        "[networking.podSubnet: Invalid value: \"10.244.0.0/25\": subnet with 128 address(es) is too small, the minimum is 254, networking.podSubnet: Invalid value: \"10.244.0.0/25\": the size of pod subnet with mask 25 is smaller than the size of node subnet with mask 24]"
    );
    assert_eq!(
        load_init(&cc("  serviceSubnet: 10.0.0.0/8\n"), V136, &host()).unwrap_err(),
        "networking.serviceSubnet: Invalid value: \"10.0.0.0/8\": specified service subnet is too large; for 32-bit addresses, the mask must be >= 12"
    );
    assert_eq!(
        load_init(&cc("  serviceSubnet: banana\n"), V136, &host()).unwrap_err(),
        "networking.serviceSubnet: Invalid value: \"banana\": couldn't parse subnet"
    );
    // Host bits are allowed (Go's ParseCIDR masks them).
    assert!(load_init(&cc("  podSubnet: 172.31.5.7/16\n"), V136, &host()).is_ok());
}

#[test]
fn removed_feature_gates_are_rejected() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nfeatureGates:\n  ControlPlaneKubeletLocalMode: true\n";
    assert_eq!(
        load_init(text, V136, &host()).unwrap_err(),
        "featureGates: Invalid value: map[string]bool{\"ControlPlaneKubeletLocalMode\":true}: ControlPlaneKubeletLocalMode is not a valid feature name."
    );
}

#[test]
fn certificate_key_must_be_32_bytes_of_hex() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\ncertificateKey: 0123456789abcdef0123456789abcdef\n";
    assert_eq!(
        load_init(text, V136, &host()).unwrap_err(),
        "certificateKey: Invalid value: \"0123456789abcdef0123456789abcdef\": invalid certificate key size 16, the key must be an AES key of size 32"
    );
}

#[test]
fn documents_need_kind_and_known_apis() {
    assert_eq!(
        split_documents("apiVersion: kubeadm.k8s.io/v1beta4\n").unwrap_err(),
        "invalid configuration for GroupVersionKind kubeadm.k8s.io/v1beta4, Kind=: kind and apiVersion is mandatory information that must be specified"
    );
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\napiVersion: example.com/v1\nkind: Widget\n";
    assert_eq!(
        validate_file(text, V136, &host()).unwrap_err(),
        "unknown configuration APIs: []schema.GroupVersionKind{schema.GroupVersionKind{Group:\"example.com\", Version:\"v1\", Kind:\"Widget\"}}"
    );
    let cfg = load_init(text, V136, &host()).unwrap();
    assert_eq!(
        cfg.warnings[0],
        "[config] WARNING: Ignored configuration document with GroupVersionKind example.com/v1, Kind=Widget"
    );
}

#[test]
fn init_needs_an_init_or_cluster_document() {
    assert_eq!(
        load_init(GOOD_JOIN, V136, &host()).unwrap_err(),
        "no InitConfiguration or ClusterConfiguration kind was found in the configuration file"
    );
}

#[test]
fn bad_advertise_address_and_node_name() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 10.61.0.300\n";
    assert_eq!(
        load_init(text, V136, &host()).unwrap_err(),
        "couldn't use \"10.61.0.300\" as \"apiserver-advertise-address\", must be ipv4 or ipv6 address"
    );
    let text =
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration:\n  name: Host_01\n";
    assert_eq!(
        load_init(text, V136, &host()).unwrap_err(),
        "nodeRegistration.name: Invalid value: \"Host_01\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
}

#[test]
fn odd_input_is_an_error_never_a_panic() {
    let inputs = [
        "",
        "---\n---\n",
        "- a\n- b\n",
        "just a string",
        "apiVersion: 5\nkind: [1]\n",
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration: null\nlocalAPIEndpoint: {bindPort: 99999999999}\n",
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens: [1, null, {ttl: 5}]\n",
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking: {podSubnet: \"::/0,10.0.0.0/8,1.2.3.4/32\"}\n",
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n? [complex, key]\n: value\n",
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery: {bootstrapToken: {apiServerEndpoint: \"[::1\"}}\n",
        "{{{{",
    ];
    for text in inputs {
        let _ = load_init(text, V136, &host());
        let _ = load_join(text, V136, &host());
        let _ = validate_file(text, V136, &host());
    }
    assert!(load_init("", V136, &host()).is_err());
    assert_eq!(
        load_init("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nbootstrapTokens: [1]\n", V136, &host()).unwrap_err(),
        "json: cannot unmarshal number into Go struct field InitConfiguration.bootstrapTokens of type v1.BootstrapToken"
    );
}
