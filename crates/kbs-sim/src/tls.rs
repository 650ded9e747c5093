//! rustls (ring provider, no aws-lc-rs) configurations for the simulated components:
//! the API server verifies client certificates against the cluster CA but lets
//! certificate-less clients through (bearer tokens, anonymous cluster-info), as
//! kube-apiserver does with `--client-ca-file`; clients verify the server against the CA
//! from their kubeconfig.

use std::sync::Arc;

use rustls::crypto::ring as provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

fn err(what: &str, e: impl std::fmt::Display) -> String {
    format!("{what}: {e}")
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let v: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| err("reading certificates", e))?;
    if v.is_empty() {
        return Err("no certificate in PEM data".into());
    }
    Ok(v)
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| err("reading private key", e))
}

fn roots(ca_pem: &str) -> Result<rustls::RootCertStore, String> {
    let mut store = rustls::RootCertStore::empty();
    for c in certs(ca_pem)? {
        store.add(c).map_err(|e| err("adding CA", e))?;
    }
    Ok(store)
}

/// Certificates are checked against the lab clock, not the machine's: a host whose clock the lab
/// moved ahead 3 hours issues and checks certificates in that time, as a real host with that
/// clock would. (rustls' default reads the system clock, so a fresh certificate would look "not
/// yet valid" and the handshake fail with CertificateExpired.)
#[derive(Debug)]
struct LabTime;

impl rustls::time_provider::TimeProvider for LabTime {
    fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
        let since = crate::clock::Clock::default()
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(rustls::pki_types::UnixTime::since_unix_epoch(since))
    }
}

/// Server side: serve `cert_pem`/`key_pem`; accept client certificates signed by `ca_pem`.
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let p = Arc::new(provider::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca_pem)?), p.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| err("client verifier", e))?;
    let cfg = rustls::ServerConfig::builder_with_details(p, Arc::new(LabTime))
        .with_safe_default_protocol_versions()
        .map_err(|e| err("TLS versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(cert_pem)?, key(key_pem)?)
        .map_err(|e| err("server certificate", e))?;
    Ok(Arc::new(cfg))
}

/// Client side: trust `ca_pem`; present a client certificate when given.
pub fn client_config(
    ca_pem: &str,
    client: Option<(&str, &str)>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let b =
        rustls::ClientConfig::builder_with_details(Arc::new(provider::default_provider()), Arc::new(LabTime))
            .with_safe_default_protocol_versions()
            .map_err(|e| err("TLS versions", e))?
            .with_root_certificates(roots(ca_pem)?);
    let cfg = match client {
        Some((c, k)) => b
            .with_client_auth_cert(certs(c)?, key(k)?)
            .map_err(|e| err("client certificate", e))?,
        None => b.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// CN and O of a DER certificate: the user and groups kube-apiserver's x509 authenticator
/// derives (k8s.io/apiserver pkg/authentication/request/x509 `CommonNameUserConversion`).
pub fn subject_identity(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let cn = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let orgs = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some((cn, orgs))
}

/// Accepts any server certificate: kubeadm's first cluster-info fetch, before it knows the
/// CA (discovery/token `retrieveValidatedConfigInfo` uses an insecure client, then checks
/// the JWS and the CA pin of what it got).
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client configuration that skips server verification (discovery only).
pub fn insecure_client_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let p = Arc::new(provider::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| err("TLS versions", e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(p)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}
