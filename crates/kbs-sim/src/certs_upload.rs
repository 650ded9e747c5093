//! `kubeadm init --upload-certs` / `kubeadm join --control-plane --certificate-key K`:
//! the control-plane certificates encrypted with the certificate key, living 2 hours.
//!
//! Upstream: cmd/kubeadm/app/phases/copycerts/copycerts.go (AES-GCM via
//! util/crypto `EncryptBytes`: a random 12-byte nonce followed by the sealed data; the
//! `kubeadm-certs` Secret is owned by a bootstrap token with a 2 h TTL and is garbage
//! collected with it) and apis/kubeadm/validation `ValidateCertificateKey`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::gofmt::{hex_decode, hex_encode, FieldError};

/// kubeadm `constants.CertificateKeySize`.
pub const CERTIFICATE_KEY_SIZE: usize = 32;
/// kubeadm `constants.DefaultCertTokenDuration`: uploaded certs and their key live 2 hours.
pub const UPLOADED_CERTS_TTL: Duration = Duration::from_secs(2 * 3600);
/// The Secret's name in kube-system.
pub const KUBEADM_CERTS_SECRET: &str = "kubeadm-certs";

/// The files kubeadm uploads, by Secret key (copycerts `certsToTransfer`, "/" → "-").
pub const UPLOADED_FILES: [(&str, &str); 10] = [
    ("ca.crt", "ca.crt"),
    ("ca.key", "ca.key"),
    ("sa.key", "sa.key"),
    ("sa.pub", "sa.pub"),
    ("front-proxy-ca.crt", "front-proxy-ca.crt"),
    ("front-proxy-ca.key", "front-proxy-ca.key"),
    ("etcd-ca.crt", "etcd/ca.crt"),
    ("etcd-ca.key", "etcd/ca.key"),
    ("front-proxy-client.crt", "front-proxy-client.crt"),
    ("front-proxy-client.key", "front-proxy-client.key"),
];

/// A 32-byte AES key, hex-encoded on the command line and in configs.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateKey([u8; CERTIFICATE_KEY_SIZE]);

impl std::fmt::Debug for CertificateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertificateKey(<redacted>)")
    }
}

impl CertificateKey {
    /// `kubeadm certs certificate-key`: 32 random bytes.
    pub fn generate() -> Result<CertificateKey, String> {
        let mut k = [0u8; CERTIFICATE_KEY_SIZE];
        SystemRandom::new()
            .fill(&mut k)
            .map_err(|_| "couldn't generate random bytes".to_string())?;
        Ok(CertificateKey(k))
    }

    /// Parses the hex form; errors are kubeadm's `ValidateCertificateKey` field errors
    /// for `field_path` (e.g. `certificateKey`, `controlPlane.certificateKey`).
    pub fn parse(hex: &str, field_path: &str) -> Result<CertificateKey, FieldError> {
        let bytes = hex_decode(hex).map_err(|e| {
            FieldError::invalid(field_path, hex, &format!("certificate key decoding error: {e}"))
        })?;
        let arr: [u8; CERTIFICATE_KEY_SIZE] = bytes.as_slice().try_into().map_err(|_| {
            FieldError::invalid(
                field_path,
                hex,
                &format!(
                    "invalid certificate key size {}, the key must be an AES key of size {}",
                    bytes.len(),
                    CERTIFICATE_KEY_SIZE
                ),
            )
        })?;
        Ok(CertificateKey(arr))
    }

    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    fn aead(&self) -> Result<LessSafeKey, String> {
        UnboundKey::new(&AES_256_GCM, &self.0)
            .map(LessSafeKey::new)
            .map_err(|_| "crypto/aes: invalid key size".to_string())
    }

    /// util/crypto `EncryptBytes`: nonce || AES-256-GCM(data).
    pub fn encrypt(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| "couldn't generate random bytes".to_string())?;
        let mut sealed = data.to_vec();
        self.aead()?
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut sealed)
            .map_err(|_| "cipher: encryption failed".to_string())?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(out)
    }

    /// util/crypto `DecryptBytes`; a wrong key gives Go's `cipher: message authentication failed`.
    pub fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        if data.len() < NONCE_LEN {
            return Err("size of data is less than the nonce".to_string());
        }
        let (nonce, sealed) = data.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| "size of data is less than the nonce".to_string())?;
        let mut buf = sealed.to_vec();
        let plain = self
            .aead()?
            .open_in_place(nonce, Aad::empty(), &mut buf)
            .map_err(|_| "cipher: message authentication failed".to_string())?;
        Ok(plain.to_vec())
    }
}

/// The `kube-system/kubeadm-certs` Secret: encrypted files and when they vanish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedCerts {
    /// Secret key → encrypted bytes.
    pub data: BTreeMap<String, Vec<u8>>,
    pub expires: SystemTime,
}

/// The error a control-plane join gets once the Secret is gone (copycerts `getSecret`).
pub fn secret_not_found_message() -> String {
    format!(
        "Secret {} was not found in the {} Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one",
        crate::gofmt::quote(KUBEADM_CERTS_SECRET),
        crate::gofmt::quote("kube-system")
    )
}

impl UploadedCerts {
    /// Encrypts `files` (Secret key → plain bytes) at `now`, expiring after 2 hours.
    pub fn seal(
        files: &BTreeMap<String, Vec<u8>>,
        key: &CertificateKey,
        now: SystemTime,
    ) -> Result<UploadedCerts, String> {
        let mut data = BTreeMap::new();
        for (name, plain) in files {
            data.insert(name.clone(), key.encrypt(plain)?);
        }
        Ok(UploadedCerts {
            data,
            expires: now + UPLOADED_CERTS_TTL,
        })
    }

    pub fn is_expired(&self, now: SystemTime) -> bool {
        now >= self.expires
    }

    /// What `join --control-plane` downloads: the decrypted files, or kubeadm's errors
    /// (expired → Secret not found; wrong key → authentication failure).
    pub fn open(&self, key: &CertificateKey, now: SystemTime) -> Result<BTreeMap<String, Vec<u8>>, String> {
        if self.is_expired(now) {
            return Err(format!(
                "error downloading the secret: {}",
                secret_not_found_message()
            ));
        }
        let mut out = BTreeMap::new();
        for (name, enc) in &self.data {
            let plain = key
                .decrypt(enc)
                .map_err(|e| format!("error decoding secret data with provided key: {e}"))?;
            out.insert(name.clone(), plain);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;

    #[test]
    fn certificate_key_format_errors() {
        let k = CertificateKey::generate().unwrap();
        assert_eq!(k.to_hex().len(), 64);
        assert_eq!(CertificateKey::parse(&k.to_hex(), "certificateKey").unwrap(), k);
        let short = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            CertificateKey::parse(short, "certificateKey").unwrap_err().0,
            format!("certificateKey: Invalid value: \"{short}\": invalid certificate key size 16, the key must be an AES key of size 32")
        );
        assert_eq!(
            CertificateKey::parse("xyz", "controlPlane.certificateKey").unwrap_err().0,
            "controlPlane.certificateKey: Invalid value: \"xyz\": certificate key decoding error: encoding/hex: invalid byte: U+0078 'x'"
        );
    }

    #[test]
    fn encrypt_round_trip_and_wrong_key() {
        let k = CertificateKey::generate().unwrap();
        let enc = k.encrypt(b"-----BEGIN CERTIFICATE-----").unwrap();
        assert_eq!(k.decrypt(&enc).unwrap(), b"-----BEGIN CERTIFICATE-----");
        let other = CertificateKey::generate().unwrap();
        assert_eq!(
            other.decrypt(&enc).unwrap_err(),
            "cipher: message authentication failed"
        );
    }

    #[test]
    fn uploaded_certs_expire_after_two_hours_with_lab_clock_offset() {
        let dir = tempfile::tempdir().unwrap();
        let offset = dir.path().join("clock-offset");
        let clock = Clock::with_offset_file(&offset);
        let key = CertificateKey::generate().unwrap();
        let mut files = BTreeMap::new();
        files.insert("ca.key".to_string(), b"secret".to_vec());
        let uploaded = UploadedCerts::seal(&files, &key, clock.now()).unwrap();

        std::fs::write(&offset, "7140").unwrap(); // 1 h 59 min later
        assert_eq!(uploaded.open(&key, clock.now()).unwrap(), files);

        std::fs::write(&offset, "7260").unwrap(); // 2 h 1 min later
        let err = uploaded.open(&key, clock.now()).unwrap_err();
        assert_eq!(
            err,
            "error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one"
        );
    }
}
