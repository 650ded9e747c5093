//! The lab as a whole: `up` (packages, image, repository, bridge, server, hosts, keys, inventory), the
//! operations on a running lab, and `teardown`, which removes a lab whether or not its state survived.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::cgroups;
use crate::cmd;
use crate::error::{Error, Result};
use crate::faults::{Fault, DPKG_LOCK_PROGRAM, DPKG_LOCK_SCRIPT};
use crate::hostpkgs;
use crate::image;
use crate::inventory;
use crate::limits;
use crate::lock::LabLock;
use crate::machine::{self, GuestFiles, Host};
use crate::network;
use crate::paths;
use crate::process;
use crate::repo;
use crate::server;
use crate::sim_packages;
use crate::state::{unknown_host, HostState, State};

/// The cgroup (and log name) of the repository server.
const SERVER: &str = "serve";

/// What `up` builds.
#[derive(Clone, Debug)]
pub struct UpOptions {
    /// Number of hosts, 1 to 200.
    pub hosts: usize,
    /// Hosts that get the `lb` role (the endpoint becomes HAProxy).
    pub lbs: Vec<String>,
    /// Where to write the kbs inventory, if anywhere.
    pub inventory: Option<PathBuf>,
    /// The `kbs-lab` binary that runs the repository server; found next to the running program, via
    /// `KBS_LAB_BIN` or on PATH when not given.
    pub server_exe: Option<PathBuf>,
    /// The kbs-sim build whose packages the Kubernetes repositories serve (default: found next to
    /// this program, in `KBS_SIM_BIN` or on PATH).
    pub sim_binary: Option<PathBuf>,
    /// How long to wait for every host to answer SSH.
    pub ready_timeout: Duration,
}

impl UpOptions {
    pub fn new(hosts: usize) -> UpOptions {
        UpOptions {
            hosts,
            lbs: Vec::new(),
            inventory: None,
            server_exe: None,
            sim_binary: None,
            ready_timeout: Duration::from_secs(60 + 2 * hosts as u64),
        }
    }
}

/// A running lab. Call [`Lab::down`] when done; dropping a lab that is still up takes it down too, and
/// says so on standard error.
#[derive(Debug)]
pub struct Lab {
    state: State,
    hosts: Vec<Host>,
    /// Held by the process that brought the lab up, so a second lab cannot clobber it.
    lock: Option<LabLock>,
    is_down: bool,
}

/// One host in [`Lab::status`].
#[derive(Clone, Debug)]
pub struct HostStatus {
    pub host: Host,
    pub pid: Option<i32>,
    pub running: bool,
    pub ssh: bool,
    pub memory_bytes: Option<u64>,
    pub link_up: Option<bool>,
}

#[derive(Clone, Debug)]
pub struct Status {
    pub hosts: Vec<HostStatus>,
    pub server_pid: Option<i32>,
    pub server_running: bool,
    pub server_answers: bool,
}

impl Lab {
    /// Brings up a fresh lab (removing a stale or crashed one first) and waits until every host answers SSH.
    pub fn up(opts: UpOptions) -> Result<Lab> {
        require_root()?;
        if opts.hosts == 0 || opts.hosts > paths::MAX_HOSTS {
            return Err(Error::new(
                "checking the lab size",
                format!("{} hosts asked for", opts.hosts),
                format!("give --hosts between 1 and {}", paths::MAX_HOSTS),
            ));
        }
        let hosts: Vec<Host> = (1..=opts.hosts).map(|i| Host::new(i, opts.hosts)).collect();
        let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
        if let Some(lb) = opts.lbs.iter().find(|lb| !names.contains(lb)) {
            return Err(unknown_host(lb, &names));
        }
        let server_exe = find_server_exe(opts.server_exe.as_deref())?;
        let lock = LabLock::acquire(Path::new(paths::LOCK_FILE))?;

        let installed = hostpkgs::ensure_host_packages()?;
        if !installed.is_empty() {
            eprintln!("kbs-lab: installed host packages: {}", installed.join(" "));
        }
        teardown()?;
        check_free_space(
            Path::new(paths::CACHE_DIR).parent().unwrap_or(Path::new("/")),
            opts.hosts,
        )?;
        for (name, old, new) in limits::raise(opts.hosts)? {
            eprintln!(
                "kbs-lab: raised {name} from {old} to {new} for {} hosts (down restores it)",
                opts.hosts
            );
        }
        let lower = image::ensure_base()?;
        let authorized_key = ensure_ssh_key()?;
        repo::ensure_all(&image::dpkg_status(&lower))?;
        match sim_packages::find_sim_binary(opts.sim_binary.as_deref()) {
            Some(binary) => sim_packages::publish(&binary)?,
            // Visible, not silent: the hosts come up, but kbs cannot install Kubernetes on them.
            None => eprintln!(
                "kbs-lab: no kbs-sim binary found (KBS_SIM_BIN, next to kbs-lab, or on PATH): the \
                 Kubernetes repositories stay empty; build it with `cargo build -p kbs-sim`"
            ),
        }
        let keyring = repo::public_key(false)?;

        tracing::info!(
            "creating bridge {} and starting the repository server",
            paths::BRIDGE
        );
        network::create_bridge()?;
        let mut state = State {
            lbs: opts.lbs.clone(),
            inventory: opts.inventory.clone(),
            ..State::default()
        };
        state.save()?;
        state.server_pid = Some(start_server(&server_exe)?);
        state.save()?;

        tracing::info!("booting {} hosts", hosts.len());
        let files = GuestFiles {
            hosts: &hosts,
            authorized_key: &authorized_key,
            keyring: &keyring,
        };
        for host in &hosts {
            machine::create(host, &lower, &files)?;
            let pid = machine::start(host)?;
            state.hosts.push(HostState {
                host: host.clone(),
                pid: Some(pid),
            });
            state.save()?;
        }
        let deadline = Instant::now() + opts.ready_timeout;
        let keys = parallel(&state.hosts, |h| {
            machine::wait_for_ssh(&h.host, h.pid.unwrap_or(0), deadline).map(|key| (h.host.clone(), key))
        })?;
        write_known_hosts(&keys)?;
        let lab = Lab {
            state,
            hosts,
            lock: Some(lock),
            is_down: false,
        };
        // The key read from the guest's disk must be the one sshd presents: log in with strict checking.
        parallel(&lab.hosts, |h| lab.wait_for_login(h, deadline))?;
        if let Some(path) = &opts.inventory {
            inventory::write(path, &lab.hosts, &opts.lbs)?;
        }
        Ok(lab)
    }

    /// The lab brought up earlier (by `kbs-lab up` or another process), from its state file.
    pub fn attach() -> Result<Lab> {
        let state = State::load()?.ok_or_else(|| {
            Error::new(
                "finding the lab",
                "no lab is running (no /run/kbs-lab/state.json)",
                "start one with kbs-lab up --hosts N",
            )
        })?;
        let hosts = state.hosts.iter().map(|h| h.host.clone()).collect();
        Ok(Lab {
            state,
            hosts,
            lock: None,
            is_down: false,
        })
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    pub fn host(&self, name: &str) -> Result<&Host> {
        self.hosts.iter().find(|h| h.name == name).ok_or_else(|| {
            let names: Vec<String> = self.hosts.iter().map(|h| h.name.clone()).collect();
            unknown_host(name, &names)
        })
    }

    /// The private key kbs logs in with (root and the `kbs` sudo user accept it).
    pub fn identity_file(&self) -> PathBuf {
        paths::ssh_key()
    }

    pub fn known_hosts_file(&self) -> PathBuf {
        paths::known_hosts()
    }

    pub fn inventory_file(&self) -> Option<&Path> {
        self.state.inventory.as_deref()
    }

    /// The OpenSSH command line for `host` as root, strict host key checking against the lab's known_hosts;
    /// `tty` asks for a terminal (an interactive shell). Append the remote command, if any.
    pub fn ssh_command(&self, host: &str, tty: bool) -> Result<Command> {
        let host = self.host(host)?;
        let mut ssh = Command::new("ssh");
        ssh.arg("-i")
            .arg(paths::ssh_key())
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", paths::known_hosts().display()))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
            ]);
        if tty {
            ssh.arg("-t");
        }
        ssh.arg(format!("root@{}", host.address));
        Ok(ssh)
    }

    /// Runs `command` on `host` over SSH as root and returns its output whatever its exit status.
    pub fn ssh(&self, host: &str, command: &str) -> Result<Output> {
        let mut ssh = self.ssh_command(host, false)?;
        ssh.arg("--").arg(command);
        cmd::output(&format!("ssh to {host}"), "install openssh-client", &mut ssh)
    }

    fn wait_for_login(&self, host: &Host, deadline: Instant) -> Result<()> {
        loop {
            let out = self.ssh(&host.name, "true")?;
            if out.status.success() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::new(
                    format!("logging in to {} over SSH", host.name),
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    format!(
                        "read {} ; run kbs-lab down, then kbs-lab up",
                        machine::log_file(&host.name).display()
                    ),
                ));
            }
            sleep(Duration::from_millis(300));
        }
    }

    /// Injects (or undoes) a fault on `host`; returns once it has taken effect.
    pub fn fault(&mut self, host: &str, fault: Fault) -> Result<()> {
        let target = self.host(host)?.clone();
        let veth = paths::host_veth(&target.name);
        match fault {
            Fault::Down => {
                let entry = self.state.host_mut(host)?;
                process::stop(host, entry.pid.take(), Duration::from_secs(20))?;
                cgroups::remove(host)?;
                self.state.save()
            }
            Fault::Up => {
                let running = self.state.host_mut(host)?.pid.is_some_and(process::alive);
                if running {
                    return Ok(());
                }
                let pid = machine::start(&target)?;
                self.state.host_mut(host)?.pid = Some(pid);
                self.state.save()?;
                let deadline = Instant::now() + Duration::from_secs(60);
                machine::wait_for_ssh(&target, pid, deadline)?;
                self.wait_for_login(&target, deadline)
            }
            Fault::Cut => network::set_link(&veth, false),
            Fault::Heal => network::set_link(&veth, true),
            Fault::SshdRestart => {
                let out = self.ssh(host, "systemctl restart ssh.service")?;
                check_remote(host, "restarting sshd", &out)
            }
            Fault::DpkgLock { seconds } => {
                image::write(
                    &target.root(),
                    DPKG_LOCK_PROGRAM.trim_start_matches('/'),
                    DPKG_LOCK_SCRIPT,
                    0o755,
                )?;
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0);
                // Detached in its own unit so it outlives this SSH session; returns once the lock is held.
                let command = format!(
                    "systemd-run --quiet --collect --unit=kbs-lab-dpkg-lock-{stamp} {DPKG_LOCK_PROGRAM} {seconds} || exit 1; \
                     for i in $(seq 100); do {DPKG_LOCK_PROGRAM} --held && exit 0; sleep 0.05; done; \
                     echo 'the lock was not taken' >&2; exit 1"
                );
                let out = self.ssh(host, &command)?;
                check_remote(host, "holding the dpkg lock", &out)
            }
        }
    }

    /// Adds `delta_seconds` to the clock offset of `host` (every host with `None`); returns the new offsets.
    pub fn clock(&self, host: Option<&str>, delta_seconds: i64) -> Result<Vec<(String, i64)>> {
        let targets: Vec<&Host> = match host {
            Some(name) => vec![self.host(name)?],
            None => self.hosts.iter().collect(),
        };
        let mut result = Vec::new();
        for h in targets {
            let now = clock_offset(h)?;
            let new = now.saturating_add(delta_seconds);
            let rel = paths::GUEST_CLOCK_OFFSET.trim_start_matches('/');
            let tmp = format!("{rel}.tmp");
            image::write(&h.root(), &tmp, &format!("{new}\n"), 0o644)?;
            let path = h.root().join(rel);
            fs::rename(h.root().join(&tmp), &path)
                .map_err(|e| Error::io(format!("setting the clock of {}", h.name), &path, e))?;
            result.push((h.name.clone(), new));
        }
        Ok(result)
    }

    /// The lab's processes as they are now.
    pub fn status(&self) -> Status {
        let hosts = self
            .state
            .hosts
            .iter()
            .map(|h| HostStatus {
                host: h.host.clone(),
                pid: h.pid,
                running: h.pid.is_some_and(process::alive),
                ssh: TcpStream::connect_timeout(
                    &SocketAddr::from((h.host.address, 22)),
                    Duration::from_millis(300),
                )
                .is_ok(),
                memory_bytes: cgroups::memory_usage(&h.host.name),
                link_up: network::link_up(&paths::host_veth(&h.host.name)),
            })
            .collect();
        Status {
            hosts,
            server_pid: self.state.server_pid,
            server_running: self.state.server_pid.is_some_and(process::alive),
            server_answers: TcpStream::connect_timeout(&server_addr(), Duration::from_millis(300)).is_ok(),
        }
    }

    /// Leaves the lab running when this value goes away (the CLI's `up`); `kbs-lab down` removes it later.
    pub fn keep_running(mut self) {
        self.is_down = true;
        self.lock.take();
    }

    /// Takes the lab down completely: see [`teardown`].
    pub fn down(mut self) -> Result<()> {
        self.is_down = true;
        let result = teardown();
        self.lock.take();
        result
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Only the process that brought the lab up owns it; an attached Lab (CLI commands) leaves it running.
        if self.is_down || self.lock.is_none() {
            return;
        }
        eprintln!("kbs-lab: a Lab was dropped without Lab::down(); taking it down now");
        if let Err(e) = teardown() {
            eprintln!("kbs-lab: taking the lab down failed: {e}");
        }
    }
}

/// The offset in seconds in the guest's clock file (0 if absent).
pub fn clock_offset(host: &Host) -> Result<i64> {
    let path = host
        .root()
        .join(paths::GUEST_CLOCK_OFFSET.trim_start_matches('/'));
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|e| {
            Error::new(
                format!("reading the clock of {}", host.name),
                format!("{}: {e}", path.display()),
                "write an integer number of seconds into it, or kbs-lab clock HOST +0",
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::io(format!("reading the clock of {}", host.name), &path, e)),
    }
}

fn check_remote(host: &str, step: &str, out: &Output) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    Err(Error::new(
        format!("{step} on {host}"),
        format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
        format!("check the host with kbs-lab ssh {host}"),
    ))
}

/// Removes everything a lab made, found on the machine rather than only in the state file: processes (by
/// the PIDs in the state and in the lab's cgroups), overlay mounts, cgroups, the bridge, nspawn's runtime
/// files and the lab's runtime and host directories. Caches and the repository stay.
pub fn teardown() -> Result<()> {
    require_root()?;
    let state = State::load().ok().flatten().unwrap_or_default();
    let mut names: Vec<(String, Option<i32>)> =
        state.hosts.iter().map(|h| (h.host.name.clone(), h.pid)).collect();
    names.push((SERVER.to_string(), state.server_pid));
    for name in cgroups::list() {
        if !names.iter().any(|(n, _)| *n == name) {
            names.push((name, None));
        }
    }
    // Hosts shut down in parallel; each gets a grace period to power off, then what is left is killed.
    parallel(&names, |(name, pid)| {
        process::stop(name, *pid, Duration::from_secs(15))
    })?;
    for mount in machine::lab_mounts() {
        machine::unmount(&mount)?;
    }
    for (name, _) in &names {
        cgroups::remove(name)?;
    }
    cgroups::remove_parent();
    network::delete_bridge()?;
    repo::stop_agent();
    limits::restore();
    for dir in [
        PathBuf::from("/run/systemd/nspawn"),
        paths::hosts_dir(),
        paths::run_dir(),
    ] {
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing the lab's files", &dir, e)),
        }
    }
    Ok(())
}

/// Runs `f` for every item on its own thread; the first error (in item order) wins.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> Result<R> + Sync) -> Result<Vec<R>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = items.iter().map(|item| scope.spawn(|| f(item))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::new(
                        "a lab worker thread",
                        "panicked",
                        "report this as a bug",
                    ))
                })
            })
            .collect()
    })
}

fn require_root() -> Result<()> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Error::new(
            "starting kbs-lab",
            "the lab needs root (mounts, cgroups, bridges, systemd-nspawn)",
            "run it as root, e.g. sudo kbs-lab …",
        ));
    }
    Ok(())
}

fn check_free_space(dir: &Path, hosts: usize) -> Result<()> {
    let c_path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|e| Error::new("checking free disk space", e, "report this as a bug"))?;
    // SAFETY: statvfs(2) with a NUL-terminated path and a zeroed out-parameter of the right type.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return Ok(());
    }
    let free = stat.f_bavail as u64 * stat.f_frsize as u64;
    let needed: u64 = (1536 + 8 * hosts as u64) << 20;
    if free < needed {
        return Err(Error::new(
            "checking free disk space",
            format!(
                "{} MiB free under {}, the lab needs about {} MiB",
                free >> 20,
                dir.display(),
                needed >> 20
            ),
            "free disk space (apt-get clean, old files under /var/cache/kbs-lab), then run kbs-lab up again",
        ));
    }
    Ok(())
}

/// The lab's SSH key pair; returns the public key line for authorized_keys.
fn ensure_ssh_key() -> Result<String> {
    let key = paths::ssh_key();
    image::mkdir(&paths::ssh_dir())?;
    let public = key.with_extension("pub");
    if !key.exists() || !public.exists() {
        let _ = fs::remove_file(&key);
        let _ = fs::remove_file(&public);
        cmd::run(
            "making the lab's SSH key",
            "install openssh-client and check /var/lib/kbs-lab is writable",
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "kbs-lab", "-f"])
                .arg(&key),
        )?;
    }
    fs::read_to_string(&public).map_err(|e| Error::io("reading the lab's SSH key", &public, e))
}

fn write_known_hosts(keys: &[(Host, String)]) -> Result<()> {
    let mut text = String::new();
    for (host, key) in keys {
        text.push_str(&format!("{},{} {key}\n", host.name, host.address));
    }
    let path = paths::known_hosts();
    fs::write(&path, text).map_err(|e| Error::io("writing the lab's known_hosts", &path, e))
}

fn server_addr() -> SocketAddr {
    SocketAddr::from((paths::BRIDGE_ADDRESS, paths::REPO_PORT))
}

/// Starts `kbs-lab serve` detached and waits until it answers.
fn start_server(exe: &Path) -> Result<i32> {
    let addr = server_addr();
    // Bind once here so a taken port is reported with its fix before anything is started.
    drop(TcpListener::bind(addr).map_err(|e| server::bind_error(addr, e))?);
    let log = paths::run_dir().join("serve.log");
    let pid = process::spawn_detached(
        SERVER,
        &[
            exe.display().to_string(),
            "serve".to_string(),
            "--root".to_string(),
            paths::repo_dir().display().to_string(),
            "--listen".to_string(),
            addr.to_string(),
        ],
        &log,
    )?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if !process::alive(pid) || Instant::now() > deadline {
            let text = fs::read_to_string(&log).unwrap_or_default();
            return Err(Error::new(
                "starting the repository server",
                format!("it did not answer on {addr}: {}", text.trim()),
                format!("read {}; run kbs-lab down, then kbs-lab up", log.display()),
            ));
        }
        sleep(Duration::from_millis(50));
    }
    Ok(pid)
}

fn find_server_exe(given: Option<&Path>) -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(path) = given {
        candidates.push(path.to_path_buf());
    }
    if let Some(path) = std::env::var_os("KBS_LAB_BIN") {
        candidates.push(PathBuf::from(path));
    }
    if let Ok(exe) = std::env::current_exe() {
        if exe.file_name().is_some_and(|n| n == "kbs-lab") {
            candidates.push(exe.clone());
        }
        // Test binaries live in target/<profile>/deps, next to target/<profile>/kbs-lab.
        for dir in exe.ancestors().skip(1).take(2) {
            candidates.push(dir.join("kbs-lab"));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("kbs-lab")));
    }
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        Error::new(
            "finding the kbs-lab binary (it runs the repository server)",
            "no kbs-lab next to this program, in KBS_LAB_BIN or on PATH",
            "build it (cargo build -p kbs-lab) and set KBS_LAB_BIN to its path",
        )
    })
}
