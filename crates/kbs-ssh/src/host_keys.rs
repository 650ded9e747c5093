//! Host key verification against known_hosts, the way OpenSSH does it.
//!
//! We parse known_hosts ourselves instead of using `russh::keys::known_hosts` because a changed key
//! must be reported with its exact file and line (russh skips comment lines when counting), and we
//! also honour wildcards, negations and `@revoked`, which russh ignores. The russh [`Handler`] here
//! only records the verdict; `connect` turns it into an [`Error`].

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::client::Handler;
use russh::keys::{Algorithm, HashAlg, PublicKey};
use sha1::Sha1;
use tracing::{debug, info};

use crate::Error;

/// The name a host's keys are recorded under: `host`, or `[host]:port` off port 22.
pub(crate) fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// One known_hosts line that names the host.
#[derive(Debug)]
pub(crate) struct KnownEntry {
    pub file: PathBuf,
    pub line: usize,
    pub revoked: bool,
    pub key: PublicKey,
}

/// All entries for `lookup` in `files`, in file order. Missing files are empty.
pub(crate) fn entries_for(files: &[PathBuf], lookup: &str, host: &str) -> Result<Vec<KnownEntry>, Error> {
    let mut out = Vec::new();
    for file in files {
        let text = match fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::KnownHosts {
                    host: host.to_string(),
                    file: file.clone(),
                    reason: e.to_string(),
                })
            }
        };
        for (idx, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let Some(mut patterns) = fields.next() else {
                continue;
            };
            let mut revoked = false;
            if let Some(marker) = patterns.strip_prefix('@') {
                match marker {
                    "revoked" => revoked = true,
                    // @cert-authority lines vouch for CAs, not host keys: not ours to use.
                    _ => continue,
                }
                let Some(p) = fields.next() else { continue };
                patterns = p;
            }
            let (Some(_algo), Some(b64)) = (fields.next(), fields.next()) else {
                continue;
            };
            if !host_matches(lookup, patterns) {
                continue;
            }
            match russh::keys::parse_public_key_base64(b64) {
                Ok(key) => out.push(KnownEntry {
                    file: file.clone(),
                    line: idx + 1,
                    revoked,
                    key,
                }),
                // A key type we cannot parse cannot match the offered key either.
                Err(e) => {
                    debug!(file = %file.display(), line = idx + 1, "skipping unparsable known_hosts key: {e}")
                }
            }
        }
    }
    Ok(out)
}

/// OpenSSH pattern-list semantics: comma-separated patterns, `!` negates (and wins), `*`/`?`
/// wildcards, `|1|salt|hmac` hashed names.
fn host_matches(lookup: &str, patterns: &str) -> bool {
    let mut matched = false;
    for pat in patterns.split(',') {
        let (negated, pat) = match pat.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pat),
        };
        let hit = if let Some(hashed) = pat.strip_prefix("|1|") {
            hashed_matches(lookup, hashed)
        } else {
            wildcard_matches(&pat.to_ascii_lowercase(), &lookup.to_ascii_lowercase())
        };
        if hit {
            if negated {
                return false;
            }
            matched = true;
        }
    }
    matched
}

fn hashed_matches(lookup: &str, salt_and_hash: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (BASE64.decode(salt.as_bytes()), BASE64.decode(hash.as_bytes())) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(lookup.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

fn wildcard_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Serialises appends to known_hosts across the concurrent connections of one run.
static LEARN_LOCK: Mutex<()> = Mutex::new(());

fn learn(file: &Path, lookup: &str, key: &PublicKey, host: &str) -> Result<(), Error> {
    let fail = |reason: String| Error::KnownHosts {
        host: host.to_string(),
        file: file.to_path_buf(),
        reason,
    };
    let openssh = key.to_openssh().map_err(|e| fail(e.to_string()))?;
    let _guard = LEARN_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // Another connection to the same host may have learned it while we waited for the lock.
    let known = entries_for(&[file.to_path_buf()], lookup, host)?;
    if known
        .iter()
        .any(|e| !e.revoked && e.key.key_data() == key.key_data())
    {
        return Ok(());
    }
    if let Some(dir) = file.parent() {
        fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    }
    let needs_newline = match fs::read(file) {
        Ok(bytes) => !bytes.is_empty() && !bytes.ends_with(b"\n"),
        Err(_) => false,
    };
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(|e| fail(e.to_string()))?;
    let mut entry = String::new();
    if needs_newline {
        entry.push('\n');
    }
    entry.push_str(&format!("{lookup} {openssh}\n"));
    // One write so a concurrent reader never sees half a line.
    f.write_all(entry.as_bytes()).map_err(|e| fail(e.to_string()))
}

/// Preferred host key algorithms for a host: those already recorded first, like OpenSSH does, so a
/// host known by its ECDSA key is not asked for an unknown Ed25519 key that we would then refuse.
pub(crate) fn preferred_algorithms(known: &[KnownEntry], defaults: &[Algorithm]) -> Vec<Algorithm> {
    let mut out: Vec<Algorithm> = Vec::new();
    for e in known.iter().filter(|e| !e.revoked) {
        let algs: Vec<Algorithm> = if e.key.algorithm().is_rsa() {
            vec![
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha512),
                },
                Algorithm::Rsa {
                    hash: Some(HashAlg::Sha256),
                },
            ]
        } else {
            vec![e.key.algorithm()]
        };
        for a in algs {
            if defaults.contains(&a) && !out.contains(&a) {
                out.push(a);
            }
        }
    }
    for a in defaults {
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    out
}

/// Settings and verdict slot for one host's check.
#[derive(Clone)]
pub(crate) struct HostKeyPolicy {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub files: Vec<PathBuf>,
    pub accept_new: bool,
}

impl HostKeyPolicy {
    /// Decide on the offered key: `Ok(())` to trust it, otherwise the error to report.
    pub(crate) fn verify(&self, offered: &PublicKey) -> Result<(), Error> {
        let lookup = lookup_name(&self.host, self.port);
        let fingerprint = offered.fingerprint(HashAlg::Sha256).to_string();
        let key = format!("{} {fingerprint}", offered.algorithm().as_str());
        let known = entries_for(&self.files, &lookup, &self.name)?;
        if let Some(e) = known
            .iter()
            .find(|e| e.revoked && e.key.key_data() == offered.key_data())
        {
            return Err(Error::HostKeyRevoked {
                host: self.name.clone(),
                lookup,
                key,
                file: e.file.clone(),
                line: e.line,
            });
        }
        let trusted: Vec<&KnownEntry> = known.iter().filter(|e| !e.revoked).collect();
        if trusted.iter().any(|e| e.key.key_data() == offered.key_data()) {
            debug!(host = %self.name, %fingerprint, "host key matches known_hosts");
            return Ok(());
        }
        // Any recorded key we did not get offered means the host's identity changed: a different key
        // of the same type, or (since we asked for the recorded types first) a type swap.
        if let Some(e) = trusted.first() {
            return Err(Error::HostKeyChanged {
                host: self.name.clone(),
                lookup,
                key,
                file: e.file.clone(),
                line: e.line,
            });
        }
        if self.accept_new {
            let Some(first) = self.files.first() else {
                return Err(Error::InvalidInput {
                    host: self.name.clone(),
                    reason: "accept-new-host-keys needs a known_hosts file to learn into".into(),
                });
            };
            learn(first, &lookup, offered, &self.name)?;
            info!(host = %self.name, %fingerprint, file = %first.display(), "learned new host key");
            return Ok(());
        }
        let files = self
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Err(Error::UnknownHostKey {
            host: self.name.clone(),
            lookup,
            key,
            files: if files.is_empty() {
                "(no known_hosts file configured)".into()
            } else {
                files
            },
        })
    }
}

/// The russh client handler: checks the host key and keeps the verdict for `connect`.
pub(crate) struct ClientHandler {
    pub policy: HostKeyPolicy,
    pub verdict: Arc<Mutex<Option<Error>>>,
}

impl Handler for ClientHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let outcome = match server_public_key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => self.policy.verify(key),
            russh::keys::PublicKeyOrCertificate::Certificate(_) => Err(Error::InvalidInput {
                host: self.policy.name.clone(),
                reason: "the server presented a host certificate; kbs verifies plain host keys only".into(),
            }),
        };
        match outcome {
            Ok(()) => Ok(true),
            Err(e) => {
                *self.verdict.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(host_matches("host01", "host01"));
        assert!(host_matches("host01", "web,host01"));
        assert!(host_matches("[10.0.0.1]:2222", "[10.0.0.1]:2222"));
        assert!(!host_matches("10.0.0.1", "[10.0.0.1]:2222"));
        assert!(host_matches("host01", "host*"));
        assert!(!host_matches("host01", "host*,!host01"));
        assert!(host_matches("host01", "HOST0?"));
    }

    #[test]
    fn hashed_pattern() {
        // `ssh-keygen -H` output for "host01".
        let salt = BASE64.encode(b"0123456789abcdef0123");
        let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(b"0123456789abcdef0123").unwrap();
        mac.update(b"host01");
        let hash = BASE64.encode(&mac.finalize().into_bytes());
        let pat = format!("|1|{salt}|{hash}");
        assert!(host_matches("host01", &pat));
        assert!(!host_matches("host02", &pat));
    }
}
