//! Embeds every file under the workspace's `playbooks/` and `templates/` into the binary, so a new
//! playbook or template needs no code change: this writes `$OUT_DIR/embedded.rs` with two tables of
//! `(relative name, include_str!(absolute path))`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"))
        .join("../..");
    let mut out = String::new();
    for (table, dir) in [("PLAYBOOKS", "playbooks"), ("TEMPLATES", "templates")] {
        let dir = root.join(dir);
        // A directory given to rerun-if-changed is scanned as a whole for modifications.
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files = Vec::new();
        collect(&dir, &dir, &mut files);
        files.sort();
        writeln!(out, "pub(crate) const {table}: &[(&str, &str)] = &[").unwrap();
        for (name, path) in files {
            writeln!(
                out,
                "    ({name:?}, include_str!({:?})),",
                path.display().to_string()
            )
            .unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    let dest = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded.rs");
    std::fs::write(dest, out).expect("writing embedded.rs");
}

fn collect(base: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(base, &path, files);
        } else if let Ok(rel) = path.strip_prefix(base) {
            let name = rel.to_string_lossy().replace('\\', "/");
            if !name.starts_with('.') && !name.contains("/.") {
                let abs = path.canonicalize().unwrap_or(path.clone());
                files.push((name, abs));
            }
        }
    }
}
