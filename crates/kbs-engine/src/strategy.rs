//! Which hosts a phase touches and in what order: host sets resolved against the inventory order,
//! and the three strategies. Parallel is a sliding window (kbs_ssh::run_windowed): a new host starts
//! as soon as any finishes, so one slow host never holds back a batch.

use std::future::Future;

use futures_util::StreamExt;
use kbs_inventory::{Host, Role};

use crate::playbook::{HostSet, Strategy};

/// Indices (into `hosts`, inventory order) of the hosts in `set`.
pub fn select(hosts: &[&Host], set: HostSet) -> Vec<usize> {
    let with_role = |role| {
        hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.has_role(role))
            .map(|(i, _)| i)
            .collect::<Vec<_>>()
    };
    match set {
        HostSet::All => (0..hosts.len()).collect(),
        HostSet::ControlPlane => with_role(Role::ControlPlane),
        HostSet::Worker => with_role(Role::Worker),
        HostSet::Lb => with_role(Role::Lb),
        HostSet::FirstControlPlane => with_role(Role::ControlPlane).into_iter().take(1).collect(),
    }
}

/// Runs `f` for each item as the strategy says; results in completion order.
pub async fn run<T, F, Fut>(items: Vec<T>, strategy: Strategy, window: usize, mut f: F) -> Vec<Fut::Output>
where
    F: FnMut(T) -> Fut,
    Fut: Future,
{
    match strategy {
        Strategy::Parallel => kbs_ssh::run_windowed(items, window, f).collect().await,
        Strategy::Serial => {
            let mut out = Vec::new();
            for item in items {
                out.push(f(item).await);
            }
            out
        }
        Strategy::Once => match items.into_iter().next() {
            Some(item) => vec![f(item).await],
            None => Vec::new(),
        },
    }
}
