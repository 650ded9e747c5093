//! Public-key authentication: the ssh-agent's identities first, then key files (like OpenSSH).
//!
//! RSA signatures always use the best SHA-2 hash the server advertises (`rsa-sha2-512/256`): SHA-1
//! `ssh-rsa` is refused by OpenSSH >= 8.8, so we never fall back to it. Every key tried is recorded
//! by fingerprint so a failure says exactly what was offered.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{AuthResult, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use tracing::debug;

use crate::host_keys::ClientHandler;
use crate::options::{home_dir, ConnectOptions, KeyOutcome};
use crate::{Error, Secret, Target};

/// Environment variable holding the passphrase of encrypted key files.
pub const PASSPHRASE_ENV: &str = "KBS_KEY_PASSPHRASE";

/// A target's key files, loaded (and decrypted, prompting if need be) before connecting, so a
/// human typing a passphrase is never racing a network timeout.
pub(crate) struct KeyFiles(Vec<(PathBuf, Result<Arc<PrivateKey>, Error>)>);

pub(crate) async fn load_keys(target: &Target, opts: &ConnectOptions) -> KeyFiles {
    let mut keys = Vec::new();
    for path in key_files(target) {
        match load_key(&path, target, opts).await {
            Ok(Some(k)) => keys.push((path, Ok(k))),
            Ok(None) => {}
            Err(e) => keys.push((path, Err(e))),
        }
    }
    KeyFiles(keys)
}

pub(crate) async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    target: &Target,
    keys: &KeyFiles,
) -> Result<(), Error> {
    let session_err = |reason: String| Error::Session {
        host: target.name.clone(),
        during: "authenticating".into(),
        reason,
    };
    // Asked only when an RSA key comes up: the query waits up to 1 s on servers that never send
    // their signature algorithms.
    let mut rsa_hash: Option<Option<HashAlg>> = None;
    let mut tried: Vec<String> = Vec::new();
    let mut server_accepts = String::from("unknown");

    if target.use_agent {
        match AgentClient::connect_env().await {
            Ok(mut agent) => {
                let identities = agent.request_identities().await.unwrap_or_else(|e| {
                    debug!(host = %target.name, "ssh-agent did not list its keys: {e}");
                    Vec::new()
                });
                for id in identities {
                    let AgentIdentity::PublicKey { key, comment } = id else {
                        continue;
                    };
                    let hash = hash_for(handle, &key, &mut rsa_hash)
                        .await
                        .map_err(|e| session_err(e.to_string()))?;
                    tried.push(format!("agent key {} ({comment})", fingerprint(&key)));
                    debug!(host = %target.name, key = %fingerprint(&key), "offering agent key");
                    match handle
                        .authenticate_publickey_with(&target.user, key, hash, &mut agent)
                        .await
                    {
                        Ok(AuthResult::Success) => return Ok(()),
                        Ok(AuthResult::Failure {
                            remaining_methods, ..
                        }) => {
                            server_accepts = methods(&remaining_methods);
                        }
                        Err(e) => debug!(host = %target.name, "agent could not sign: {e}"),
                    }
                }
            }
            // No agent is normal (CI, cron); key files still get their turn.
            Err(e) => debug!(host = %target.name, "no ssh-agent: {e}"),
        }
    }

    let mut unusable = None;
    for (path, key) in &keys.0 {
        let key = match key {
            Ok(k) => k.clone(),
            Err(e) => {
                // Reported only if nothing else works: an agent key may well succeed.
                unusable.get_or_insert(e);
                continue;
            }
        };
        let public = key.public_key().clone();
        tried.push(format!("key file {} ({})", path.display(), fingerprint(&public)));
        debug!(host = %target.name, key = %path.display(), "offering key file");
        let hash = hash_for(handle, &public, &mut rsa_hash)
            .await
            .map_err(|e| session_err(e.to_string()))?;
        let with_hash = PrivateKeyWithHashAlg::new(key, hash);
        match handle
            .authenticate_publickey(&target.user, with_hash)
            .await
            .map_err(|e| session_err(e.to_string()))?
        {
            AuthResult::Success => return Ok(()),
            AuthResult::Failure {
                remaining_methods, ..
            } => server_accepts = methods(&remaining_methods),
        }
    }

    if let Some(Error::Key { host, path, reason }) = unusable {
        // The key the user pointed at could not even be offered: that is the fix to ask for.
        return Err(Error::Key {
            host: host.clone(),
            path: path.clone(),
            reason: reason.clone(),
        });
    }
    Err(Error::AuthFailed {
        host: target.name.clone(),
        user: target.user.clone(),
        tried: if tried.is_empty() {
            "no keys (no agent identities, no readable key files)".into()
        } else {
            tried.join(", ")
        },
        server_accepts,
    })
}

/// The signature hash for `key`: `None` for non-RSA keys, for RSA the best SHA-2 hash the server
/// takes (looked up once per connection into `cache`).
async fn hash_for(
    handle: &Handle<ClientHandler>,
    key: &PublicKey,
    cache: &mut Option<Option<HashAlg>>,
) -> Result<Option<HashAlg>, russh::Error> {
    if !key.algorithm().is_rsa() {
        return Ok(None);
    }
    if let Some(h) = cache {
        return Ok(*h);
    }
    let hash = match handle.best_supported_rsa_hash().await? {
        Some(Some(h)) => Some(h),
        // The server did not say (no EXT_INFO) or only knows SHA-1: SHA-256 is what any OpenSSH since
        // 7.2 verifies; SHA-1 would be refused by current servers anyway.
        Some(None) | None => Some(HashAlg::Sha256),
    };
    *cache = Some(hash);
    Ok(hash)
}

fn fingerprint(key: &PublicKey) -> String {
    format!(
        "{} {}",
        key.algorithm().as_str(),
        key.fingerprint(HashAlg::Sha256)
    )
}

fn methods(set: &russh::MethodSet) -> String {
    let names: Vec<String> = set.iter().map(|m| String::from(<&str>::from(m))).collect();
    if names.is_empty() {
        "nothing more".into()
    } else {
        names.join(", ")
    }
}

fn key_files(target: &Target) -> Vec<PathBuf> {
    if !target.identity_files.is_empty() {
        return target.identity_files.clone();
    }
    let Some(home) = home_dir() else { return Vec::new() };
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|n| home.join(".ssh").join(n))
        .filter(|p| p.exists())
        .collect()
}

/// Load (and if needed decrypt) a key, once per run: the outcome, good or bad, is cached so the
/// user is asked for a passphrase once, not once per host. `Ok(None)`: no such default key file.
async fn load_key(
    path: &Path,
    target: &Target,
    opts: &ConnectOptions,
) -> Result<Option<Arc<PrivateKey>>, Error> {
    // Held across the prompt on purpose: parallel connections wait for one answer.
    let mut cache = opts.keys.0.lock().await;
    let outcome = match cache.get(path) {
        Some(cached) => cached.clone(),
        None => {
            let outcome = read_key(path, target, opts).await;
            cache.insert(path.to_path_buf(), outcome.clone());
            outcome
        }
    };
    outcome.map_err(|reason| Error::Key {
        host: target.name.clone(),
        path: path.to_path_buf(),
        reason,
    })
}

async fn read_key(path: &Path, target: &Target, opts: &ConnectOptions) -> KeyOutcome {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(t) => t,
        // Default key files are optional; files the user named are not.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && target.identity_files.is_empty() => {
            return Ok(None)
        }
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    match russh::keys::decode_secret_key(&text, None) {
        Ok(k) => Ok(Some(Arc::new(k))),
        Err(russh::keys::Error::KeyIsEncrypted) => {
            let Some(passphrase) = passphrase(path, opts).await else {
                return Err(format!(
                    "it is encrypted and no passphrase was given; set {PASSPHRASE_ENV} or run kbs on a terminal to be asked"
                ));
            };
            russh::keys::decode_secret_key(&text, Some(passphrase.expose()))
                .map(|k| Some(Arc::new(k)))
                .map_err(|_| "the passphrase does not decrypt it; check the passphrase".to_string())
        }
        Err(e) => Err(format!("not a usable private key: {e}")),
    }
}

async fn passphrase(path: &Path, opts: &ConnectOptions) -> Option<Secret> {
    if let Some(p) = &opts.key_passphrase {
        return Some(p.clone());
    }
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        return Some(Secret::new(p));
    }
    let prompt = opts.prompt.clone()?;
    let path = path.to_path_buf();
    // Prompts block on the terminal; keep them off the async workers.
    tokio::task::spawn_blocking(move || prompt.passphrase(&path))
        .await
        .ok()
        .flatten()
}
