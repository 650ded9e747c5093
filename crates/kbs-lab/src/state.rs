//! The running lab's record in `/run/kbs-lab/state.json`: hosts with their wrapper PIDs, the repository
//! server's PID, where the inventory went. `down` uses it for PIDs but does not depend on it: it also finds
//! the lab's cgroups, mounts and bridge on its own, so a crashed `up` is removable.

use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::machine::Host;
use crate::paths;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub hosts: Vec<HostState>,
    pub server_pid: Option<i32>,
    /// Hosts given the `lb` role.
    #[serde(default)]
    pub lbs: Vec<String>,
    pub inventory: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostState {
    #[serde(flatten)]
    pub host: Host,
    /// The wrapper's PID while the host runs; `None` after `fault down`.
    pub pid: Option<i32>,
}

impl State {
    pub fn load() -> Result<Option<State>> {
        let path = paths::state_file();
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                Error::new(
                    "reading the lab state",
                    format!("{}: {e}", path.display()),
                    "run kbs-lab down (it works without the state file), then kbs-lab up",
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading the lab state", &path, e)),
        }
    }

    pub fn save(&self) -> Result<()> {
        let path = paths::state_file();
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io("saving the lab state", parent, e))?;
        }
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::new("saving the lab state", e, "report this as a bug"))?;
        let tmp = path.with_extension("json.tmp");
        fs::write(&tmp, text).map_err(|e| Error::io("saving the lab state", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("saving the lab state", &path, e))
    }

    pub fn host_mut(&mut self, name: &str) -> Result<&mut HostState> {
        let known: Vec<String> = self.hosts.iter().map(|h| h.host.name.clone()).collect();
        self.hosts
            .iter_mut()
            .find(|h| h.host.name == name)
            .ok_or_else(|| unknown_host(name, &known))
    }
}

pub fn unknown_host(name: &str, known: &[String]) -> Error {
    Error::new(
        format!("finding host {name}"),
        "no such host in the lab",
        format!("use one of: {} (kbs-lab status lists them)", known.join(" ")),
    )
}
