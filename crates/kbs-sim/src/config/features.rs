//! kubeadm's feature gates (cmd/kubeadm/app/features/features.go `InitFeatureGates`).
//!
//! Gates leave this list when upstream deletes them; a config naming a deleted gate is then
//! rejected with "X is not a valid feature name.". `ControlPlaneKubeletLocalMode` and
//! `WaitForAllControlPlaneComponents` (GA, then removed) and `PublicKeysECDSA` (replaced by
//! `encryptionAlgorithm`) are gone in every minor the lab packages (1.35–1.37).
//! Keep this table in step with facts.md; it is the one place to change.

use crate::version::Version;

/// Gates kubeadm `minor` accepts in `ClusterConfiguration.featureGates`.
pub fn known_gates(kubeadm: Version) -> &'static [&'static str] {
    let _ = kubeadm; // same set for 1.35–1.37; split here when upstream diverges
    &["NodeLocalCRISocket", "RootlessControlPlane"]
}

pub fn is_known(kubeadm: Version, gate: &str) -> bool {
    known_gates(kubeadm).contains(&gate)
}
