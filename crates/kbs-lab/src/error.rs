//! The crate's one error type: every failure names the step, what went wrong and what to do about it.

use std::fmt::Display;
use std::path::Path;

/// A failed lab step. `Display` prints all three parts, so a CLI can show it as is.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {detail}\n  what to do: {hint}")]
pub struct Error {
    /// What the lab was doing, naming the host or file involved.
    pub step: String,
    /// What went wrong (a command's error output, an OS error).
    pub detail: String,
    /// What the user can do about it.
    pub hint: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(step: impl Into<String>, detail: impl Display, hint: impl Into<String>) -> Self {
        Error {
            step: step.into(),
            detail: detail.to_string(),
            hint: hint.into(),
        }
    }

    /// A file-system error on `path`; the hint depends on the kind of error.
    pub fn io(step: impl Into<String>, path: &Path, error: std::io::Error) -> Self {
        let hint = match error.kind() {
            std::io::ErrorKind::PermissionDenied => "run kbs-lab as root",
            std::io::ErrorKind::StorageFull => {
                "free disk space (the lab needs about 1 GiB under /var plus 1 MiB per host)"
            }
            _ => "check the path and its parent directories, then run the command again",
        };
        Error::new(step, format!("{}: {error}", path.display()), hint)
    }
}
