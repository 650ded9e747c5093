//! What the lab end-to-end tests share: running kbs, reading its NDJSON events, SSH into a host.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use kbs_lab::Lab;
use serde_json::Value;

/// `kbs --output json ARGS… INVENTORY`.
pub fn kbs(inventory: &Path, args: &[&str]) -> Output {
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.push(inventory.as_os_str());
    kbs_args(&all)
}

/// `kbs --output json ARGS…`, ARGS as given.
pub fn kbs_args<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kbs"))
        .args(["--no-ssh-config", "--output", "json"])
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .expect("run kbs")
}

/// The NDJSON events kbs printed.
pub fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// The closing summary: host → (ok, changed, failed).
pub fn summary(out: &Output) -> BTreeMap<String, (u64, u64, u64)> {
    let all = events(out);
    let last = all.last().expect("kbs printed no event");
    assert_eq!(
        last["event"], "summary",
        "the last event must be the summary: {last}"
    );
    last["hosts"]
        .as_object()
        .expect("hosts")
        .iter()
        .map(|(host, c)| {
            let n = |k: &str| c[k].as_u64().unwrap_or(u64::MAX);
            (host.clone(), (n("ok"), n("changed"), n("failed")))
        })
        .collect()
}

pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `command` on `host` over SSH; it must succeed. Returns trimmed stdout.
pub fn on(lab: &Lab, host: &str, command: &str) -> String {
    let out = lab.ssh(host, command).expect("ssh into the lab");
    assert!(
        out.status.success(),
        "{host}: `{command}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
