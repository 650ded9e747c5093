//! Where the lab keeps things, and how hosts are named and addressed. One place, so `down` can find
//! everything `up` made even when the state file is gone.
//!
//! - `/var/cache/kbs-lab/`: survives `down`: the debootstrap tarball, the prepared base image (tarball and
//!   extracted lower layer), the gpg signing key, the downloaded Debian packages, the lab's apt lists.
//! - `/var/lib/kbs-lab/`: survives `down`: the apt repository served over HTTP (`repo/`), the SSH key
//!   (`ssh/`). `hosts/hostNN/{upper,work,root}` are the per-host overlays, removed by `down`.
//! - `/run/kbs-lab/`: runtime files, removed by `down`: `state.json`, wrapper scripts and logs.

use std::net::Ipv4Addr;
use std::path::PathBuf;

pub const CACHE_DIR: &str = "/var/cache/kbs-lab";
pub const LIB_DIR: &str = "/var/lib/kbs-lab";
pub const RUN_DIR: &str = "/run/kbs-lab";
/// Outside `RUN_DIR` so that removing the runtime files never removes a lock someone holds.
pub const LOCK_FILE: &str = "/run/kbs-lab.lock";

pub const BRIDGE: &str = "kbsbr0";
pub const BRIDGE_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 61, 0, 1);
pub const PREFIX_LEN: u8 = 24;
/// The subnet, as written into the inventory.
pub const HOST_SUBNET: &str = "10.61.0.0/24";
/// Reserved for the control-plane endpoint (kube-vip or keepalived); never given to a host.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 61, 0, 10);
/// Host N gets 10.61.0.(10+N): 200 hosts end at .210 and stay inside the /24.
pub const MAX_HOSTS: usize = 200;
/// The repository server listens here, on the bridge address only.
pub const REPO_PORT: u16 = 80;

/// The path inside every guest holding its clock offset in seconds (an integer, may be negative),
/// read by kbs-sim to shift the guest's idea of "now".
pub const GUEST_CLOCK_OFFSET: &str = "/etc/kbs-lab/clock-offset";
/// The lab's public signing key inside every guest (binary, for apt's `signed-by`).
pub const GUEST_KEYRING: &str = "/etc/apt/keyrings/kbs-lab.gpg";

pub fn cache_dir() -> PathBuf {
    PathBuf::from(CACHE_DIR)
}
pub fn run_dir() -> PathBuf {
    PathBuf::from(RUN_DIR)
}
pub fn state_file() -> PathBuf {
    run_dir().join("state.json")
}
pub fn hosts_dir() -> PathBuf {
    PathBuf::from(LIB_DIR).join("hosts")
}
pub fn host_dir(name: &str) -> PathBuf {
    hosts_dir().join(name)
}
/// The merged overlay a host boots from.
pub fn host_root(name: &str) -> PathBuf {
    host_dir(name).join("root")
}
/// The root of everything the HTTP server serves.
pub fn repo_dir() -> PathBuf {
    PathBuf::from(LIB_DIR).join("repo")
}
pub fn ssh_dir() -> PathBuf {
    PathBuf::from(LIB_DIR).join("ssh")
}
/// The private key kbs (and `kbs-lab ssh`) logs in with.
pub fn ssh_key() -> PathBuf {
    ssh_dir().join("id_ed25519")
}
pub fn known_hosts() -> PathBuf {
    ssh_dir().join("known_hosts")
}

/// `host01` … `host99`; three digits for every host once the lab has more than 99.
pub fn host_name(index: usize, count: usize) -> String {
    if count > 99 {
        format!("host{index:03}")
    } else {
        format!("host{index:02}")
    }
}

pub fn host_address(index: usize) -> Ipv4Addr {
    // index is at most MAX_HOSTS (checked by `up`), so 10 + index fits in a u8.
    Ipv4Addr::new(10, 61, 0, (10 + index) as u8)
}

/// The host-side veth systemd-nspawn creates for `--network-bridge` (`vb-` + machine name).
pub fn host_veth(name: &str) -> String {
    format!("vb-{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_padded_to_the_lab_size() {
        assert_eq!(host_name(1, 4), "host01");
        assert_eq!(host_name(99, 99), "host99");
        assert_eq!(host_name(7, 100), "host007");
    }

    #[test]
    fn addresses_skip_the_vip_and_fit_200_hosts() {
        assert_eq!(host_address(1), Ipv4Addr::new(10, 61, 0, 11));
        assert_eq!(host_address(MAX_HOSTS), Ipv4Addr::new(10, 61, 0, 210));
        assert!((1..=MAX_HOSTS).all(|i| host_address(i) != VIP && host_address(i) != BRIDGE_ADDRESS));
    }
}
