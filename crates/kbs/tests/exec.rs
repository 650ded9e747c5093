//! `kbs exec` end to end: the real binary against real OpenSSH servers on loopback addresses.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kbs_testkit::{ensure_test_users, ClientKey, KeyType, SilentListener, SshdFleet, SshdOptions, TempDir};

/// A fleet of sshd servers, a client key they accept, and a place for inventories.
struct Setup {
    dir: TempDir,
    key: ClientKey,
    fleet: SshdFleet,
    known_hosts: PathBuf,
}

impl Setup {
    fn new(hosts: usize) -> Setup {
        let dir = TempDir::new().unwrap();
        let key = ClientKey::generate(dir.path(), KeyType::Ed25519, None);
        let fleet = SshdFleet::start_distinct(hosts, &SshdOptions::new().authorize(&key));
        let known_hosts = dir.path().join("known_hosts");
        fleet.write_known_hosts(&known_hosts, false);
        Setup {
            dir,
            key,
            fleet,
            known_hosts,
        }
    }

    /// An inventory naming the servers host01.. (and any extra host lines), logging in as `user`.
    fn inventory(&self, user: &str, extra_hosts: &str) -> PathBuf {
        let mut yaml = format!(
            "cluster:\n  kubernetesVersion: \"1.36\"\n  podSubnet: 172.31.0.0/16\n  \
             endpoint: {{ mode: external, address: 127.0.0.1 }}\n\
             ssh:\n  user: {user}\n  identityFile: {}\n  knownHostsFile: {}\n\
             hosts:\n",
            self.key.path.display(),
            self.known_hosts.display()
        );
        for (index, sshd) in self.fleet.iter().enumerate() {
            let role = if index == 0 { "control-plane" } else { "worker" };
            yaml.push_str(&format!(
                "  - name: host{:02}\n    address: {}\n    roles: [{role}]\n    ssh: {{ port: {} }}\n",
                index + 1,
                sshd.host(),
                sshd.port()
            ));
        }
        yaml.push_str(extra_hosts);
        let path = self.dir.path().join(format!("inventory-{user}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        path
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("kbs.log")
    }
}

fn kbs(args: &[&str], stdin: Option<&str>) -> Output {
    kbs_with_env(args, stdin, &[])
}

fn kbs_with_env(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kbs"));
    command.envs(env.iter().copied());
    // Tests must not depend on the developer's own ~/.ssh.
    command
        .args(["--no-ssh-config"])
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start kbs");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().expect("wait for kbs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn runs_on_every_host_and_prefixes_each_line_with_its_host() {
    let setup = Setup::new(4);
    let inventory = setup.inventory("root", "");
    let log = setup.log_file();
    // SSH_CONNECTION's third field is the server address: proof of which host answered.
    let out = kbs(
        &[
            "--log-file",
            arg(&log),
            "exec",
            arg(&inventory),
            "--",
            "echo",
            "on ${SSH_CONNECTION#* * }",
        ],
        None,
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for (index, sshd) in setup.fleet.iter().enumerate() {
        let expected = format!("host{:02} | on {} {}", index + 1, sshd.host(), sshd.port());
        assert!(
            stdout.lines().any(|line| line == expected),
            "no `{expected}` in:\n{stdout}"
        );
    }
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    assert!(stderr.contains("4 hosts in "), "{stderr}");
    assert!(stderr.contains(": 4 ok, 0 failed, 0 unreachable"), "{stderr}");
}

#[test]
fn a_failing_command_and_an_unreachable_host_fail_the_run_while_the_others_finish() {
    let setup = Setup::new(3);
    let silent = SilentListener::start();
    let dead = format!(
        "  - name: host99\n    address: 127.0.0.1\n    roles: [worker]\n    ssh: {{ port: {} }}\n",
        silent.port()
    );
    let inventory = setup.inventory("root", &dead);
    let failing_port = setup.fleet.get(1).port();
    // Exits 3 on host02 only.
    let script = format!("if [ \"${{SSH_CONNECTION##* }}\" = {failing_port} ]; then exit 3; fi; echo fine");
    let started = Instant::now();
    let out = kbs(
        &["--connect-timeout", "2s", "exec", arg(&inventory), "--", &script],
        None,
    );
    let elapsed = started.elapsed();
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("host01 | fine") && stdout.contains("host03 | fine"),
        "{stdout}"
    );
    assert!(!stdout.contains("host02 | fine"), "{stdout}");
    assert!(stderr.contains("host99 | unreachable: "), "{stderr}");
    assert!(
        stderr.contains("4 hosts in ")
            && stderr.contains(": 2 ok, 1 failed (host02: exit 3), 1 unreachable (host99)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("kbs: error: failed on host02; could not reach host99"),
        "{stderr}"
    );
    // Connect timeout 2 s; retries with backoff may add a little, never the default 10 s.
    assert!(elapsed < Duration::from_secs(9), "took {elapsed:?}");
}

#[test]
fn an_unknown_host_key_is_refused_unless_accepted_and_then_it_is_remembered() {
    let setup = Setup::new(1);
    std::fs::write(&setup.known_hosts, "").unwrap();
    let inventory = setup.inventory("root", "");

    let refused = kbs(&["exec", arg(&inventory), "--", "true"], None);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("host01 | unreachable: "), "{stderr}");
    assert!(
        stderr.contains("--accept-new-host-keys"),
        "the error must say how to proceed: {stderr}"
    );

    let accepted = kbs(
        &["--accept-new-host-keys", "exec", arg(&inventory), "--", "true"],
        None,
    );
    assert!(accepted.status.success(), "{}", text(&accepted.stderr));
    let learned = std::fs::read_to_string(&setup.known_hosts).unwrap();
    let sshd = setup.fleet.get(0);
    let key_body = sshd.host_key().split_whitespace().nth(1).unwrap();
    assert!(
        learned.contains(key_body),
        "known_hosts after accepting:\n{learned}"
    );

    let again = kbs(&["exec", arg(&inventory), "--", "true"], None);
    assert!(
        again.status.success(),
        "a learned key is trusted: {}",
        text(&again.stderr)
    );
}

#[test]
fn grouped_output_shows_one_block_per_host_and_host_patterns_select() {
    let setup = Setup::new(3);
    let inventory = setup.inventory("root", "");
    let out = kbs(
        &[
            "exec",
            arg(&inventory),
            "--hosts",
            "host01,role:worker",
            "--group",
            "--",
            "printf 'a\\nb\\n'",
        ],
        None,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for host in ["host01", "host02", "host03"] {
        let block = format!("== {host} (exit 0) ==\na\nb\n");
        assert!(stdout.contains(&block), "no block for {host} in:\n{stdout}");
    }

    let none = kbs(
        &["exec", arg(&inventory), "--hosts", "hots01", "--", "true"],
        None,
    );
    let stderr = text(&none.stderr);
    assert_eq!(none.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--hosts hots01: no host matches `hots01`"),
        "{stderr}"
    );
}

#[test]
fn a_bad_inventory_is_reported_with_its_position_and_nothing_connects() {
    let setup = Setup::new(1);
    let inventory = setup.dir.path().join("bad.yaml");
    std::fs::write(
        &inventory,
        "cluster:\n  kubernetesVersion: \"1.33\"\n  podSubnet: 172.31.0.0/16\n\
         hosts:\n  - name: host01\n    adress: 127.0.0.1\n    roles: [control-plane]\n",
    )
    .unwrap();
    let out = kbs(&["exec", arg(&inventory), "--", "true"], None);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let path = inventory.display();
    assert!(
        stderr.starts_with(&format!(
            "{path}:2:22: error: Kubernetes 1.33 is not supported\n  \
             hint: supported versions are 1.35, 1.36, 1.37, written as 1.MM or 1.MM.P\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{path}:6:5: error: unknown key `adress` in host `host01`\n  hint: did you mean `address`?\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(&format!(
            "kbs: error: {path}: 3 errors in the inventory; nothing was done\n"
        )),
        "{stderr}"
    );
    assert!(
        !setup.fleet.get(0).log().contains("Accepted publickey"),
        "kbs connected despite a bad inventory"
    );
}

#[test]
fn the_sudo_password_reaches_sudo_and_never_any_output_or_log() {
    let users = ensure_test_users();
    let setup = Setup::new(2);
    let inventory = setup.inventory(users.passwd, "");
    let log = setup.log_file();
    let password_line = format!("{}\n", users.password);
    let out = kbs(
        &[
            "-vvv",
            "--log-file",
            arg(&log),
            "-K",
            "exec",
            arg(&inventory),
            "--sudo",
            "--",
            "id -u",
        ],
        Some(&password_line),
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("host01 | 0") && stdout.contains("host02 | 0"),
        "{stdout}"
    );
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("exec"),
        "the -vvv log should record the exec:\n{log_text}"
    );
    for (what, haystack) in [("stdout", &stdout), ("stderr", &stderr), ("log", &log_text)] {
        assert!(
            !haystack.contains(users.password),
            "the sudo password leaked into {what}"
        );
    }

    let wrong = kbs(
        &["-K", "exec", arg(&inventory), "--sudo", "--", "id -u"],
        Some("not-the-password\n"),
    );
    let stderr = text(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("host01 | failed: ") && stderr.contains("password"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");
}

#[test]
fn an_encrypted_key_is_unlocked_with_kbs_key_passphrase_which_never_reaches_output_or_log() {
    let passphrase = "kbs-key-Phrase-51e9";
    let dir = TempDir::new().unwrap();
    let key = ClientKey::generate(dir.path(), KeyType::Ed25519, Some(passphrase));
    let fleet = SshdFleet::start_distinct(2, &SshdOptions::new().authorize(&key));
    let known_hosts = dir.path().join("known_hosts");
    fleet.write_known_hosts(&known_hosts, false);
    let setup = Setup {
        dir,
        key,
        fleet,
        known_hosts,
    };
    let inventory = setup.inventory("root", "");
    let log = setup.log_file();
    let out = kbs_with_env(
        &[
            "-vvv",
            "--log-file",
            arg(&log),
            "exec",
            arg(&inventory),
            "--",
            "echo unlocked",
        ],
        None,
        &[("KBS_KEY_PASSPHRASE", passphrase)],
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("host01 | unlocked") && stdout.contains("host02 | unlocked"),
        "{stdout}"
    );
    let log_text = std::fs::read_to_string(&log).unwrap();
    for (what, haystack) in [("stdout", &stdout), ("stderr", &stderr), ("log", &log_text)] {
        assert!(
            !haystack.contains(passphrase),
            "the key passphrase leaked into {what}"
        );
    }

    let without = kbs(&["exec", arg(&inventory), "--", "true"], None);
    let stderr = text(&without.stderr);
    assert_eq!(without.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("KBS_KEY_PASSPHRASE"),
        "the error must say how to unlock the key: {stderr}"
    );
}
