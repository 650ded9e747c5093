//! One module per command; each takes its parsed arguments and returns how the run ended.

pub mod apply;
pub mod check;
pub mod closing;
pub mod cluster;
pub mod exec;
pub mod kubeconfig;
pub mod render;
pub mod reset;
pub mod status;

use std::path::Path;

use kbs_inventory::{Host, Inventory, InventoryError};

use crate::failure::Failure;

/// Loads and validates an inventory, printing its warnings; errors become a bad-input failure.
pub fn load_inventory(path: &Path) -> Result<Inventory, Failure> {
    let loaded = kbs_inventory::load(path).map_err(|error| match error {
        InventoryError::Invalid(_) => Failure::InvalidInventory {
            path: path.display().to_string(),
            errors: error.error_count(),
            report: error.to_string(),
        },
        InventoryError::Read { .. } => Failure::BadInput(error.to_string()),
    })?;
    for warning in &loaded.warnings {
        eprintln!("{warning}\n");
    }
    Ok(loaded.inventory)
}

/// The hosts `--hosts PATTERN` selects (all without a pattern), in inventory order.
pub fn select_hosts(inventory: &Inventory, pattern: Option<&str>) -> Result<Vec<Host>, Failure> {
    match pattern {
        None => Ok(inventory.hosts.clone()),
        Some(pattern) => Ok(inventory
            .select(pattern)
            .map_err(|error| Failure::BadInput(format!("--hosts {pattern}: {error}")))?
            .into_iter()
            .cloned()
            .collect()),
    }
}
