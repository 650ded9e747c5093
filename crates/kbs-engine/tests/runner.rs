//! The runner over fake hosts: `when`, host sets, strategies, handlers, failure isolation, `--until`,
//! events and round-trip counts. No test touches this machine.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kbs_engine::testing::{fail_with, ok_with, FakeTransport};
use kbs_engine::{
    Collector, Engine, Event, HostSet, Library, Mode, Phase, Strategy, TaskStatus, Transport, Vars,
};
use kbs_inventory::{Host, Inventory};

fn hosts() -> Vec<Host> {
    let yaml = "cluster:
  podSubnet: 10.244.0.0/16
  endpoint:
    mode: external
    address: api.example.test
hosts:
  - name: cp1
    address: 10.0.0.1
    roles: [control-plane]
  - name: cp2
    address: 10.0.0.2
    roles: [control-plane]
  - name: w1
    address: 10.0.0.3
    roles: [worker]
  - name: w2
    address: 10.0.0.4
    roles: [worker]
";
    Inventory::from_str(yaml, std::path::Path::new("inventory.yaml"))
        .unwrap()
        .inventory
        .hosts
}

fn library(yaml: &str) -> Library {
    Library::from_sources([("play.yaml".to_string(), yaml.to_string())], []).unwrap()
}

/// Guards of `command` tasks pass when their `unless` mentions "already"; `explode` fails.
fn command_host() -> FakeTransport {
    FakeTransport::new(|s| {
        if s.text.contains("echo run") && s.text.contains("already") {
            ok_with("@@kbs:guard\nunless\n\n@@kbs:end\n")
        } else if s.text.contains("echo run") {
            ok_with("@@kbs:guard\nrun\n\n@@kbs:end\n")
        } else if s.text.contains("explode") {
            fail_with(2, "boom: no such thing")
        } else {
            ok_with("")
        }
    })
}

struct Run {
    engine: Engine,
    events: Arc<Collector>,
    fakes: Vec<Arc<FakeTransport>>,
}

fn engine_with(yaml: &str, make: impl Fn(&Host) -> FakeTransport) -> Run {
    let events = Arc::new(Collector::default());
    let mut fakes = Vec::new();
    let hs = hosts()
        .into_iter()
        .map(|h| {
            let f = Arc::new(make(&h));
            fakes.push(f.clone());
            let t: Arc<dyn Transport> = f;
            (h, t)
        })
        .collect();
    // The run lock has tests of its own below; here it would only add round trips.
    let engine = Engine::new(library(yaml), hs, Vars::default(), events.clone()).host_lock(false);
    Run {
        engine,
        events,
        fakes,
    }
}

fn results(events: &[Event]) -> Vec<(String, String, TaskStatus)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TaskResult {
                host, task, status, ..
            } => Some((host.clone(), task.clone(), *status)),
            _ => None,
        })
        .collect()
}

const GUARDED: &str = "
name: play
tasks:
  - name: once-only
    module: command
    args: { cmd: 'touch /x', unless: 'test -e already' }
  - name: change
    module: command
    args: { cmd: 'touch /y', creates: /y }
    notify: [bounce]
  - name: only workers
    module: command
    args: { cmd: 'echo w', creates: /w }
    when: \"'worker' in host.roles\"
handlers:
  - name: bounce
    module: command
    args: { cmd: 'echo bounce' }
  - name: never
    module: command
    args: { cmd: 'echo never' }
";

#[tokio::test]
async fn when_conditions_and_handlers_fire_only_on_change() {
    let r = engine_with(GUARDED, |_| command_host());
    let report = r
        .engine
        .run(&[Phase::new("p", "play")], Mode::Apply, None)
        .await
        .unwrap();
    assert!(report.success(), "{:?}", report.failures);
    let res = results(&r.events.events());
    let cp1: Vec<_> = res
        .iter()
        .filter(|(h, ..)| h == "cp1")
        .map(|(_, t, s)| (t.as_str(), *s))
        .collect();
    assert_eq!(
        cp1,
        [
            ("once-only", TaskStatus::Ok),
            ("change", TaskStatus::Changed),
            ("only workers", TaskStatus::Skipped),
            ("bounce", TaskStatus::Changed),
        ]
    );
    let w1: Vec<_> = res
        .iter()
        .filter(|(h, ..)| h == "w1")
        .map(|(_, t, s)| (t.as_str(), *s))
        .collect();
    assert_eq!(w1[2], ("only workers", TaskStatus::Changed));
    for f in &r.fakes {
        assert!(f.scripts().iter().any(|s| s == "echo bounce"));
        assert!(
            !f.scripts().iter().any(|s| s == "echo never"),
            "a handler nobody notified must not run"
        );
    }
}

#[tokio::test]
async fn handler_does_not_fire_without_a_change() {
    let yaml = "
name: play
tasks:
  - name: nothing to do
    module: command
    args: { cmd: 'x', unless: 'already' }
    notify: [bounce]
handlers:
  - name: bounce
    module: command
    args: { cmd: 'echo bounce' }
";
    let r = engine_with(yaml, |_| command_host());
    r.engine
        .run(&[Phase::new("p", "play")], Mode::Apply, None)
        .await
        .unwrap();
    assert!(r
        .fakes
        .iter()
        .all(|f| !f.scripts().iter().any(|s| s == "echo bounce")));
}

#[tokio::test]
async fn one_failing_host_stops_alone_with_a_hint_and_is_left_out_later() {
    let yaml = "
name: play
tasks:
  - name: risky
    module: command
    args: { cmd: 'explode-{{ host.name }}' }
  - name: after
    module: command
    args: { cmd: 'echo after' }
";
    let r = engine_with(yaml, |h| {
        let bad = h.name == "w1";
        FakeTransport::new(move |s| {
            if bad && s.text.starts_with("explode") {
                fail_with(2, "line 1\nboom: no such thing")
            } else {
                ok_with("")
            }
        })
    });
    let phases = [Phase::new("one", "play"), Phase::new("two", "play")];
    let report = r.engine.run(&phases, Mode::Apply, None).await.unwrap();
    assert!(!report.success());
    assert_eq!(report.failures.len(), 1);
    let f = &report.failures[0];
    assert_eq!((f.host.as_str(), f.step.as_str()), ("w1", "risky"));
    assert!(f.message.contains("boom: no such thing"), "{}", f.message);
    assert_eq!(report.hosts["w1"].failed, 1);
    assert_eq!(
        report.hosts["cp1"].changed, 4,
        "others ran both tasks in both phases"
    );
    assert!(!r.fakes[2].scripts().iter().any(|s| s == "echo after"));
    let started: Vec<_> = r
        .events
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::PhaseStarted { phase, hosts, .. } if phase == "two" => Some(hosts),
            _ => None,
        })
        .collect();
    assert_eq!(started, [vec!["cp1", "cp2", "w2"]]);
    assert!(r
        .events
        .events()
        .iter()
        .any(|e| matches!(e, Event::HostFailed { host, .. } if host == "w1")));
}

fn order_log() -> (Arc<Mutex<Vec<String>>>, impl Fn(&Host) -> FakeTransport) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let make = move |h: &Host| {
        let (l, name) = (l.clone(), h.name.clone());
        FakeTransport::new(move |s| {
            if s.text.starts_with("echo") {
                l.lock().unwrap().push(name.clone());
            }
            ok_with("")
        })
        .delay(Duration::from_millis(if h.name == "cp1" { 200 } else { 10 }))
    };
    (log, make)
}

const ECHO: &str =
    "name: play\ntasks:\n  - name: e\n    module: command\n    args: { cmd: 'echo {{ host.name }}' }\n";

#[tokio::test]
async fn serial_runs_in_inventory_order_and_once_runs_the_first_only() {
    let (log, make) = order_log();
    let r = engine_with(ECHO, make);
    let phases = [
        Phase::new("serial", "play")
            .on(HostSet::ControlPlane)
            .strategy(Strategy::Serial),
        Phase::new("once", "play")
            .on(HostSet::Worker)
            .strategy(Strategy::Once),
        Phase::new("first", "play").on(HostSet::FirstControlPlane),
    ];
    r.engine.run(&phases, Mode::Apply, None).await.unwrap();
    // cp1 is slow, yet serial waits for it before cp2.
    assert_eq!(*log.lock().unwrap(), ["cp1", "cp2", "w1", "cp1"]);
}

#[tokio::test]
async fn sliding_window_lets_fast_hosts_pass_a_slow_one() {
    let (log, make) = order_log();
    let r = engine_with(ECHO, make);
    let engine = r.engine.window(2);
    let started = Instant::now();
    engine
        .run(&[Phase::new("all", "play")], Mode::Apply, None)
        .await
        .unwrap();
    let order = log.lock().unwrap().clone();
    // Window 2: cp1 (slow) holds one slot while cp2, w1, w2 go through the other.
    assert_eq!(order.last().map(String::as_str), Some("cp1"), "{order:?}");
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn until_stops_after_the_named_phase_and_rejects_unknown_names() {
    let (log, make) = order_log();
    let r = engine_with(ECHO, make);
    let phases = [
        Phase::new("a", "play").on(HostSet::FirstControlPlane),
        Phase::new("b", "play").on(HostSet::Worker),
    ];
    r.engine.run(&phases, Mode::Apply, Some("a")).await.unwrap();
    assert_eq!(*log.lock().unwrap(), ["cp1"]);
    let err = r
        .engine
        .run(&phases, Mode::Apply, Some("prepar"))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "unknown phase `prepar` (phases: a, b)");
}

#[tokio::test]
async fn check_mode_applies_nothing_and_summary_counts_round_trips() {
    let r = engine_with(GUARDED, |_| command_host());
    let report = r
        .engine
        .run(&[Phase::new("p", "play")], Mode::Check, None)
        .await
        .unwrap();
    for f in &r.fakes {
        assert!(
            f.scripts()
                .iter()
                .all(|s| !s.starts_with("touch") && !s.starts_with("echo")),
            "{:?}",
            f.scripts()
        );
    }
    // cp1: facts + one batch of both guards (the worker-only task is skipped, the handler has none).
    assert_eq!(report.hosts["cp1"].round_trips, 2, "{:?}", r.fakes[0].scripts());
    let last = r.events.events().pop().unwrap();
    let Event::Summary { hosts } = &last else {
        panic!("last event is {last:?}")
    };
    assert_eq!(hosts["cp1"].changed, 2);
    assert!(last
        .to_json()
        .starts_with(r#"{"event":"summary","hosts":{"cp1":{"ok":1,"changed":2,"failed":0,"skipped":1"#));
}

#[tokio::test]
async fn unreachable_host_fails_at_facts_and_others_go_on() {
    let events = Arc::new(Collector::default());
    let hs: Vec<(Host, Arc<dyn Transport>)> = hosts()
        .into_iter()
        .map(|h| {
            let t: Arc<dyn Transport> = if h.name == "cp2" {
                Arc::new(FakeTransport::unreachable("cp2: connection lost"))
            } else {
                Arc::new(command_host())
            };
            (h, t)
        })
        .collect();
    let engine = Engine::new(library(ECHO), hs, Vars::default(), events.clone()).host_lock(false);
    let report = engine
        .run(&[Phase::new("p", "play")], Mode::Apply, None)
        .await
        .unwrap();
    assert_eq!(report.failures[0].step, "gather facts");
    assert_eq!(report.hosts["w2"].changed, 1);
}

#[tokio::test]
async fn facts_are_visible_to_conditions() {
    let yaml = "
name: play
tasks:
  - name: ubuntu only
    module: command
    args: { cmd: 'echo u' }
    when: host.facts.os_id == 'ubuntu' and host.facts.cpus >= 2
";
    let r = engine_with(yaml, |h| {
        let os = if h.name == "w2" { "debian" } else { "ubuntu" };
        let facts = format!("os_id={os}\ncpus=2\n");
        FakeTransport::new(move |s| {
            if s.text.contains("os_id=") {
                ok_with(&facts)
            } else {
                ok_with("")
            }
        })
    });
    let report = r
        .engine
        .run(&[Phase::new("p", "play")], Mode::Apply, None)
        .await
        .unwrap();
    assert_eq!(report.hosts["w1"].changed, 1);
    assert_eq!(report.hosts["w2"].skipped, 1);
    assert_eq!(r.engine.facts("w2").unwrap().os_id, "debian");
}

#[tokio::test]
async fn checks_are_batched_until_something_changes() {
    let yaml = "
name: play
tasks:
  - name: first changes
    module: command
    args: { cmd: 'touch /a', creates: /a }
  - name: second
    module: command
    args: { cmd: 'touch /b', unless: 'already b' }
  - name: third
    module: command
    args: { cmd: 'touch /c', unless: 'already c' }
";
    let r = engine_with(yaml, |_| command_host());
    let report = r
        .engine
        .run(&[Phase::new("p", "play")], Mode::Apply, None)
        .await
        .unwrap();
    let scripts = r.fakes[0].scripts();
    // facts, the batch of three guards, `touch /a`, then the later guards again for real: the host
    // changed, so what the batch saw may no longer hold.
    assert_eq!(report.hosts["cp1"].round_trips, 5, "{scripts:#?}");
    assert!(scripts[1].starts_with("printf '@@kbs-batch:"));
    assert_eq!(scripts[2], "touch /a");
    assert!(scripts[3].contains("already b") && scripts[4].contains("already c"));

    // In check mode nothing changes, so the batch answers every check.
    let r = engine_with(yaml, |_| command_host());
    let report = r
        .engine
        .run(&[Phase::new("p", "play")], Mode::Check, None)
        .await
        .unwrap();
    assert_eq!(report.hosts["cp1"].round_trips, 2);
    assert_eq!(report.hosts["cp1"].changed, 1);
}

#[tokio::test]
async fn event_stream_is_ndjson_in_run_order() {
    let yaml = "name: play\ntasks:\n  - name: t\n    module: command\n    args: { cmd: x, creates: /x }\n";
    let events = Arc::new(Collector::default());
    let host = hosts().remove(0);
    let t: Arc<dyn Transport> = Arc::new(kbs_engine::Unreachable(kbs_engine::TransportError {
        message: "cp1: connection refused".into(),
        hint: Some("is sshd running?".into()),
    }));
    let mut hs = vec![(host, t)];
    let ok_host = hosts().remove(2);
    hs.push((ok_host, Arc::new(command_host()) as Arc<dyn Transport>));
    let engine = Engine::new(library(yaml), hs, Vars::default(), events.clone());
    engine
        .run(&[Phase::new("p", "play")], Mode::Check, None)
        .await
        .unwrap();
    let kinds: Vec<String> = events
        .events()
        .iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
            format!(
                "{}:{}",
                v["event"].as_str().unwrap(),
                v["host"].as_str().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "phase_started:-",
            "host_failed:cp1",
            "phase_finished:-",
            "phase_started:-",
            "task_started:w1",
            "task_result:w1",
            "phase_finished:-",
            "summary:-"
        ]
    );
    let failed = events
        .events()
        .into_iter()
        .find(|e| matches!(e, Event::HostFailed { .. }))
        .unwrap();
    assert_eq!(
        failed.to_json(),
        r#"{"event":"host_failed","host":"cp1","step":"gather facts","message":"cp1: connection refused","hint":"is sshd running?"}"#
    );
}

/// A host answering like a real one to the lock scripts: `mkdir` succeeds once.
fn lockable_host(held_by: Option<&str>) -> FakeTransport {
    let owner = Arc::new(Mutex::new(held_by.map(str::to_string)));
    FakeTransport::new(move |s| {
        let mut owner = owner.lock().unwrap();
        if s.text.starts_with("if [ \"$(cat /run/kbs.lock/owner") {
            *owner = None;
            return ok_with("");
        }
        if s.text.starts_with("rm -rf /run/kbs.lock") {
            *owner = None;
        }
        if s.text.contains("mkdir /run/kbs.lock") {
            let out = match owner.as_ref() {
                None => {
                    *owner = Some("me".into());
                    "lock=acquired\n".to_string()
                }
                Some(o) => format!("lock=held {o}\n"),
            };
            return ok_with(&out);
        }
        ok_with("")
    })
}

#[tokio::test]
async fn apply_takes_each_hosts_lock_with_the_facts_and_releases_it() {
    let events = Arc::new(Collector::default());
    let fakes: Vec<Arc<FakeTransport>> = vec![
        Arc::new(lockable_host(None)),
        Arc::new(lockable_host(Some("kbs pid=1 machine=ci-runner-7 since=1 run=0"))),
    ];
    let hs: Vec<(Host, Arc<dyn Transport>)> = hosts()
        .into_iter()
        .take(2)
        .zip(fakes.iter().cloned())
        .map(|(h, f)| (h, f as Arc<dyn Transport>))
        .collect();
    let engine = Engine::new(library(ECHO), hs, Vars::default(), events.clone());
    let report = engine
        .run(&[Phase::new("p", "play")], Mode::Apply, None)
        .await
        .unwrap();

    // cp1: the facts script took the lock, the task ran, the lock was released.
    let cp1 = fakes[0].scripts();
    assert!(
        cp1[0].contains("mkdir /run/kbs.lock"),
        "taken in the facts round trip"
    );
    assert_eq!(cp1[1], "echo cp1");
    assert!(cp1[2].starts_with("if [ \"$(cat /run/kbs.lock/owner"));
    assert_eq!(report.hosts["cp1"].round_trips, 3);

    // cp2: someone else's lock stops cp2 alone, names the holder and never runs a task.
    let f = &report.failures[0];
    assert_eq!((f.host.as_str(), f.step.as_str()), ("cp2", "lock"));
    assert!(f.message.contains("machine=ci-runner-7"), "{}", f.message);
    assert!(f.hint.as_deref().unwrap().contains("remove /run/kbs.lock"));
    assert!(!fakes[1].scripts().iter().any(|s| s == "echo cp2"));
    assert!(
        !fakes[1].scripts().iter().any(|s| s.contains("rm -rf")),
        "never removes another run's lock"
    );
}

#[tokio::test]
async fn a_lock_left_by_a_dead_kbs_on_this_machine_is_taken_over_and_check_mode_takes_none() {
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let stale = format!("kbs pid=2147483000 machine={machine} since=1 run=0");
    let fake = Arc::new(lockable_host(Some(&stale)));
    let host = hosts().remove(0);
    let engine = Engine::new(
        library(ECHO),
        vec![(host.clone(), fake.clone() as Arc<dyn Transport>)],
        Vars::default(),
        Arc::new(Collector::default()),
    );
    let report = engine
        .run(&[Phase::new("p", "play")], Mode::Apply, None)
        .await
        .unwrap();
    assert!(report.success(), "{:?}", report.failures);
    assert!(fake.scripts()[1].starts_with("rm -rf /run/kbs.lock"));

    let fake = Arc::new(lockable_host(None));
    let engine = Engine::new(
        library(ECHO),
        vec![(host, fake.clone() as Arc<dyn Transport>)],
        Vars::default(),
        Arc::new(Collector::default()),
    );
    engine
        .run(&[Phase::new("p", "play")], Mode::Check, None)
        .await
        .unwrap();
    assert!(
        fake.scripts().iter().all(|s| !s.contains("/run/kbs.lock")),
        "plan takes no lock"
    );
}
