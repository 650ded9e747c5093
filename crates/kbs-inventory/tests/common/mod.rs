//! Shared by the integration tests: a small valid inventory to mutate, and renderers.
#![allow(dead_code)] // each test binary uses a different part

use std::path::Path;

use kbs_inventory::{Inventory, Loaded};

/// Valid: kube-vip, one control plane, one worker. Line numbers matter to the tests.
pub const BASE: &str = r#"cluster:
  name: book
  kubernetesVersion: "1.36"
  podSubnet: 172.31.0.0/16
  serviceSubnet: 10.96.0.0/12
  hostSubnet: 192.168.61.0/24
  endpoint:
    mode: kube-vip
    address: 192.168.61.10
hosts:
  - name: host01
    address: 192.168.61.11
    roles: [control-plane]
  - name: host02
    address: 192.168.61.12
    roles: [worker]
"#;

/// BASE with each `from` replaced by `to` (each `from` must occur, so a stale test fails loudly).
pub fn base_with(replacements: &[(&str, &str)]) -> String {
    let mut yaml = BASE.to_string();
    for (from, to) in replacements {
        assert!(yaml.contains(from), "BASE has no {from:?}");
        yaml = yaml.replacen(from, to, 1);
    }
    yaml
}

pub fn load(yaml: &str) -> Loaded {
    match Inventory::from_str(yaml, Path::new("inventory.yaml")) {
        Ok(loaded) => loaded,
        Err(error) => panic!("expected a valid inventory, got:\n{error}"),
    }
}

/// The rendered error of an inventory that must fail.
pub fn errors(yaml: &str) -> String {
    match Inventory::from_str(yaml, Path::new("inventory.yaml")) {
        Ok(_) => panic!("expected errors, the inventory loaded:\n{yaml}"),
        Err(error) => error.to_string(),
    }
}

/// The rendered warnings of an inventory that must load.
pub fn warnings(yaml: &str) -> String {
    load(yaml)
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n\n")
}
