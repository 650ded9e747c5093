//! The kbs inventory: the model of an inventory file, its loading, and its validation before
//! anything connects.
//!
//! Loading reports every problem at once, each with `file:line:column`, the offending value and
//! a hint, rendered like compiler diagnostics. Warnings (such as an even number of control planes)
//! come back alongside a usable inventory.
//!
//! ```
//! use std::path::Path;
//! use kbs_inventory::{Inventory, Role};
//!
//! let yaml = "
//! cluster:
//!   podSubnet: 172.31.0.0/16
//! hosts:
//!   - name: host01
//!     address: 192.168.61.11
//!     roles: [control-plane, worker]
//! ";
//! let loaded = Inventory::from_str(yaml, Path::new("inventory.yaml")).unwrap();
//! assert!(loaded.warnings.is_empty());
//! let inventory = loaded.inventory;
//! assert_eq!(inventory.select("role:control-plane").unwrap()[0].name, "host01");
//! assert!(inventory.host("host01").unwrap().has_role(Role::Worker));
//!
//! let err = Inventory::from_str("cluster:\n  podSubnt: 10.0.0.0/8\n", Path::new("inventory.yaml"))
//!     .unwrap_err();
//! assert!(err.to_string().contains(
//!     "inventory.yaml:2:3: error: unknown key `podSubnt` in `cluster`\n  hint: did you mean `podSubnet`?"
//! ));
//! ```
//!
//! SSH settings merge host > groups (later listed wins) > cluster ([`Inventory::ssh_settings`]);
//! every field stays optional so the SSH layer can fill the rest from `~/.ssh/config`.

mod decode;
mod diagnostic;
mod error;
mod findings;
mod model;
mod select;
mod ssh;
mod suggest;
mod syntax;
mod validate;
mod version;
mod yaml;

use std::path::{Path, PathBuf};

pub use diagnostic::{Diagnostic, Severity};
pub use error::{InventoryError, SelectError};
pub use model::{
    Addon, Addons, ApiEndpoint, Checksums, Cluster, Endpoint, EndpointMode, Group, Host, IngressAddon,
    IngressController, Inventory, ManifestSource, Role, Taint, TaintEffect,
};
pub use ssh::{Bastion, SshSettings};
pub use version::{KubernetesVersion, SUPPORTED_MINORS};

use findings::Findings;

/// A valid inventory and the warnings found while loading it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub inventory: Inventory,
    /// Findings that do not stop a run, in file order.
    pub warnings: Vec<Diagnostic>,
}

/// Reads and validates the inventory at `path`, with `~` meaning `$HOME`.
pub fn load(path: &Path) -> Result<Loaded, InventoryError> {
    Loader::new().load(path)
}

impl Inventory {
    /// Validates inventory text as if it were read from `path_for_messages`: diagnostics name
    /// that path, and relative paths inside start at its directory. As with [`load`], an
    /// `identityFile` must exist; use [`Loader::home_dir`] to point `~` elsewhere in tests.
    #[allow(clippy::should_implement_trait)] // two arguments and a richer result than `FromStr`
    pub fn from_str(yaml: &str, path_for_messages: &Path) -> Result<Loaded, InventoryError> {
        Loader::new().parse(yaml, path_for_messages)
    }
}

/// Loading with explicit settings; [`load`] and [`Inventory::from_str`] use the defaults.
#[derive(Debug, Clone, Default)]
pub struct Loader {
    home_dir: Option<PathBuf>,
}

impl Loader {
    /// A loader that expands `~` to `$HOME`.
    pub fn new() -> Self {
        Loader {
            home_dir: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
        }
    }

    /// Expands `~` in inventory paths to `dir` instead of `$HOME`.
    pub fn home_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.home_dir = Some(dir.into());
        self
    }

    pub fn load(&self, path: &Path) -> Result<Loaded, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.parse(&text, path)
    }

    pub fn parse(&self, yaml: &str, path_for_messages: &Path) -> Result<Loaded, InventoryError> {
        let mut findings = Findings::new(path_for_messages);
        // Absolute, so resolved paths stay right whatever directory later steps run in.
        let absolute =
            std::path::absolute(path_for_messages).unwrap_or_else(|_| path_for_messages.to_path_buf());
        let inventory_dir = absolute
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let paths = decode::PathContext {
            inventory_dir: &inventory_dir,
            home_dir: self.home_dir.as_deref(),
        };
        let draft =
            yaml::parse(yaml, &mut findings).and_then(|root| decode::decode(&root, &paths, &mut findings));
        if let Some(draft) = &draft {
            validate::validate(draft, &mut findings);
        }
        let inventory = draft.and_then(|draft| draft.into_inventory(path_for_messages));
        match inventory {
            Some(inventory) if !findings.has_errors() => Ok(Loaded {
                inventory,
                warnings: findings.into_sorted(),
            }),
            _ => {
                if !findings.has_errors() {
                    // A required value vanished without a report: say so rather than return nothing.
                    findings.error(findings::Pos::START, "the inventory is incomplete", None);
                }
                Err(InventoryError::Invalid(findings.into_sorted()))
            }
        }
    }
}
