//! `kbs check`: can kbs reach and use every host, and is every host fit to become a node?
//!
//! One connection per host, the facts script (run through sudo, so it proves sudo works too) and
//! one look at the listening ports; then the rules of [`crate::fitness`]. Prints a table and the
//! findings; exits non-zero when anything would block `kbs apply`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use kbs_engine::{Engine, Facts, HostFailure, Library, NoEvents, Script, Transport, Vars};
use kbs_ssh::run_windowed;

use crate::commands::load_inventory;
use crate::connect::connect_hosts;
use crate::failure::Failure;
use crate::fitness::{self, Finding, Observed, Severity};
use crate::targets::AccessDefaults;

/// Listening TCP ports, one per line (`ss` is in iproute2, on every Debian and Ubuntu host).
const LISTENING_PORTS: &str = "ss -Hltn | awk '{n = split($4, a, \":\"); print a[n]}' | sort -un";

pub async fn run(inventory_path: &Path, defaults: AccessDefaults, forks: usize) -> Result<(), Failure> {
    let inventory = load_inventory(inventory_path)?;
    let hosts = connect_hosts(&inventory, &inventory.hosts, &defaults, forks).await;
    let transports: Vec<(String, Arc<dyn Transport>)> = hosts
        .iter()
        .map(|(host, transport)| (host.name.clone(), Arc::clone(transport)))
        .collect();
    let library = Library::embedded().map_err(|error| Failure::BadInput(error.to_string()))?;
    let engine = Engine::new(library, hosts, Vars::default(), Arc::new(NoEvents)).window(forks);
    let local_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or_default();
    let facts = engine.gather_facts().await;
    let listening = listening_ports(&transports, &facts, forks).await;
    let findings = fitness::evaluate(
        &inventory,
        &Observed {
            facts: &facts,
            listening: &listening,
            local_time,
        },
    );

    println!("{}", host_table(&inventory.hosts, &facts, &findings));
    if !findings.is_empty() {
        println!("\n{}", finding_lines(&findings));
    }
    let blocking = findings
        .iter()
        .filter(|f| f.severity == Severity::Blocking)
        .count();
    let warnings = findings.len() - blocking;
    println!(
        "\n{} host{}: {blocking} blocking problem{}, {warnings} warning{}",
        inventory.hosts.len(),
        plural(inventory.hosts.len()),
        plural(blocking),
        plural(warnings)
    );
    if blocking == 0 {
        Ok(())
    } else {
        Err(Failure::HostsFailed(format!(
            "{blocking} problem{} would stop kbs apply; fix {} and run kbs check again",
            plural(blocking),
            if blocking == 1 { "it" } else { "them" }
        )))
    }
}

async fn listening_ports(
    transports: &[(String, Arc<dyn Transport>)],
    facts: &BTreeMap<String, Result<Facts, HostFailure>>,
    forks: usize,
) -> BTreeMap<String, Vec<u16>> {
    let reachable = transports
        .iter()
        .filter(|(name, _)| matches!(facts.get(name), Some(Ok(_))));
    run_windowed(reachable, forks, |(name, transport)| async move {
        let script = Script {
            text: LISTENING_PORTS.to_string(),
            stdin: None,
            privileged: false,
        };
        let ports = match transport.exec(&script).await {
            Ok(result) if result.success() => result
                .stdout
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect(),
            _ => Vec::new(),
        };
        (name.clone(), ports)
    })
    .collect()
    .await
}

fn host_table(
    hosts: &[kbs_inventory::Host],
    facts: &BTreeMap<String, Result<Facts, HostFailure>>,
    findings: &[Finding],
) -> String {
    let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(4).max(4);
    let mut text = format!(
        "{:<width$}  {:<16}  {:<6}  {:>4}  {:>9}  {:<14}  RESULT",
        "HOST", "OS", "ARCH", "CPUS", "MEMORY", "ROLES"
    );
    for host in hosts {
        let worst = findings
            .iter()
            .filter(|f| f.host == host.name)
            .map(|f| f.severity)
            .max();
        let result = match worst {
            None => "ok",
            Some(Severity::Warning) => "ok (warnings)",
            Some(Severity::Blocking) => "BLOCKED",
        };
        let roles: Vec<&str> = host.roles.iter().map(|r| r.as_str()).collect();
        let _ = match facts.get(&host.name) {
            Some(Ok(f)) => write!(
                text,
                "\n{:<width$}  {:<16}  {:<6}  {:>4}  {:>6} MB  {:<14}  {result}",
                host.name,
                format!("{} {}", f.os_id, f.os_version),
                f.arch,
                f.cpus,
                f.memory_mb,
                roles.join(",")
            ),
            _ => write!(
                text,
                "\n{:<width$}  {:<16}  {:<6}  {:>4}  {:>9}  {:<14}  {result}",
                host.name,
                "-",
                "-",
                "-",
                "-",
                roles.join(",")
            ),
        };
    }
    text
}

fn finding_lines(findings: &[Finding]) -> String {
    let width = findings.iter().map(|f| f.host.len()).max().unwrap_or(0);
    findings
        .iter()
        .map(|f| {
            let label = match f.severity {
                Severity::Blocking => "BLOCKING",
                Severity::Warning => "warning ",
            };
            format!(
                "{:<width$}  {label}  {}\n{:<width$}            hint: {}",
                f.host, f.problem, "", f.hint
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn plural(count: usize) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}
