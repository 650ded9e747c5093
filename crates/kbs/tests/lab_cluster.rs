//! `kbs apply` and `kbs join` end to end in the lab: real hosts, real SSH, apt, systemd and
//! HAProxy; kubeadm, kubelet, the API server and kube-vip simulated by kbs-sim.
//!
//! kube-vip: three control planes and a worker from bare hosts; an init that fails preflight is
//! reported with the host and kubeadm's message; a control plane that cannot reach the endpoint
//! fails alone; the VIP moves when its leader goes down; a second apply changes nothing; three hours
//! later (lab clock) a worker and a fourth control plane join; a reset worker joins again.
//! HAProxy: the same cluster behind HAProxy on an `lb` host.
//!
//! Needs root. One lab per machine: each test brings up its own, one after the other.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kbs_lab::{Fault, Lab, UpOptions};

mod common;
use common::{describe, events, kbs, kbs_args, on, summary};

const VIP: &str = "10.61.0.10";
const ADMIN: &str = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

/// The lab's inventory with roles set by the test.
fn write_inventory(lab: &Lab, path: &Path, roles: &[(String, &str)]) {
    let text = std::fs::read_to_string(lab.inventory_file().expect("the lab wrote an inventory")).unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    for host in doc["hosts"].as_sequence_mut().unwrap() {
        let name = host["name"].as_str().unwrap().to_string();
        if let Some((_, role)) = roles.iter().find(|(n, _)| n == &name) {
            host["roles"] = serde_yaml::Value::Sequence(vec![(*role).into()]);
        }
    }
    std::fs::write(path, serde_yaml::to_string(&doc).unwrap()).unwrap();
}

/// A listener on `port` of `host` (unit `kbs-test-port-PORT`, stopped by the test).
fn hold_port(lab: &Lab, host: &str, port: u16) {
    on(
        lab,
        host,
        &format!("systemd-run --quiet --unit=kbs-test-port-{port} socat TCP-LISTEN:{port},fork,reuseaddr EXEC:/bin/true"),
    );
}

/// The `host_failed` event of `host` in a run's output, and its message.
fn failure_of(out: &std::process::Output, host: &str) -> (serde_json::Value, String) {
    let failure = events(out)
        .into_iter()
        .find(|e| e["event"] == "host_failed" && e["host"] == host)
        .unwrap_or_else(|| panic!("no failure on {host}: {}", describe(out)));
    let message = failure["message"].as_str().unwrap_or_default().to_string();
    (failure, message)
}

/// Whether `path` exists on `host`.
fn exists(lab: &Lab, host: &str, path: &str) -> bool {
    on(lab, host, &format!("test -e {path} && echo yes || echo no")) == "yes"
}

fn nodes(lab: &Lab, on_host: &str) -> Vec<String> {
    let mut names: Vec<String> = on(lab, on_host, &format!("{ADMIN} get nodes -o name"))
        .lines()
        .map(|l| l.trim_start_matches("node/").to_string())
        .collect();
    names.sort();
    names
}

/// The control plane holding the VIP, if any.
fn vip_holder(lab: &Lab, control_planes: &[&str]) -> Option<String> {
    control_planes
        .iter()
        .find(|h| {
            lab.ssh(h, &format!("ip -o addr show | grep -q ' {VIP}/'"))
                .map(|o| o.status.success())
                .unwrap_or(false)
        })
        .map(|h| h.to_string())
}

fn api_answers_through(lab: &Lab, from: &str, endpoint: &str) -> bool {
    lab.ssh(
        from,
        &format!("curl -ksf --max-time 5 https://{endpoint}:6443/readyz"),
    )
    .map(|o| o.status.success())
    .unwrap_or(false)
}

fn poll(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !f() {
        assert!(started.elapsed() < timeout, "timed out after {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn assert_no_change(out: &std::process::Output, what: &str) {
    assert!(out.status.success(), "{what}: {}", describe(out));
    for (host, (_, changed, failed)) in summary(out) {
        assert!(
            changed == 0 && failed == 0,
            "{what}: {host}: {changed} changed, {failed} failed\n{}",
            describe(out)
        );
    }
}

/// `kbs join HOST -i INVENTORY`.
fn join(host: &str, inventory: &Path) -> std::process::Output {
    kbs_args(&[
        std::ffi::OsStr::new("join"),
        host.as_ref(),
        "-i".as_ref(),
        inventory.as_os_str(),
    ])
}

/// A lab of host01..host04 (three control planes, a worker) plus one host per role in `more`
/// (host05, host06, …), with the test's inventory written at `inventory`.
fn up_with_roles(inventory: &Path, lbs: &[&str], more: &[&str]) -> Lab {
    let mut options = UpOptions::new(4 + more.len());
    options.inventory = Some(inventory.with_extension("lab.yaml"));
    options.lbs = lbs.iter().map(|s| s.to_string()).collect();
    let lab = Lab::up(options).expect("bring up the lab");
    let mut roles: Vec<(String, &str)> = vec![
        ("host01".into(), "control-plane"),
        ("host02".into(), "control-plane"),
        ("host03".into(), "control-plane"),
        ("host04".into(), "worker"),
    ];
    roles.extend(
        more.iter()
            .enumerate()
            .map(|(i, role)| (format!("host{:02}", 5 + i), *role)),
    );
    write_inventory(&lab, inventory, &roles);
    lab
}

#[test]
fn kube_vip_cluster_from_bare_hosts_then_joins_months_later() {
    kbs_testkit::require_root();
    let dir = tempfile::tempdir().unwrap();
    let inventory: PathBuf = dir.path().join("cluster.yaml");
    let mut lab = up_with_roles(&inventory, &[], &["worker", "control-plane"]);
    // The walkthrough's own selection (vagrant/README.md): host05 and host06 join later.
    let first_four = "host0[1-4]";
    let prepared = kbs(
        &inventory,
        &["apply", "--hosts", first_four, "--until", "prepare"],
    );
    assert!(prepared.status.success(), "{}", describe(&prepared));

    // The whole plan names the cluster steps and changes nothing.
    let plan = kbs(&inventory, &["plan", "--hosts", first_four]);
    assert!(plan.status.success(), "{}", describe(&plan));
    let planned = describe(&plan);
    for (host, step) in [
        ("host01", "would init"),
        ("host02", "would join"),
        ("host03", "would join"),
        ("host04", "would join"),
    ] {
        assert!(
            events(&plan).iter().any(|e| e["host"] == host
                && e["event"] == "task_result"
                && serde_json::to_string(e).unwrap().contains(step)),
            "{host}: no '{step}' in the plan\n{planned}"
        );
    }
    assert!(
        !exists(&lab, "host01", "/etc/kubernetes/admin.conf"),
        "plan initialised host01"
    );

    // An init that fails kubeadm's preflight: the host and kubeadm's own words, nothing joined.
    hold_port(&lab, "host01", 6443);
    let refused = kbs(&inventory, &["apply", "--hosts", first_four]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    let (failure, message) = failure_of(&refused, "host01");
    assert!(message.contains("[ERROR Port-6443]"), "{failure}");
    assert!(
        !exists(&lab, "host02", "/etc/kubernetes/kubelet.conf"),
        "a host joined although init failed"
    );
    on(&lab, "host01", "systemctl stop kbs-test-port-6443");

    // A second control plane that cannot reach the endpoint fails alone; the others go on.
    on(&lab, "host02", &format!("iptables -I OUTPUT -d {VIP} -j REJECT"));
    let partial = kbs(&inventory, &["apply", "--hosts", first_four]);
    assert_eq!(partial.status.code(), Some(1), "{}", describe(&partial));
    let counts = summary(&partial);
    assert!(
        counts["host02"].2 > 0,
        "host02 did not fail: {}",
        describe(&partial)
    );
    for host in ["host01", "host03", "host04"] {
        assert_eq!(counts[host].2, 0, "{host} failed: {}", describe(&partial));
    }
    let host02_failure = events(&partial)
        .into_iter()
        .find(|e| e["event"] == "host_failed" && e["host"] == "host02")
        .unwrap();
    assert!(
        host02_failure["message"]
            .as_str()
            .unwrap_or_default()
            .contains(VIP),
        "the error does not name the endpoint: {host02_failure}"
    );
    on(&lab, "host02", &format!("iptables -D OUTPUT -d {VIP} -j REJECT"));

    // Re-running continues from where the hosts are.
    let apply = kbs(&inventory, &["apply", "--hosts", first_four]);
    assert!(apply.status.success(), "{}", describe(&apply));
    assert_eq!(nodes(&lab, "host01"), ["host01", "host02", "host03", "host04"]);
    assert!(
        api_answers_through(&lab, "host04", VIP),
        "the API does not answer through the VIP"
    );
    for host in ["host01", "host02", "host03", "host04"] {
        let configs = on(
            &lab,
            host,
            "ls /etc/kubernetes/kubeadm-kbs.yaml 2>/dev/null || true",
        );
        assert!(
            configs.is_empty(),
            "{host} kept the kubeadm config with the secrets"
        );
    }
    assert!(
        !describe(&apply).contains(&on(
            &lab,
            "host01",
            "cat /etc/kubernetes/pki/ca.crt | head -3 | tail -1"
        )),
        "CA material in the output"
    );

    // Every add-on is ready; the ingress controller listens on nodePorts 80/443 and its class is
    // the default; every node's serving certificate was approved.
    let ready: Vec<String> = events(&apply)
        .iter()
        .filter(|e| e["event"] == "task_result" && e["message"].as_str().is_some_and(|m| m.contains("ready")))
        .filter_map(|e| e["task"].as_str().map(str::to_string))
        .collect();
    for addon in ["calico", "longhorn", "traefik", "metrics-server"] {
        assert!(
            ready.iter().any(|t| t.starts_with(addon)),
            "{addon} not reported ready: {ready:?}\n{}",
            describe(&apply)
        );
    }
    let service: serde_json::Value = serde_json::from_str(&on(
        &lab,
        "host01",
        &format!("{ADMIN} -n traefik get service traefik -o json"),
    ))
    .unwrap();
    let ports: Vec<u64> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["nodePort"].as_u64())
        .collect();
    assert_eq!(ports, [80, 443], "the ingress Service's nodePorts: {service}");
    let default_class = on(
        &lab,
        "host01",
        &format!("{ADMIN} get ingressclass traefik -o json"),
    );
    assert!(
        default_class.contains("\"ingressclass.kubernetes.io/is-default-class\": \"true\""),
        "{default_class}"
    );
    let serving = on(&lab, "host01", &format!("{ADMIN} get csr -o json"));
    let serving: serde_json::Value = serde_json::from_str(&serving).unwrap();
    let approved: std::collections::BTreeSet<String> = serving["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["spec"]["signerName"] == "kubernetes.io/kubelet-serving")
        .filter(|c| {
            c["status"]["conditions"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|x| x["type"] == "Approved"))
        })
        .filter_map(|c| c["spec"]["username"].as_str().map(str::to_string))
        .collect();
    for host in ["host01", "host02", "host03", "host04"] {
        assert!(
            approved.contains(&format!("system:node:{host}")),
            "{host}'s serving CSR: {approved:?}"
        );
    }

    // The admin kubeconfig is handed over beside the inventory, private, pointing at the VIP.
    let kubeconfig = dir.path().join("lab-admin.kubeconfig");
    let meta = std::fs::metadata(&kubeconfig).expect("apply wrote the admin kubeconfig");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(text.contains(&format!("server: https://{VIP}:6443")), "{text}");
    // `kbs kubeconfig -o FILE` fetches the same credential again.
    let fetched_path = dir.path().join("elsewhere.kubeconfig");
    let fetched = kbs(&inventory, &["kubeconfig", "-o", fetched_path.to_str().unwrap()]);
    assert!(fetched.status.success(), "{}", describe(&fetched));
    let meta = std::fs::metadata(&fetched_path).expect("kbs kubeconfig wrote the file");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(&fetched_path).unwrap(), text);
    let status = kbs(&inventory, &["status"]);
    assert!(status.status.success(), "{}", describe(&status));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(status["endpoint_healthy"], true, "{status}");
    assert_eq!(status["nodes"].as_array().map(|n| n.len()), Some(4), "{status}");
    assert!(
        status["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["ready"] == true),
        "{status}"
    );
    assert_eq!(
        status["not_joined"],
        serde_json::json!(["host05", "host06"]),
        "{status}"
    );
    assert_eq!(status["pending_csrs"], serde_json::json!([]), "{status}");

    // A second apply changes nothing.
    let again = kbs(&inventory, &["apply", "--hosts", first_four]);
    assert_no_change(&again, "second apply");

    // The VIP moves when its holder goes down, and the API still answers through it.
    let control_planes = ["host01", "host02", "host03"];
    let leader = vip_holder(&lab, &control_planes).expect("no control plane holds the VIP");
    lab.fault(&leader, Fault::Down).expect("take the leader down");
    let others: Vec<&str> = control_planes.iter().copied().filter(|h| *h != leader).collect();
    poll("the VIP to move", Duration::from_secs(60), || {
        vip_holder(&lab, &others).is_some()
    });
    poll("the API through the moved VIP", Duration::from_secs(60), || {
        api_answers_through(&lab, "host04", VIP)
    });
    lab.fault(&leader, Fault::Up).expect("bring the leader back");
    // The old leader comes back as a follower: one holder of the VIP, never two.
    poll(
        "the old leader's control plane to answer",
        Duration::from_secs(90),
        || api_answers_through(&lab, &leader, &lab.host(&leader).unwrap().address.to_string()),
    );
    let holders: Vec<&str> = control_planes
        .iter()
        .copied()
        .filter(|h| {
            lab.ssh(h, &format!("ip -o addr show | grep -q ' {VIP}/'"))
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    assert_eq!(holders.len(), 1, "the VIP is held by {holders:?}");

    // Three hours later: the init token and the uploaded certificates have expired.
    lab.clock(None, 3 * 3600).expect("advance the lab clock");
    let joined = join("host05", &inventory);
    assert!(joined.status.success(), "join host05: {}", describe(&joined));
    let joined = join("host06", &inventory);
    assert!(joined.status.success(), "join host06: {}", describe(&joined));
    assert_eq!(
        nodes(&lab, "host02"),
        ["host01", "host02", "host03", "host04", "host05", "host06"]
    );
    let tokens = on(
        &lab,
        "host01",
        "kubeadm token list --kubeconfig /etc/kubernetes/admin.conf",
    );
    assert!(
        !tokens.contains("kbs join"),
        "a join token outlived its join:\n{tokens}"
    );

    // Reset a worker, then join it again; reset without --yes and without a terminal refuses.
    let unconfirmed = kbs_args(&[
        std::ffi::OsStr::new("reset"),
        inventory.as_os_str(),
        "host05".as_ref(),
    ]);
    assert_eq!(unconfirmed.status.code(), Some(2), "{}", describe(&unconfirmed));
    assert!(exists(&lab, "host05", "/etc/kubernetes/kubelet.conf"));
    let reset = kbs_args(&[
        std::ffi::OsStr::new("reset"),
        inventory.as_os_str(),
        "host05".as_ref(),
        "--yes".as_ref(),
    ]);
    assert!(reset.status.success(), "reset host05: {}", describe(&reset));
    assert!(
        !nodes(&lab, "host01").contains(&"host05".to_string()),
        "host05 is still a node"
    );
    assert!(!exists(&lab, "host05", "/etc/kubernetes/kubelet.conf"));
    let rejoined = join("host05", &inventory);
    assert!(
        rejoined.status.success(),
        "join host05 again: {}",
        describe(&rejoined)
    );
    assert!(
        nodes(&lab, "host01").contains(&"host05".to_string()),
        "host05 did not come back"
    );

    // A host that is not in the inventory: a clear error, nothing touched.
    let unknown = join("host99", &inventory);
    assert_eq!(unknown.status.code(), Some(2), "{}", describe(&unknown));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("host99"),
        "{}",
        describe(&unknown)
    );

    lab.down().expect("lab down");
}

#[test]
fn haproxy_cluster_answers_through_the_load_balancer() {
    kbs_testkit::require_root();
    let dir = tempfile::tempdir().unwrap();
    let inventory: PathBuf = dir.path().join("cluster.yaml");
    let lab = up_with_roles(&inventory, &["host05"], &["lb"]);
    let lb = lab.host("host05").unwrap().address.to_string();

    // Port 80 taken on the load balancer (socat comes with the host preparation): HAProxy's
    // reload reports success to systemd but its master refuses the new configuration. kbs reads
    // the master's verdict, fails host05 with HAProxy's own words and runs no kubeadm anywhere.
    let prepared = kbs(&inventory, &["apply", "--until", "prepare"]);
    assert!(prepared.status.success(), "{}", describe(&prepared));
    hold_port(&lab, "host05", 80);
    let refused = kbs(&inventory, &["apply"]);
    assert_eq!(refused.status.code(), Some(1), "{}", describe(&refused));
    let (failure, message) = failure_of(&refused, "host05");
    assert!(
        message.contains("HAProxy did not load the new configuration")
            && message.contains("cannot bind socket"),
        "{failure}"
    );
    assert!(
        describe(&refused).contains("the API endpoint is not served"),
        "{}",
        describe(&refused)
    );
    assert!(
        !exists(&lab, "host01", "/etc/kubernetes/admin.conf"),
        "kubeadm init ran although no load balancer served the endpoint"
    );
    // Freed, the next run reloads the unchanged file: kbs knows it never loaded.
    on(&lab, "host05", "systemctl stop kbs-test-port-80");
    let apply = kbs(&inventory, &["apply"]);
    assert!(apply.status.success(), "{}", describe(&apply));
    assert_eq!(nodes(&lab, "host01"), ["host01", "host02", "host03", "host04"]);
    assert!(
        api_answers_through(&lab, "host04", &lb),
        "the API does not answer through HAProxy"
    );
    assert!(
        on(
            &lab,
            "host05",
            "haproxy -c -f /etc/haproxy/haproxy.cfg && systemctl is-active haproxy"
        )
        .contains("active"),
        "HAProxy is not running a valid configuration"
    );
    let again = kbs(&inventory, &["apply"]);
    assert_no_change(&again, "second apply");

    // The whole cluster reset: every node leaves kubeadm's state; the hosts stay prepared.
    let reset = kbs(&inventory, &["reset", "--yes"]);
    assert!(reset.status.success(), "{}", describe(&reset));
    for host in ["host01", "host02", "host03", "host04"] {
        assert_eq!(
            on(
                &lab,
                host,
                "ls /etc/kubernetes/kubelet.conf /etc/kubernetes/admin.conf /var/lib/etcd 2>/dev/null | wc -l"
            ),
            "0",
            "{host} kept kubeadm state after the reset"
        );
        assert!(
            on(&lab, host, "dpkg-query -W -f='${Status}' kubeadm").ends_with("ok installed"),
            "{host} lost its packages"
        );
    }
    let status = kbs(&inventory, &["status"]);
    assert_eq!(status.status.code(), Some(1), "{}", describe(&status));
    assert!(
        describe(&status).contains("no control plane of the inventory runs a cluster"),
        "{}",
        describe(&status)
    );
    lab.down().expect("lab down");
}
