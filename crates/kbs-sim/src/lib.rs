//! Simulated kubeadm, kubelet, kubectl, kube-apiserver and kube-vip for the kbs lab.
//!
//! The lab (crates/kbs-lab) runs real hosts (systemd-nspawn machines with sshd, systemd,
//! apt) but cannot run Kubernetes. kbs-sim stands in for the Kubernetes binaries and must
//! fail where they fail, with their messages (shared/lab.md, "kbs-sim behaviour contract").
//! docs/simulation.md maps every simulated behaviour to its upstream source.
//!
//! This crate is a library with thin binaries on top:
//! - [`config`]: kubeadm config files (v1beta4, v1beta3 on 1.35), strict decoding, validation.
//! - [`preflight`]: kubeadm's preflight checks over a [`preflight::HostProbe`].
//! - [`pki`]: the cluster CA and certificates, the CA pin (`sha256:` of the SPKI), kubeconfigs.
//! - [`token`], [`certs_upload`], [`discovery`]: bootstrap tokens, uploaded certs, CA pins.
//! - [`manifests`]: the static pod manifests init writes.
//! - [`store`]: the cluster state the API server serves (objects, tokens, leases).
//! - [`apiserver`]: the simulated kube-apiserver (TLS, authn/authz, REST, admission, controllers,
//!   replication between control planes); [`kubectl`], [`kubelet`], [`kube_vip`]: the other tools;
//!   [`kubeclient`], [`tls`], [`http`]: what they share on the wire.
//! - [`clock`]: the lab clock (every "now" goes through it), [`version`]: which kubeadm this is.
//! - [`cli`]: the `kubeadm` command front; [`multicall`]: one binary installed under each tool's name.
//!
//! ```
//! use kbs_sim::token::BootstrapToken;
//! let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
//! assert_eq!(t.id, "abcdef");
//! assert!(BootstrapToken::parse("ABCDEF.0123456789abcdef").is_err());
//! ```

pub mod apiserver;
pub mod certs_upload;
pub mod cli;
pub mod clock;
pub mod config;
pub mod containerd;
pub mod discovery;
pub mod gofmt;
pub mod http;
pub mod kube_vip;
pub mod kubeclient;
pub mod kubectl;
pub mod kubelet;
pub mod manifests;
pub mod multicall;
pub mod pki;
pub mod preflight;
pub mod signals;
pub mod store;
pub mod tls;
pub mod token;
pub mod version;
