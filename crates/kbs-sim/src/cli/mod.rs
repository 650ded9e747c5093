//! The `kubeadm` command front: flags, output and exit codes as kubeadm prints them.
//!
//! Errors end the command as kubeadm's `cmdutil.CheckErr` does: `error: <msg>` plus the
//! stack-trace hint on stderr, exit status 1. Phase failures read
//! `error execution phase <phase>: <msg>` (cmd/phases/workflow/runner.go).

mod cluster;
pub(crate) mod config_cmd;
mod context;
mod init_api;
mod init_cmd;
mod join_api;
mod join_cmd;
mod reset_cmd;
mod token_cmd;
mod version_cmd;

use clap::{Args, Parser, Subcommand};

pub use config_cmd::io_text;
pub use context::Context;

/// kubeadm: easily bootstrap a secure Kubernetes cluster (simulated by kbs-sim).
#[derive(Debug, Parser)]
#[command(name = "kubeadm", disable_version_flag = true)]
pub struct Kubeadm {
    /// Log verbosity (accepted for compatibility).
    #[arg(short = 'v', long = "v", global = true, default_value_t = 0)]
    pub verbosity: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version of kubeadm.
    Version {
        /// Output format; available options are 'yaml', 'json' and 'short'.
        #[arg(short = 'o', long = "output", default_value = "")]
        output: String,
    },
    /// Manage configuration for a kubeadm cluster.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Run this command in order to set up the Kubernetes control plane.
    Init(InitArgs),
    /// Run this on any machine you wish to join an existing cluster.
    Join(JoinArgs),
    /// Performs a best effort revert of changes made to this host by 'kubeadm init' or 'kubeadm join'.
    Reset(ResetArgs),
    /// Manage bootstrap tokens (only `generate` works without the API server).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Commands related to handling Kubernetes certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Generate and print a bootstrap token, but do not create it on the server.
    Generate,
    /// Create bootstrap tokens on the server.
    Create {
        /// The token to create (generated when omitted).
        token: Option<String>,
        #[arg(long = "ttl", default_value = "24h0m0s")]
        ttl: String,
        #[arg(long = "description", default_value = "")]
        description: String,
        #[arg(
            long = "usages",
            value_delimiter = ',',
            default_value = "signing,authentication"
        )]
        usages: Vec<String>,
        #[arg(
            long = "groups",
            value_delimiter = ',',
            default_value = "system:bootstrappers:kubeadm:default-node-token"
        )]
        groups: Vec<String>,
        #[arg(long = "print-join-command")]
        print_join_command: bool,
        #[arg(long = "kubeconfig", default_value = "/etc/kubernetes/admin.conf")]
        kubeconfig: String,
    },
    /// List bootstrap tokens on the server.
    List {
        #[arg(long = "kubeconfig", default_value = "/etc/kubernetes/admin.conf")]
        kubeconfig: String,
    },
    /// Delete bootstrap tokens on the server.
    Delete {
        tokens: Vec<String>,
        #[arg(long = "kubeconfig", default_value = "/etc/kubernetes/admin.conf")]
        kubeconfig: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Generate certificate keys.
    CertificateKey,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Read a file containing the kubeadm configuration API and report any validation problems.
    Validate {
        /// Path to a kubeadm configuration file.
        #[arg(long = "config")]
        config: Option<String>,
        /// Allow the experimental config API versions.
        #[arg(long = "allow-experimental-api")]
        allow_experimental_api: bool,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[arg(long = "config")]
    pub config: Option<String>,
    #[arg(long = "upload-certs")]
    pub upload_certs: bool,
    #[arg(long = "certificate-key")]
    pub certificate_key: Option<String>,
    #[arg(long = "ignore-preflight-errors", value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
    #[arg(long = "skip-phases", value_delimiter = ',')]
    pub skip_phases: Vec<String>,
    #[arg(long = "node-name")]
    pub node_name: Option<String>,
    #[arg(long = "pod-network-cidr")]
    pub pod_network_cidr: Option<String>,
    #[arg(long = "control-plane-endpoint")]
    pub control_plane_endpoint: Option<String>,
    #[arg(long = "apiserver-advertise-address")]
    pub apiserver_advertise_address: Option<String>,
    #[arg(long = "skip-token-print")]
    pub skip_token_print: bool,
    #[arg(long = "skip-certificate-key-print")]
    pub skip_certificate_key_print: bool,
    #[arg(long = "dry-run")]
    pub dry_run: bool,
    /// `kubeadm init phase <name>` (only `preflight` is simulated in this version).
    #[command(subcommand)]
    pub phase: Option<InitPhase>,
}

#[derive(Debug, Subcommand)]
pub enum InitPhase {
    /// Use this command to invoke single phase of the init workflow.
    Phase {
        #[command(subcommand)]
        phase: InitPhaseName,
    },
}

#[derive(Debug, Subcommand)]
pub enum InitPhaseName {
    /// Run pre-flight checks.
    Preflight {
        #[arg(long = "config")]
        config: Option<String>,
        #[arg(long = "ignore-preflight-errors", value_delimiter = ',')]
        ignore_preflight_errors: Vec<String>,
    },
    /// Upload certificates to kubeadm-certs.
    UploadCerts {
        #[arg(long = "config")]
        config: Option<String>,
        #[arg(long = "upload-certs")]
        upload_certs: bool,
        #[arg(long = "certificate-key")]
        certificate_key: Option<String>,
        #[arg(long = "skip-certificate-key-print")]
        skip_certificate_key_print: bool,
        #[arg(long = "kubeconfig", default_value = "/etc/kubernetes/admin.conf")]
        kubeconfig: String,
    },
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// `host:port` of the API server (token discovery).
    pub api_server_endpoint: Option<String>,
    #[arg(long = "config")]
    pub config: Option<String>,
    #[arg(long = "token")]
    pub token: Option<String>,
    #[arg(long = "discovery-token")]
    pub discovery_token: Option<String>,
    #[arg(long = "discovery-token-ca-cert-hash")]
    pub discovery_token_ca_cert_hash: Vec<String>,
    #[arg(long = "discovery-token-unsafe-skip-ca-verification")]
    pub discovery_token_unsafe_skip_ca_verification: bool,
    #[arg(long = "control-plane")]
    pub control_plane: bool,
    #[arg(long = "certificate-key")]
    pub certificate_key: Option<String>,
    #[arg(long = "ignore-preflight-errors", value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
    #[arg(long = "node-name")]
    pub node_name: Option<String>,
    #[arg(long = "apiserver-advertise-address")]
    pub apiserver_advertise_address: Option<String>,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Reset the node without prompting for confirmation.
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    #[arg(long = "cert-dir")]
    pub cert_dir: Option<String>,
    #[arg(long = "ignore-preflight-errors", value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
}

/// How a command ended.
#[derive(Debug)]
pub enum Failure {
    /// `error: <msg>` (config problems, bad flags).
    Plain(String),
    /// `error: error execution phase <phase>: <msg>`.
    Phase { phase: String, msg: String },
}

impl Failure {
    pub fn render(&self) -> String {
        let msg = match self {
            Failure::Plain(m) => m.clone(),
            Failure::Phase { phase, msg } => format!("error execution phase {phase}: {msg}"),
        };
        format!("error: {msg}\nTo see the stack trace of this error execute with --v=5 or higher\n")
    }
}

/// Runs a parsed command; stdout/stderr text goes through `ctx`.
pub fn run(cmd: Kubeadm, ctx: &mut Context) -> Result<(), Failure> {
    match cmd.command {
        Command::Version { output } => version_cmd::run(&output, ctx),
        Command::Config {
            command: ConfigCommand::Validate { config, .. },
        } => config_cmd::validate(config.as_deref(), ctx),
        Command::Init(args) => init_cmd::run(args, ctx),
        Command::Join(args) => join_cmd::run(args, ctx),
        Command::Reset(args) => reset_cmd::run(args, ctx),
        Command::Token {
            command: TokenCommand::Generate,
        } => {
            let t = crate::token::BootstrapToken::generate().map_err(Failure::Plain)?;
            ctx.out(&t.to_string());
            Ok(())
        }
        Command::Token { command } => token_cmd::run(command, ctx),
        Command::Certs {
            command: CertsCommand::CertificateKey,
        } => {
            let k = crate::certs_upload::CertificateKey::generate().map_err(Failure::Plain)?;
            ctx.out(&k.to_hex());
            Ok(())
        }
    }
}

/// Entry point of the binary: parse, run, print, exit status.
pub fn main_with(args: Vec<String>) -> i32 {
    let parsed = match Kubeadm::try_parse_from(args) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    let mut ctx = Context::from_env();
    let result = run(parsed, &mut ctx);
    ctx.flush();
    match result {
        Ok(()) => 0,
        Err(f) => {
            eprint!("{}", f.render());
            1
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cluster;
