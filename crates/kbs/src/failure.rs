//! How a run ends badly, and the exit code each case gives.
//!
//! Exit codes: 0 success; 1 some host failed or was unreachable (the summary names them);
//! 2 bad input (command line, inventory), nothing was changed.

use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The command line is wrong; nothing was attempted.
    #[error("{0}")]
    BadInput(String),
    /// The inventory has errors (every diagnostic is in `report`); nothing was attempted.
    #[error("{path}: {errors} error{} in the inventory; nothing was done", if *.errors == 1 { "" } else { "s" })]
    InvalidInventory {
        path: String,
        errors: usize,
        /// The rendered diagnostics, printed before the one-line error.
        report: String,
    },
    /// One or more hosts failed; the per-host lines and the summary have been printed already.
    #[error("{0}")]
    HostsFailed(String),
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::HostsFailed(_) => ExitCode::from(1),
            Failure::BadInput(_) | Failure::InvalidInventory { .. } => ExitCode::from(2),
        }
    }
}
