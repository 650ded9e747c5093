//! The local lab: Debian hosts as systemd-nspawn machines on one bridge, a signed apt repository laid out
//! like pkgs.k8s.io plus a Debian mirror, an add-on manifest mirror, and faults to inject.
//!
//! kbs is tested the way it is used: over real SSH into real systemd/apt/dpkg systems. The lab gives that on
//! one machine without VMs (see shared/lab.md for the recipe and its reasons).
//!
//! ```no_run
//! use kbs_lab::{Fault, Lab, UpOptions};
//! let mut lab = Lab::up(UpOptions::new(4))?;
//! let out = lab.ssh("host01", "hostname")?;
//! assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "host01");
//! lab.fault("host02", Fault::Cut)?;
//! lab.fault("host02", Fault::Heal)?;
//! lab.clock(Some("host03"), 7200)?; // host03's /etc/kbs-lab/clock-offset += 2 h
//! lab.down()?;
//! # Ok::<(), kbs_lab::Error>(())
//! ```
//!
//! Conventions (all in [`paths`]): state in `/run/kbs-lab/state.json`; overlays in
//! `/var/lib/kbs-lab/hosts/hostNN`; the repository served on `http://10.61.0.1/` from
//! `/var/lib/kbs-lab/repo` (layout in [`repo`]); caches in `/var/cache/kbs-lab`; the lab SSH key and
//! known_hosts in `/var/lib/kbs-lab/ssh`; each guest's clock offset (seconds) in `/etc/kbs-lab/clock-offset`.
//! Host N is `hostNN` at 10.61.0.(10+N); 10.61.0.10 is the VIP.

pub mod addon_manifests;
mod cgroups;
mod cmd;
mod error;
pub mod faults;
mod hostpkgs;
mod image;
pub mod inventory;
mod lab;
mod limits;
mod lock;
mod machine;
mod network;
pub mod paths;
mod process;
pub mod repo;
pub mod server;
pub mod sim_packages;
mod state;

pub use error::{Error, Result};
pub use faults::{ClockDelta, Fault};
pub use lab::{clock_offset, teardown, HostStatus, Lab, Status, UpOptions};
pub use machine::Host;
