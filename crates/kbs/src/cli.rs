//! The command line: every flag is defined once here, with its help text, so `--help` is the reference.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::output::report::OutputFormat;

#[derive(Debug, Parser)]
#[command(
    name = "kbs",
    version,
    about = "Turn apt-based Linux hosts into a highly available kubeadm Kubernetes cluster over SSH",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command that talks to hosts shares.
#[derive(Debug, Args)]
pub struct GlobalOptions {
    /// How many hosts are worked on at once (a sliding window: a slow host never holds the others).
    #[arg(long, global = true, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub forks: u32,

    /// Learn the host key of a host not yet in known_hosts (like OpenSSH's StrictHostKeyChecking=accept-new).
    /// A key that differs from a known one is always refused.
    #[arg(long, global = true)]
    pub accept_new_host_keys: bool,

    /// Do not read ~/.ssh/config.
    #[arg(long, global = true)]
    pub no_ssh_config: bool,

    /// Ask once for the sudo password of the hosts (it is passed to sudo on standard input, never in arguments).
    #[arg(long, short = 'K', global = true)]
    pub ask_become_pass: bool,

    /// Give up connecting to a host after this long (TCP connect and SSH handshake), e.g. 10s, 1m.
    /// Beats the inventory's `connectTimeout`; default 10s.
    #[arg(long, global = true, value_parser = parse_duration)]
    pub connect_timeout: Option<Duration>,

    /// More detail on standard error (-v, -vv, -vvv). The log file always has the full detail.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors and the final summary.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// How results are shown: text for people, json for one event per line (the last is the summary).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub output: OutputFormat,

    /// Where the debug log goes (default: a new file under ~/.local/state/kbs/logs).
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Converge the hosts to the inventory: prepare them (kernel, swap, containerd, Kubernetes
    /// packages), set up the API endpoint, `kubeadm init` the first control plane, join the other
    /// control planes one at a time and the workers in parallel. Running it again changes nothing.
    /// Phases (for --until): prepare, endpoint, init, join-control-planes, join-workers,
    /// approve-csrs, addons.
    Apply(ApplyArgs),
    /// Add a host of the inventory to the running cluster (prepare it, fresh token and, for a
    /// control plane, freshly uploaded certificates; the token is deleted afterwards).
    Join(JoinArgs),
    /// Can kbs reach and use every host, and is every host fit (OS, CPU and memory, free ports,
    /// unique identity, clock)? Changes nothing; exits 1 on a problem that would stop `apply`.
    Check(CheckArgs),
    /// Show, host by host, what `apply` would change (with diffs); changes nothing.
    Plan(PlanArgs),
    /// Run a command on all (or some) hosts of the inventory at once: the book's k8s-all, done safely.
    Exec(ExecArgs),
    /// Print the kubeadm config a host gets (secrets redacted); connects to nothing.
    Render(RenderArgs),
    /// Write the cluster's admin kubeconfig (server: the HA endpoint) with mode 0600.
    Kubeconfig(KubeconfigArgs),
    /// Nodes with roles, readiness and versions, the endpoint's health, pending CSRs; exits 1
    /// when a node is not Ready or the endpoint does not answer.
    Status(StatusArgs),
    /// `kubeadm reset` and cleanup on the given hosts (all without any), after confirmation.
    /// Control planes leave etcd one at a time; their Node objects are deleted.
    Reset(ResetArgs),
}

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// The inventory file.
    pub inventory: PathBuf,

    /// Where to write it (`-` for stdout). Default: <cluster>-admin.kubeconfig beside the inventory.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The inventory file.
    pub inventory: PathBuf,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The inventory file.
    pub inventory: PathBuf,

    /// Hosts to reset, by name. None: every host (the whole cluster).
    pub hosts: Vec<String>,

    /// Do not ask for confirmation (needed without a terminal).
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The inventory file.
    pub inventory: PathBuf,

    /// Only these hosts: comma-separated names, globs (host0*), role:control-plane, group:NAME.
    /// Default: every host of the inventory (a host meant to join later can be left out).
    #[arg(long, short = 'H', value_name = "PATTERN")]
    pub hosts: Option<String>,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The inventory file.
    pub inventory: PathBuf,

    /// Only these hosts: comma-separated names, globs (host0*), role:control-plane, group:NAME.
    /// Default: every host of the inventory (a host meant to join later can be left out).
    #[arg(long, short = 'H', value_name = "PATTERN")]
    pub hosts: Option<String>,

    /// Stop after this phase (see `kbs apply --help` for the phases).
    #[arg(long, value_name = "PHASE")]
    pub until: Option<String>,

    /// Also list tasks that are already as they should be.
    #[arg(long)]
    pub show_ok: bool,

    /// Use the playbooks in DIR instead of the ones built into kbs.
    #[arg(long, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,

    /// Use the templates in DIR instead of the ones built into kbs.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,

    /// Base URL of a pkgs.k8s.io mirror; beats the inventory's `cluster.packageRepository`.
    #[arg(long, value_name = "URL")]
    pub package_repository: Option<String>,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The host to add, as the inventory names it.
    pub host: String,

    /// The inventory file.
    #[arg(long, short = 'i', value_name = "INVENTORY")]
    pub inventory: PathBuf,

    /// Base URL of a pkgs.k8s.io mirror; beats the inventory's `cluster.packageRepository`.
    #[arg(long, value_name = "URL")]
    pub package_repository: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub plan: PlanArgs,

    /// Only check and show what would change (the same as `kbs plan`).
    #[arg(long)]
    pub dry_run: bool,

    /// Show the diff of every change (always shown with --dry-run).
    #[arg(long)]
    pub diff: bool,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The inventory file.
    pub inventory: PathBuf,

    /// Which hosts: comma-separated names, globs (host0*), role:control-plane, group:NAME. Default: all.
    #[arg(long, short = 'H', value_name = "PATTERN")]
    pub hosts: Option<String>,

    /// Print each host's output as one block when it finishes, instead of line by line with a prefix.
    #[arg(long)]
    pub group: bool,

    /// Run the command with sudo on hosts whose inventory says `sudo: true`.
    #[arg(long)]
    pub sudo: bool,

    /// The command and its arguments, after `--`. It is run by the remote user's shell.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The inventory file.
    pub inventory: PathBuf,

    /// The host whose config to print.
    pub host: String,

    /// Print real-looking secrets (minted now, for display only) instead of <redacted>.
    #[arg(long)]
    pub show_secrets: bool,

    /// Use the templates in DIR instead of the ones built into kbs.
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

/// Parses "90s", "5m", "1h", "250ms" or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write it like 10s, 2m or 1h"))?;
    let duration = match unit {
        "" | "s" => Duration::from_secs(number),
        "ms" => Duration::from_millis(number),
        "m" => Duration::from_secs(number * 60),
        "h" => Duration::from_secs(number * 3600),
        _ => return Err(format!("unknown unit `{unit}` in `{text}`; use ms, s, m or h")),
    };
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(
            parse_duration("5 days"),
            Err("unknown unit ` days` in `5 days`; use ms, s, m or h".to_string())
        );
        assert_eq!(
            parse_duration("soon"),
            Err("`soon` is not a duration; write it like 10s, 2m or 1h".to_string())
        );
    }
}
