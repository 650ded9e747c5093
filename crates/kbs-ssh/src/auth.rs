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
use crate::options::{home_dir, ConnectOptions};
use crate::{Error, Secret, Target};

/// Environment variable holding the passphrase of encrypted key files.
pub const PASSPHRASE_ENV: &str = "KBS_KEY_PASSPHRASE";

pub(crate) async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    target: &Target,
    opts: &ConnectOptions,
) -> Result<(), Error> {
    let session_err = |reason: String| Error::Session {
        host: target.name.clone(),
        during: "authenticating".into(),
        reason,
    };
    let rsa_hash = rsa_hash(handle).await.map_err(|e| session_err(e.to_string()))?;
    let mut tried: Vec<String> = Vec::new();
    let mut server_accepts = String::from("unknown");

    if target.use_agent {
        match AgentClient::connect_env().await {
            Ok(mut agent) => {
                let identities = agent.request_identities().await.unwrap_or_default();
                for id in identities {
                    let AgentIdentity::PublicKey { key, comment } = id else {
                        continue;
                    };
                    let hash = hash_for(&key, rsa_hash);
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

    for path in key_files(target) {
        let Some(key) = load_key(&path, target, opts).await? else {
            continue;
        };
        let public = key.public_key().clone();
        tried.push(format!("key file {} ({})", path.display(), fingerprint(&public)));
        debug!(host = %target.name, key = %path.display(), "offering key file");
        let with_hash = PrivateKeyWithHashAlg::new(key, hash_for(&public, rsa_hash));
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

/// The RSA signature hash to use; `None` only for non-RSA keys.
async fn rsa_hash(handle: &Handle<ClientHandler>) -> Result<Option<HashAlg>, russh::Error> {
    Ok(match handle.best_supported_rsa_hash().await? {
        Some(Some(h)) => Some(h),
        // The server did not say (no EXT_INFO) or only knows SHA-1: SHA-256 is what any OpenSSH since
        // 7.2 verifies; SHA-1 would be refused by current servers anyway.
        Some(None) | None => Some(HashAlg::Sha256),
    })
}

fn hash_for(key: &PublicKey, rsa_hash: Option<HashAlg>) -> Option<HashAlg> {
    if key.algorithm().is_rsa() {
        rsa_hash
    } else {
        None
    }
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

/// Load (and if needed decrypt) a key, once per run. `Ok(None)`: skip this key.
async fn load_key(
    path: &Path,
    target: &Target,
    opts: &ConnectOptions,
) -> Result<Option<Arc<PrivateKey>>, Error> {
    let key_err = |reason: String| Error::Key {
        host: target.name.clone(),
        path: path.to_path_buf(),
        reason,
    };
    // Held across the prompt on purpose: parallel connections wait for one answer instead of asking
    // the user once per host.
    let mut cache = opts.keys.0.lock().await;
    if let Some(cached) = cache.get(path) {
        return Ok(cached.clone());
    }
    let text = match tokio::fs::read_to_string(path).await {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && target.identity_files.is_empty() => {
            return Ok(None)
        }
        Err(e) => return Err(key_err(format!("cannot read it: {e}"))),
    };
    let key = match russh::keys::decode_secret_key(&text, None) {
        Ok(k) => Some(k),
        Err(russh::keys::Error::KeyIsEncrypted) => {
            let passphrase = match passphrase(path, opts).await {
                Some(p) => p,
                None => {
                    cache.insert(path.to_path_buf(), None);
                    return Err(key_err(format!(
                        "it is encrypted and no passphrase was given; set {PASSPHRASE_ENV} or run kbs on a terminal to be asked"
                    )));
                }
            };
            match russh::keys::decode_secret_key(&text, Some(passphrase.expose())) {
                Ok(k) => Some(k),
                Err(_) => {
                    return Err(key_err(
                        "the passphrase does not decrypt it; check the passphrase".into(),
                    ))
                }
            }
        }
        Err(e) => return Err(key_err(format!("not a usable private key: {e}"))),
    };
    let key = key.map(Arc::new);
    cache.insert(path.to_path_buf(), key.clone());
    Ok(key)
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
