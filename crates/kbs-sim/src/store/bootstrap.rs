//! What kubeadm keeps in the cluster for joins, in the real shapes:
//! - bootstrap-token Secrets (`kube-system/bootstrap-token-<id>`, type
//!   `bootstrap.kubernetes.io/token`; k8s.io/cluster-bootstrap token/api),
//! - `kube-public/cluster-info` with the CA kubeconfig and one detached HS256 JWS per
//!   signing token (the bootstrapsigner controller; cluster-bootstrap token/jws),
//! - `kube-system/kubeadm-certs`, owned by a 2-hour token so it vanishes with it
//!   (phases/copycerts `UploadCerts`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use ring::hmac;
use serde_json::{json, Value};

use super::{ObjectKey, Store};
use crate::certs_upload::{CertificateKey, UploadedCerts, KUBEADM_CERTS_SECRET};
use crate::token::{BootstrapToken, TokenRecord};

pub const SECRET_TYPE_BOOTSTRAP_TOKEN: &str = "bootstrap.kubernetes.io/token";
pub const CLUSTER_INFO: &str = "cluster-info";
const JWS_PREFIX: &str = "jws-kubeconfig-";
/// Description kubeadm gives the token that carries the uploaded certs' TTL.
pub const CERTS_TOKEN_DESCRIPTION: &str = "Proxy for managing TTL for the kubeadm-certs secret";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn unb64(v: Option<&Value>) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v?.as_str()?)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Parses the `2026-11-22T02:47:26Z` form kubeadm writes for `expiration`.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let month = time::Month::try_from(n(5..7)? as u8).ok()?;
    let date = time::Date::from_calendar_date(n(0..4)? as i32, month, n(8..10)? as u8).ok()?;
    let t = time::Time::from_hms(n(11..13)? as u8, n(14..16)? as u8, n(17..19)? as u8).ok()?;
    let secs = time::PrimitiveDateTime::new(date, t)
        .assume_utc()
        .unix_timestamp();
    Some(crate::clock::shift(SystemTime::UNIX_EPOCH, secs))
}

/// The Secret for a token (kubeadm `BootstrapTokenToSecret`).
pub fn token_secret(rec: &TokenRecord) -> Value {
    let mut data = serde_json::Map::new();
    data.insert("token-id".into(), json!(b64(&rec.token.id)));
    data.insert("token-secret".into(), json!(b64(&rec.token.secret)));
    if !rec.description.is_empty() {
        data.insert("description".into(), json!(b64(&rec.description)));
    }
    if let Some(exp) = rec.expires {
        data.insert("expiration".into(), json!(b64(&crate::clock::rfc3339(exp))));
    }
    for usage in &rec.usages {
        data.insert(format!("usage-bootstrap-{usage}"), json!(b64("true")));
    }
    if !rec.groups.is_empty() {
        data.insert("auth-extra-groups".into(), json!(b64(&rec.groups.join(","))));
    }
    json!({"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE_BOOTSTRAP_TOKEN,
        "metadata": {"name": rec.token.secret_name(), "namespace": "kube-system"}, "data": data})
}

/// The token a Secret holds, if it is a bootstrap-token Secret.
pub fn token_from_secret(v: &Value) -> Option<TokenRecord> {
    if v.get("type").and_then(Value::as_str) != Some(SECRET_TYPE_BOOTSTRAP_TOKEN) {
        return None;
    }
    let data = v.get("data")?;
    let token = BootstrapToken {
        id: unb64(data.get("token-id"))?,
        secret: unb64(data.get("token-secret"))?,
    };
    let expires = unb64(data.get("expiration")).and_then(|e| parse_rfc3339(&e));
    let usages = data
        .as_object()?
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("usage-bootstrap-")
                .filter(|_| unb64(Some(v)).as_deref() == Some("true"))
        })
        .map(str::to_string)
        .collect();
    let groups = unb64(data.get("auth-extra-groups"))
        .map(|g| g.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let description = unb64(data.get("description")).unwrap_or_default();
    Some(TokenRecord {
        token,
        description,
        expires,
        usages,
        groups,
    })
}

/// Is `v` a bootstrap-token Secret past its expiration?
pub fn token_secret_expired(v: &Value, now: SystemTime) -> bool {
    token_from_secret(v).is_some_and(|t| t.is_expired(now))
}

/// A token that authenticates: exists, secret matches, not expired.
pub fn authenticate(store: &Store, token: &BootstrapToken, now: SystemTime) -> Option<TokenRecord> {
    let key = ObjectKey::new("v1", "Secret", "kube-system", &token.secret_name());
    let rec = token_from_secret(store.get(&key).ok()?)?;
    (rec.token.secret == token.secret && !rec.is_expired(now)).then_some(rec)
}

/// Detached JWS (HS256, `kid` = token id) over `content`, as cluster-bootstrap
/// `ComputeDetachedSignature`: `<header>..<signature>`.
pub fn detached_jws(content: &str, token: &BootstrapToken) -> String {
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = url.encode(format!("{{\"alg\":\"HS256\",\"kid\":\"{}\"}}", token.id));
    let payload = url.encode(content);
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.secret.as_bytes());
    let sig = hmac::sign(&key, format!("{header}.{payload}").as_bytes());
    format!("{header}..{}", url.encode(sig.as_ref()))
}

/// The kubeconfig kubeadm puts in cluster-info (CA data and server, no user).
pub fn cluster_info_kubeconfig(server: &str, ca_pem: &str) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
        b64(ca_pem)
    )
}

/// The bootstrapsigner: one `jws-kubeconfig-<id>` per live token with the signing usage.
pub fn sign_cluster_info(store: &mut Store, now: SystemTime) {
    let key = ObjectKey::new("v1", "ConfigMap", "kube-public", CLUSTER_INFO);
    let Ok(cm) = store.get(&key) else { return };
    let mut cm = cm.clone();
    let Some(kubeconfig) = cm
        .pointer("/data/kubeconfig")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return;
    };
    let tokens: Vec<TokenRecord> = store
        .list("v1", "Secret", Some("kube-system"))
        .into_iter()
        .filter_map(token_from_secret)
        .filter(|t| !t.is_expired(now) && t.usages.iter().any(|u| u == "signing"))
        .collect();
    let mut data = serde_json::Map::new();
    data.insert("kubeconfig".into(), json!(kubeconfig));
    for t in tokens {
        data.insert(
            format!("{JWS_PREFIX}{}", t.token.id),
            json!(detached_jws(&kubeconfig, &t.token)),
        );
    }
    if cm.get("data") != Some(&Value::Object(data.clone())) {
        cm["data"] = Value::Object(data);
        let _ = store.update(cm, now);
    }
}

/// Token discovery against a cluster-info ConfigMap (discovery/token
/// `retrieveValidatedConfigInfo`): the JWS for the token must exist and verify, and the CA
/// it carries must match a pin (unless none were given: unsafeSkipCAVerification).
/// Returns the CA PEM.
pub fn verify_cluster_info(
    cm: &Value,
    token: &BootstrapToken,
    pins: &crate::discovery::PinSet,
) -> Result<String, String> {
    let kubeconfig = cm
        .pointer("/data/kubeconfig")
        .and_then(Value::as_str)
        .ok_or("there is no kubeconfig key in the cluster-info ConfigMap")?;
    let sig = cm
        .pointer(&format!("/data/{JWS_PREFIX}{}", token.id))
        .and_then(Value::as_str)
        .ok_or_else(|| crate::token::no_jws_signature_message(&token.id))?;
    if sig != detached_jws(kubeconfig, token) {
        return Err(
            "failed to verify JWS signature of received cluster info object, can't trust this API Server"
                .to_string(),
        );
    }
    let parsed: Value = serde_yaml::from_str(kubeconfig)
        .map_err(|e| format!("couldn't parse the kubeconfig file in the cluster-info ConfigMap: {e}"))?;
    let ca = unb64(parsed.pointer("/clusters/0/cluster/certificate-authority-data"))
        .ok_or("cluster-info has no CA data")?;
    if !pins.is_empty() {
        let pin = crate::pki::ca_cert_hash(&ca).map_err(|e| e.to_string())?;
        pins.check(&pin)?;
    }
    Ok(ca)
}

/// `kubeadm init phase upload-certs --upload-certs`: a 2-hour token without usages owns
/// the `kubeadm-certs` Secret holding the encrypted files. Returns the owner token.
pub fn upload_certs(
    store: &mut Store,
    files: &BTreeMap<String, Vec<u8>>,
    key: &CertificateKey,
    now: SystemTime,
) -> Result<BootstrapToken, String> {
    let sealed = UploadedCerts::seal(files, key, now)?;
    let token = BootstrapToken::generate()?;
    let mut rec = TokenRecord::new(token.clone(), now, crate::certs_upload::UPLOADED_CERTS_TTL);
    rec.usages.clear();
    rec.groups.clear();
    rec.description = CERTS_TOKEN_DESCRIPTION.to_string();
    let owner = store.create(token_secret(&rec), now).map_err(|e| e.to_string())?;
    let data: serde_json::Map<String, Value> = sealed
        .data
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                json!(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": KUBEADM_CERTS_SECRET, "namespace": "kube-system",
            "ownerReferences": [{"apiVersion": "v1", "kind": "Secret", "name": token.secret_name(),
                "uid": owner["metadata"]["uid"], "blockOwnerDeletion": true, "controller": true}]},
        "data": data});
    store.apply(secret, now).map_err(|e| e.to_string())?;
    Ok(token)
}

/// `join --control-plane`'s download-certs: decrypted files or kubeadm's errors.
pub fn download_certs(store: &Store, key: &CertificateKey) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let k = ObjectKey::new("v1", "Secret", "kube-system", KUBEADM_CERTS_SECRET);
    let secret = store.get(&k).map_err(|_| {
        format!(
            "error downloading the secret: {}",
            crate::certs_upload::secret_not_found_message()
        )
    })?;
    let mut out = BTreeMap::new();
    for (name, v) in secret
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let enc = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .unwrap_or_default();
        let plain = key
            .decrypt(&enc)
            .map_err(|e| format!("error decoding secret data with provided key: {e}"))?;
        out.insert(name.clone(), plain);
    }
    Ok(out)
}

/// Convenience for tests and the API server: a token created now with kubeadm's defaults.
pub fn create_token(
    store: &mut Store,
    token: &BootstrapToken,
    ttl: Duration,
    now: SystemTime,
) -> Result<(), String> {
    let rec = TokenRecord::new(token.clone(), now, ttl);
    store
        .create(token_secret(&rec), now)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::pki::{CertAuthority, KeyAlgo};

    #[test]
    fn rfc3339_round_trip() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(parse_rfc3339(&crate::clock::rfc3339(t)), Some(t));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn token_secret_round_trip_and_authentication() {
        let now = SystemTime::now();
        let mut s = Store::new();
        let tok = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        create_token(&mut s, &tok, crate::token::DEFAULT_TOKEN_TTL, now).unwrap();
        let rec = authenticate(&s, &tok, now).unwrap();
        assert_eq!(rec.groups, vec![crate::token::DEFAULT_GROUP.to_string()]);
        let wrong = BootstrapToken::parse("abcdef.ffffffffffffffff").unwrap();
        assert!(authenticate(&s, &wrong, now).is_none());
        assert!(authenticate(&s, &tok, now + Duration::from_secs(24 * 3600)).is_none());
    }

    #[test]
    fn discovery_through_cluster_info_then_token_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let offset = dir.path().join("clock-offset");
        let clock = Clock::with_offset_file(&offset);
        let mut s = Store::new();
        let ca = CertAuthority::generate("kubernetes", KeyAlgo::EcdsaP256, clock.now()).unwrap();
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CLUSTER_INFO, "namespace": "kube-public"},
            "data": {"kubeconfig": cluster_info_kubeconfig("https://10.61.0.10:6443", &ca.cert_pem)}});
        s.create(cm, clock.now()).unwrap();
        let tok = BootstrapToken::generate().unwrap();
        create_token(&mut s, &tok, Duration::from_secs(15 * 60), clock.now()).unwrap();
        sign_cluster_info(&mut s, clock.now());
        let cm_key = ObjectKey::new("v1", "ConfigMap", "kube-public", CLUSTER_INFO);
        let pins = crate::discovery::PinSet::from_hashes(&[ca.hash().unwrap()]).unwrap();
        assert_eq!(
            verify_cluster_info(s.get(&cm_key).unwrap(), &tok, &pins).unwrap(),
            ca.cert_pem
        );

        // A pin for another CA is refused.
        let other = CertAuthority::generate("kubernetes", KeyAlgo::EcdsaP256, clock.now()).unwrap();
        let bad = crate::discovery::PinSet::from_hashes(&[other.hash().unwrap()]).unwrap();
        assert!(verify_cluster_info(s.get(&cm_key).unwrap(), &tok, &bad)
            .unwrap_err()
            .contains("none of the public keys"));

        // 16 minutes later the token cleaner and bootstrapsigner have removed it.
        std::fs::write(&offset, "960").unwrap();
        s.collect_garbage(clock.now());
        sign_cluster_info(&mut s, clock.now());
        assert_eq!(
            verify_cluster_info(s.get(&cm_key).unwrap(), &tok, &pins).unwrap_err(),
            format!(
                "could not find a JWS signature in the cluster-info ConfigMap for token ID \"{}\"",
                tok.id
            )
        );
    }

    #[test]
    fn uploaded_certs_vanish_with_their_token_after_two_hours() {
        let dir = tempfile::tempdir().unwrap();
        let offset = dir.path().join("clock-offset");
        let clock = Clock::with_offset_file(&offset);
        let mut s = Store::new();
        let key = CertificateKey::generate().unwrap();
        let mut files = BTreeMap::new();
        files.insert("ca.key".to_string(), b"-----BEGIN PRIVATE KEY-----".to_vec());
        upload_certs(&mut s, &files, &key, clock.now()).unwrap();

        std::fs::write(&offset, "7000").unwrap();
        s.collect_garbage(clock.now());
        assert_eq!(download_certs(&s, &key).unwrap(), files);
        let wrong = CertificateKey::generate().unwrap();
        assert_eq!(
            download_certs(&s, &wrong).unwrap_err(),
            "error decoding secret data with provided key: cipher: message authentication failed"
        );

        std::fs::write(&offset, "7201").unwrap();
        let gone = s.collect_garbage(clock.now());
        assert_eq!(gone.len(), 2, "{gone:?}");
        assert_eq!(
            download_certs(&s, &key).unwrap_err(),
            "error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one"
        );
    }
}
