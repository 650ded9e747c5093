//! `kbs-lab`: the command line of the lab (see the library docs for what each command does).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kbs_lab::{ClockDelta, Fault, Lab, UpOptions};

#[derive(Parser)]
#[command(
    name = "kbs-lab",
    about = "A local lab of systemd-nspawn hosts for testing kbs",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build (or reuse) the base image and repository, boot N hosts, write the inventory.
    Up {
        /// Number of hosts (1-200): host01.. at 10.61.0.11..
        #[arg(long)]
        hosts: usize,
        /// Hosts that get the lb role (the endpoint becomes HAProxy).
        #[arg(long = "lb", num_args = 1..)]
        lbs: Vec<String>,
        /// Where to write the kbs inventory.
        #[arg(long)]
        inventory: PathBuf,
    },
    /// Remove everything the lab made (works after a crash too).
    Down,
    /// Show hosts, PIDs, up/down and the repository server.
    Status,
    /// SSH to a host as root with the lab key and known_hosts.
    Ssh {
        host: String,
        /// Command to run (an interactive shell without one).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Inject a fault: down, up, cut, heal, sshd-restart, dpkg-lock SECONDS.
    Fault {
        host: String,
        kind: String,
        seconds: Option<String>,
    },
    /// Shift a host's clock offset (or every host's with `all`): +2h, -30m, +1d, 90.
    Clock {
        host: String,
        #[arg(allow_hyphen_values = true)]
        delta: String,
    },
    /// Manage the lab's Kubernetes package repositories.
    Repo {
        #[command(subcommand)]
        command: RepoCmd,
    },
    /// Run the repository HTTP server in the foreground (`up` starts it in the background).
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
enum RepoCmd {
    /// Copy .deb files into a minor's repository and re-index and re-sign it.
    Add {
        #[arg(long)]
        minor: String,
        #[arg(required = true)]
        debs: Vec<PathBuf>,
    },
    /// Re-index and re-sign every minor's repository after .deb files were dropped into it by hand.
    Index,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KBS_LAB_LOG").unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kbs-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Cmd) -> kbs_lab::Result<ExitCode> {
    match command {
        Cmd::Up {
            hosts,
            lbs,
            inventory,
        } => {
            let started = std::time::Instant::now();
            let inventory = std::path::absolute(&inventory).unwrap_or(inventory);
            let opts = UpOptions {
                lbs,
                inventory: Some(inventory.clone()),
                ..UpOptions::new(hosts)
            };
            let lab = Lab::up(opts)?;
            println!(
                "lab up: {} hosts in {:.1} s; inventory {}; key {}; known_hosts {}",
                lab.hosts().len(),
                started.elapsed().as_secs_f64(),
                inventory.display(),
                lab.identity_file().display(),
                lab.known_hosts_file().display()
            );
            lab.keep_running();
        }
        Cmd::Down => {
            kbs_lab::teardown()?;
            println!("lab down: nothing of it is left running");
        }
        Cmd::Status => return status(),
        Cmd::Ssh { host, command } => {
            let lab = Lab::attach()?;
            let mut ssh = lab.ssh_command(&host, command.is_empty())?;
            if !command.is_empty() {
                ssh.arg("--").args(command);
            }
            let status = ssh
                .status()
                .map_err(|e| kbs_lab::Error::new("running ssh", e, "install openssh-client"))?;
            return Ok(ExitCode::from(status.code().unwrap_or(255) as u8));
        }
        Cmd::Fault { host, kind, seconds } => {
            let fault = Fault::parse(&kind, seconds.as_deref())?;
            let mut lab = Lab::attach()?;
            lab.fault(&host, fault)?;
            println!("{host}: {fault}");
        }
        Cmd::Clock { host, delta } => {
            let delta: ClockDelta = delta.parse()?;
            let lab = Lab::attach()?;
            let target = if host == "all" { None } else { Some(host.as_str()) };
            for (name, offset) in lab.clock(target, delta.0)? {
                println!("{name}: clock offset {offset} s");
            }
        }
        Cmd::Repo {
            command: RepoCmd::Add { minor, debs },
        } => {
            kbs_lab::repo::add_debs(&minor, &debs)?;
            println!(
                "added {} package(s) to {}",
                debs.len(),
                kbs_lab::repo::minor_url(&minor)
            );
        }
        Cmd::Repo {
            command: RepoCmd::Index,
        } => {
            for minor in kbs_lab::repo::MINORS {
                kbs_lab::repo::index_minor(minor)?;
            }
        }
        Cmd::Serve { root, listen } => kbs_lab::server::serve(&root, listen)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn status() -> kbs_lab::Result<ExitCode> {
    let lab = match Lab::attach() {
        Ok(lab) => lab,
        Err(_) => {
            println!("no lab is running");
            return Ok(ExitCode::SUCCESS);
        }
    };
    let status = lab.status();
    println!(
        "repository server: pid {} {} {}",
        status.server_pid.map(|p| p.to_string()).unwrap_or("-".into()),
        if status.server_running {
            "running"
        } else {
            "stopped"
        },
        if status.server_answers {
            "answering on http://10.61.0.1/"
        } else {
            "not answering"
        }
    );
    println!(
        "{:<8} {:<12} {:>8} {:<8} {:<5} {:<5} {:>9}",
        "HOST", "ADDRESS", "PID", "STATE", "SSH", "LINK", "MEMORY"
    );
    let mut all_up = status.server_answers;
    for h in &status.hosts {
        all_up &= h.running && h.ssh;
        println!(
            "{:<8} {:<12} {:>8} {:<8} {:<5} {:<5} {:>9}",
            h.host.name,
            h.host.address,
            h.pid.map(|p| p.to_string()).unwrap_or("-".into()),
            if h.running { "up" } else { "down" },
            if h.ssh { "yes" } else { "no" },
            match h.link_up {
                Some(true) => "up",
                Some(false) => "cut",
                None => "-",
            },
            h.memory_bytes
                .map(|b| format!("{} MiB", b >> 20))
                .unwrap_or("-".into())
        );
    }
    Ok(if all_up {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}
