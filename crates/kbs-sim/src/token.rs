//! Bootstrap tokens: format, generation and expiry.
//!
//! Format and messages follow k8s.io/cluster-bootstrap (token/api `BootstrapTokenPattern`,
//! token/util `IsValidBootstrapToken`) and kubeadm's `bootstraptoken/v1` `NewBootstrapTokenString`.

use std::fmt;
use std::time::{Duration, SystemTime};

use ring::rand::{SecureRandom, SystemRandom};

/// kubeadm's default token TTL (`--token-ttl`, `bootstrapTokens[].ttl`).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// The pattern as cluster-bootstrap spells it; kubeadm quotes it in its error.
pub const BOOTSTRAP_TOKEN_PATTERN: &str = r"\A([a-z0-9]{6})\.([a-z0-9]{16})\z";
/// Default usages of a kubeadm-created token.
pub const DEFAULT_USAGES: [&str; 2] = ["signing", "authentication"];
/// Default extra group of a kubeadm-created token.
pub const DEFAULT_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `abcdef.0123456789abcdef`: a public id and a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    pub id: String,
    pub secret: String,
}

impl fmt::Debug for BootstrapToken {
    // The secret never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.<redacted>)", self.id)
    }
}

impl fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

fn is_token_part(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// cluster-bootstrap `IsValidBootstrapToken`.
pub fn is_valid(token: &str) -> bool {
    match token.split_once('.') {
        Some((id, secret)) => is_token_part(id, 6) && is_token_part(secret, 16),
        None => false,
    }
}

impl BootstrapToken {
    /// Parses a token; the error is kubeadm's `NewBootstrapTokenString` message.
    pub fn parse(token: &str) -> Result<BootstrapToken, String> {
        if !is_valid(token) {
            return Err(format!(
                "the bootstrap token {} was not of the form {}",
                crate::gofmt::quote(token),
                crate::gofmt::quote(BOOTSTRAP_TOKEN_PATTERN)
            ));
        }
        let (id, secret) = token.split_once('.').unwrap_or_default();
        Ok(BootstrapToken {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// A fresh random token from the system CSPRNG.
    pub fn generate() -> Result<BootstrapToken, String> {
        Ok(BootstrapToken {
            id: random_chars(6)?,
            secret: random_chars(16)?,
        })
    }

    /// `bootstrap-token-<id>`, the Secret in kube-system holding the token.
    pub fn secret_name(&self) -> String {
        format!("bootstrap-token-{}", self.id)
    }
}

fn random_chars(n: usize) -> Result<String, String> {
    let rng = SystemRandom::new();
    let mut out = String::with_capacity(n);
    // Rejection sampling keeps every character equally likely (252 = 7 * 36).
    while out.len() < n {
        let mut buf = [0u8; 32];
        rng.fill(&mut buf)
            .map_err(|_| "unable to generate bootstrap token: no randomness".to_string())?;
        for b in buf {
            if b < 252 && out.len() < n {
                out.push(ALPHABET[(b % 36) as usize] as char);
            }
        }
    }
    Ok(out)
}

/// A token as the API server stores it (the `bootstrap-token-<id>` Secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub token: BootstrapToken,
    pub description: String,
    /// `None` = never expires (`--ttl 0`).
    pub expires: Option<SystemTime>,
    pub usages: Vec<String>,
    pub groups: Vec<String>,
}

impl TokenRecord {
    /// A token with kubeadm's default usages and group, expiring `ttl` after `now`
    /// (a zero TTL means no expiry, as in kubeadm).
    pub fn new(token: BootstrapToken, now: SystemTime, ttl: Duration) -> TokenRecord {
        TokenRecord {
            token,
            description: String::new(),
            expires: if ttl.is_zero() { None } else { Some(now + ttl) },
            usages: DEFAULT_USAGES.iter().map(|s| s.to_string()).collect(),
            groups: vec![DEFAULT_GROUP.to_string()],
        }
    }

    /// Expired at `now`? The token cleaner deletes a token once `expiration` is past.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        matches!(self.expires, Some(e) if now >= e)
    }
}

/// What a join sees when its token is unknown or expired: the cluster-info ConfigMap has
/// no JWS signature for the token id (kubeadm discovery/token, `retrieveValidatedConfigInfo`).
pub fn no_jws_signature_message(token_id: &str) -> String {
    format!(
        "could not find a JWS signature in the cluster-info ConfigMap for token ID {}",
        crate::gofmt::quote(token_id)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_valid_and_differ() {
        let a = BootstrapToken::generate().unwrap();
        let b = BootstrapToken::generate().unwrap();
        assert!(is_valid(&a.to_string()), "{a}");
        assert_ne!(a, b);
        assert_eq!(BootstrapToken::parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn bad_token_format_has_kubeadms_message() {
        let err = BootstrapToken::parse("abcdef.0123456789ABCDEF").unwrap_err();
        assert_eq!(
            err,
            r#"the bootstrap token "abcdef.0123456789ABCDEF" was not of the form "\\A([a-z0-9]{6})\\.([a-z0-9]{16})\\z""#
        );
        for bad in [
            "",
            "abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcdef0",
            "abcdef:0123456789abcdef",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
        assert!(is_valid("abcdef.0123456789abcdef"));
    }

    #[test]
    fn token_expiry() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let rec = TokenRecord::new(
            BootstrapToken::parse("abcdef.0123456789abcdef").unwrap(),
            now,
            DEFAULT_TOKEN_TTL,
        );
        assert!(!rec.is_expired(now));
        assert!(!rec.is_expired(now + Duration::from_secs(24 * 3600 - 1)));
        assert!(rec.is_expired(now + Duration::from_secs(24 * 3600)));
        let forever = TokenRecord::new(rec.token.clone(), now, Duration::ZERO);
        assert!(!forever.is_expired(now + Duration::from_secs(10 * 365 * 86_400)));
        assert_eq!(format!("{:?}", rec.token), "BootstrapToken(abcdef.<redacted>)");
    }
}
