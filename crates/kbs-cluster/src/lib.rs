//! The kbs cluster workflow: which phases `kbs apply` runs, and the context they run in — the
//! version table ([`versions`]), the template context ([`context::vars`]), the prepare phase, the
//! fitness checks of `kbs check` ([`checks::fitness`]), the kubeadm config of each host
//! ([`kubeadm_config`]), the secrets of a run ([`secrets`]) and the endpoint's kube-vip and
//! HAProxy files ([`endpoint`]).
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
//! assert_eq!(kbs_cluster::phase_names(), ["prepare", "endpoint", "init", "join-control-planes", "join-workers", "approve-csrs", "addons"]);
//! ```

pub mod addons;
pub mod checks;
pub mod context;
pub mod csr;
pub mod endpoint;
pub mod kubeadm_config;
pub mod orchestrate;
pub mod phases;
pub mod secrets;
pub mod versions;

pub use checks::{fitness, Finding, Level};
pub use context::{minor_versions, vars, ContextError, Options};
pub use endpoint::{EndpointError, Haproxy, KubeVip, KubeVipKubeconfig};
pub use kubeadm_config::{
    kubeadm_config, kubeadm_config_as, ConfigError, ConfigInput, KubeadmConfig, KubeadmRole,
};
pub use phases::{apply_phases, phase_names};
pub use secrets::{ca_cert_hash, Secrets, SecretsError};
pub use versions::{default_minor, for_minor, MinorVersions, TABLE};
