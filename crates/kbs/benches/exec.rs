//! Benchmark: `kbs exec INVENTORY -- true` on 32 and 100 real sshd servers, against the baseline a
//! user would otherwise write, an OpenSSH loop `xargs -P 64 ssh … true`, measured in the same run.
//!
//! Run as root: `cargo bench -p kbs --bench exec` (optionally `-- 32 100 250` for other sizes).
//! Prints wall time (median of 5 runs, and the spread) and kbs's peak RSS. Nothing here passes or
//! fails on a timing: it is a measurement for the notes.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kbs_testkit::{ensure_test_users, require_root, ClientKey, KeyType, SshdFleet, SshdOptions, TempDir};

const RUNS: usize = 5;
const PARALLEL: usize = 64;

fn main() {
    require_root();
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|arg| arg.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() { vec![32, 100] } else { sizes };
    let kbs = Path::new(env!("CARGO_BIN_EXE_kbs"));
    // A plain login user: root's shell start-up on developer machines (pyenv and the like) would
    // dominate both sides and hide what the tools themselves cost.
    let user = ensure_test_users().nopasswd;
    println!("kbs exec benchmark: {RUNS} runs each, median wall time (min-max), parallelism {PARALLEL}");
    println!(
        "{:<28} {:>6} {:>22} {:>14}",
        "what", "hosts", "wall time", "peak RSS"
    );
    for hosts in sizes {
        let dir = TempDir::new().expect("temp dir");
        let key = ClientKey::generate(dir.path(), KeyType::Ed25519, None);
        let fleet = SshdFleet::start_distinct(hosts, &SshdOptions::new().authorize(&key));
        let known_hosts = dir.path().join("known_hosts");
        fleet.write_known_hosts(&known_hosts, false);
        let inventory = write_inventory(dir.path(), user, &key, &known_hosts, &fleet);

        let kbs_runs: Vec<(Duration, u64)> = (0..RUNS)
            .map(|_| {
                let mut command = Command::new(kbs);
                command
                    .args(["--no-ssh-config", "-q", "--forks", &PARALLEL.to_string(), "exec"])
                    .arg(&inventory)
                    .args(["--", "true"])
                    .env_remove("SSH_AUTH_SOCK");
                measure(command, None)
            })
            .collect();
        report("kbs exec -- true", hosts, &kbs_runs, true);

        let targets: String = fleet
            .iter()
            .map(|sshd| format!("{} {}\n", sshd.host(), sshd.port()))
            .collect();
        let ssh_runs: Vec<(Duration, u64)> = (0..RUNS)
            .map(|_| {
                let mut command = Command::new("xargs");
                command
                    .args(["-P", &PARALLEL.to_string(), "-n", "2", "sh", "-c"])
                    .arg(format!(
                        "exec ssh -q -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} \
                         -o GlobalKnownHostsFile=/dev/null -F /dev/null -i {} -p \"$2\" {user}@\"$1\" true",
                        known_hosts.display(),
                        key.path.display()
                    ))
                    .arg("ssh-loop");
                measure(command, Some(&targets))
            })
            .collect();
        report("ssh + xargs -P 64 (OpenSSH)", hosts, &ssh_runs, false);
    }
}

fn write_inventory(
    dir: &Path,
    user: &str,
    key: &ClientKey,
    known_hosts: &Path,
    fleet: &SshdFleet,
) -> std::path::PathBuf {
    let mut yaml = format!(
        "cluster:\n  podSubnet: 172.31.0.0/16\n  endpoint: {{ mode: external, address: 127.0.0.1 }}\n\
         ssh:\n  user: {user}\n  identityFile: {}\n  knownHostsFile: {}\nhosts:\n",
        key.path.display(),
        known_hosts.display()
    );
    for (index, sshd) in fleet.iter().enumerate() {
        let role = if index < 3 { "control-plane" } else { "worker" };
        yaml.push_str(&format!(
            "  - {{ name: host{:03}, address: {}, roles: [{role}], ssh: {{ port: {} }} }}\n",
            index + 1,
            sshd.host(),
            sshd.port()
        ));
    }
    let path = dir.join("inventory.yaml");
    std::fs::write(&path, yaml).expect("write inventory");
    path
}

/// Runs the command to its end; returns wall time and its peak RSS in KiB (from wait4's rusage,
/// which covers exactly that child).
// The child is reaped by `wait4` (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn measure(mut command: Command, stdin: Option<&str>) -> (Duration, u64) {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().expect("start the benchmarked command");
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(text.as_bytes()).expect("feed targets");
    }
    let mut stderr = child.stderr.take().expect("stderr pipe");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child's pid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for the child we spawned; `status` and `usage` outlive the call.
    let waited = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let elapsed = started.elapsed();
    let errors = reader.join().unwrap_or_default();
    assert!(
        waited > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "benchmarked command failed (status {status}):\n{errors}"
    );
    (elapsed, usage.ru_maxrss as u64)
}

fn report(what: &str, hosts: usize, runs: &[(Duration, u64)], show_rss: bool) {
    let mut times: Vec<Duration> = runs.iter().map(|(time, _)| *time).collect();
    times.sort();
    let median = times[times.len() / 2];
    let peak_rss = runs.iter().map(|(_, rss)| *rss).max().unwrap_or(0);
    let rss = if show_rss {
        format!("{:.1} MiB", peak_rss as f64 / 1024.0)
    } else {
        "-".to_string()
    };
    println!(
        "{what:<28} {hosts:>6} {:>9.3} s ({:.3}-{:.3}) {rss:>14}",
        median.as_secs_f64(),
        times[0].as_secs_f64(),
        times[times.len() - 1].as_secs_f64()
    );
}
