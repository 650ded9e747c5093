//! The kbs cluster workflow: which phases `kbs apply` runs, and the context they run in — today
//! the version table ([`versions`]), the template context ([`context::vars`]), the prepare phase
//! and the fitness checks of `kbs check` ([`checks::fitness`]).
//!
//! ```
//! use std::path::Path;
//! let inventory = kbs_inventory::Inventory::from_str(
//!     "cluster:\n  podSubnet: 172.31.0.0/16\n  kubernetesVersion: \"1.36\"\nhosts:\n  - name: host01\n    address: 192.168.61.11\n    roles: [control-plane, worker]\n",
//!     Path::new("inventory.yaml"),
//! ).unwrap().inventory;
//! let vars = kbs_cluster::vars(&inventory, &kbs_cluster::Options::default()).unwrap();
//! assert_eq!(vars.versions["containerd_min_major"], 2);
//! assert_eq!(vars.versions["pause_image"], "registry.k8s.io/pause:3.10.1");
//! assert_eq!(kbs_cluster::phase_names(), ["prepare"]);
//! ```

pub mod checks;
pub mod context;
pub mod phases;
pub mod versions;

pub use checks::{fitness, Finding, Level};
pub use context::{minor_versions, vars, ContextError, Options};
pub use phases::{apply_phases, phase_names};
pub use versions::{default_minor, for_minor, MinorVersions, TABLE};
