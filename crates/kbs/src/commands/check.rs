//! `kbs check`: can kbs reach and use every host, and is every host fit to become a node?
//!
//! One connection per host, the facts script (run through sudo, so it proves sudo works too) and
//! one look at the listening ports; then the rules of [`kbs_cluster::fitness`]. Prints a table and
//! the findings; exits non-zero when anything would block `kbs apply`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use kbs_engine::{Engine, Facts, HostFailure, Library, NoEvents, Script, Transport, Vars};
use kbs_ssh::run_windowed;

use crate::commands::{load_inventory, select_hosts};
use crate::connect::connect_hosts;
use crate::failure::Failure;
use crate::targets::AccessDefaults;
use kbs_cluster::{Finding, Level};

/// Listening TCP ports, one per line (`ss` is in iproute2, on every Debian and Ubuntu host).
const LISTENING_PORTS: &str = "ss -Hltn | awk '{n = split($4, a, \":\"); print a[n]}' | sort -un";

pub async fn run(
    inventory_path: &Path,
    pattern: Option<&str>,
    defaults: AccessDefaults,
    forks: usize,
) -> Result<(), Failure> {
    let inventory = load_inventory(inventory_path)?;
    let selected = select_hosts(&inventory, pattern)?;
    let hosts = connect_hosts(&inventory, &selected, &defaults, forks).await;
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
    let versions =
        kbs_cluster::minor_versions(&inventory).map_err(|error| Failure::BadInput(error.to_string()))?;
    let mut findings = unreachable_findings(&facts);
    let gathered: BTreeMap<String, Facts> = facts
        .iter()
        .filter_map(|(name, result)| result.as_ref().ok().map(|f| (name.clone(), f.clone())))
        .collect();
    findings.extend(kbs_cluster::fitness(
        &inventory, &gathered, &listening, versions, local_time,
    ));
    let order = |f: &Finding| inventory.hosts.iter().position(|h| h.name == f.host);
    findings.sort_by(|a, b| order(a).cmp(&order(b)).then(a.level.cmp(&b.level)));

    println!("{}", host_table(&selected, &facts, &findings));
    if !findings.is_empty() {
        println!("\n{}", finding_lines(&findings));
    }
    let blocking = findings.iter().filter(|f| f.level == Level::Error).count();
    let warnings = findings.len() - blocking;
    println!(
        "\n{} host{}: {blocking} blocking problem{}, {warnings} warning{}",
        selected.len(),
        plural(selected.len()),
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

/// A host kbs could not reach or gather facts from is a blocking problem of its own.
fn unreachable_findings(facts: &BTreeMap<String, Result<Facts, HostFailure>>) -> Vec<Finding> {
    facts
        .iter()
        .filter_map(|(name, result)| result.as_ref().err().map(|failure| (name, failure)))
        .map(|(name, failure)| Finding {
            host: name.clone(),
            level: Level::Error,
            check: "reachable",
            message: format!("{}: {}", failure.step, failure.message),
            hint: failure.hint.clone().unwrap_or_else(|| {
                "make the host reachable over SSH with working sudo, then run kbs check again".into()
            }),
        })
        .collect()
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
            .map(|f| f.level)
            .min();
        let result = match worst {
            None => "ok",
            Some(Level::Warning) => "ok (warnings)",
            Some(Level::Error) => "BLOCKED",
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
            let label = match f.level {
                Level::Error => "BLOCKING",
                Level::Warning => "warning ",
            };
            format!(
                "{:<width$}  {label}  {}\n{:<width$}            hint: {}",
                f.host, f.message, "", f.hint
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
