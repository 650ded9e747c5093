//! Acceptance tests of the lab, run as root against real systemd-nspawn hosts.
//!
//! One lab serves the whole suite (there is one bridge and one address range per machine), so this file
//! has its own `main`: it brings up four hosts, runs every check in order (each reported on its own and
//! able to fail on its own), then checks crash recovery and that `down` leaves nothing behind.
//! Run: `sudo cargo test -p kbs-lab --test lab` (installs missing host packages; ~1.5 min cold, less warm).

use std::collections::BTreeSet;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use kbs_lab::{paths, Fault, Lab, UpOptions};

type Check = fn(&mut Lab);

fn main() {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("the lab tests need root (mounts, cgroups, a bridge): run `sudo cargo test -p kbs-lab --test lab`");
        std::process::exit(1);
    }
    let netns_before = net_namespaces();
    let started = Instant::now();
    let mut lab = Lab::up(options(4)).unwrap_or_else(|e| {
        eprintln!("kbs-lab up failed: {e}");
        std::process::exit(1);
    });
    println!("lab up: 4 hosts in {:.1} s", started.elapsed().as_secs_f64());

    let checks: &[(&str, Check)] = &[
        (
            "hosts_have_own_hostname_ip_and_host_key",
            hosts_have_own_hostname_ip_and_host_key,
        ),
        ("inventory_lists_the_hosts", inventory_lists_the_hosts),
        ("cli_status_and_ssh", cli_status_and_ssh),
        ("kbs_user_has_passwordless_sudo", kbs_user_has_passwordless_sudo),
        (
            "systemd_is_running_in_every_host",
            systemd_is_running_in_every_host,
        ),
        ("sysctl_net_is_per_host", sysctl_net_is_per_host),
        (
            "apt_installs_signed_and_refuses_unsigned",
            apt_installs_signed_and_refuses_unsigned,
        ),
        (
            "longhorn_prerequisites_keep_systemd_running",
            longhorn_prerequisites_keep_systemd_running,
        ),
        ("manifests_are_served", manifests_are_served),
        ("fault_down_and_up", fault_down_and_up),
        ("fault_cut_and_heal", fault_cut_and_heal),
        ("fault_sshd_restart", fault_sshd_restart),
        ("fault_dpkg_lock", fault_dpkg_lock),
        ("clock_offset_per_host", clock_offset_per_host),
        ("guest_reboot_boots_again", guest_reboot_boots_again),
    ];
    // `cargo test -p kbs-lab --test lab -- NAME…` runs only the checks whose names contain a NAME.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let mut failed: Vec<&str> = Vec::new();
    for (name, check) in checks {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let t = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| check(&mut lab)));
        let verdict = if result.is_ok() { "ok" } else { "FAILED" };
        println!("test {name} ... {verdict} ({:.1} s)", t.elapsed().as_secs_f64());
        if result.is_err() {
            failed.push(name);
        }
    }

    // A crash: the process that owned the lab is gone and so is its state file. A new `up` must clean up.
    let t = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| up_after_a_crash_cleans_the_stale_lab(lab)));
    println!(
        "test up_after_a_crash_cleans_the_stale_lab ... {} ({:.1} s)",
        if result.is_ok() { "ok" } else { "FAILED" },
        t.elapsed().as_secs_f64()
    );
    match result {
        Ok(small) => {
            let t = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(|| {
                down_leaves_nothing_behind(small, &netns_before)
            }));
            println!(
                "test down_leaves_nothing_behind ... {} ({:.1} s)",
                if result.is_ok() { "ok" } else { "FAILED" },
                t.elapsed().as_secs_f64()
            );
            if result.is_err() {
                failed.push("down_leaves_nothing_behind");
            }
        }
        Err(_) => {
            failed.push("up_after_a_crash_cleans_the_stale_lab");
            let _ = kbs_lab::teardown();
        }
    }
    println!(
        "\n{} checks, {} failed, {:.1} s in all",
        checks.len() + 2,
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        println!("failed: {}", failed.join(", "));
        std::process::exit(101);
    }
}

fn options(hosts: usize) -> UpOptions {
    UpOptions {
        inventory: Some(PathBuf::from(paths::RUN_DIR).join("test-inventory.yaml")),
        server_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_kbs-lab"))),
        ..UpOptions::new(hosts)
    }
}

/// Runs `cmd` on `host` and returns stdout; panics with stderr if it fails.
fn sh(lab: &Lab, host: &str, cmd: &str) -> String {
    let out = lab.ssh(host, cmd).expect("ssh runs");
    assert!(
        out.status.success(),
        "{host}: `{cmd}` failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn names(lab: &Lab) -> Vec<String> {
    lab.hosts().iter().map(|h| h.name.clone()).collect()
}

fn hosts_have_own_hostname_ip_and_host_key(lab: &mut Lab) {
    let known = fs::read_to_string(lab.known_hosts_file()).unwrap();
    let mut keys = BTreeSet::new();
    for host in lab.hosts() {
        let out = sh(
            lab,
            &host.name,
            "hostname; ip -4 -o addr show dev host0; cat /etc/ssh/ssh_host_ed25519_key.pub; ip route",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], host.name);
        assert!(
            lines[1].contains(&format!("inet {}/24", host.address)),
            "{}: {}",
            host.name,
            lines[1]
        );
        let key: Vec<&str> = lines[2].split_whitespace().take(2).collect();
        let key = key.join(" ");
        assert!(
            known.contains(&format!("{},{} {key}", host.name, host.address)),
            "known_hosts lacks {}'s key",
            host.name
        );
        keys.insert(key);
        // Network rule: no way out of the bridge.
        assert!(
            !out.contains("default"),
            "{} has a default route: {out}",
            host.name
        );
        let out = lab.ssh(&host.name, "ip route get 1.1.1.1").unwrap();
        assert!(!out.status.success(), "{} can route to the internet", host.name);
    }
    assert_eq!(keys.len(), lab.hosts().len(), "host keys are not distinct");
    // Hosts reach each other by name.
    sh(lab, "host01", "getent hosts host04 | grep -q 10.61.0.14 && ping -c1 -W2 host04 >/dev/null 2>&1 || bash -c '</dev/tcp/host04/22'");
}

fn inventory_lists_the_hosts(lab: &mut Lab) {
    let text = fs::read_to_string(lab.inventory_file().expect("inventory written")).unwrap();
    for needle in [
        "name: lab",
        "mode: kube-vip",
        "address: 10.61.0.10",
        "hostSubnet: 10.61.0.0/24",
        "identityFile: /var/lib/kbs-lab/ssh/id_ed25519",
        "knownHostsFile: /var/lib/kbs-lab/ssh/known_hosts",
        "- name: host04\n  address: 10.61.0.14\n  roles:\n  - worker",
    ] {
        assert!(text.contains(needle), "inventory lacks {needle:?}:\n{text}");
    }
    assert_eq!(text.matches("control-plane").count(), 3, "{text}");
}

fn cli_status_and_ssh(_lab: &mut Lab) {
    let exe = env!("CARGO_BIN_EXE_kbs-lab");
    let out = Command::new(exe).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kbs-lab status says the lab is not all up:\n{text}"
    );
    assert!(text.contains("answering on http://10.61.0.1/"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("host0") && l.contains(" up "))
            .count(),
        4,
        "{text}"
    );
    let out = Command::new(exe)
        .args(["ssh", "host03", "hostname", "-s"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "host03");
}

fn kbs_user_has_passwordless_sudo(lab: &mut Lab) {
    let host = &lab.hosts()[1];
    let out = Command::new("ssh")
        .arg("-i")
        .arg(lab.identity_file())
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", lab.known_hosts_file().display()))
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
        .arg(format!("kbs@{}", host.address))
        .arg("id -un; sudo -n id -u")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "kbs\n0");
}

fn systemd_is_running_in_every_host(lab: &mut Lab) {
    for name in names(lab) {
        let out = lab
            .ssh(
                &name,
                "systemctl is-system-running --wait; systemctl --failed --no-legend",
            )
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.lines().next(), Some("running"), "{name}: {text}");
    }
}

fn sysctl_net_is_per_host(lab: &mut Lab) {
    let real = fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    for name in names(lab) {
        assert_eq!(
            sh(lab, &name, "sysctl -n net.ipv4.ip_forward"),
            "0",
            "{name} starts with forwarding on"
        );
    }
    sh(lab, "host01", "sysctl -w net.ipv4.ip_forward=1");
    assert_eq!(sh(lab, "host01", "sysctl -n net.ipv4.ip_forward"), "1");
    for name in &names(lab)[1..] {
        assert_eq!(
            sh(lab, name, "sysctl -n net.ipv4.ip_forward"),
            "0",
            "{name} changed with host01"
        );
    }
    assert_eq!(
        fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        real,
        "the real machine changed"
    );
    // kernel.* stays the real machine's and read-only.
    let out = lab.ssh("host01", "sysctl -w kernel.pid_max=65536").unwrap();
    assert!(!out.status.success(), "a guest could change kernel.pid_max");
    sh(lab, "host01", "sysctl -w net.ipv4.ip_forward=0");
}

/// A throwaway .deb made with dpkg-deb.
fn build_deb(dir: &Path, name: &str, version: &str) -> PathBuf {
    let root = dir.join(format!("{name}-{version}"));
    fs::create_dir_all(root.join("DEBIAN")).unwrap();
    fs::create_dir_all(root.join("usr/share/kbs-lab-probe")).unwrap();
    fs::write(root.join("usr/share/kbs-lab-probe/version"), version).unwrap();
    fs::write(
        root.join("DEBIAN/control"),
        format!("Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: kbs <kbs@kbs.invalid>\nDescription: kbs-lab test package\n"),
    )
    .unwrap();
    let deb = dir.join(format!("{name}_{version}_all.deb"));
    let status = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    deb
}

fn apt_installs_signed_and_refuses_unsigned(lab: &mut Lab) {
    let work = PathBuf::from(paths::RUN_DIR).join("test-debs");
    fs::create_dir_all(&work).unwrap();
    let deb = build_deb(&work, "kbs-lab-probe", "1.36.0-1.1");
    kbs_lab::repo::add_debs("1.36", std::slice::from_ref(&deb)).unwrap();

    // Exactly what a user does for pkgs.k8s.io, against the lab's mirror of it, plus the Debian mirror.
    sh(
        lab,
        "host02",
        "set -e; curl -fsSL http://10.61.0.1/core:/stable:/v1.36/deb/Release.key | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg; \
         echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] http://10.61.0.1/core:/stable:/v1.36/deb/ /' > /etc/apt/sources.list.d/kubernetes.list; \
         apt-get update -q; DEBIAN_FRONTEND=noninteractive apt-get install -y -q kbs-lab-probe socat",
    );
    assert_eq!(
        sh(lab, "host02", "dpkg-query -W -f '${Version}' kbs-lab-probe"),
        "1.36.0-1.1"
    );
    assert_eq!(
        sh(lab, "host02", "apt-cache policy socat | grep -c 10.61.0.1"),
        "1"
    );

    // The same packages without a signature: apt must refuse the repository.
    let unsigned = paths::repo_dir().join("test-unsigned");
    let _ = fs::remove_dir_all(&unsigned);
    fs::create_dir_all(&unsigned).unwrap();
    let signed = kbs_lab::repo::minor_dir("1.36");
    for file in ["Packages", "Release"] {
        fs::copy(signed.join(file), unsigned.join(file)).unwrap();
    }
    fs::copy(&deb, unsigned.join(deb.file_name().unwrap())).unwrap();
    let out = lab
        .ssh(
            "host03",
            "echo 'deb [signed-by=/etc/apt/keyrings/kbs-lab.gpg] http://10.61.0.1/test-unsigned/ /' > /etc/apt/sources.list.d/unsigned.list; \
             apt-get update 2>&1; rc=$?; rm /etc/apt/sources.list.d/unsigned.list; exit $rc",
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "apt-get update accepted an unsigned repository:\n{text}"
    );
    assert!(text.contains("is not signed"), "{text}");
    let _ = fs::remove_dir_all(&unsigned);
}

fn longhorn_prerequisites_keep_systemd_running(lab: &mut Lab) {
    sh(
        lab,
        "host03",
        "set -e; apt-get update -q; DEBIAN_FRONTEND=noninteractive apt-get install -y -q open-iscsi nfs-common; \
         systemctl enable --now iscsid; modprobe br_netfilter; modprobe overlay; sysctl --system >/dev/null",
    );
    assert_eq!(sh(lab, "host03", "systemctl is-active iscsid"), "active");
    let out = lab
        .ssh(
            "host03",
            "systemctl is-system-running --wait; systemctl --failed --no-legend",
        )
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().next(), Some("running"), "{text}");
    let out = lab.ssh("host03", "modprobe ip_vs").unwrap();
    assert!(
        !out.status.success(),
        "ip_vs is not in this kernel; modprobe must say so"
    );
}

fn manifests_are_served(lab: &mut Lab) {
    let dir = kbs_lab::repo::manifests_dir().join("test");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("probe.yaml"), "kind: Probe\n").unwrap();
    assert_eq!(
        sh(
            lab,
            "host04",
            "curl -fsS http://10.61.0.1/manifests/test/probe.yaml"
        ),
        "kind: Probe"
    );
    let out = lab
        .ssh("host04", "curl -fsS http://10.61.0.1/../../etc/shadow")
        .unwrap();
    assert!(!out.status.success());
    fs::remove_dir_all(dir).unwrap();
}

fn fault_down_and_up(lab: &mut Lab) {
    let key_before = sh(lab, "host04", "cat /etc/ssh/ssh_host_ed25519_key.pub");
    sh(lab, "host04", "echo kept > /root/marker");
    lab.fault("host04", Fault::Down).unwrap();
    let status = lab.status();
    let h = status.hosts.iter().find(|h| h.host.name == "host04").unwrap();
    assert!(!h.running && !h.ssh && h.pid.is_none(), "{h:?}");
    assert!(!lab.ssh("host04", "true").unwrap().status.success());
    assert!(!sh(
        lab,
        "host01",
        // Bounded: host01 may still hold a stale neighbour entry for host04, and TCP retries for minutes.
        "timeout 5 bash -c '</dev/tcp/10.61.0.14/22' 2>&1 && echo open || echo closed"
    )
    .contains("open"));
    lab.fault("host04", Fault::Up).unwrap();
    assert_eq!(
        sh(lab, "host04", "cat /root/marker"),
        "kept",
        "the disk did not survive down/up"
    );
    assert_eq!(
        sh(lab, "host04", "cat /etc/ssh/ssh_host_ed25519_key.pub"),
        key_before
    );
}

fn fault_cut_and_heal(lab: &mut Lab) {
    lab.fault("host02", Fault::Cut).unwrap();
    assert!(
        !lab.ssh("host02", "true").unwrap().status.success(),
        "host02 answers while cut"
    );
    let out = lab
        .ssh(
            "host01",
            "ping -c1 -W1 10.61.0.12 >/dev/null 2>&1 || timeout 2 bash -c '</dev/tcp/10.61.0.12/22'",
        )
        .unwrap();
    assert!(!out.status.success(), "host01 reaches host02 while it is cut");
    lab.fault("host02", Fault::Heal).unwrap();
    assert_eq!(sh(lab, "host02", "hostname"), "host02");
    sh(lab, "host01", "timeout 5 bash -c '</dev/tcp/10.61.0.12/22'");
}

fn fault_sshd_restart(lab: &mut Lab) {
    let before = sh(lab, "host01", "systemctl show -p MainPID --value ssh");
    lab.fault("host01", Fault::SshdRestart).unwrap();
    let after = sh(lab, "host01", "systemctl show -p MainPID --value ssh");
    assert_ne!(before, after, "sshd was not restarted");
    assert_eq!(sh(lab, "host01", "systemctl is-active ssh"), "active");
}

fn fault_dpkg_lock(lab: &mut Lab) {
    lab.fault("host01", Fault::DpkgLock { seconds: 3 }).unwrap();
    let started = Instant::now();
    let out = lab.ssh("host01", "apt-get install -y -q socat 2>&1").unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("Could not get lock"),
        "apt got the lock:\n{text}"
    );
    let wait = Duration::from_secs(4).saturating_sub(started.elapsed());
    sleep(wait);
    sh(lab, "host01", "dpkg --configure -a");
}

fn clock_offset_per_host(lab: &mut Lab) {
    let path = paths::GUEST_CLOCK_OFFSET;
    lab.clock(Some("host02"), 7200).unwrap();
    assert_eq!(sh(lab, "host02", &format!("cat {path}")), "7200");
    assert_eq!(sh(lab, "host01", &format!("cat {path}")), "0");
    lab.clock(None, 60).unwrap();
    assert_eq!(sh(lab, "host02", &format!("cat {path}")), "7260");
    assert_eq!(sh(lab, "host03", &format!("cat {path}")), "60");
    lab.clock(Some("host02"), -7200).unwrap();
    lab.clock(None, -60).unwrap();
    for name in names(lab) {
        assert_eq!(
            sh(lab, &name, &format!("cat {path}")),
            "0",
            "{name}'s clock was not put back"
        );
    }
}

fn guest_reboot_boots_again(lab: &mut Lab) {
    let boot = sh(lab, "host03", "cat /proc/sys/kernel/random/boot_id; systemctl show -p ActiveEnterTimestampMonotonic --value init.scope");
    let _ = lab.ssh("host03", "systemctl reboot");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        sleep(Duration::from_millis(500));
        let out = lab.ssh("host03", "systemctl is-system-running --wait >/dev/null; cat /proc/sys/kernel/random/boot_id; systemctl show -p ActiveEnterTimestampMonotonic --value init.scope").unwrap();
        let now = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !now.is_empty() && now != boot {
            break;
        }
        assert!(Instant::now() < deadline, "host03 did not come back after reboot");
    }
    assert_eq!(sh(lab, "host03", "systemctl is-system-running"), "running");
}

fn up_after_a_crash_cleans_the_stale_lab(lab: Lab) -> Lab {
    // What a crash leaves: every process, mount, cgroup and the bridge, without the owner or its state file.
    lab.keep_running();
    fs::remove_file(paths::state_file()).unwrap();
    let lab = Lab::up(options(2)).unwrap();
    assert_eq!(names(&lab), ["host01", "host02"]);
    for gone in ["host03", "host04"] {
        assert!(
            !Path::new("/sys/fs/cgroup/unified/kbslab").join(gone).exists(),
            "{gone}'s cgroup survived"
        );
        assert!(!paths::host_dir(gone).exists(), "{gone}'s overlay survived");
    }
    assert_eq!(sh(&lab, "host02", "hostname"), "host02");
    lab
}

fn down_leaves_nothing_behind(lab: Lab, netns_before: &BTreeSet<String>) {
    let veths: Vec<String> = lab.hosts().iter().map(|h| paths::host_veth(&h.name)).collect();
    lab.down().unwrap();
    for h in ["systemd", "unified", "memory"] {
        assert!(
            !Path::new("/sys/fs/cgroup").join(h).join("kbslab").exists(),
            "cgroup kbslab left in {h}"
        );
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains("/var/lib/kbs-lab"), "mounts left:\n{mounts}");
    assert!(
        !Path::new("/sys/class/net").join(paths::BRIDGE).exists(),
        "bridge left"
    );
    for veth in veths {
        assert!(!Path::new("/sys/class/net").join(&veth).exists(), "{veth} left");
    }
    assert!(!Path::new("/run/systemd/nspawn").exists());
    assert!(!Path::new(paths::RUN_DIR).exists());
    assert!(!paths::hosts_dir().exists());
    let leftovers: Vec<String> = processes()
        .into_iter()
        .filter(|c| {
            c.contains("systemd-nspawn")
                || c.contains("kbs-lab serve")
                || c.contains("/var/cache/kbs-lab/gnupg")
        })
        .collect();
    assert!(leftovers.is_empty(), "processes left: {leftovers:?}");
    let netns_after = net_namespaces();
    assert!(
        netns_after.is_subset(netns_before),
        "network namespaces left: {:?}",
        netns_after.difference(netns_before).collect::<Vec<_>>()
    );
}

fn processes() -> Vec<String> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| !c.is_empty())
        .collect()
}

fn net_namespaces() -> BTreeSet<String> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read_link(e.path().join("ns/net")).ok())
        .map(|p| p.display().to_string())
        .collect()
}
