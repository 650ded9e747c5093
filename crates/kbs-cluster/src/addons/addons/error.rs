//! What can go wrong while installing add-ons, worded for the person running kbs: which add-on,
//! file, host or URL, what happened, and what to do about it.

use std::fmt;
use std::path::PathBuf;

/// One manifest whose bytes are not the ones expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub addon: String,
    pub file: String,
    pub url: String,
    /// Where the bytes were read: the URL fetched or the local file.
    pub origin: String,
    pub expected: String,
    pub actual: String,
    /// Where `expected` came from: the inventory key or the lock file.
    pub expected_from: String,
}

/// A node that lacks what Longhorn needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLack {
    pub node: String,
    pub missing: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AddonError {
    #[error("Kubernetes 1.{0} has no row in kbs' add-on table\n  hint: use one of the supported minors 1.35, 1.36, 1.37")]
    UnknownMinor(u32),
    #[error("{key}.sha256 names `{file}`, which is not a manifest of {addon} {version} (its manifests: {known})\n  hint: use one of those file names, or remove the entry")]
    UnknownChecksumKey {
        key: String,
        file: String,
        addon: String,
        version: String,
        known: String,
    },
    #[error("could not read {addon}'s manifest {file} from {origin}: {message}\n  hint: {hint}")]
    Fetch {
        addon: String,
        file: String,
        origin: String,
        message: String,
        hint: String,
    },
    #[error("{}", checksum_text(.0))]
    Checksum(Vec<Mismatch>),
    #[error("the lock file {path} cannot be used: {message}\n  hint: {hint}")]
    Lock {
        path: PathBuf,
        message: String,
        hint: String,
    },
    #[error("{}", preflight_text(.0))]
    LonghornPreflight(Vec<NodeLack>),
    #[error("{host}: {step} failed: {message}\n  hint: {hint}")]
    Remote {
        host: String,
        step: String,
        message: String,
        hint: String,
    },
    #[error("{addon} is not ready after {waited_s} s: {why}\n  hint: look at `kubectl get pods -A` on the first control plane; re-run kbs apply to wait again")]
    NotReady {
        addon: String,
        waited_s: u64,
        why: String,
    },
    #[error("{0}")]
    Render(String),
}

fn checksum_text(mismatches: &[Mismatch]) -> String {
    let mut out = String::from("add-on manifests differ from their recorded SHA-256; nothing was applied");
    for m in mismatches {
        out.push_str(&format!(
            "\n  {addon} {file}\n    url:      {url}\n    read from {origin}\n    expected: {expected} ({from})\n    actual:   {actual}",
            addon = m.addon,
            file = m.file,
            url = m.url,
            origin = m.origin,
            expected = m.expected,
            from = m.expected_from,
            actual = m.actual,
        ));
    }
    out.push_str(
        "\n  hint: if the mirror or directory is stale, refresh it from upstream; if the new file is \
         intended (a new pin or an upstream re-release), delete its line from the lock file or set the new \
         sum under the add-on's `sha256` in the inventory, then re-run",
    );
    out
}

fn preflight_text(lacks: &[NodeLack]) -> String {
    let mut out = String::from("Longhorn cannot run on every node; it was not installed");
    for lack in lacks {
        out.push_str(&format!("\n  {}: {}", lack.node, lack.missing.join("; ")));
    }
    out.push_str(
        "\n  hint: run `kbs apply` again (host preparation installs open-iscsi and nfs-common and starts iscsid), \
         or fix the node by hand: `systemctl enable --now iscsid`, `apt-get install nfs-common`, and disable \
         multipathd or blacklist `devnode \"^sd[a-z0-9]+\"` in /etc/multipath.conf",
    );
    out
}

impl fmt::Display for NodeLack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.node, self.missing.join("; "))
    }
}

impl AddonError {
    /// A failed or unreachable remote step.
    pub(crate) fn remote(
        host: &str,
        step: &str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        AddonError::Remote {
            host: host.to_string(),
            step: step.to_string(),
            message: message.into(),
            hint: hint.into(),
        }
    }
}
