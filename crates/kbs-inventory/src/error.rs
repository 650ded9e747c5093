//! The crate's errors: why an inventory could not be loaded, and why a host pattern selected nothing.

use std::path::PathBuf;

use crate::diagnostic::{Diagnostic, Severity};

/// Why an inventory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The file could not be read at all.
    #[error("cannot read inventory {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but has errors. Holds every finding, warnings included, in file order.
    #[error("{}", render_blocks(.0))]
    Invalid(Vec<Diagnostic>),
}

impl InventoryError {
    /// Every finding, errors and warnings, in file order; empty for a read error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            InventoryError::Read { .. } => &[],
            InventoryError::Invalid(diagnostics) => diagnostics,
        }
    }

    /// How many of the findings are errors.
    pub fn error_count(&self) -> usize {
        match self {
            InventoryError::Read { .. } => 1,
            InventoryError::Invalid(diagnostics) => diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count(),
        }
    }
}

/// One block per finding, separated by blank lines, like rustc.
fn render_blocks(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Why `Inventory::select` could not resolve a host pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// The pattern, or one of its comma-separated terms, is empty.
    #[error("empty host pattern{}", at_term(.0))]
    Empty(String),
    /// A term matched no host.
    #[error("no host matches `{term}`{}", did_you_mean(.suggestion))]
    NoMatch {
        term: String,
        suggestion: Option<String>,
    },
    /// `role:X` with a role that does not exist.
    #[error("unknown role `{role}` in `{term}`{}; roles are control-plane, worker, lb", did_you_mean(.suggestion))]
    UnknownRole {
        term: String,
        role: String,
        suggestion: Option<String>,
    },
    /// `group:X` with a group the inventory does not define.
    #[error("group `{group}` in `{term}` is not defined in the inventory{}", did_you_mean(.suggestion))]
    UnknownGroup {
        term: String,
        group: String,
        suggestion: Option<String>,
    },
}

fn at_term(pattern: &str) -> String {
    if pattern.trim().is_empty() {
        String::new()
    } else {
        format!(" term in `{pattern}`")
    }
}

fn did_you_mean(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}
