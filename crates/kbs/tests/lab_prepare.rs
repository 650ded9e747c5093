//! `kbs apply --until prepare` end to end in the lab: four real Debian hosts (systemd-nspawn machines
//! with sshd, systemd, apt and dpkg) prepared for Kubernetes from bare, checked over SSH, then run
//! again to prove nothing changes; a held dpkg lock is waited for; an unreachable host fails alone.
//!
//! Needs root (the lab boots machines). One lab per machine: the tests of this file run one after
//! another inside a single test function.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use kbs_lab::{Fault, Lab, UpOptions};

const HOSTS: [&str; 4] = ["host01", "host02", "host03", "host04"];

mod common;
use common::{describe, events, kbs, on, summary};

#[test]
fn prepare_converges_every_host_and_a_second_run_changes_nothing() {
    kbs_testkit::require_root();
    let dir = tempfile::tempdir().unwrap();
    let inventory: PathBuf = dir.path().join("lab.yaml");
    let mut options = UpOptions::new(HOSTS.len());
    options.inventory = Some(inventory.clone());
    let mut lab = Lab::up(options).expect("bring up the lab");

    // Every lab host is fit: reachable, Debian 12, enough CPU and memory, free ports, its own identity.
    let check = Command::new(env!("CARGO_BIN_EXE_kbs"))
        .args(["--no-ssh-config", "check"])
        .arg(&inventory)
        .output()
        .expect("run kbs check");
    let report = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(check.status.success(), "{}", describe(&check));
    assert!(report.contains("4 hosts: 0 blocking problems"), "{report}");
    for host in HOSTS {
        assert!(
            report
                .lines()
                .any(|l| l.starts_with(host) && l.contains("debian 12")),
            "{report}"
        );
    }

    // Before anything ran, plan lists changes on every host and changes nothing itself.
    let plan = kbs(&inventory, &["plan", "--until", "prepare"]);
    assert!(plan.status.success(), "{}", describe(&plan));
    for (host, (_, changed, failed)) in summary(&plan) {
        assert!(
            changed > 5 && failed == 0,
            "{host}: plan before prepare: {changed} changed, {failed} failed"
        );
    }
    assert_eq!(
        on(&lab, "host01", "sysctl -n net.ipv4.ip_forward"),
        "0",
        "plan changed a host"
    );

    // A held dpkg lock on one host is waited for, visibly.
    lab.fault("host04", Fault::DpkgLock { seconds: 8 })
        .expect("hold the dpkg lock");
    let started = Instant::now();
    let apply = kbs(&inventory, &["apply", "--until", "prepare"]);
    let first_run = started.elapsed();
    assert!(apply.status.success(), "{}", describe(&apply));
    let waited = events(&apply).iter().any(|e| {
        e["event"] == "waiting"
            && e["host"] == "host04"
            && e["what"].as_str().unwrap_or("").contains("dpkg lock")
    });
    assert!(
        waited,
        "no waiting event for host04's dpkg lock:\n{}",
        describe(&apply)
    );
    for (host, (_, changed, failed)) in summary(&apply) {
        assert!(
            changed > 5 && failed == 0,
            "{host}: first apply: {changed} changed, {failed} failed"
        );
    }

    for host in HOSTS {
        assert_eq!(
            on(
                &lab,
                host,
                "cat /etc/modules-load.d/kubernetes.conf | grep -v '^#'"
            ),
            "overlay\nbr_netfilter"
        );
        for key in [
            "net.ipv4.ip_forward",
            "net.bridge.bridge-nf-call-iptables",
            "net.bridge.bridge-nf-call-ip6tables",
        ] {
            assert_eq!(on(&lab, host, &format!("sysctl -n {key}")), "1", "{host} {key}");
            let persisted = on(&lab, host, "cat /etc/sysctl.d/99-kubernetes.conf");
            assert!(persisted.contains(&format!("{key} = 1")), "{host}: {persisted}");
        }
        assert_eq!(on(&lab, host, "swapon --show --noheadings | wc -l"), "0");
        // "1.36" resolves to the newest 1.36 release, revision included.
        for package in ["kubelet", "kubeadm", "kubectl"] {
            assert_eq!(
                on(&lab, host, &format!("dpkg-query -W -f='${{Version}}' {package}")),
                "1.36.4-2.1",
                "{host} {package}"
            );
        }
        assert_eq!(
            on(&lab, host, "apt-mark showhold | sort | tr '\\n' ' '"),
            "kubeadm kubectl kubelet"
        );
        let sources = on(&lab, host, "cat /etc/apt/sources.list.d/kubernetes.list");
        assert!(
            sources.contains("deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] http://10.61.0.1/core:/stable:/v1.36/deb/ /"),
            "{host}: {sources}"
        );
        let config = on(&lab, host, "cat /etc/containerd/config.toml");
        assert!(
            config.contains("version = 3") && config.contains("SystemdCgroup = true"),
            "{host}: {config}"
        );
        assert!(
            config.contains("sandbox = 'registry.k8s.io/pause:"),
            "{host}: {config}"
        );
        assert_eq!(on(&lab, host, "systemctl is-active containerd"), "active");
        assert!(
            on(&lab, host, "crictl version").contains("RuntimeName:  containerd"),
            "{host}: crictl"
        );
        assert_eq!(on(&lab, host, "systemctl is-enabled kubelet"), "enabled");
        assert_eq!(on(&lab, host, "systemctl is-active iscsid"), "active");
        assert_eq!(on(&lab, host, "systemctl is-enabled iscsid"), "enabled");
        for package in ["open-iscsi", "nfs-common", "conntrack", "socat"] {
            assert!(
                on(&lab, host, &format!("dpkg-query -W -f='${{Status}}' {package}")).ends_with("installed"),
                "{host} {package}"
            );
        }
    }

    // A second run, and a plan after it, change nothing.
    let started = Instant::now();
    let again = kbs(&inventory, &["apply", "--until", "prepare"]);
    let second_run = started.elapsed();
    assert!(again.status.success(), "{}", describe(&again));
    for (host, (_, changed, failed)) in summary(&again) {
        assert_eq!((changed, failed), (0, 0), "{host}: second apply");
    }
    let plan = kbs(&inventory, &["plan", "--until", "prepare"]);
    for (host, (_, changed, _)) in summary(&plan) {
        assert_eq!(changed, 0, "{host}: plan after prepare");
    }
    eprintln!("prepare on 4 lab hosts: first run {first_run:?}, no-change re-run {second_run:?}");

    // One unreachable host fails alone; the others complete; the exit code says so.
    lab.fault("host03", Fault::Cut).expect("cut host03");
    let cut = kbs(
        &inventory,
        &["--connect-timeout", "2s", "apply", "--until", "prepare"],
    );
    lab.fault("host03", Fault::Heal).expect("heal host03");
    assert_eq!(cut.status.code(), Some(1), "{}", describe(&cut));
    let counts = summary(&cut);
    assert_eq!(counts["host03"].2, 1, "host03 must be failed: {counts:?}");
    for host in ["host01", "host02", "host04"] {
        assert_eq!(counts[host].2, 0, "{host} must not fail: {counts:?}");
    }
    let failed = events(&cut)
        .into_iter()
        .find(|e| e["event"] == "host_failed" && e["host"] == "host03")
        .expect("a host_failed event for host03");
    assert!(
        failed["message"].as_str().unwrap_or("").contains("host03"),
        "{failed}"
    );
    assert!(
        String::from_utf8_lossy(&cut.stderr).contains("host03"),
        "{}",
        describe(&cut)
    );

    lab.down().expect("take the lab down");
}
