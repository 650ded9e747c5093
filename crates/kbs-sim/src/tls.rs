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
    let cfg = rustls::ServerConfig::builder_with_provider(p)
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
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(provider::default_provider()))
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
