//! Token discovery's CA pinning (cmd/kubeadm/app/util/pubkeypin/pubkeypin.go and
//! discovery/token/token.go): the hashes given to `join` are checked for format before
//! anything is fetched, then matched against the CA the cluster-info ConfigMap carries.

use crate::gofmt::{hex_decode, quote};

/// A set of allowed `sha256:` SPKI hashes.
#[derive(Debug, Default, Clone)]
pub struct PinSet {
    sha256: Vec<String>,
}

impl PinSet {
    /// pubkeypin `Set.Allow`, wrapped as discovery wraps it
    /// (`invalid discovery token CA certificate hash: ...`).
    pub fn from_hashes(hashes: &[String]) -> Result<PinSet, String> {
        let mut set = PinSet::default();
        for h in hashes {
            set.allow(h)
                .map_err(|e| format!("invalid discovery token CA certificate hash: {e}"))?;
        }
        Ok(set)
    }

    fn allow(&mut self, pin: &str) -> Result<(), String> {
        let parts: Vec<&str> = pin.split(':').collect();
        if parts.len() != 2 {
            return Err(
                "invalid hash, expected \"format:hex-value\". Known format(s) are: sha256".to_string(),
            );
        }
        let (format, value) = (parts[0], parts[1]);
        if !format.eq_ignore_ascii_case("sha256") {
            return Err(format!(
                "unknown hash format {}. Known format(s) are: sha256",
                quote(format)
            ));
        }
        // Go: hex.DecodedLen(len) = len / 2, checked before the hex itself.
        let decoded_len = value.len() / 2;
        if decoded_len != 32 {
            return Err(format!(
                "invalid hash {}, expected a 32 byte SHA-256 hash, found {} bytes",
                quote(pin),
                decoded_len
            ));
        }
        hex_decode(value).map_err(|e| {
            format!(
                "invalid hash {}, could not decode SHA-256 from hex: {e}",
                quote(pin)
            )
        })?;
        self.sha256.push(value.to_ascii_lowercase());
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.sha256.is_empty()
    }

    /// pubkeypin `CheckAny` for one CA: `pin` is `sha256:<hex>` of that CA's SPKI.
    pub fn check(&self, ca_pin: &str) -> Result<(), String> {
        let hex = ca_pin.strip_prefix("sha256:").unwrap_or(ca_pin);
        if self.sha256.iter().any(|h| h == hex) {
            Ok(())
        } else {
            Err(format!(
                "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys {} are pinned",
                quote(ca_pin)
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_cert_hash_formats() {
        let good = format!("sha256:{}", "ab".repeat(32));
        let set = PinSet::from_hashes(std::slice::from_ref(&good)).unwrap();
        assert!(set.check(&good).is_ok());
        let other = format!("sha256:{}", "cd".repeat(32));
        assert_eq!(
            set.check(&other).unwrap_err(),
            format!("cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{other}\" are pinned")
        );
        assert_eq!(
            PinSet::from_hashes(&["abcd".to_string()]).unwrap_err(),
            "invalid discovery token CA certificate hash: invalid hash, expected \"format:hex-value\". Known format(s) are: sha256"
        );
        assert_eq!(
            PinSet::from_hashes(&["sha256:abcd".to_string()]).unwrap_err(),
            "invalid discovery token CA certificate hash: invalid hash \"sha256:abcd\", expected a 32 byte SHA-256 hash, found 2 bytes"
        );
        assert_eq!(
            PinSet::from_hashes(&[format!("md5:{}", "ab".repeat(16))]).unwrap_err(),
            "invalid discovery token CA certificate hash: unknown hash format \"md5\". Known format(s) are: sha256"
        );
        let bad_hex = format!("sha256:{}", "zz".repeat(32));
        assert!(PinSet::from_hashes(&[bad_hex])
            .unwrap_err()
            .contains("could not decode SHA-256 from hex: encoding/hex: invalid byte: U+007A 'z'"));
    }
}
