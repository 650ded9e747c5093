//! The prepare phase end to end against a simulated host: a fake transport that keeps a small model
//! of a Debian/Ubuntu host (files, kernel modules, sysctls, swap, packages, services) and answers the
//! modules' scripts from it. It proves the playbook, templates, version table and modules fit
//! together: check mode changes nothing, apply converges, and a second apply reports zero changes.
//! It touches no real machine.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use kbs_engine::testing::{ok_with, FakeTransport};
use kbs_engine::{
    Collector, Engine, Event, ExecResult, Library, Mode, RunReport, TaskStatus, Transport, Upload,
};
use kbs_inventory::Inventory;

#[derive(Debug, Clone, PartialEq, Eq)]
struct File {
    mode: u32,
    content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Host {
    files: BTreeMap<String, File>,
    modules: BTreeSet<String>,
    sysctl: BTreeMap<String, String>,
    swaps: Vec<String>,
    installed: BTreeMap<String, String>,
    held: BTreeSet<String>,
    /// name → (enabled, active)
    services: BTreeMap<String, (bool, bool)>,
    key: bool,
    lists_updated_with_k8s: bool,
    restarts: Vec<String>,
    /// Owner line of /run/kbs.lock.
    lock: Option<String>,
}

/// What `apt-cache madison` lists: containerd from the OS, and once the Kubernetes repository is
/// configured and updated, two patches of its minor plus one of the next minor (a sloppy mirror),
/// which kbs must not pick.
fn offered(h: &Host) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("containerd", "2.1.4-1".to_string()),
        ("containerd", "1.7.28-1".to_string()),
    ];
    let minor = h
        .files
        .get("/etc/apt/sources.list.d/kubernetes.list")
        .and_then(|f| {
            f.content
                .split("/v1.")
                .nth(1)
                .map(|r| r.chars().take(2).collect::<String>())
        })
        .and_then(|m| m.parse::<u32>().ok());
    if let (true, Some(m)) = (h.lists_updated_with_k8s, minor) {
        for p in ["kubelet", "kubeadm", "kubectl"] {
            v.push((p, format!("1.{m}.3-1.1")));
            v.push((p, format!("1.{m}.4-1.1")));
            v.push((p, format!("1.{}.0-1.1", m + 1)));
        }
    }
    v
}

fn fresh() -> Host {
    let mut h = Host::default();
    h.files.insert(
        "/etc/fstab".into(),
        File {
            mode: 0o644,
            content: "UUID=1 / ext4 defaults 0 1\n/swap.img none swap sw 0 0\n".into(),
        },
    );
    h.swaps.push("/swap.img".into());
    h.modules.insert("overlay".into());
    h.sysctl.insert("net.ipv4.ip_forward".into(), "0".into());
    for p in ["ca-certificates", "gpg"] {
        h.installed.insert(p.into(), "1.0".into());
    }
    h
}

/// The word after `marker` in `text`, up to whitespace, `]` or `;`.
fn words_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    text.match_indices(marker)
        .map(|(i, _)| {
            let rest = &text[i + marker.len()..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == ']' || c == ';')
                .unwrap_or(rest.len());
            rest[..end].trim_matches('\'')
        })
        .collect()
}

fn section_answer(h: &Host, name: &str, body: &str) -> String {
    let out = if body.trim().is_empty() {
        String::new()
    } else if let Some(path) = words_after(body, "if [ -f ").first() {
        match h.files.get(*path) {
            Some(f) => format!("present\n{:o} root root\n{}", f.mode, f.content),
            None => "absent".into(),
        }
    } else if body.contains("/sys/module/") {
        words_after(body, "/sys/module/")
            .iter()
            .map(|m| {
                format!(
                    "{} {m}\n",
                    if h.modules.contains(*m) {
                        "loaded"
                    } else {
                        "missing"
                    }
                )
            })
            .collect()
    } else if body.contains("sysctl -n") {
        words_after(body, "printf '%s=%s\\n' ")
            .iter()
            .map(|k| match h.sysctl.get(*k) {
                Some(v) => format!("{k}={v}\n"),
                None => format!("{k}=<missing>\n"),
            })
            .collect()
    } else if body.contains("/proc/swaps") {
        h.swaps.iter().map(|s| format!("{s}\n")).collect()
    } else if body.contains("dpkg-query") {
        let names = body
            .split("\\n' ")
            .nth(1)
            .unwrap_or("")
            .split(" 2>")
            .next()
            .unwrap_or("");
        names
            .split_whitespace()
            .filter_map(|n| {
                let held = if h.held.contains(n) { 'h' } else { 'i' };
                h.installed.get(n).map(|v| format!("{held}i |{n}|{v}\n"))
            })
            .collect()
    } else if body.contains("apt-cache madison") {
        let names: Vec<&str> = body
            .split("madison ")
            .nth(1)
            .unwrap_or("")
            .split(" 2>")
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        offered(h)
            .iter()
            .filter(|(n, _)| names.contains(n))
            .map(|(n, v)| format!(" {n} | {v} | http://repo Packages\n"))
            .collect()
    } else if body.contains("showhold") {
        h.held.iter().map(|p| format!("{p}\n")).collect()
    } else if body.contains("kbs_dpkg_lock_holder") {
        String::new()
    } else if body.contains("if [ -d") {
        "yes".into()
    } else if body.contains("cmp -s") {
        if h.key { "same" } else { "absent" }.into()
    } else if let Some(unit) = words_after(body, "is-enabled ").first() {
        match h.services.get(*unit) {
            Some((true, _)) => "enabled".into(),
            Some((false, _)) => "disabled".into(),
            None => String::new(),
        }
    } else if let Some(unit) = words_after(body, "is-active ").first() {
        match h.services.get(*unit) {
            Some((_, true)) => "active".into(),
            _ => "inactive".into(),
        }
    } else if let Some(unit) = words_after(body, "systemctl cat ").first() {
        if h.services.contains_key(*unit) {
            "yes"
        } else {
            "no"
        }
        .into()
    } else {
        panic!("unexpected section {name}: {body}")
    };
    format!("@@kbs:{name}\n{out}\n@@kbs:end\n")
}

fn install(h: &mut Host, target: &str) {
    let (name, version) = target.split_once('=').unwrap_or((target, "1.0"));
    h.installed.insert(name.into(), version.into());
    let unit = match name {
        "containerd" => Some("containerd"),
        "kubelet" => Some("kubelet"),
        "open-iscsi" => Some("iscsid"),
        _ => None,
    };
    if let Some(u) = unit {
        h.services.entry(u.into()).or_insert((false, false));
    }
}

fn answer(h: &mut Host, script: &str) -> ExecResult {
    if script.starts_with("if [ \"$(cat /run/kbs.lock/owner") {
        h.lock = None;
        return ok_with("");
    }
    if script.contains("echo \"os_id=") {
        let mut out = String::from("os_id=ubuntu\ncpus=2\n");
        if script.contains("mkdir /run/kbs.lock") {
            match &h.lock {
                None => {
                    h.lock = Some("this run".into());
                    out.push_str("lock=acquired\n");
                }
                Some(owner) => out.push_str(&format!("lock=held {owner}\n")),
            }
        }
        if let Some(v) = h.installed.get("containerd") {
            out.push_str(&format!(
                "pkg=ii |containerd|{v}\ncontainerd_version=v{}\n",
                v.split('-').next().unwrap_or("")
            ));
        }
        return ok_with(&out);
    }
    if script.contains("@@kbs:%s") {
        let mut out = String::new();
        for chunk in script.split("printf '@@kbs:%s\\n' ").skip(1) {
            let (name, body) = chunk.split_once('\n').unwrap_or((chunk, ""));
            let body = body.split("printf '\\n@@kbs:end").next().unwrap_or("");
            out.push_str(&section_answer(h, name, body));
        }
        // `apt-get update` followed by the package check: the update happens first.
        if script.contains(" update || exit")
            && h.files.contains_key("/etc/apt/sources.list.d/kubernetes.list")
        {
            h.lists_updated_with_k8s = true;
            return answer(h, script.split(" update || exit $?\n").nth(1).unwrap_or(""));
        }
        return ok_with(&out);
    }
    for line in script.lines() {
        let line = line.trim();
        if line.contains("apt-get") && line.ends_with(" update") {
            if h.files.contains_key("/etc/apt/sources.list.d/kubernetes.list") {
                h.lists_updated_with_k8s = true;
            }
        } else if line.contains("apt-get") && line.contains(" install ") {
            for t in line.split(" install ").nth(1).unwrap_or("").split_whitespace() {
                install(h, t);
            }
        } else if let Some(names) = line.strip_prefix("apt-mark hold ") {
            for n in names.split_whitespace().filter(|n| !n.starts_with('>')) {
                h.held.insert(n.into());
            }
        } else if line.contains("gpg --dearmor") {
            h.key = true;
        } else if line.starts_with("swapoff -a") {
            h.swaps.clear();
        }
        for m in words_after(line, "modprobe ") {
            h.modules.insert(m.into());
        }
        for kv in words_after(line, "sysctl -q -w ") {
            if let Some((k, v)) = kv.split_once('=') {
                h.sysctl.insert(k.into(), v.into());
            }
        }
        if let Some(rest) = line.strip_prefix("systemctl ") {
            let mut w = rest.split_whitespace();
            let (verb, unit) = (w.next().unwrap_or(""), w.next().unwrap_or(""));
            if let Some(s) = h.services.get_mut(unit) {
                match verb {
                    "enable" => s.0 = true,
                    "start" => s.1 = true,
                    "restart" => {
                        s.1 = true;
                        h.restarts.push(unit.into());
                    }
                    _ => {}
                }
            }
        }
    }
    // br_netfilter creates the net.bridge keys.
    if h.modules.contains("br_netfilter") {
        for k in [
            "net.bridge.bridge-nf-call-iptables",
            "net.bridge.bridge-nf-call-ip6tables",
        ] {
            h.sysctl.entry(k.into()).or_insert_with(|| "0".into());
        }
    }
    ok_with("")
}

fn sim(state: Arc<Mutex<Host>>) -> FakeTransport {
    let s = state.clone();
    FakeTransport::new(move |script| answer(&mut s.lock().unwrap(), &script.text)).on_upload(
        move |u: &Upload| {
            state.lock().unwrap().files.insert(
                u.path.clone(),
                File {
                    mode: u.mode,
                    content: String::from_utf8_lossy(&u.contents).into_owned(),
                },
            );
        },
    )
}

fn inventory() -> Inventory {
    inventory_for("1.36")
}

fn inventory_for(version: &str) -> Inventory {
    let yaml = format!("cluster:\n  podSubnet: 172.31.0.0/16\n  kubernetesVersion: \"{version}\"\nhosts:\n  - name: host01\n    address: 192.168.61.11\n    roles: [control-plane, worker]\n");
    Inventory::from_str(&yaml, std::path::Path::new("inventory.yaml"))
        .unwrap()
        .inventory
}

async fn run(state: &Arc<Mutex<Host>>, mode: Mode) -> (RunReport, Vec<Event>) {
    let (report, events, _) = run_recorded(state, mode).await;
    (report, events)
}

/// Also returns every script the host was sent.
async fn run_recorded(state: &Arc<Mutex<Host>>, mode: Mode) -> (RunReport, Vec<Event>, Vec<String>) {
    run_for(&inventory(), state, mode).await
}

async fn run_for(
    inv: &Inventory,
    state: &Arc<Mutex<Host>>,
    mode: Mode,
) -> (RunReport, Vec<Event>, Vec<String>) {
    let vars = kbs_cluster::vars(inv, &kbs_cluster::Options::default()).unwrap();
    let events = Arc::new(Collector::default());
    let fake = Arc::new(sim(state.clone()));
    let t: Arc<dyn Transport> = fake.clone();
    let engine = Engine::new(
        Library::embedded().unwrap(),
        vec![(inv.hosts[0].clone(), t)],
        vars,
        events.clone(),
    );
    let report = engine
        .run(&kbs_cluster::apply_phases(), mode, Some("prepare"))
        .await
        .unwrap();
    (report, events.events(), fake.scripts())
}

fn changed_tasks(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TaskResult {
                task,
                status: TaskStatus::Changed,
                ..
            } => Some(task.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn check_mode_changes_nothing_and_says_what_it_would_do() {
    let state = Arc::new(Mutex::new(fresh()));
    let (report, events) = run(&state, Mode::Check).await;
    // `kbs plan` costs facts + one batch of checks per host, however many tasks.
    let (_, _, scripts) = run_recorded(&state, Mode::Check).await;
    assert_eq!(report.hosts["host01"].round_trips, 2, "{:#?}", &scripts[2..]);
    assert!(report.success(), "{:?}", report.failures);
    assert_eq!(
        *state.lock().unwrap(),
        fresh(),
        "check mode must not change the host"
    );
    let changed = changed_tasks(&events);
    assert!(changed.contains(&"swap off".to_string()));
    assert!(changed.contains(&"kubelet, kubeadm and kubectl pinned and held".to_string()));
}

#[tokio::test]
async fn apply_converges_and_a_second_apply_changes_nothing() {
    let state = Arc::new(Mutex::new(fresh()));
    let (report, events) = run(&state, Mode::Apply).await;
    assert!(report.success(), "{:?}", report.failures);
    {
        let h = state.lock().unwrap();
        assert_eq!(h.installed["kubeadm"], "1.36.4-1.1", "newest 1.36.x, never 1.37");
        assert!(h.held.contains("kubelet") && h.held.contains("kubectl"));
        assert_eq!(h.installed["containerd"], "2.1.4-1");
        let config = &h.files["/etc/containerd/config.toml"].content;
        assert!(
            config.contains("version = 3"),
            "containerd 2 gets config v3:\n{config}"
        );
        assert!(config.contains("sandbox = 'registry.k8s.io/pause:3.10.1'"));
        assert!(h.files["/etc/apt/sources.list.d/kubernetes.list"]
            .content
            .contains("deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.36/deb/ /"));
        assert!(h.swaps.is_empty());
        assert!(h.files["/etc/fstab"].content.contains("# /swap.img"));
        assert_eq!(h.sysctl["net.bridge.bridge-nf-call-ip6tables"], "1");
        assert_eq!(h.services["iscsid"], (true, true));
        assert!(h.services["kubelet"].0, "kubelet enabled");
        assert_eq!(h.restarts, ["containerd"], "the handler ran once");
    }
    // A fresh host: every task changes something, and the containerd handler runs at the end.
    assert_eq!(changed_tasks(&events).len(), 14, "{:?}", changed_tasks(&events));
    assert_eq!(report.hosts["host01"].failed, 0);
    assert!(changed_tasks(&events).contains(&"restart containerd".to_string()));

    let (again, events) = run(&state, Mode::Apply).await;
    assert!(again.success(), "{:?}", again.failures);
    assert_eq!(
        changed_tasks(&events),
        Vec::<String>::new(),
        "second apply must change nothing"
    );
    assert_eq!(state.lock().unwrap().restarts.len(), 1);
    // A converged host: facts (taking the run lock), every check in one batch, the lock released.
    assert_eq!(again.hosts["host01"].round_trips, 3);
    assert_eq!(state.lock().unwrap().lock, None, "the run lock is released");
}

/// Every script the prepare phase sends parses as POSIX sh. `sh -n` only parses: nothing runs here.
#[tokio::test]
async fn every_script_is_valid_posix_sh() {
    let state = Arc::new(Mutex::new(fresh()));
    let (_, _, mut scripts) = run_recorded(&state, Mode::Apply).await;
    scripts.extend(run_recorded(&state, Mode::Check).await.2);
    assert!(scripts.len() > 20);
    for script in scripts {
        let out = std::process::Command::new("sh")
            .arg("-n")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sh -n rejects:\n{script}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The installed containerd major picks the config format; 1.36 does not accept containerd 1.x.
#[tokio::test]
async fn containerd_1_keeps_config_v2_on_1_35_and_is_upgraded_for_1_36() {
    let with_containerd_1 = || {
        let mut h = fresh();
        h.installed.insert("containerd".into(), "1.7.28-1".into());
        h.services.insert("containerd".into(), (true, true));
        Arc::new(Mutex::new(h))
    };

    let state = with_containerd_1();
    let (report, _, _) = run_for(&inventory_for("1.35"), &state, Mode::Apply).await;
    assert!(report.success(), "{:?}", report.failures);
    let h = state.lock().unwrap().clone();
    assert_eq!(
        h.installed["containerd"], "1.7.28-1",
        "1.35 keeps a working containerd 1.x"
    );
    assert!(h.files["/etc/containerd/config.toml"]
        .content
        .contains("version = 2\n"));
    assert!(h.files["/etc/containerd/config.toml"]
        .content
        .contains("sandbox_image = \"registry.k8s.io/pause:3.10.1\""));

    let state = with_containerd_1();
    let (report, _, _) = run_for(&inventory_for("1.36"), &state, Mode::Apply).await;
    assert!(report.success(), "{:?}", report.failures);
    let h = state.lock().unwrap().clone();
    assert_eq!(h.installed["containerd"], "2.1.4-1");
    assert!(h.files["/etc/containerd/config.toml"]
        .content
        .contains("version = 3\n"));
}
