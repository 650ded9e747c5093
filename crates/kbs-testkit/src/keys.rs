//! Client key pairs made with `ssh-keygen`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{read, run};

/// Key algorithms the tests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ed25519,
    /// ECDSA P-256.
    Ecdsa,
    /// RSA 3072 (signatures must use rsa-sha2-*).
    Rsa,
}

impl KeyType {
    pub(crate) fn keygen_args(self) -> &'static [&'static str] {
        match self {
            KeyType::Ed25519 => &["-t", "ed25519"],
            KeyType::Ecdsa => &["-t", "ecdsa", "-b", "256"],
            KeyType::Rsa => &["-t", "rsa", "-b", "3072"],
        }
    }

    fn file_name(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "id_ed25519",
            KeyType::Ecdsa => "id_ecdsa",
            KeyType::Rsa => "id_rsa",
        }
    }
}

/// A private key file and its public half.
#[derive(Debug, Clone)]
pub struct ClientKey {
    /// Private key (OpenSSH format), mode 0600.
    pub path: PathBuf,
    /// `authorized_keys` line (`ssh-ed25519 AAAA... comment`).
    pub public: String,
}

impl ClientKey {
    /// Generate a key in `dir` (file name by type, with a numeric suffix if taken); encrypted with
    /// `passphrase` if given.
    pub fn generate(dir: &Path, kind: KeyType, passphrase: Option<&str>) -> ClientKey {
        let mut path = dir.join(kind.file_name());
        let mut n = 1;
        while path.exists() {
            path = dir.join(format!("{}_{n}", kind.file_name()));
            n += 1;
        }
        run(Command::new("ssh-keygen")
            .args(kind.keygen_args())
            .args(["-q", "-C", "kbs-test", "-N", passphrase.unwrap_or("")])
            .arg("-f")
            .arg(&path));
        let public = read(&path.with_extension("pub")).trim().to_string();
        ClientKey { path, public }
    }

    /// Path of the `.pub` file.
    pub fn public_path(&self) -> PathBuf {
        self.path.with_extension("pub")
    }
}
