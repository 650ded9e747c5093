//! The secrets of a run: the bootstrap token and the certificate key, minted fresh per run from
//! the OS CSPRNG, and the CA pin (`sha256:` of the cluster CA's public key) that joins check.
//!
//! kbs keeps no state file (design.md), so nothing here is stored: `kbs apply` mints, hands the
//! values to the configs of this run, and forgets them. Both are [`Secret`]s, whose `Debug` and
//! `Display` print `[redacted]`, so a `Secrets` inside an error or a log line cannot leak.
//!
//! ```
//! let s = kbs_cluster::Secrets::mint().unwrap();
//! assert!(kbs_cluster::secrets::is_bootstrap_token(s.token().expose()));
//! assert_eq!(s.certificate_key().expose().len(), 64);
//! assert!(!format!("{s} {s:?}").contains(s.token().expose()));
//! ```

use std::fmt;

use kbs_ssh::Secret;
use ring::rand::{SecureRandom, SystemRandom};

/// kubeadm's bootstrap token alphabet (`bootstraputil.validBootstrapTokenChars`).
const TOKEN_CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("the system random number generator failed")]
    Random,
    /// The message never contains the value: it may be a real secret.
    #[error("{what} has the wrong format: {expected}")]
    Format {
        what: &'static str,
        expected: &'static str,
    },
    #[error("cannot read the CA certificate: {0}")]
    Certificate(String),
}

/// The bootstrap token and certificate key of one run.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    token: Secret,
    certificate_key: Secret,
}

impl Secrets {
    /// A fresh token (`[a-z0-9]{6}.[a-z0-9]{16}`) and certificate key (hex of 32 random bytes).
    pub fn mint() -> Result<Secrets, SecretsError> {
        let rng = SystemRandom::new();
        Ok(Secrets {
            token: mint_token(&rng)?,
            certificate_key: mint_certificate_key(&rng)?,
        })
    }

    /// Secrets given from outside (a token from `kubeadm token create`, fixed values in tests);
    /// checked the way kubeadm checks them.
    pub fn from_parts(token: &str, certificate_key: &str) -> Result<Secrets, SecretsError> {
        if !is_bootstrap_token(token) {
            return Err(SecretsError::Format {
                what: "bootstrap token",
                expected: "6 then 16 characters from [a-z0-9], joined by `.`",
            });
        }
        if !is_certificate_key(certificate_key) {
            return Err(SecretsError::Format {
                what: "certificate key",
                expected: "64 hex digits (32 bytes)",
            });
        }
        Ok(Secrets {
            token: Secret::new(token),
            certificate_key: Secret::new(certificate_key),
        })
    }

    /// For `discovery.bootstrapToken.token` and `bootstrapTokens[].token`.
    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// For `certificateKey`: decrypts the control-plane certificates kubeadm uploads.
    pub fn certificate_key(&self) -> &Secret {
        &self.certificate_key
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("token", &self.token)
            .field("certificate_key", &self.certificate_key)
            .finish()
    }
}

impl fmt::Display for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bootstrap token {}, certificate key {}",
            self.token, self.certificate_key
        )
    }
}

/// `[a-z0-9]{6}.[a-z0-9]{16}`, drawn without modulo bias (rejection sampling).
fn mint_token(rng: &dyn SecureRandom) -> Result<Secret, SecretsError> {
    let id = random_chars(rng, 6)?;
    let secret = random_chars(rng, 16)?;
    Ok(Secret::new(format!("{id}.{secret}")))
}

fn random_chars(rng: &dyn SecureRandom, n: usize) -> Result<String, SecretsError> {
    // 252 = 7 × 36: bytes at or above it are redrawn, so each character is uniform.
    let limit = (256 / TOKEN_CHARS.len() * TOKEN_CHARS.len()) as u8;
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 32];
    while out.len() < n {
        rng.fill(&mut buf).map_err(|_| SecretsError::Random)?;
        for &b in buf.iter().filter(|&&b| b < limit) {
            if out.len() == n {
                break;
            }
            out.push(TOKEN_CHARS[b as usize % TOKEN_CHARS.len()] as char);
        }
    }
    Ok(out)
}

/// Hex of 32 random bytes: the AES-256 key kubeadm encrypts the uploaded certificates with.
fn mint_certificate_key(rng: &dyn SecureRandom) -> Result<Secret, SecretsError> {
    let mut key = [0u8; 32];
    rng.fill(&mut key).map_err(|_| SecretsError::Random)?;
    let hex = hex(&key);
    key.fill(0);
    Ok(Secret::new(hex))
}

/// Whether `s` is a bootstrap token as kubeadm accepts it.
pub fn is_bootstrap_token(s: &str) -> bool {
    let ok = |part: &str, len: usize| part.len() == len && part.bytes().all(|b| TOKEN_CHARS.contains(&b));
    matches!(s.split_once('.'), Some((id, secret)) if ok(id, 6) && ok(secret, 16))
}

/// Whether `s` is a certificate key: 64 hex digits.
pub fn is_certificate_key(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `sha256:<hex>` of the DER SubjectPublicKeyInfo of the first certificate in `pem` — the value
/// of `discovery.bootstrapToken.caCertHashes` (kubeadm's `pubkeypin.Hash`), the same as
/// `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`.
pub fn ca_cert_hash(pem: &str) -> Result<String, SecretsError> {
    let block = first_certificate_block(pem)
        .ok_or_else(|| SecretsError::Certificate("no `BEGIN CERTIFICATE` block".into()))?;
    let (label, der) = pem_rfc7468::decode_vec(block.as_bytes())
        .map_err(|e| SecretsError::Certificate(format!("PEM: {e}")))?;
    if label != "CERTIFICATE" {
        return Err(SecretsError::Certificate(format!("a {label}, not a CERTIFICATE")));
    }
    let spki = subject_public_key_info(&der)
        .ok_or_else(|| SecretsError::Certificate("not a DER X.509 certificate".into()))?;
    let digest = ring::digest::digest(&ring::digest::SHA256, spki);
    Ok(format!("sha256:{}", hex(digest.as_ref())))
}

/// The first `-----BEGIN CERTIFICATE-----` … `-----END CERTIFICATE-----` of a file that may hold
/// several (a bundle) or text around them.
fn first_certificate_block(pem: &str) -> Option<String> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let start = pem.find(BEGIN)?;
    let end = start + pem[start..].find(END)? + END.len();
    Some(format!("{}\n", pem[start..end].replace("\r\n", "\n")))
}

/// One DER element at the start of `der`: (tag, contents, rest).
fn der_element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The whole SubjectPublicKeyInfo element (tag and length included) of an X.509 certificate:
/// Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber,
/// signature, issuer, validity, subject, subjectPublicKeyInfo, … }, … } (RFC 5280 §4.1).
fn subject_public_key_info(der: &[u8]) -> Option<&[u8]> {
    const SEQUENCE: u8 = 0x30;
    let (tag, certificate, _) = der_element(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = der_element(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    // The explicit [0] version is absent in v1 certificates.
    if rest.first() == Some(&0xa0) {
        rest = der_element(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        rest = der_element(rest)?.2;
    }
    let (tag, _, after) = der_element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    Some(&rest[..rest.len() - after.len()])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_secrets_have_kubeadm_formats_and_differ() {
        let a = Secrets::mint().unwrap();
        let b = Secrets::mint().unwrap();
        assert!(is_bootstrap_token(a.token().expose()), "{}", a.token().expose());
        assert!(is_certificate_key(a.certificate_key().expose()));
        assert_ne!(a.token().expose(), b.token().expose());
        assert_ne!(a.certificate_key().expose(), b.certificate_key().expose());
        assert!(a
            .certificate_key()
            .expose()
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
    }

    #[test]
    fn tokens_use_the_whole_alphabet() {
        let rng = SystemRandom::new();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.extend(random_chars(&rng, 16).unwrap().bytes());
        }
        assert_eq!(seen.len(), TOKEN_CHARS.len());
    }

    #[test]
    fn debug_and_display_redact() {
        let s = Secrets::from_parts("abcdef.0123456789abcdef", &"0f".repeat(32)).unwrap();
        let shown = format!("{s} {s:?} {:?}", Some(&s));
        assert!(!shown.contains("abcdef"), "{shown}");
        assert!(!shown.contains("0f0f"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn formats_are_checked_without_echoing_the_value() {
        for bad in [
            "ABCDEF.0123456789abcdef",
            "abcdef0123456789abcdef",
            "abcde.0123456789abcdefg",
        ] {
            let e = Secrets::from_parts(bad, &"0".repeat(64)).unwrap_err().to_string();
            assert!(!e.contains(bad), "{e}");
        }
        assert!(Secrets::from_parts("abcdef.0123456789abcdef", &"0".repeat(32)).is_err());
        assert!(Secrets::from_parts("abcdef.0123456789abcdef", &"g".repeat(64)).is_err());
    }

    #[test]
    fn not_a_certificate() {
        assert!(ca_cert_hash("hello").is_err());
        let key = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(ca_cert_hash(key).is_err());
    }
}
