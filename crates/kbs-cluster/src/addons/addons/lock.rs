//! The lock file beside the inventory (`lab.yaml` → `lab.lock.yaml`): the SHA-256 of every
//! manifest kbs has downloaded, keyed by upstream URL, so that every later run — from upstream,
//! a mirror or a local directory — must read the very same bytes (as Cargo.lock pins crates).
//! A sum given in the inventory wins over the lock file. Verification is all or nothing: every
//! file is checked, and the lock file is written, before anything is applied.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::{AddonError, Mismatch};

const HEADER: &str =
    "# Written by kbs: the SHA-256 of each add-on manifest as first downloaded, keyed by its\n\
# upstream URL. kbs checks every later download (upstream, mirror or directory) against it and\n\
# applies nothing on a mismatch. Commit it beside the inventory; delete a line to accept a new file.\n";

/// `<dir>/<stem>.lock.yaml` for the inventory at `<dir>/<stem>.<ext>`.
pub fn lock_path(inventory_path: &Path) -> PathBuf {
    let stem = inventory_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "inventory".into());
    inventory_path.with_file_name(format!("{stem}.lock.yaml"))
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    /// Upstream URL → SHA-256 (64 lowercase hex digits).
    #[serde(default)]
    pub manifests: BTreeMap<String, String>,
}

impl LockFile {
    /// The lock file at `path`; an absent file is an empty lock.
    pub fn read(path: &Path) -> Result<LockFile, AddonError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LockFile::default()),
            Err(e) => {
                return Err(AddonError::Lock {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                    hint: "make it readable, or delete it to record the manifests anew".into(),
                })
            }
        };
        if text
            .trim()
            .lines()
            .all(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
        {
            return Ok(LockFile::default());
        }
        serde_yaml::from_str(&text).map_err(|e| AddonError::Lock {
            path: path.to_path_buf(),
            message: e.to_string(),
            hint: "it must hold `manifests:` with `URL: sha256` lines; fix it or delete it to record the manifests anew".into(),
        })
    }

    /// Writes atomically (temp file, then rename), so a crash never leaves half a lock file.
    pub fn write(&self, path: &Path) -> Result<(), AddonError> {
        let failed = |e: std::io::Error| AddonError::Lock {
            path: path.to_path_buf(),
            message: e.to_string(),
            hint: "kbs writes the lock file beside the inventory: make that directory writable".into(),
        };
        let body = serde_yaml::to_string(self).map_err(|e| AddonError::Lock {
            path: path.to_path_buf(),
            message: e.to_string(),
            hint: "re-run kbs".into(),
        })?;
        let tmp = path.with_extension("yaml.tmp");
        std::fs::write(&tmp, format!("{HEADER}{body}")).map_err(failed)?;
        std::fs::rename(&tmp, path).map_err(failed)
    }
}

/// One manifest as read, with what is known about its expected sum.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub addon: &'a str,
    pub file: &'a str,
    pub url: &'a str,
    pub origin: String,
    pub contents: &'a [u8],
    /// From the inventory (`addons.X.sha256`), with the key that gave it.
    pub pinned: Option<(&'a str, String)>,
}

/// SHA-256 as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks every candidate; on success returns the lock file as it must now be (new URLs
/// recorded, inventory pins copied in) and whether it changed. On any mismatch, returns all of
/// them and leaves the lock alone.
pub fn verify(
    lock: &LockFile,
    candidates: &[Candidate],
    lock_path: &Path,
) -> Result<(LockFile, bool), AddonError> {
    let mut next = lock.clone();
    let mut mismatches = Vec::new();
    for c in candidates {
        let actual = sha256_hex(c.contents);
        let expected = match &c.pinned {
            Some((key, sum)) => Some((sum.clone(), format!("{key}.sha256 in the inventory"))),
            None => lock
                .manifests
                .get(c.url)
                .map(|sum| (sum.clone(), format!("lock file {}", lock_path.display()))),
        };
        match expected {
            Some((sum, from)) if sum != actual => mismatches.push(Mismatch {
                addon: c.addon.to_string(),
                file: c.file.to_string(),
                url: c.url.to_string(),
                origin: c.origin.clone(),
                expected: sum,
                actual,
                expected_from: from,
            }),
            _ => {
                next.manifests.insert(c.url.to_string(), actual);
            }
        }
    }
    if !mismatches.is_empty() {
        return Err(AddonError::Checksum(mismatches));
    }
    let changed = next != *lock;
    Ok((next, changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate<'a>(url: &'a str, contents: &'a [u8]) -> Candidate<'a> {
        Candidate {
            addon: "calico",
            file: "operator-crds.yaml",
            url,
            origin: url.to_string(),
            contents,
            pinned: None,
        }
    }

    #[test]
    fn lock_path_sits_beside_the_inventory() {
        assert_eq!(
            lock_path(Path::new("inventory/lab.yaml")),
            Path::new("inventory/lab.lock.yaml")
        );
        assert_eq!(
            lock_path(Path::new("/x/vagrant.yml")),
            Path::new("/x/vagrant.lock.yaml")
        );
    }

    #[test]
    fn first_run_records_later_runs_verify_and_a_change_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.lock.yaml");
        let url =
            "https://raw.githubusercontent.com/projectcalico/calico/v3.33.1/manifests/operator-crds.yaml";
        let lock = LockFile::read(&path).unwrap();
        assert!(lock.manifests.is_empty(), "no lock file yet");
        let (next, changed) = verify(&lock, &[candidate(url, b"crds v1")], &path).unwrap();
        assert!(changed);
        next.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# Written by kbs"), "{text}");
        assert!(text.contains(&sha256_hex(b"crds v1")), "{text}");

        let lock = LockFile::read(&path).unwrap();
        assert_eq!(lock, next);
        let (_, changed) = verify(&lock, &[candidate(url, b"crds v1")], &path).unwrap();
        assert!(!changed, "same bytes: nothing to record");

        let err = verify(&lock, &[candidate(url, b"crds v2")], &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nothing was applied"), "{err}");
        assert!(err.contains("calico operator-crds.yaml"), "{err}");
        assert!(err.contains(url), "{err}");
        assert!(
            err.contains(&format!(
                "expected: {} (lock file {})",
                sha256_hex(b"crds v1"),
                path.display()
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!("actual:   {}", sha256_hex(b"crds v2"))),
            "{err}"
        );
        assert!(err.contains("delete its line from the lock file"), "{err}");
    }

    #[test]
    fn an_inventory_sum_wins_over_the_lock_file() {
        let path = Path::new("lab.lock.yaml");
        let url = "https://example.test/a.yaml";
        let mut lock = LockFile::default();
        lock.manifests.insert(url.into(), sha256_hex(b"old"));
        let mut c = candidate(url, b"new");
        c.pinned = Some(("addons.calico", sha256_hex(b"new")));
        let (next, changed) = verify(&lock, &[c.clone()], path).unwrap();
        assert!(changed);
        assert_eq!(next.manifests[url], sha256_hex(b"new"));
        c.pinned = Some(("addons.calico", sha256_hex(b"other")));
        let err = verify(&lock, &[c], path).unwrap_err().to_string();
        assert!(err.contains("(addons.calico.sha256 in the inventory)"), "{err}");
    }

    #[test]
    fn a_broken_lock_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.lock.yaml");
        std::fs::write(&path, "manifests: [1, 2]\n").unwrap();
        let err = LockFile::read(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("delete it to record the manifests anew"), "{err}");
    }
}
