//! One module per command; each takes its parsed arguments and returns how the run ended.

pub mod apply;
pub mod check;
pub mod exec;

use std::path::Path;

use kbs_inventory::{Inventory, InventoryError};

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
