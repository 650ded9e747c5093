//! Defaulting and validation of kubeadm configs, with the messages of
//! cmd/kubeadm/app/apis/kubeadm/validation/validation.go and the dynamic defaults of
//! cmd/kubeadm/app/util/config (`SetInitDynamicDefaults`, `SetJoinDynamicDefaults`).

use std::net::IpAddr;

use super::types::*;
use crate::gofmt::{aggregate, quote, FieldError};
use crate::version::Version;

/// kubeadm's defaults (apis/kubeadm/v1beta4/defaults.go, constants/constants.go).
pub const DEFAULT_SERVICE_SUBNET: &str = "10.96.0.0/12";
pub const DEFAULT_DNS_DOMAIN: &str = "cluster.local";
pub const DEFAULT_CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";
pub const DEFAULT_CERTIFICATES_DIR: &str = "/etc/kubernetes/pki";
pub const DEFAULT_CA_CERT_PATH: &str = "/etc/kubernetes/pki/ca.crt";
pub const DEFAULT_ETCD_DATA_DIR: &str = "/var/lib/etcd";
pub const DEFAULT_IMAGE_REPOSITORY: &str = "registry.k8s.io";
pub const DEFAULT_CLUSTER_NAME: &str = "kubernetes";
pub const DEFAULT_ENCRYPTION_ALGORITHM: &str = "RSA-2048";
pub const DEFAULT_BIND_PORT: i32 = 6443;
const MIN_ADDRESSES_IN_SERVICE_SUBNET: u128 = 10;
const MIN_ADDRESSES_IN_POD_SUBNET: u128 = 254;
const MAX_BITS_FOR_SERVICE_SUBNET: u32 = 20;
const POD_SUBNET_NODE_MASK_MAX_DIFF: u32 = 16;

/// What dynamic defaulting needs to know about the host.
#[derive(Debug, Clone)]
pub struct HostFacts {
    pub hostname: String,
    /// The address kubeadm would pick for the API server (the default-route interface's).
    pub default_address: Option<IpAddr>,
}

/// A parsed CIDR, normalised to its network address as Go's `net.IPNet.String()` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u32,
}

impl Cidr {
    /// Go `net.ParseCIDR` (sloppy: leading zeros allowed); host bits are cleared.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, prefix) = s.split_once('/')?;
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let prefix: u32 = prefix.parse().ok()?;
        let addr = parse_ip_sloppy(ip)?;
        let bits = addr_bits(&addr);
        if prefix > bits {
            return None;
        }
        Some(Cidr {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    pub fn bits(&self) -> u32 {
        addr_bits(&self.addr)
    }

    /// netutils.RangeSize: addresses in the range (capped for huge IPv6 ranges).
    pub fn range_size(&self) -> u128 {
        let host_bits = self.bits() - self.prefix;
        if host_bits >= 64 {
            u64::MAX as u128
        } else {
            1u128 << host_bits
        }
    }

    /// The `n`th address of the range (n = 1: the kubernetes Service IP).
    pub fn nth(&self, n: u128) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a).wrapping_add(n as u32)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a).wrapping_add(n)).into()),
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        addr_bits(&ip) == self.bits() && mask(ip, self.prefix) == self.addr
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn addr_bits(a: &IpAddr) -> u32 {
    if a.is_ipv4() {
        32
    } else {
        128
    }
}

fn mask(a: IpAddr, prefix: u32) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let m = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
            IpAddr::V4((u32::from(v) & m).into())
        }
        IpAddr::V6(v) => {
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6((u128::from(v) & m).into())
        }
    }
}

/// k8s.io/utils/net `ParseIPSloppy`: like net.ParseIP but IPv4 octets may have leading zeros.
pub fn parse_ip_sloppy(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut octets = [0u8; 4];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        octets[i] = p.parse().ok()?;
    }
    Some(IpAddr::from(octets))
}

/// Go `net.SplitHostPort` with its error texts.
pub fn split_host_port(hostport: &str) -> Result<(String, String), String> {
    let missing = || format!("address {hostport}: missing port in address");
    let too_many = || format!("address {hostport}: too many colons in address");
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("address {hostport}: missing ']' in address"))?;
        let port = after.strip_prefix(':').ok_or_else(missing)?;
        return Ok((host.to_string(), port.to_string()));
    }
    let (host, port) = hostport.rsplit_once(':').ok_or_else(missing)?;
    if host.contains(':') {
        return Err(too_many());
    }
    Ok((host.to_string(), port.to_string()))
}

/// apimachinery `IsDNS1123Subdomain` messages.
fn dns1123_subdomain_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !value.split('.').all(label_ok) {
        errs.push("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string());
    }
    errs
}

fn has_port(endpoint: &str) -> bool {
    split_host_port(endpoint).is_ok()
}

/// Static and dynamic defaults for init (v1beta4 defaults.go + `SetInitDynamicDefaults`).
pub fn default_init(
    init: &mut InitConfiguration,
    cluster: &mut ClusterConfiguration,
    kubeadm: Version,
    host: &HostFacts,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let n = &mut cluster.networking;
    if n.service_subnet.is_empty() {
        n.service_subnet = DEFAULT_SERVICE_SUBNET.to_string();
    }
    if n.dns_domain.is_empty() {
        n.dns_domain = DEFAULT_DNS_DOMAIN.to_string();
    }
    cluster.kubernetes_version =
        normalize_kubernetes_version(&cluster.kubernetes_version, kubeadm, warnings)?;
    if cluster.certificates_dir.is_empty() {
        cluster.certificates_dir = DEFAULT_CERTIFICATES_DIR.to_string();
    }
    if cluster.image_repository.is_empty() {
        cluster.image_repository = DEFAULT_IMAGE_REPOSITORY.to_string();
    }
    if cluster.cluster_name.is_empty() {
        cluster.cluster_name = DEFAULT_CLUSTER_NAME.to_string();
    }
    if cluster.encryption_algorithm.is_empty() {
        cluster.encryption_algorithm = DEFAULT_ENCRYPTION_ALGORITHM.to_string();
    }
    if cluster.etcd.local.is_none() && cluster.etcd.external.is_none() {
        cluster.etcd.local = Some(LocalEtcd::default());
    }
    if let Some(local) = cluster.etcd.local.as_mut() {
        if local.data_dir.is_empty() {
            local.data_dir = DEFAULT_ETCD_DATA_DIR.to_string();
        }
    }
    if init.bootstrap_tokens.is_empty() {
        init.bootstrap_tokens.push(BootstrapTokenSpec::default());
    }
    for bt in &mut init.bootstrap_tokens {
        if bt.ttl.is_none() && bt.expires.is_none() {
            bt.ttl = Some("24h0m0s".to_string());
        }
        if bt.usages.is_empty() {
            bt.usages = crate::token::DEFAULT_USAGES
                .iter()
                .map(|s| s.to_string())
                .collect();
        }
        if bt.groups.is_empty() {
            bt.groups = vec![crate::token::DEFAULT_GROUP.to_string()];
        }
    }
    if init.local_api_endpoint.bind_port == 0 {
        init.local_api_endpoint.bind_port = DEFAULT_BIND_PORT;
    }
    default_node_registration(&mut init.node_registration, host, warnings);
    default_advertise_address(&mut init.local_api_endpoint, host)?;
    // A control plane gets the control-plane taint unless `taints` was given (even empty).
    if init.node_registration.taints.is_none() {
        init.node_registration.taints = Some(vec![Taint {
            key: "node-role.kubernetes.io/control-plane".to_string(),
            value: String::new(),
            effect: "NoSchedule".to_string(),
        }]);
    }
    Ok(())
}

/// util/config `NormalizeKubernetesVersion` + util `KubernetesReleaseVersion`, offline:
/// a label (`stable-1`, the default) cannot be fetched in the lab, so kubeadm warns and uses
/// its own version; a version older than kubeadm's minor − 1 is refused.
fn normalize_kubernetes_version(
    given: &str,
    kubeadm: Version,
    warnings: &mut Vec<String>,
) -> Result<String, String> {
    let label = if given.is_empty() { "stable-1" } else { given };
    let is_label = {
        let (word, rest) = label.split_once('-').unwrap_or((label, ""));
        matches!(word, "stable" | "latest")
            && (rest.is_empty()
                || rest
                    .split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
    };
    let version = if is_label {
        let url = format!("https://dl.k8s.io/release/{label}.txt");
        warnings.push(format!(
            "could not fetch a Kubernetes version from the internet: unable to get URL {}: Get {}: dial tcp: lookup dl.k8s.io: no such host",
            quote(&url),
            quote(&url)
        ));
        warnings.push(format!(
            "falling back to the local client version: {}",
            kubeadm.git_version()
        ));
        kubeadm
    } else {
        match Version::parse(label).filter(|_| label.trim_start_matches('v').split('.').count() == 3) {
            Some(v) => v,
            None => {
                return Err(format!(
                    "version {} doesn't match patterns for neither semantic version nor labels (stable, latest, ...)",
                    quote(given)
                ))
            }
        }
    };
    let shown = if is_label {
        kubeadm.git_version()
    } else {
        format!("v{}", label.trim_start_matches('v'))
    };
    let minimum = Version::new(kubeadm.major, kubeadm.minor.saturating_sub(1), 0);
    if version < minimum {
        return Err(format!(
            "this version of kubeadm only supports deploying clusters with the control plane version >= {minimum}. Current version: {shown}"
        ));
    }
    Ok(shown)
}

fn default_node_registration(nr: &mut NodeRegistrationOptions, host: &HostFacts, warnings: &mut Vec<String>) {
    if nr.name.is_empty() {
        nr.name = host.hostname.to_lowercase();
    }
    if nr.cri_socket.is_empty() {
        nr.cri_socket = DEFAULT_CRI_SOCKET.to_string();
    } else if nr.cri_socket.starts_with('/') {
        // kubeadm adds the scheme and warns (util/runtime `AddSocketURLScheme` callers).
        warnings.push(format!(
            "Usage of CRI endpoints without URL scheme is deprecated and can cause kubelet errors in the future. Automatically prepending scheme \"unix\" to the \"criSocket\" with value {}. Please update your configuration!",
            quote(&nr.cri_socket)
        ));
        nr.cri_socket = format!("unix://{}", nr.cri_socket);
    }
    if nr.image_pull_policy.is_empty() {
        nr.image_pull_policy = "IfNotPresent".to_string();
    }
}

/// `SetAPIEndpointDynamicDefaults`.
fn default_advertise_address(ep: &mut ApiEndpoint, host: &HostFacts) -> Result<(), String> {
    if !ep.advertise_address.is_empty() {
        if parse_ip_sloppy(&ep.advertise_address).is_none() {
            return Err(format!(
                "couldn't use \"{}\" as \"apiserver-advertise-address\", must be ipv4 or ipv6 address",
                ep.advertise_address
            ));
        }
        return Ok(());
    }
    ep.advertise_address = host
        .default_address
        .map(|a| a.to_string())
        .unwrap_or_else(|| "0.0.0.0".to_string());
    Ok(())
}

/// Static and dynamic defaults for join (`SetJoinDynamicDefaults`).
pub fn default_join(join: &mut JoinConfiguration, host: &HostFacts, warnings: &mut Vec<String>) {
    if join.ca_cert_path.is_empty() {
        join.ca_cert_path = DEFAULT_CA_CERT_PATH.to_string();
    }
    default_node_registration(&mut join.node_registration, host, warnings);
    if join.discovery.tls_bootstrap_token.is_empty() {
        if let Some(bt) = &join.discovery.bootstrap_token {
            join.discovery.tls_bootstrap_token = bt.token.clone();
        }
    }
    if let Some(cp) = join.control_plane.as_mut() {
        if cp.local_api_endpoint.bind_port == 0 {
            cp.local_api_endpoint.bind_port = DEFAULT_BIND_PORT;
        }
        if cp.local_api_endpoint.advertise_address.is_empty() {
            cp.local_api_endpoint.advertise_address = host
                .default_address
                .map(|a| a.to_string())
                .unwrap_or_else(|| "0.0.0.0".to_string());
        }
    }
}

fn validate_node_registration(nr: &NodeRegistrationOptions, path: &str, errs: &mut Vec<FieldError>) {
    if nr.name.is_empty() {
        errs.push(FieldError::required(path, "--node-name or .nodeRegistration.name in the config file is a required value. It seems like this value couldn't be automatically detected in your environment, please specify the desired value using the CLI or config file."));
    } else {
        for e in dns1123_subdomain_errors(&nr.name) {
            errs.push(FieldError::invalid(&format!("{path}.name"), &nr.name, &e));
        }
    }
    validate_socket(&nr.cri_socket, &format!("{path}.criSocket"), errs);
    validate_extra_args(&nr.kubelet_extra_args, &format!("{path}.kubeletExtraArgs"), errs);
}

fn validate_socket(socket: &str, path: &str, errs: &mut Vec<FieldError>) {
    if socket.is_empty() {
        errs.push(FieldError::invalid(path, socket, "empty CRI socket"));
        return;
    }
    let scheme = socket.split_once("://").map(|(s, _)| s).unwrap_or("");
    if scheme != "unix" {
        errs.push(FieldError::invalid(
            path,
            socket,
            &format!("only URL scheme \"unix\" is supported, got {}", quote(scheme)),
        ));
    }
}

fn validate_extra_args(args: &Args, path: &str, errs: &mut Vec<FieldError>) {
    for (i, a) in args.0.iter().enumerate() {
        if a.name.is_empty() {
            errs.push(FieldError::invalid(
                path,
                &format!("index {i}"),
                "argument has no name",
            ));
        }
    }
}

fn validate_token(token: &str, path: &str, errs: &mut Vec<FieldError>) {
    if !crate::token::is_valid(token) {
        errs.push(FieldError::invalid(path, token, "the bootstrap token is invalid"));
    }
}

fn validate_api_endpoint(ep: &ApiEndpoint, path: &str, errs: &mut Vec<FieldError>) {
    if parse_ip_sloppy(&ep.advertise_address).is_none() {
        errs.push(FieldError::invalid(
            &format!("{path}.advertiseAddress"),
            &ep.advertise_address,
            "ip address is not valid",
        ));
    }
    if !(1..=65535).contains(&ep.bind_port) {
        errs.push(FieldError::invalid_raw(
            &format!("{path}.bindPort"),
            &ep.bind_port.to_string(),
            "port number is not valid",
        ));
    }
}

fn validate_certificate_key(key: &str, path: &str, errs: &mut Vec<FieldError>) {
    if !key.is_empty() {
        if let Err(e) = crate::certs_upload::CertificateKey::parse(key, path) {
            errs.push(e);
        }
    }
}

/// `ValidateIPNetFromString` + subnet size checks of `ValidateNetworking`.
fn validate_subnets(
    value: &str,
    min_addrs: u128,
    path: &str,
    errs: &mut Vec<FieldError>,
) -> Option<Vec<Cidr>> {
    let parsed: Option<Vec<Cidr>> = value.split(',').map(Cidr::parse).collect();
    let Some(subnets) = parsed else {
        errs.push(FieldError::invalid(path, value, "couldn't parse subnet"));
        return None;
    };
    let dual_msg = "expected one (IPv4 or IPv6) CIDR or two CIDRs from each family for dual-stack networking";
    if subnets.len() > 2 || (subnets.len() == 2 && subnets[0].bits() == subnets[1].bits()) {
        errs.push(FieldError::invalid(path, value, dual_msg));
    }
    for s in &subnets {
        if s.range_size() < min_addrs {
            errs.push(FieldError::invalid(
                path,
                &s.to_string(),
                &format!(
                    "subnet with {} address(es) is too small, the minimum is {}",
                    s.range_size(),
                    min_addrs
                ),
            ));
        }
    }
    Some(subnets)
}

fn validate_networking(c: &ClusterConfiguration, errs: &mut Vec<FieldError>) {
    let n = &c.networking;
    for e in dns1123_subdomain_errors(&n.dns_domain) {
        errs.push(FieldError::invalid("networking.dnsDomain", &n.dns_domain, &e));
    }
    if !n.service_subnet.is_empty() {
        let path = "networking.serviceSubnet";
        if let Some(subnets) =
            validate_subnets(&n.service_subnet, MIN_ADDRESSES_IN_SERVICE_SUBNET, path, errs)
        {
            for s in subnets {
                if s.bits() - s.prefix > MAX_BITS_FOR_SERVICE_SUBNET {
                    errs.push(FieldError::invalid(
                        path,
                        &s.to_string(),
                        &format!(
                            "specified service subnet is too large; for {}-bit addresses, the mask must be >= {}",
                            s.bits(),
                            s.bits() - MAX_BITS_FOR_SERVICE_SUBNET
                        ),
                    ));
                }
            }
        }
    }
    if !n.pod_subnet.is_empty() {
        let path = "networking.podSubnet";
        if let Some(subnets) = validate_subnets(&n.pod_subnet, MIN_ADDRESSES_IN_POD_SUBNET, path, errs) {
            if c.controller_manager.extra_args.get("allocate-node-cidrs") != Some("false") {
                for s in subnets {
                    validate_pod_subnet_node_mask(c, s, path, errs);
                }
            }
        }
    }
}

fn validate_pod_subnet_node_mask(c: &ClusterConfiguration, s: Cidr, path: &str, errs: &mut Vec<FieldError>) {
    let (arg, default) = if s.bits() == 128 {
        ("node-cidr-mask-size-ipv6", 64)
    } else {
        ("node-cidr-mask-size-ipv4", 24)
    };
    let node_mask = match c.controller_manager.extra_args.get(arg) {
        Some(v) if !v.is_empty() => match v.parse::<u32>() {
            Ok(m) => m,
            Err(_) => {
                errs.push(FieldError::invalid(
                    path,
                    &s.to_string(),
                    &format!(
                        "could not parse the value of the kube-controller-manager flag {arg} as an integer: strconv.Atoi: parsing {}: invalid syntax",
                        quote(v)
                    ),
                ));
                return;
            }
        },
        _ => default,
    };
    if s.prefix > node_mask {
        errs.push(FieldError::invalid(
            path,
            &s.to_string(),
            &format!(
                "the size of pod subnet with mask {} is smaller than the size of node subnet with mask {}",
                s.prefix, node_mask
            ),
        ));
    } else if node_mask - s.prefix > POD_SUBNET_NODE_MASK_MAX_DIFF {
        errs.push(FieldError::invalid(
            path,
            &s.to_string(),
            &format!(
                "pod subnet mask ({}) and node-mask ({}) difference is greater than {}",
                s.prefix, node_mask, POD_SUBNET_NODE_MASK_MAX_DIFF
            ),
        ));
    }
}

fn validate_cert_sans(sans: &[String], path: &str, errs: &mut Vec<FieldError>) {
    for san in sans {
        let wildcard_ok = san
            .strip_prefix("*.")
            .is_some_and(|rest| dns1123_subdomain_errors(rest).is_empty());
        if dns1123_subdomain_errors(san).is_empty() || wildcard_ok || parse_ip_sloppy(san).is_some() {
            continue;
        }
        let e1 = dns1123_subdomain_errors(san).join("; ");
        let e2 = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric character (e.g. '*.example.com', regex used for validation is '\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
        errs.push(FieldError::invalid(
            path,
            san,
            &format!("altname is not a valid IP address, DNS label or a DNS label with subdomain wildcards: {e1}; {e2}"),
        ));
    }
}

fn validate_absolute(p: &str, path: &str, errs: &mut Vec<FieldError>) {
    if !p.starts_with('/') {
        errs.push(FieldError::invalid(path, p, "path is not absolute"));
    }
}

/// `ValidateInitConfiguration` (which includes `ValidateClusterConfiguration`).
pub fn validate_init(
    init: &InitConfiguration,
    c: &ClusterConfiguration,
    kubeadm: Version,
) -> Result<(), String> {
    let mut errs = Vec::new();
    validate_node_registration(&init.node_registration, "nodeRegistration", &mut errs);
    for (i, bt) in init.bootstrap_tokens.iter().enumerate() {
        let p = format!("bootstrapTokens[{i}]");
        // An empty token is generated at init time; only given tokens are checked.
        if !bt.token.is_empty() {
            validate_token(&bt.token, &format!("{p}.token"), &mut errs);
        }
        if bt.expires.is_some() && bt.ttl.is_some() {
            errs.push(FieldError::invalid(
                &p,
                "",
                "the BootstrapToken .TTL and .Expires fields are mutually exclusive",
            ));
        }
    }
    // ValidateClusterConfiguration, in upstream order.
    validate_networking(c, &mut errs);
    validate_cert_sans(&c.api_server.cert_sans, "apiServer.certSANs", &mut errs);
    validate_extra_args(&c.api_server.extra_args, "apiServer.extraArgs", &mut errs);
    validate_extra_args(
        &c.controller_manager.extra_args,
        "controllerManager.extraArgs",
        &mut errs,
    );
    validate_extra_args(&c.scheduler.extra_args, "scheduler.extraArgs", &mut errs);
    validate_absolute(&c.certificates_dir, "certificatesDir", &mut errs);
    for gate in c.feature_gates.keys() {
        if !super::features::is_known(kubeadm, gate) {
            errs.push(FieldError::invalid_raw(
                "featureGates",
                &crate::gofmt::bool_map(&c.feature_gates),
                &format!("{gate} is not a valid feature name."),
            ));
        }
    }
    if !c.control_plane_endpoint.is_empty() && !valid_host_port(&c.control_plane_endpoint) {
        errs.push(FieldError::invalid(
            "controlPlaneEndpoint",
            &c.control_plane_endpoint,
            "endpoint is not valid",
        ));
    }
    match (&c.etcd.local, &c.etcd.external) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            "etcd",
            "",
            ".Etcd.Local and .Etcd.External are mutually exclusive",
        )),
        (Some(local), None) => {
            validate_absolute(&local.data_dir, "etcd.local.dataDir", &mut errs);
            validate_cert_sans(&local.server_cert_sans, "etcd.local.serverCertSANs", &mut errs);
            validate_cert_sans(&local.peer_cert_sans, "etcd.local.peerCertSANs", &mut errs);
            validate_extra_args(&local.extra_args, "etcd.local.extraArgs", &mut errs);
        }
        _ => {}
    }
    let algos = ["ECDSA-P256", "ECDSA-P384", "RSA-2048", "RSA-3072", "RSA-4096"];
    if !algos.contains(&c.encryption_algorithm.as_str()) {
        errs.push(FieldError::invalid(
            "encryptionAlgorithm",
            &c.encryption_algorithm,
            &format!(
                "Invalid encryption algorithm {}. Must be one of [{}]",
                quote(&c.encryption_algorithm),
                algos.join(" ")
            ),
        ));
    }
    validate_api_endpoint(&init.local_api_endpoint, "localAPIEndpoint", &mut errs);
    validate_certificate_key(&init.certificate_key, "certificateKey", &mut errs);
    match aggregate(&errs) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// kubeadm `ParseHostPort`: host (IP or DNS-1123 subdomain) with an optional valid port.
fn valid_host_port(endpoint: &str) -> bool {
    let (host, port) = if has_port(endpoint) {
        match split_host_port(endpoint) {
            Ok((h, p)) => (h, Some(p)),
            Err(_) => return false,
        }
    } else {
        (endpoint.to_string(), None)
    };
    if let Some(p) = port {
        if !p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n)) {
            return false;
        }
    }
    parse_ip_sloppy(&host).is_some() || dns1123_subdomain_errors(&host).is_empty()
}

/// `ValidateJoinConfiguration`.
pub fn validate_join(j: &JoinConfiguration) -> Result<(), String> {
    let mut errs = Vec::new();
    let d = &j.discovery;
    if d.bootstrap_token.is_none() && d.file.is_none() {
        errs.push(FieldError::invalid(
            "discovery",
            "",
            "bootstrapToken or file must be set",
        ));
    }
    if d.bootstrap_token.is_some() && d.file.is_some() {
        errs.push(FieldError::invalid(
            "discovery",
            "",
            "bootstrapToken and file cannot both be set",
        ));
    }
    if let Some(bt) = &d.bootstrap_token {
        let p = "discovery.bootstrapToken";
        if bt.api_server_endpoint.is_empty() {
            errs.push(FieldError::required(p, "APIServerEndpoint is not set"));
        }
        if bt.ca_cert_hashes.is_empty() && !bt.unsafe_skip_ca_verification {
            errs.push(FieldError::invalid(&format!("{p}.caCertHashes"), "", "using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue"));
        }
        validate_token(&bt.token, &format!("{p}.token"), &mut errs);
        if let Err(e) = split_host_port(&bt.api_server_endpoint) {
            errs.push(FieldError::invalid(
                &format!("{p}.apiServerEndpoint"),
                &bt.api_server_endpoint,
                &e,
            ));
        }
        validate_token(&d.tls_bootstrap_token, "discovery.tlsBootstrapToken", &mut errs);
    }
    if let Some(f) = &d.file {
        let path = &f.kube_config_path;
        if path.starts_with("https://") {
            // fine: fetched at discovery time
        } else if path.contains("://") {
            errs.push(FieldError::invalid(
                "discovery.file.kubeConfigPath",
                path,
                "if a URL is used, the scheme must be https",
            ));
        } else if !std::path::Path::new(path).exists() {
            errs.push(FieldError::invalid(
                "discovery.file.kubeConfigPath",
                path,
                "not a valid HTTPS URL or a file on disk",
            ));
        }
        if !d.tls_bootstrap_token.is_empty() {
            validate_token(&d.tls_bootstrap_token, "discovery.tlsBootstrapToken", &mut errs);
        }
    }
    validate_node_registration(&j.node_registration, "nodeRegistration", &mut errs);
    if let Some(cp) = &j.control_plane {
        validate_api_endpoint(&cp.local_api_endpoint, "controlPlane.localAPIEndpoint", &mut errs);
        validate_certificate_key(&cp.certificate_key, "controlPlane.certificateKey", &mut errs);
    }
    if !j.ca_cert_path.starts_with('/') || !j.ca_cert_path.ends_with(".crt") {
        errs.push(FieldError::invalid(
            "caCertPath",
            &j.ca_cert_path,
            "the ca certificate path must be an absolute path",
        ));
    }
    match aggregate(&errs) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
