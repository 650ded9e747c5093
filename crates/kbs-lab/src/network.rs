//! The lab's network: bridge `kbsbr0` with 10.61.0.1/24 in the root namespace, one veth per guest (made
//! by systemd-nspawn). No routes or NAT out of it: guests reach only each other and the bridge address.

use std::process::Command;

use crate::cmd;
use crate::error::Result;
use crate::paths::{BRIDGE, BRIDGE_ADDRESS, PREFIX_LEN};

pub fn bridge_exists() -> bool {
    std::path::Path::new("/sys/class/net").join(BRIDGE).exists()
}

pub fn create_bridge() -> Result<()> {
    let hint = "check that no other interface uses 10.61.0.0/24 (ip -br addr), then run kbs-lab up again";
    let step = format!("creating bridge {BRIDGE}");
    cmd::run(
        &step,
        hint,
        Command::new("ip").args(["link", "add", BRIDGE, "type", "bridge"]),
    )?;
    cmd::run(
        &step,
        hint,
        Command::new("ip").args([
            "addr",
            "add",
            &format!("{BRIDGE_ADDRESS}/{PREFIX_LEN}"),
            "dev",
            BRIDGE,
        ]),
    )?;
    cmd::run(
        &step,
        hint,
        Command::new("ip").args(["link", "set", BRIDGE, "up"]),
    )?;
    Ok(())
}

pub fn delete_bridge() -> Result<()> {
    if !bridge_exists() {
        return Ok(());
    }
    cmd::run(
        &format!("deleting bridge {BRIDGE}"),
        "delete it by hand: ip link del kbsbr0",
        Command::new("ip").args(["link", "del", BRIDGE]),
    )?;
    Ok(())
}

/// Sets a guest's bridge port down (cut) or up (heal). The guest keeps its address (the network file
/// says `IgnoreCarrierLoss=yes`), so healing restores traffic at once.
pub fn set_link(veth: &str, up: bool) -> Result<()> {
    cmd::run(
        &format!("setting {veth} {}", if up { "up" } else { "down" }),
        "check that the host is running (kbs-lab status)",
        Command::new("ip").args(["link", "set", veth, if up { "up" } else { "down" }]),
    )?;
    Ok(())
}

/// Whether the guest's bridge port exists and is administratively up.
pub fn link_up(veth: &str) -> Option<bool> {
    let flags = std::fs::read_to_string(format!("/sys/class/net/{veth}/flags")).ok()?;
    let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).ok()?;
    Some(flags & 1 == 1)
}
