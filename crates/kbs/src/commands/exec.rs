//! `kbs exec`: run one command on many hosts at once and show what each said.
//!
//! Hosts are worked on as a sliding window of `--forks` (a slow or dead host delays only itself).
//! Output is streamed line by line with a host prefix, or shown as one block per host with `--group`.
//! The last line is a summary; the exit code is non-zero if any host failed or was unreachable.

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use kbs_ssh::{run_windowed, Chunk, Command, Connection, Privilege};

use crate::cli::ExecArgs;
use crate::commands::{load_inventory, select_hosts};
use crate::failure::Failure;
use crate::output::hosts::{HostOutcome, HostPrinter, Summary};
use crate::targets::{host_access, AccessDefaults};

pub async fn run(args: ExecArgs, defaults: AccessDefaults, forks: usize) -> Result<(), Failure> {
    let inventory = load_inventory(&args.inventory)?;
    let hosts = select_hosts(&inventory, args.hosts.as_deref())?;
    // Joined with spaces and run by the remote shell, exactly as OpenSSH's `ssh host CMD…` does.
    let script = args.command.join(" ");
    let printer = Arc::new(HostPrinter::new(
        hosts.iter().map(|host| host.name.as_str()),
        args.group,
    ));
    let started = Instant::now();

    let outcomes: Vec<HostOutcome> = run_windowed(hosts.iter(), forks, |host| {
        let printer = Arc::clone(&printer);
        let inventory = &inventory;
        let defaults = &defaults;
        let script = &script;
        let use_sudo = args.sudo;
        async move {
            let access = match host_access(inventory, host, defaults) {
                Ok(access) => access,
                Err(error) => return printer.unreachable(&host.name, &error),
            };
            let connection = match Connection::connect(&access.target, &access.options).await {
                Ok(connection) => connection,
                Err(error) => return printer.unreachable(&host.name, &error.to_string()),
            };
            let privilege = if use_sudo {
                access.privilege.clone()
            } else {
                Privilege::None
            };
            let command = Command::new(script.as_str()).privilege(privilege);
            let mut stream = printer.stream(&host.name);
            let result = connection
                .exec_streaming(&command, |chunk| match chunk {
                    Chunk::Stdout(bytes) => stream.stdout(bytes),
                    Chunk::Stderr(bytes) => stream.stderr(bytes),
                })
                .await;
            connection.close().await;
            match result {
                Ok(status) => stream.finish(status.code, status.signal.as_deref()),
                Err(error) => {
                    stream.flush();
                    printer.failed(&host.name, &error.to_string())
                }
            }
        }
    })
    .collect()
    .await;

    let summary = Summary::new(&outcomes, started.elapsed());
    eprintln!("{summary}");
    if summary.all_ok() {
        Ok(())
    } else {
        Err(Failure::HostsFailed(summary.failure_line()))
    }
}
