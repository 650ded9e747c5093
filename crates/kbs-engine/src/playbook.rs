//! Playbooks: YAML files of tasks, and the [`Library`] that holds them with the templates.
//!
//! The library starts from the files embedded at build time (the workspace's `playbooks/` and
//! `templates/`); a directory given at run time replaces files of the same name, so a user can
//! patch one template without rebuilding. Everything is checked when loaded: unknown keys and
//! modules, `notify:` naming no handler, `when:` that does not compile.
//!
//! ```yaml
//! name: prepare
//! hosts: all              # all | control-plane | worker | lb | first-control-plane
//! strategy: parallel      # parallel (sliding window) | serial | once
//! tasks:
//!   - name: containerd config
//!     module: template
//!     args: { src: containerd/config-v3.toml.j2, path: /etc/containerd/config.toml }
//!     when: "host.facts.containerd_major >= 2"
//!     notify: [restart containerd]
//! handlers:
//!   - name: restart containerd
//!     module: service
//!     args: { name: containerd, state: restarted }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::modules;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// Which hosts a phase runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostSet {
    #[default]
    All,
    ControlPlane,
    Worker,
    Lb,
    /// The first control plane in inventory order (where `kubeadm init` runs).
    FirstControlPlane,
}

/// How a phase goes through its hosts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// All hosts at once, bounded by a sliding window.
    #[default]
    Parallel,
    /// One host after another (etcd membership changes).
    Serial,
    /// Only the first host of the set.
    Once,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub name: String,
    pub module: String,
    /// Strings in here are minijinja templates; a string that is one `{{ expression }}` keeps the
    /// expression's type (a list stays a list).
    #[serde(default)]
    pub args: serde_json::Value,
    /// A minijinja expression; the task is skipped when it is false.
    #[serde(default)]
    pub when: Option<String>,
    /// Handlers to run at the end of the playbook if this task changed something.
    #[serde(default)]
    pub notify: Vec<String>,
    /// Gather facts again after this task changed something (e.g. containerd was installed).
    #[serde(default)]
    pub refresh_facts: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub hosts: HostSet,
    #[serde(default)]
    pub strategy: Strategy,
    pub tasks: Vec<Task>,
    #[serde(default)]
    pub handlers: Vec<Task>,
}

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// The playbooks and templates of a run.
#[derive(Debug, Clone, Default)]
pub struct Library {
    playbooks: BTreeMap<String, Playbook>,
    templates: BTreeMap<String, String>,
}

impl Library {
    /// The playbooks and templates built into kbs.
    pub fn embedded() -> Result<Library, LibraryError> {
        Library::from_sources(
            embedded::PLAYBOOKS
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string())),
            embedded::TEMPLATES
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string())),
        )
    }

    /// The embedded library with files from `playbooks_dir` (`*.yaml`) and `templates_dir`
    /// (any file, named by its path below the directory) replacing or adding to it.
    pub fn load(playbooks_dir: Option<&Path>, templates_dir: Option<&Path>) -> Result<Library, LibraryError> {
        let mut playbooks: BTreeMap<String, String> = embedded::PLAYBOOKS
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        let mut templates: BTreeMap<String, String> = embedded::TEMPLATES
            .iter()
            .map(|(n, s)| (n.to_string(), s.to_string()))
            .collect();
        if let Some(dir) = playbooks_dir {
            for (name, text) in read_tree(dir)? {
                if name.ends_with(".yaml") || name.ends_with(".yml") {
                    playbooks.insert(name, text);
                }
            }
        }
        if let Some(dir) = templates_dir {
            templates.extend(read_tree(dir)?);
        }
        Library::from_sources(playbooks, templates)
    }

    /// A library from `(file name, text)` pairs; playbooks are named by file stem.
    pub fn from_sources(
        playbooks: impl IntoIterator<Item = (String, String)>,
        templates: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Library, LibraryError> {
        let mut lib = Library {
            playbooks: BTreeMap::new(),
            templates: templates.into_iter().collect(),
        };
        // A template that does not parse is reported now, naming its file, not mid-run.
        let mut env = minijinja::Environment::new();
        for (name, source) in &lib.templates {
            env.add_template(name, source)
                .map_err(|e| LibraryError::Invalid {
                    file: format!("templates/{name}"),
                    message: e.to_string(),
                })?;
        }
        for (file, text) in playbooks {
            let playbook: Playbook = serde_yaml::from_str(&text).map_err(|e| LibraryError::Invalid {
                file: file.clone(),
                message: e.to_string(),
            })?;
            validate(&playbook, &lib.templates).map_err(|message| LibraryError::Invalid {
                file: file.clone(),
                message,
            })?;
            let stem = file
                .rsplit('/')
                .next()
                .unwrap_or(&file)
                .trim_end_matches(".yaml")
                .trim_end_matches(".yml")
                .to_string();
            lib.playbooks.insert(stem, playbook);
        }
        Ok(lib)
    }

    pub fn playbook(&self, name: &str) -> Option<&Playbook> {
        self.playbooks.get(name)
    }

    pub fn playbook_names(&self) -> impl Iterator<Item = &str> {
        self.playbooks.keys().map(String::as_str)
    }

    pub fn templates(&self) -> &BTreeMap<String, String> {
        &self.templates
    }
}

fn validate(playbook: &Playbook, templates: &BTreeMap<String, String>) -> Result<(), String> {
    let env = minijinja::Environment::new();
    for (kind, task) in playbook
        .tasks
        .iter()
        .map(|t| ("task", t))
        .chain(playbook.handlers.iter().map(|t| ("handler", t)))
    {
        if !modules::KNOWN.contains(&task.module.as_str()) {
            return Err(format!(
                "{kind} `{}`: unknown module `{}` (known: {})",
                task.name,
                task.module,
                modules::KNOWN.join(", ")
            ));
        }
        if let Some(when) = &task.when {
            env.compile_expression(when)
                .map_err(|e| format!("{kind} `{}`: `when: {when}` does not compile: {e}", task.name))?;
        }
        // A literal `src` must name a template we have; an expression is checked when rendered.
        if let Some(src) = task.args.get("src").and_then(|v| v.as_str()) {
            if !src.contains("{{") && !templates.contains_key(src) {
                return Err(format!("{kind} `{}`: no template `{src}`", task.name));
            }
        }
        for n in &task.notify {
            if !playbook.handlers.iter().any(|h| &h.name == n) {
                return Err(format!(
                    "{kind} `{}` notifies `{n}`, which is no handler of this playbook",
                    task.name
                ));
            }
        }
    }
    Ok(())
}

fn read_tree(dir: &Path) -> Result<Vec<(String, String)>, LibraryError> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) -> Result<(), LibraryError> {
        let io = |source| LibraryError::Io {
            path: dir.to_path_buf(),
            source,
        };
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.is_dir() {
                walk(base, &path, out)?;
            } else if let Ok(rel) = path.strip_prefix(base) {
                let text = std::fs::read_to_string(&path).map_err(|source| LibraryError::Io {
                    path: path.clone(),
                    source,
                })?;
                out.push((rel.to_string_lossy().replace('\\', "/"), text));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(yaml: &str) -> Result<Library, LibraryError> {
        Library::from_sources([("t.yaml".to_string(), yaml.to_string())], [])
    }

    #[test]
    fn embedded_playbooks_load() {
        let lib = Library::embedded().unwrap();
        let prepare = lib.playbook("prepare").expect("prepare.yaml is embedded");
        assert!(prepare.tasks.len() > 5);
        assert!(lib.templates().contains_key("containerd/config-v3.toml.j2"));
    }

    #[test]
    fn rejects_unknown_module_bad_notify_and_bad_when() {
        let e = one("name: x\ntasks:\n  - name: a\n    module: nope\n").unwrap_err();
        assert!(e.to_string().contains("unknown module `nope`"), "{e}");
        let e = one("name: x\ntasks:\n  - name: a\n    module: command\n    notify: [h]\n").unwrap_err();
        assert!(e.to_string().contains("notifies `h`"), "{e}");
        let e = one("name: x\ntasks:\n  - name: a\n    module: command\n    when: \"a ==\"\n").unwrap_err();
        assert!(e.to_string().contains("does not compile"), "{e}");
        let e = one("name: x\ntasks:\n  - name: a\n    module: command\n    wen: x\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `wen`"), "{e}");
    }

    #[test]
    fn rejects_a_missing_template_and_a_broken_one() {
        let e =
            one("name: x\ntasks:\n  - name: a\n    module: template\n    args: { src: nope.j2, path: /x }\n")
                .unwrap_err();
        assert!(e.to_string().contains("no template `nope.j2`"), "{e}");
        let e = Library::from_sources([], [("bad.j2".to_string(), "{% if %}".to_string())]).unwrap_err();
        assert!(e.to_string().starts_with("templates/bad.j2: "), "{e}");
    }

    #[test]
    fn override_dir_replaces_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("prepare.yaml"), "name: mine\ntasks: []\n").unwrap();
        let lib = Library::load(Some(dir.path()), None).unwrap();
        assert_eq!(lib.playbook("prepare").unwrap().name, "mine");
    }
}
