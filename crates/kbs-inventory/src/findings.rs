//! Collects diagnostics while an inventory is decoded and validated, and remembers where each
//! field was written so later checks can point at it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::diagnostic::{Diagnostic, Severity};

/// A 1-based line and column in the inventory file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, column: 1 };
}

/// Every finding so far, plus a map from field paths (`hosts[2].address`) to where they were written.
pub(crate) struct Findings {
    path: PathBuf,
    diagnostics: Vec<Diagnostic>,
    positions: HashMap<String, Pos>,
    /// `hosts[1]` → `host02`, so messages name hosts the way the user does.
    host_names: HashMap<String, String>,
}

impl Findings {
    pub fn new(path: &Path) -> Self {
        Findings {
            path: path.to_path_buf(),
            diagnostics: Vec::new(),
            positions: HashMap::new(),
            host_names: HashMap::new(),
        }
    }

    pub fn error(&mut self, pos: Pos, message: impl Into<String>, hint: impl Into<Option<String>>) {
        self.push(Severity::Error, pos, message.into(), hint.into());
    }

    pub fn warning(&mut self, pos: Pos, message: impl Into<String>, hint: impl Into<Option<String>>) {
        self.push(Severity::Warning, pos, message.into(), hint.into());
    }

    fn push(&mut self, severity: Severity, pos: Pos, message: String, hint: Option<String>) {
        self.diagnostics.push(Diagnostic {
            severity,
            path: self.path.clone(),
            line: pos.line,
            column: pos.column,
            message,
            hint,
        });
    }

    /// Remembers that `field` was written at `pos`.
    pub fn record(&mut self, field: &str, pos: Pos) {
        self.positions.insert(field.to_string(), pos);
    }

    /// Where `field` was written; for a field left out, where its nearest written parent is,
    /// so "missing" findings point at the section they belong to.
    pub fn pos_of(&self, field: &str) -> Pos {
        let mut current = field;
        loop {
            if let Some(pos) = self.positions.get(current) {
                return *pos;
            }
            match current.rfind(['.', '[']) {
                Some(cut) => current = &current[..cut],
                None => return Pos::START,
            }
        }
    }

    /// Remembers the name of the host at `host_path` (`hosts[1]`) for messages.
    pub fn name_host(&mut self, host_path: &str, name: &str) {
        self.host_names.insert(host_path.to_string(), name.to_string());
    }

    /// A field path as messages show it: "the inventory", "host `host02`", "`ssh` of host
    /// `host02`", or "`cluster.endpoint`".
    pub fn describe(&self, path: &str) -> String {
        if path.is_empty() {
            return "the inventory".to_string();
        }
        if let Some(end) = path.starts_with("hosts[").then(|| path.find(']')).flatten() {
            let (host_path, rest) = path.split_at(end + 1);
            if let Some(name) = self.host_names.get(host_path) {
                return match rest.strip_prefix('.') {
                    Some(inner) => format!("`{inner}` of host `{name}`"),
                    None => format!("host `{name}`"),
                };
            }
        }
        format!("`{path}`")
    }

    /// Whether `field` itself (not a parent) was written.
    pub fn was_written(&self, field: &str) -> bool {
        self.positions.contains_key(field)
    }

    pub fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.severity == Severity::Error)
    }

    /// All findings in file order (errors before warnings at the same spot).
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.diagnostics.sort_by_key(|d| (d.line, d.column, d.severity));
        self.diagnostics
    }
}
