//! The phases of `kbs apply`, in order. Each is a playbook on a host set with a strategy; the
//! engine runs them and `--until NAME` stops after the named one.
//!
//! The playbook phases ([`apply_phases`]: prepare) come first; the cluster phases of
//! [`crate::orchestrate`] follow: endpoint → init (first control plane, once) → join control planes
//! (serial) → join workers (parallel).

use kbs_engine::{HostSet, Phase, Strategy};

/// Every host gets kernel settings, swap off, containerd and the pinned Kubernetes packages.
pub const PREPARE: &str = "prepare";

pub fn apply_phases() -> Vec<Phase> {
    vec![Phase::new(PREPARE, "prepare")
        .on(HostSet::All)
        .strategy(Strategy::Parallel)]
}

/// Names accepted by `--until`, in the order they run.
pub fn phase_names() -> Vec<String> {
    let mut names: Vec<String> = apply_phases().into_iter().map(|p| p.name).collect();
    names.extend(crate::orchestrate::PHASES.iter().map(|p| p.to_string()));
    names
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_phase_has_an_embedded_playbook() {
        let lib = kbs_engine::Library::embedded().unwrap();
        for p in super::apply_phases() {
            assert!(lib.playbook(&p.playbook).is_some(), "{}", p.playbook);
        }
    }
}
