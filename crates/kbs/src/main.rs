//! `kbs`: the command-line tool. It parses arguments, starts logging and the async runtime, and hands
//! each command to its module under `commands/`; the library crates do the work.

mod cli;
mod commands;
mod connect;
mod failure;
mod logging;
mod output;
mod prompt;
mod targets;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use kbs_ssh::ConnectOptions;

use crate::cli::{Cli, Command, GlobalOptions, JoinArgs, PlanArgs};
use crate::commands::apply::ApplyRequest;
use crate::failure::Failure;
use crate::output::report::Detail;
use crate::targets::AccessDefaults;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = match logging::init(
        cli.global.verbose,
        cli.global.quiet,
        cli.global.log_file.as_deref(),
    ) {
        Ok(log) => log,
        Err(message) => {
            eprintln!("kbs: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kbs: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Failure::InvalidInventory { report, .. } = &failure {
                eprintln!("{report}\n");
            }
            eprintln!("kbs: error: {failure}");
            if matches!(failure, Failure::HostsFailed(_)) {
                eprintln!("kbs: the full log is {}", log.path.display());
            }
            failure.exit_code()
        }
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let forks = cli.global.forks as usize;
    match cli.command {
        Command::Apply(args) => {
            let defaults = access_defaults(&cli.global)?;
            let check_only = args.dry_run;
            let show_diffs = args.diff || args.dry_run;
            let request = apply_request(args.plan, check_only, show_diffs, &cli.global);
            commands::apply::run(request, defaults, forks).await
        }
        Command::Join(args) => {
            let defaults = access_defaults(&cli.global)?;
            let request = join_request(args, &cli.global)?;
            commands::apply::run(request, defaults, forks).await
        }
        Command::Check(args) => {
            let defaults = access_defaults(&cli.global)?;
            commands::check::run(&args.inventory, args.hosts.as_deref(), defaults, forks).await
        }
        Command::Plan(args) => {
            let defaults = access_defaults(&cli.global)?;
            let request = apply_request(args, true, true, &cli.global);
            commands::apply::run(request, defaults, forks).await
        }
        Command::Exec(args) => {
            let defaults = access_defaults(&cli.global)?;
            commands::exec::run(args, defaults, forks).await
        }
        Command::Render(args) => commands::render::run(args),
        Command::Kubeconfig(args) => {
            let defaults = access_defaults(&cli.global)?;
            commands::kubeconfig::run(&args.inventory, args.output_file, defaults, forks).await
        }
        Command::Status(args) => {
            let defaults = access_defaults(&cli.global)?;
            commands::status::run(&args.inventory, cli.global.output, defaults, forks).await
        }
        Command::Reset(args) => {
            let defaults = access_defaults(&cli.global)?;
            let request = commands::reset::ResetRequest {
                inventory: &args.inventory,
                hosts: args.hosts,
                yes: args.yes,
                output: cli.global.output,
                detail: Detail {
                    show_ok: cli.global.verbose > 0,
                    show_diffs: false,
                    quiet: cli.global.quiet,
                },
            };
            commands::reset::run(request, defaults, forks).await
        }
    }
}

fn apply_request(args: PlanArgs, check_only: bool, show_diffs: bool, global: &GlobalOptions) -> ApplyRequest {
    ApplyRequest {
        inventory: args.inventory,
        hosts: args.hosts,
        until: args.until,
        check_only,
        playbooks: args.playbooks,
        templates: args.templates,
        package_repository: args.package_repository,
        output: global.output,
        detail: Detail {
            show_ok: args.show_ok || global.verbose > 0,
            show_diffs,
            quiet: global.quiet,
        },
        join_only: false,
    }
}

/// `kbs join HOST`: apply narrowed to that one host (a name, not a pattern), never an init.
fn join_request(args: JoinArgs, global: &GlobalOptions) -> Result<ApplyRequest, Failure> {
    if args.host.is_empty() || args.host.contains(|c: char| "*?[],:".contains(c)) {
        return Err(Failure::BadInput(format!(
            "kbs join takes one host name of the inventory, not `{}`",
            args.host
        )));
    }
    let plan = PlanArgs {
        inventory: args.inventory,
        hosts: Some(args.host),
        until: None,
        show_ok: false,
        playbooks: None,
        templates: None,
        package_repository: args.package_repository,
    };
    let mut request = apply_request(plan, false, false, global);
    request.join_only = true;
    Ok(request)
}

/// The SSH choices of the command line, shared by every host of the run.
fn access_defaults(global: &GlobalOptions) -> Result<AccessDefaults, Failure> {
    let mut base = ConnectOptions::new();
    base.accept_new_host_keys = global.accept_new_host_keys;
    base.prompt = Some(Arc::new(prompt::TerminalPassphrasePrompt));
    let become_password = if global.ask_become_pass {
        Some(prompt::become_password().map_err(Failure::BadInput)?)
    } else {
        None
    };
    Ok(AccessDefaults {
        base,
        connect_timeout_flag: global.connect_timeout,
        ssh_config: if global.no_ssh_config {
            None
        } else {
            kbs_ssh::ssh_config::default_path()
        },
        become_password,
    })
}
