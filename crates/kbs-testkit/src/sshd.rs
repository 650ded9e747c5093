//! Real OpenSSH servers on loopback, one temp dir each (host keys, config, authorized_keys, log).
//!
//! Every server accepts the same authorized_keys for every local user (`AuthorizedKeysFile` is an
//! absolute path), so one test key reaches root and the sudo test users alike.

use std::collections::HashSet;
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{read, run, write_known_hosts, ClientKey, KeyType, KnownHostsEntry};

/// How to configure the servers.
#[derive(Debug, Clone)]
pub struct SshdOptions {
    authorized_keys: Vec<String>,
    allow_tcp_forwarding: bool,
    log_level: String,
    extra_config: Vec<String>,
    all_host_key_types: bool,
    address: Ipv4Addr,
}

impl SshdOptions {
    /// No authorized keys yet, TCP forwarding allowed, LogLevel INFO.
    pub fn new() -> Self {
        SshdOptions {
            authorized_keys: Vec::new(),
            allow_tcp_forwarding: true,
            log_level: "INFO".into(),
            extra_config: Vec::new(),
            all_host_key_types: false,
            address: Ipv4Addr::LOCALHOST,
        }
    }

    /// Accept this client key (for every user).
    pub fn authorize(mut self, key: &ClientKey) -> Self {
        self.authorized_keys.push(key.public.clone());
        self
    }

    pub fn allow_tcp_forwarding(mut self, allow: bool) -> Self {
        self.allow_tcp_forwarding = allow;
        self
    }

    /// sshd `LogLevel`: `INFO` (default), `VERBOSE` or `DEBUG`..`DEBUG3` to check what the server
    /// logs. Quieter levels are not allowed: readiness is read from the log.
    pub fn log_level(mut self, level: &str) -> Self {
        assert!(
            ["INFO", "VERBOSE", "DEBUG", "DEBUG1", "DEBUG2", "DEBUG3"].contains(&level),
            "sshd LogLevel {level} would hide the 'Server listening' line the harness waits for"
        );
        self.log_level = level.into();
        self
    }

    /// Also give the server ECDSA and RSA host keys (default: Ed25519 only, the fastest to make).
    pub fn all_host_key_types(mut self) -> Self {
        self.all_host_key_types = true;
        self
    }

    /// Listen on this loopback address instead of 127.0.0.1 (any of 127.0.0.0/8 reaches `lo`), so
    /// servers can stand for hosts with addresses of their own.
    pub fn address(mut self, address: Ipv4Addr) -> Self {
        assert!(
            address.is_loopback(),
            "test servers listen on loopback only, not {address}"
        );
        self.address = address;
        self
    }

    /// An extra sshd_config line.
    pub fn config_line(mut self, line: &str) -> Self {
        self.extra_config.push(line.into());
        self
    }
}

impl Default for SshdOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// One running `sshd -D -e` on 127.0.0.1; killed on drop.
pub struct Sshd {
    dir: TempDir,
    host: String,
    port: u16,
    host_keys: Vec<(KeyType, String)>,
    child: Child,
}

impl Sshd {
    /// Start one server and wait until it speaks SSH.
    pub fn start(opts: &SshdOptions) -> Sshd {
        crate::require_root();
        // Privilege separation directory; sshd refuses to start without it.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let dir = TempDir::new().expect("temp dir for sshd");
        let mut kinds = vec![KeyType::Ed25519];
        if opts.all_host_key_types {
            kinds.extend([KeyType::Ecdsa, KeyType::Rsa]);
        }
        let host_keys: Vec<(KeyType, String)> = kinds
            .into_iter()
            .map(|kind| {
                let key = dir.path().join(host_key_file(kind));
                run(Command::new("ssh-keygen")
                    .args(["-q", "-N", "", "-C", "kbs-test-host"])
                    .args(kind.keygen_args())
                    .arg("-f")
                    .arg(&key));
                (kind, read(&key.with_extension("pub")).trim().to_string())
            })
            .collect();
        let mut keys = opts.authorized_keys.join("\n");
        keys.push('\n');
        std::fs::write(dir.path().join("authorized_keys"), keys).expect("write authorized_keys");
        // A port picked by the kernel can be taken by someone else before sshd binds it: retry.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port();
            let config = write_config(dir.path(), port, opts, &host_keys);
            let log_path = dir.path().join("sshd.log");
            let log = std::fs::File::create(&log_path).expect("create sshd.log");
            let mut child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start /usr/sbin/sshd (is openssh-server installed?)");
            if wait_ready(&mut child, opts.address, port, &log_path) {
                return Sshd {
                    dir,
                    host: opts.address.to_string(),
                    port,
                    host_keys,
                    child,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            assert!(
                attempt < 5 && log.contains("Address already in use"),
                "sshd failed to start:\n{log}"
            );
        }
    }

    /// The loopback address the server listens on.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's Ed25519 host public key (`ssh-ed25519 AAAA... comment`).
    pub fn host_key(&self) -> &str {
        &self.host_keys[0].1
    }

    /// The host public key of one type, if the server has one.
    pub fn host_key_of(&self, kind: KeyType) -> Option<&str> {
        self.host_keys
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, p)| p.as_str())
    }

    /// The known_hosts entry OpenSSH would record for this server (its Ed25519 key).
    pub fn known_hosts_entry(&self) -> KnownHostsEntry {
        KnownHostsEntry::new(self.host(), self.port, self.host_key())
    }

    /// Everything sshd logged so far (`-e`: its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The server's temp dir (config, keys, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Process id of the listening sshd.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Process ids of the server's per-connection processes (all descendants of the listener).
    pub fn session_pids(&self) -> Vec<u32> {
        let parents = process_parents();
        let mut found = vec![self.pid()];
        let mut i = 0;
        while i < found.len() {
            let parent = found[i];
            found.extend(
                parents
                    .iter()
                    .filter(|(_, pp)| *pp == parent)
                    .map(|(pid, _)| *pid),
            );
            i += 1;
        }
        found.remove(0);
        found
    }

    /// SIGKILL every per-connection process, as if the network dropped: clients see their
    /// connections die while the server keeps listening. Returns how many processes were killed.
    pub fn kill_sessions(&self) -> usize {
        let pids = self.session_pids();
        for pid in &pids {
            // The shell's builtin kill: no procps needed on minimal images.
            let _ = Command::new("sh")
                .arg("-c")
                .arg(format!("kill -9 {pid}"))
                .status();
        }
        pids.len()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(pid, parent pid)` of every process, from /proc.
fn process_parents() -> Vec<(u32, u32)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect()
}

/// True once our sshd listens and the port answers with an SSH banner; false if sshd exited.
/// The log line matters: another process's server on a recycled port would answer too.
fn wait_ready(child: &mut Child, address: Ipv4Addr, port: u16, log: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    let listening = format!("Server listening on {address} port {port}");
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let ours = std::fs::read_to_string(log).is_ok_and(|l| l.contains(&listening));
        if !ours {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        if let Ok(mut s) = TcpStream::connect((address, port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4];
            if s.read_exact(&mut buf).is_ok() && &buf == b"SSH-" {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!(
        "sshd on port {port} not ready after 20 s:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// A loopback port nobody listens on, never handed out twice by this process (the kernel happily
/// gives a just-released port to the next `bind(0)`, and fleets start servers in parallel).
fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("find a free loopback port");
        if given.insert(port) {
            return port;
        }
    }
}

fn host_key_file(kind: KeyType) -> &'static str {
    match kind {
        KeyType::Ed25519 => "ssh_host_ed25519_key",
        KeyType::Ecdsa => "ssh_host_ecdsa_key",
        KeyType::Rsa => "ssh_host_rsa_key",
    }
}

fn write_config(dir: &Path, port: u16, opts: &SshdOptions, host_keys: &[(KeyType, String)]) -> PathBuf {
    let d = dir.display();
    let mut cfg = format!("ListenAddress {}:{port}\n", opts.address);
    for (kind, _) in host_keys {
        cfg.push_str(&format!("HostKey {d}/{}\n", host_key_file(*kind)));
    }
    cfg.push_str(&format!(
        "AuthorizedKeysFile {d}/authorized_keys\n\
         PidFile none\n\
         UsePAM no\n\
         StrictModes no\n\
         PermitRootLogin prohibit-password\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         AllowTcpForwarding {}\n\
         LogLevel {}\n",
        if opts.allow_tcp_forwarding { "yes" } else { "no" },
        opts.log_level,
    ));
    for line in &opts.extra_config {
        cfg.push_str(line);
        cfg.push('\n');
    }
    let path = dir.join("sshd_config");
    std::fs::write(&path, cfg).expect("write sshd_config");
    path
}

/// Many servers, started concurrently.
pub struct SshdFleet {
    servers: Vec<Sshd>,
}

impl SshdFleet {
    /// Start `n` servers with the same options, in parallel, all on 127.0.0.1.
    pub fn start(n: usize, opts: &SshdOptions) -> SshdFleet {
        Self::start_each(vec![opts.clone(); n])
    }

    /// Start `n` servers in parallel, each on a loopback address of its own (127.1.0.1, 127.1.0.2,
    /// …), like the hosts of an inventory.
    pub fn start_distinct(n: usize, opts: &SshdOptions) -> SshdFleet {
        assert!(n <= 250 * 250, "at most 62500 distinct loopback servers");
        let each = (0..n)
            .map(|i| {
                let address = Ipv4Addr::new(127, 1 + (i / 250) as u8, 0, 1 + (i % 250) as u8);
                opts.clone().address(address)
            })
            .collect();
        Self::start_each(each)
    }

    fn start_each(each: Vec<SshdOptions>) -> SshdFleet {
        let servers = std::thread::scope(|s| {
            let handles: Vec<_> = each
                .iter()
                .map(|opts| s.spawn(move || Sshd::start(opts)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        SshdFleet { servers }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Sshd> {
        self.servers.iter()
    }

    pub fn len(&self) -> usize {
        self.servers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    pub fn get(&self, i: usize) -> &Sshd {
        &self.servers[i]
    }

    /// Write a known_hosts file trusting every server of the fleet.
    pub fn write_known_hosts(&self, path: &Path, hashed: bool) {
        let entries: Vec<KnownHostsEntry> = self.servers.iter().map(Sshd::known_hosts_entry).collect();
        write_known_hosts(path, &entries, hashed);
    }
}
