//! Benchmark: `kbs apply --until prepare` on fresh lab hosts (first run and no-change re-run),
//! against the baseline people use today, the book's k8s-all style: one shell script run as root on
//! every host over OpenSSH (`benches/book-prepare.sh`, the same packages, files and services),
//! `xargs -P 64` in parallel. Both sides start from freshly booted lab hosts, in the same run.
//!
//! Root, and the release binaries of kbs-lab and kbs-sim:
//!   cargo build --release -p kbs-lab -p kbs-sim && cargo bench -p kbs --bench prepare -- 4 32 100
//! With `full`, each size also runs the whole `kbs apply` (bare hosts to a Ready cluster with its
//! add-ons) and its no-change re-run on a fresh lab, and prints the time of every phase:
//!   cargo bench -p kbs --bench prepare -- full 4
//! Prints wall time, kbs CPU time (user+system) and peak RSS, and round trips per host. A timing is
//! a measurement for the notes, never a pass/fail test.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kbs_lab::{Lab, UpOptions};

const PARALLEL: usize = 64;

struct Run {
    wall: Duration,
    cpu: Duration,
    peak_rss_kib: u64,
    stdout: String,
}

fn main() {
    kbs_testkit::require_root();
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let full = std::env::args().any(|a| a == "full");
    let sizes = if sizes.is_empty() { vec![4, 32] } else { sizes };
    let kbs = Path::new(env!("CARGO_BIN_EXE_kbs"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/book-prepare.sh");
    let dir = tempfile::tempdir().expect("temp dir");
    let inventory = dir.path().join("lab.yaml");

    println!("host preparation benchmark (lab hosts, fresh for each side)");
    println!(
        "{:<34} {:>5} {:>10} {:>10} {:>10} {:>12}",
        "what", "hosts", "wall", "CPU", "peak RSS", "round trips"
    );
    for hosts in sizes {
        if full {
            let lab = up(hosts, &inventory);
            let first = kbs_apply(kbs, &inventory, None);
            let again = kbs_apply(kbs, &inventory, None);
            report("kbs apply (whole cluster)", hosts, &first);
            report("kbs apply (no-change re-run)", hosts, &again);
            println!("  phases, first run: {}", phase_times(&first));
            println!("  phases, re-run:    {}", phase_times(&again));
            lab.down().expect("lab down");
        }
        let lab = up(hosts, &inventory);
        let first = kbs_apply(kbs, &inventory, Some("prepare"));
        let again = kbs_apply(kbs, &inventory, Some("prepare"));
        report("kbs apply --until prepare", hosts, &first);
        report("kbs apply (no-change re-run)", hosts, &again);
        lab.down().expect("lab down");

        let lab = up(hosts, &inventory);
        let addresses: Vec<String> = lab.hosts().iter().map(|h| h.address.to_string()).collect();
        let first = ssh_loop(&lab, &addresses, &script);
        let again = ssh_loop(&lab, &addresses, &script);
        report("book-style ssh loop", hosts, &first);
        report("book-style ssh loop (re-run)", hosts, &again);
        lab.down().expect("lab down");
    }
}

fn up(hosts: usize, inventory: &Path) -> Lab {
    let mut options = UpOptions::new(hosts);
    options.inventory = Some(inventory.to_path_buf());
    Lab::up(options).expect("lab up (build kbs-lab and kbs-sim in release first)")
}

fn kbs_apply(kbs: &Path, inventory: &Path, until: Option<&str>) -> Run {
    let mut command = Command::new(kbs);
    command
        .args([
            "--no-ssh-config",
            "--output",
            "json",
            "--forks",
            &PARALLEL.to_string(),
            "apply",
        ])
        .arg(inventory);
    if let Some(phase) = until {
        command.args(["--until", phase]);
    }
    measure(command, None)
}

fn ssh_loop(lab: &Lab, addresses: &[String], script: &Path) -> Run {
    let body = std::fs::read_to_string(script).expect("read book-prepare.sh");
    let stdin: String = addresses.iter().map(|a| format!("{a}\n")).collect();
    let mut command = Command::new("xargs");
    command
        .args([
            "-P",
            &PARALLEL.to_string(),
            "-I{}",
            "ssh",
            "-q",
            "-o",
            "BatchMode=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", lab.known_hosts_file().display()))
        .arg("-i")
        .arg(lab.identity_file())
        .args(["-F", "/dev/null", "root@{}"])
        .arg(format!(
            "sh -s -- http://10.61.0.1 1.36 <<'KBS_EOF'\n{body}\nKBS_EOF"
        ));
    measure(command, Some(&stdin))
}

/// Runs to the end; wall time, and user+system time and peak RSS of exactly that child (wait4).
// The child is reaped by `wait4` (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn measure(mut command: Command, stdin: Option<&str>) -> Run {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().expect("start the benchmarked command");
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(text.as_bytes()).expect("feed stdin");
    }
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for the child we spawned; both pointers outlive the call.
    let waited = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    let stdout = out_reader.join().unwrap_or_default();
    let errors = err_reader.join().unwrap_or_default();
    assert!(
        waited > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "benchmarked command failed (status {status}):\n{errors}"
    );
    let seconds =
        |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    Run {
        wall,
        cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        peak_rss_kib: usage.ru_maxrss as u64,
        stdout,
    }
}

/// Round trips per host from kbs's NDJSON summary (max over hosts); "-" for the ssh loop.
fn round_trips(run: &Run) -> String {
    let Some(summary) = run
        .stdout
        .lines()
        .rev()
        .find(|l| l.contains("\"event\":\"summary\""))
    else {
        return "-".into();
    };
    let value: serde_json::Value = serde_json::from_str(summary).unwrap_or_default();
    let max = value["hosts"]
        .as_object()
        .map(|hosts| {
            hosts
                .values()
                .filter_map(|h| h["round_trips"].as_u64())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    max.to_string()
}

/// `phase 1.2s, …` from kbs's NDJSON `phase_finished` events.
fn phase_times(run: &Run) -> String {
    run.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "phase_finished")
        .map(|e| {
            format!(
                "{} {:.1}s",
                e["phase"].as_str().unwrap_or("?"),
                e["duration_ms"].as_u64().unwrap_or(0) as f64 / 1000.0
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(what: &str, hosts: usize, run: &Run) {
    println!(
        "{what:<34} {hosts:>5} {:>9.2}s {:>9.2}s {:>6.1} MiB {:>12}",
        run.wall.as_secs_f64(),
        run.cpu.as_secs_f64(),
        run.peak_rss_kib as f64 / 1024.0,
        round_trips(run)
    );
}
