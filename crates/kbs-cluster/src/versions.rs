//! The version table: for each supported Kubernetes minor, the versions of everything kbs installs
//! next to it. ONE place to edit when a minor is added or a component moves; patch versions of the
//! Kubernetes packages themselves are resolved on the hosts at run time (`apt-cache madison`).

use serde::Serialize;

/// What goes with one Kubernetes minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MinorVersions {
    /// `36` for Kubernetes 1.36.
    pub minor: u32,
    /// kubeadm's `PauseVersion` for this minor (cmd/kubeadm/app/constants). Since 1.35 the kubelet
    /// has no pause-image flag; containerd's config is the only place it is set.
    pub pause_image: &'static str,
    /// Kubernetes 1.35 is the last minor that supports containerd 1.x.
    pub containerd_min_major: u32,
    /// The containerd package: `containerd` (Debian/Ubuntu and the lab's repository) or
    /// `containerd.io` (Docker's repository). [`crate::Options`] can override it.
    pub containerd_package: &'static str,
    /// apt version spec for containerd: `2` = newest 2.x, empty = any.
    pub containerd_version: &'static str,
    /// kube-vip image tag: v1.2.2 deadlocks `kubeadm init` (kube-vip#1654), so ≥ v1.2.3.
    pub kube_vip: &'static str,
}

/// Oldest first. Must list exactly `kbs_inventory::SUPPORTED_MINORS` (a test checks).
pub const TABLE: &[MinorVersions] = &[
    MinorVersions {
        minor: 35,
        pause_image: "registry.k8s.io/pause:3.10.1",
        containerd_min_major: 1,
        containerd_package: "containerd",
        containerd_version: "",
        kube_vip: "v1.2.3",
    },
    MinorVersions {
        minor: 36,
        pause_image: "registry.k8s.io/pause:3.10.1",
        containerd_min_major: 2,
        containerd_package: "containerd",
        containerd_version: "2",
        kube_vip: "v1.2.3",
    },
    MinorVersions {
        minor: 37,
        pause_image: "registry.k8s.io/pause:3.10.1",
        containerd_min_major: 2,
        containerd_package: "containerd",
        containerd_version: "2",
        kube_vip: "v1.2.3",
    },
];

/// The row for `minor`, if kbs supports it.
pub fn for_minor(minor: u32) -> Option<&'static MinorVersions> {
    TABLE.iter().find(|v| v.minor == minor)
}

/// The minor used when the inventory names none: the newest supported.
pub fn default_minor() -> u32 {
    TABLE.iter().map(|v| v.minor).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_supported_minors() {
        let minors: Vec<u32> = TABLE.iter().map(|v| v.minor).collect();
        assert_eq!(minors, kbs_inventory::SUPPORTED_MINORS.to_vec());
        assert_eq!(default_minor(), 37);
    }

    #[test]
    fn containerd_2_from_1_36_and_no_broken_kube_vip() {
        for v in TABLE {
            assert_eq!(
                v.containerd_min_major,
                if v.minor >= 36 { 2 } else { 1 },
                "1.{}",
                v.minor
            );
            if v.containerd_min_major >= 2 {
                assert!(
                    v.containerd_version.starts_with('2'),
                    "1.{} must not install containerd 1.x",
                    v.minor
                );
            }
            assert_ne!(v.kube_vip, "v1.2.2");
            assert!(v.pause_image.starts_with("registry.k8s.io/pause:"));
        }
    }
}
