//! The cluster PKI `kubeadm init` writes under /etc/kubernetes/pki, the CA pin
//! (`sha256:` over the DER SubjectPublicKeyInfo, as cmd/kubeadm/app/util/pubkeypin `Hash`),
//! and the kubeconfig files (admin.conf, super-admin.conf, kubelet.conf, …).
//!
//! Certificates follow cmd/kubeadm/app/phases/certs/certlist.go (names, CNs, organisations,
//! usages, SANs from certs/util `GetAPIServerAltNames`, `GetEtcdAltNames`) and
//! phases/kubeconfig/kubeconfig.go (users, groups, servers). Keys are generated with ring
//! (ECDSA) or the openssl CLI (RSA: ring cannot generate RSA keys); keys are written as
//! PKCS#8 (`PRIVATE KEY`), which every consumer accepts, where kubeadm writes PKCS#1/SEC1.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::validate::Cidr;
use crate::config::InitConfig;

/// Errors from building or reading the PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("failure loading {what}: {reason}")]
    Load { what: String, reason: String },
    #[error("couldn't generate {what}: {reason}")]
    Generate { what: String, reason: String },
    #[error("failed to write {path}: {reason}")]
    Write { path: String, reason: String },
}

fn gen_err(what: &str, reason: impl ToString) -> PkiError {
    PkiError::Generate {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

/// kubeadm `EncryptionAlgorithmType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgo {
    EcdsaP256,
    EcdsaP384,
    Rsa(u32),
}

impl KeyAlgo {
    /// From `ClusterConfiguration.encryptionAlgorithm` (already validated).
    pub fn from_config(name: &str) -> KeyAlgo {
        match name {
            "ECDSA-P256" => KeyAlgo::EcdsaP256,
            "ECDSA-P384" => KeyAlgo::EcdsaP384,
            "RSA-3072" => KeyAlgo::Rsa(3072),
            "RSA-4096" => KeyAlgo::Rsa(4096),
            _ => KeyAlgo::Rsa(2048),
        }
    }

    /// A new private key.
    pub fn generate(self) -> Result<KeyPair, PkiError> {
        match self {
            KeyAlgo::EcdsaP256 => {
                KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| gen_err("key", e))
            }
            KeyAlgo::EcdsaP384 => {
                KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(|e| gen_err("key", e))
            }
            KeyAlgo::Rsa(bits) => {
                let out = Command::new("openssl")
                    .args([
                        "genpkey",
                        "-algorithm",
                        "RSA",
                        "-pkeyopt",
                        &format!("rsa_keygen_bits:{bits}"),
                    ])
                    .output()
                    .map_err(|e| gen_err("RSA key", format!("running openssl: {e}")))?;
                if !out.status.success() {
                    return Err(gen_err("RSA key", String::from_utf8_lossy(&out.stderr)));
                }
                let pem = String::from_utf8_lossy(&out.stdout);
                KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256)
                    .map_err(|e| gen_err("RSA key", e))
            }
        }
    }
}

/// `sha256:<hex>` of a certificate's DER SubjectPublicKeyInfo: the value of
/// `--discovery-token-ca-cert-hash` / `caCertHashes`.
pub fn ca_cert_hash(cert_pem: &str) -> Result<String, PkiError> {
    let load = |reason: String| PkiError::Load {
        what: "CA certificate".into(),
        reason,
    };
    let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).map_err(|e| load(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| load(e.to_string()))?;
    Ok(spki_hash(cert.tbs_certificate.subject_pki.raw))
}

/// `sha256:<hex>` of DER SPKI bytes.
pub fn spki_hash(spki_der: &[u8]) -> String {
    format!(
        "sha256:{}",
        crate::gofmt::hex_encode(digest(&SHA256, spki_der).as_ref())
    )
}

/// What a certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
    ServerAndClient,
}

/// One leaf certificate to issue.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    pub common_name: String,
    pub organizations: Vec<String>,
    pub dns_names: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub usage: Usage,
}

/// A CA that can sign: its PEM and key.
pub struct CertAuthority {
    pub cert_pem: String,
    pub key: KeyPair,
    params: Option<CertificateParams>,
}

impl std::fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAuthority")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| gen_err("serial number", "no randomness"))?;
    b[0] &= 0x7f; // positive
    Ok(SerialNumber::from_slice(&b))
}

fn to_offset(t: SystemTime) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(crate::clock::unix_seconds(t))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// kubeadm `CertificateBackdate`: NotBefore is 5 minutes before now, against clock skew.
const BACKDATE: Duration = Duration::from_secs(300);
/// Default `caCertificateValidityPeriod` (10 years) and `certificateValidityPeriod` (1 year).
pub const CA_VALIDITY: Duration = Duration::from_secs(87_600 * 3600);
pub const CERT_VALIDITY: Duration = Duration::from_secs(8_760 * 3600);

impl CertAuthority {
    /// A new self-signed CA named `common_name`, valid for 10 years from `now`.
    pub fn generate(common_name: &str, algo: KeyAlgo, now: SystemTime) -> Result<CertAuthority, PkiError> {
        let key = algo.generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyCertSign,
        ];
        params.not_before = to_offset(now - BACKDATE);
        params.not_after = to_offset(now + CA_VALIDITY);
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key).map_err(|e| gen_err(common_name, e))?;
        Ok(CertAuthority {
            cert_pem: cert.pem(),
            key,
            params: Some(params),
        })
    }

    /// An existing CA from its PEM files (kubeadm reuses a CA it finds on disk).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<CertAuthority, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::Load {
            what: "CA key".into(),
            reason: e.to_string(),
        })?;
        Issuer::from_ca_cert_pem(cert_pem, &key).map_err(|e| PkiError::Load {
            what: "CA certificate".into(),
            reason: e.to_string(),
        })?;
        Ok(CertAuthority {
            cert_pem: cert_pem.to_string(),
            key,
            params: None,
        })
    }

    /// The CA pin for discovery.
    pub fn hash(&self) -> Result<String, PkiError> {
        ca_cert_hash(&self.cert_pem)
    }

    /// Issues a leaf for `spec` with a fresh key of `algo`: (cert PEM, key).
    pub fn issue(
        &self,
        spec: &LeafSpec,
        algo: KeyAlgo,
        now: SystemTime,
    ) -> Result<(String, KeyPair), PkiError> {
        let key = algo.generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        for o in &spec.organizations {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        dn.push(DnType::CommonName, spec.common_name.as_str());
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = match spec.usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        for d in &spec.dns_names {
            let name = d
                .clone()
                .try_into()
                .map_err(|e: rcgen::Error| gen_err(&spec.common_name, e))?;
            params.subject_alt_names.push(SanType::DnsName(name));
        }
        for ip in &spec.ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.use_authority_key_identifier_extension = true;
        params.not_before = to_offset(now - BACKDATE);
        params.not_after = to_offset(now + CERT_VALIDITY);
        params.serial_number = Some(random_serial()?);
        let issuer = match &self.params {
            Some(p) => Issuer::from_params(p, &self.key),
            None => Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)
                .map_err(|e| gen_err(&spec.common_name, e))?,
        };
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| gen_err(&spec.common_name, e))?;
        Ok((cert.pem(), key))
    }
}

impl CertAuthority {
    /// Signs a PKCS#10 request the way kube-controller-manager's csrsigning controller does:
    /// subject and SANs from the request, usages from the signer, 1 year (the default
    /// `--cluster-signing-duration`). Returns the certificate PEM.
    pub fn sign_csr(&self, csr_pem: &str, usage: Usage, now: SystemTime) -> Result<String, PkiError> {
        let mut csr = rcgen::CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| gen_err("certificate from CSR", e))?;
        let p = &mut csr.params;
        p.is_ca = IsCa::NoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = match usage {
            Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Usage::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        p.use_authority_key_identifier_extension = true;
        p.not_before = to_offset(now - BACKDATE);
        p.not_after = to_offset(now + CERT_VALIDITY);
        p.serial_number = Some(random_serial()?);
        let issuer = match &self.params {
            Some(ip) => Issuer::from_params(ip, &self.key),
            None => {
                Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).map_err(|e| gen_err("CA issuer", e))?
            }
        };
        let cert = csr
            .signed_by(&issuer)
            .map_err(|e| gen_err("certificate from CSR", e))?;
        Ok(cert.pem())
    }
}

/// A PKCS#10 request for `spec` with a fresh key: (CSR PEM, key PEM). The kubelet's
/// client and serving CSRs are made with this.
pub fn make_csr(spec: &LeafSpec, algo: KeyAlgo) -> Result<(String, String), PkiError> {
    let key = algo.generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    for o in &spec.organizations {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    dn.push(DnType::CommonName, spec.common_name.as_str());
    params.distinguished_name = dn;
    for d in &spec.dns_names {
        let name = d
            .clone()
            .try_into()
            .map_err(|e: rcgen::Error| gen_err("CSR", e))?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    for ip in &spec.ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    let csr = params.serialize_request(&key).map_err(|e| gen_err("CSR", e))?;
    Ok((csr.pem().map_err(|e| gen_err("CSR", e))?, key.serialize_pem()))
}

/// Writes `data` to `path` with `mode`, creating parent directories.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), PkiError> {
    let werr = |e: std::io::Error| PkiError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(werr)?;
    }
    fs::write(path, data).map_err(werr)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(werr)
}

/// The DNS names and IPs of the API server certificate (certs/util `GetAPIServerAltNames`).
pub fn apiserver_alt_names(cfg: &InitConfig) -> (Vec<String>, Vec<IpAddr>) {
    let domain = &cfg.cluster.networking.dns_domain;
    let mut dns = vec![
        cfg.init.node_registration.name.clone(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        format!("kubernetes.default.svc.{domain}"),
    ];
    let mut ips = Vec::new();
    if let Some(first) = cfg
        .cluster
        .networking
        .service_subnet
        .split(',')
        .next()
        .and_then(Cidr::parse)
    {
        ips.push(first.nth(1));
    }
    if let Some(ip) = crate::config::validate::parse_ip_sloppy(&cfg.init.local_api_endpoint.advertise_address)
    {
        ips.push(ip);
    }
    let cpe = &cfg.cluster.control_plane_endpoint;
    if !cpe.is_empty() {
        let host = crate::config::validate::split_host_port(cpe)
            .map(|(h, _)| h)
            .unwrap_or_else(|_| cpe.clone());
        match crate::config::validate::parse_ip_sloppy(&host) {
            Some(ip) => ips.push(ip),
            None => dns.push(host),
        }
    }
    for san in &cfg.cluster.api_server.cert_sans {
        match crate::config::validate::parse_ip_sloppy(san) {
            Some(ip) => ips.push(ip),
            None => dns.push(san.clone()),
        }
    }
    dns.dedup();
    let mut seen = Vec::new();
    ips.retain(|ip| {
        let fresh = !seen.contains(ip);
        seen.push(*ip);
        fresh
    });
    (dns, ips)
}

/// A kubeconfig with embedded client certificate (phases/kubeconfig `CreateWithCerts`).
pub fn kubeconfig(
    server: &str,
    cluster_name: &str,
    user: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let context = format!("{user}@{cluster_name}");
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: {cluster_name}\ncontexts:\n- context:\n    cluster: {cluster_name}\n    user: {user}\n  name: {context}\ncurrent-context: {context}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(ca_pem),
        b64(cert_pem),
        b64(key_pem)
    )
}

/// `https://host:port`, bracketing IPv6 hosts.
pub fn https_url(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("https://[{host}]:{port}")
    } else {
        format!("https://{host}:{port}")
    }
}

/// The endpoint kubeconfigs for users use: controlPlaneEndpoint if set (port defaulted
/// to the bind port), else the local advertise address.
pub fn control_plane_url(cfg: &InitConfig) -> String {
    let bind = cfg.init.local_api_endpoint.bind_port;
    let cpe = &cfg.cluster.control_plane_endpoint;
    if cpe.is_empty() {
        return https_url(&cfg.init.local_api_endpoint.advertise_address, bind);
    }
    match crate::config::validate::split_host_port(cpe) {
        Ok((h, p)) => https_url(&h, p.parse().unwrap_or(bind)),
        Err(_) => https_url(cpe, bind),
    }
}

/// What init's certs and kubeconfig phases did, for the command's output.
#[derive(Debug, Default)]
pub struct PkiOutcome {
    pub lines: Vec<String>,
    pub ca_hash: String,
}

/// The certs phase: CAs (reused when present), leaves, the service-account key pair.
/// Returns the printed lines (`[certs] Generating "ca" certificate and key`).
pub fn create_pki(
    pki_dir: &Path,
    cfg: &InitConfig,
    now: SystemTime,
) -> Result<(PkiOutcome, CertAuthority), PkiError> {
    let algo = KeyAlgo::from_config(&cfg.cluster.encryption_algorithm);
    let mut out = PkiOutcome::default();
    let node = cfg.init.node_registration.name.clone();
    let advertise = crate::config::validate::parse_ip_sloppy(&cfg.init.local_api_endpoint.advertise_address);
    let ca = ensure_ca(pki_dir, "ca", "kubernetes", algo, now, &mut out.lines)?;
    let (dns, ips) = apiserver_alt_names(cfg);
    out.lines.push(format!(
        "[certs] apiserver serving cert is signed for DNS names [{}] and IPs [{}]",
        dns.join(" "),
        ips.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(" ")
    ));
    issue_into(
        pki_dir,
        "apiserver",
        &ca,
        &LeafSpec {
            common_name: "kube-apiserver".into(),
            organizations: vec![],
            dns_names: dns,
            ips,
            usage: Usage::Server,
        },
        algo,
        now,
        &mut out.lines,
    )?;
    let client = |cn: &str, orgs: &[&str]| LeafSpec {
        common_name: cn.to_string(),
        organizations: orgs.iter().map(|s| s.to_string()).collect(),
        dns_names: vec![],
        ips: vec![],
        usage: Usage::Client,
    };
    issue_into(
        pki_dir,
        "apiserver-kubelet-client",
        &ca,
        &client("kube-apiserver-kubelet-client", &["kubeadm:cluster-admins"]),
        algo,
        now,
        &mut out.lines,
    )?;
    let fp_ca = ensure_ca(
        pki_dir,
        "front-proxy-ca",
        "front-proxy-ca",
        algo,
        now,
        &mut out.lines,
    )?;
    issue_into(
        pki_dir,
        "front-proxy-client",
        &fp_ca,
        &client("front-proxy-client", &[]),
        algo,
        now,
        &mut out.lines,
    )?;
    if cfg.cluster.etcd.local.is_some() {
        let etcd_ca = ensure_ca(pki_dir, "etcd/ca", "etcd-ca", algo, now, &mut out.lines)?;
        let mut etcd_ips: Vec<IpAddr> = advertise.into_iter().collect();
        etcd_ips.push(IpAddr::from([127, 0, 0, 1]));
        etcd_ips.push("::1".parse().unwrap_or(IpAddr::from([0u8; 16])));
        let etcd_dns = vec![node.clone(), "localhost".to_string()];
        let etcd_leaf = LeafSpec {
            common_name: node.clone(),
            organizations: vec![],
            dns_names: etcd_dns,
            ips: etcd_ips,
            usage: Usage::ServerAndClient,
        };
        issue_into(
            pki_dir,
            "etcd/server",
            &etcd_ca,
            &etcd_leaf,
            algo,
            now,
            &mut out.lines,
        )?;
        issue_into(
            pki_dir,
            "etcd/peer",
            &etcd_ca,
            &etcd_leaf,
            algo,
            now,
            &mut out.lines,
        )?;
        issue_into(
            pki_dir,
            "etcd/healthcheck-client",
            &etcd_ca,
            &client("kube-etcd-healthcheck-client", &[]),
            algo,
            now,
            &mut out.lines,
        )?;
        issue_into(
            pki_dir,
            "apiserver-etcd-client",
            &etcd_ca,
            &client("kube-apiserver-etcd-client", &[]),
            algo,
            now,
            &mut out.lines,
        )?;
    }
    if pki_dir.join("sa.key").exists() {
        out.lines
            .push("[certs] Using the existing \"sa\" key".to_string());
    } else {
        out.lines
            .push("[certs] Generating \"sa\" key and public key".to_string());
        let sa = algo.generate()?;
        write_file(&pki_dir.join("sa.key"), sa.serialize_pem().as_bytes(), 0o600)?;
        let pub_pem = pem::encode(&pem::Pem::new("PUBLIC KEY", sa.subject_public_key_info()));
        write_file(&pki_dir.join("sa.pub"), pub_pem.as_bytes(), 0o644)?;
    }
    out.ca_hash = ca.hash()?;
    Ok((out, ca))
}

fn ensure_ca(
    dir: &Path,
    base: &str,
    cn: &str,
    algo: KeyAlgo,
    now: SystemTime,
    lines: &mut Vec<String>,
) -> Result<CertAuthority, PkiError> {
    let (crt, key) = (dir.join(format!("{base}.crt")), dir.join(format!("{base}.key")));
    let label = base.replace('/', "-");
    if crt.exists() && key.exists() {
        let read = |p: &PathBuf| {
            fs::read_to_string(p).map_err(|e| PkiError::Load {
                what: p.display().to_string(),
                reason: e.to_string(),
            })
        };
        lines.push(format!("[certs] Using existing {label} certificate authority"));
        return CertAuthority::load(&read(&crt)?, &read(&key)?);
    }
    lines.push(format!("[certs] Generating \"{label}\" certificate and key"));
    let ca = CertAuthority::generate(cn, algo, now)?;
    write_file(&crt, ca.cert_pem.as_bytes(), 0o644)?;
    write_file(&key, ca.key.serialize_pem().as_bytes(), 0o600)?;
    Ok(ca)
}

fn issue_into(
    dir: &Path,
    base: &str,
    ca: &CertAuthority,
    spec: &LeafSpec,
    algo: KeyAlgo,
    now: SystemTime,
    lines: &mut Vec<String>,
) -> Result<(), PkiError> {
    let (crt, key_path) = (dir.join(format!("{base}.crt")), dir.join(format!("{base}.key")));
    let label = base.replace('/', "-");
    if crt.exists() && key_path.exists() {
        lines.push(format!(
            "[certs] Using existing {label} certificate and key on disk"
        ));
        return Ok(());
    }
    lines.push(format!("[certs] Generating \"{label}\" certificate and key"));
    let (cert_pem, key) = ca.issue(spec, algo, now)?;
    write_file(&crt, cert_pem.as_bytes(), 0o644)?;
    write_file(&key_path, key.serialize_pem().as_bytes(), 0o600)
}

/// The kubeconfig phase: admin.conf, super-admin.conf (init node only), kubelet.conf,
/// controller-manager.conf, scheduler.conf in `kube_dir`.
pub fn create_kubeconfigs(
    kube_dir: &Path,
    cfg: &InitConfig,
    ca: &CertAuthority,
    now: SystemTime,
) -> Result<Vec<String>, PkiError> {
    let algo = KeyAlgo::from_config(&cfg.cluster.encryption_algorithm);
    let cluster = &cfg.cluster.cluster_name;
    let endpoint = control_plane_url(cfg);
    let local = https_url(
        &cfg.init.local_api_endpoint.advertise_address,
        cfg.init.local_api_endpoint.bind_port,
    );
    let node = &cfg.init.node_registration.name;
    let files: [(&str, String, &str, Vec<&str>); 5] = [
        (
            "admin.conf",
            endpoint.clone(),
            "kubernetes-admin",
            vec!["kubeadm:cluster-admins"],
        ),
        (
            "super-admin.conf",
            endpoint.clone(),
            "kubernetes-super-admin",
            vec!["system:masters"],
        ),
        // ControlPlaneKubeletLocalMode is GA: a control plane's kubelet talks to its local API server.
        ("kubelet.conf", local.clone(), "", vec!["system:nodes"]),
        (
            "controller-manager.conf",
            local.clone(),
            "system:kube-controller-manager",
            vec![],
        ),
        ("scheduler.conf", local, "system:kube-scheduler", vec![]),
    ];
    let mut lines = vec![format!(
        "[kubeconfig] Using kubeconfig folder {}",
        crate::gofmt::quote(&kube_dir.display().to_string())
    )];
    for (file, server, user, groups) in files {
        let path = kube_dir.join(file);
        if path.exists() {
            lines.push(format!(
                "[kubeconfig] Using existing kubeconfig file: {}",
                crate::gofmt::quote(&path.display().to_string())
            ));
            continue;
        }
        let user = if file == "kubelet.conf" {
            format!("system:node:{node}")
        } else {
            user.to_string()
        };
        let spec = LeafSpec {
            common_name: user.clone(),
            organizations: groups.iter().map(|s| s.to_string()).collect(),
            dns_names: vec![],
            ips: vec![],
            usage: Usage::Client,
        };
        let (cert, key) = ca.issue(&spec, algo, now)?;
        lines.push(format!("[kubeconfig] Writing {}", crate::gofmt::quote(file)));
        let text = kubeconfig(&server, cluster, &user, &ca.cert_pem, &cert, &key.serialize_pem());
        write_file(&path, text.as_bytes(), 0o600)?;
    }
    Ok(lines)
}

#[cfg(test)]
mod tests;
