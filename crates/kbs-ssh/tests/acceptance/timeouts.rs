use std::time::{Duration, Instant};

use futures_util::StreamExt;
use kbs_ssh::{run_windowed, Command, Connection, Error};
use kbs_testkit::{ClientKey, KeyType, SilentListener, SshdFleet, SshdOptions, TempDir};

use crate::{opts, target_for, Env};

#[tokio::test]
async fn silent_host_times_out_while_the_others_finish() {
    let _serial = crate::TIMING.lock().await;
    let users = kbs_testkit::ensure_test_users();
    let dir = TempDir::new().unwrap();
    let key = ClientKey::generate(dir.path(), KeyType::Ed25519, None);
    let fleet = SshdFleet::start(3, &SshdOptions::new().authorize(&key));
    let kh = dir.path().join("known_hosts");
    fleet.write_known_hosts(&kh, false);
    let silent = SilentListener::start();

    let mut targets = vec![{
        let mut t = target_for(fleet.get(0), "root", &key);
        t.name = "silent".into();
        t.port = silent.port();
        t
    }];
    targets.extend(fleet.iter().map(|s| target_for(s, users.nopasswd, &key)));
    let mut o = opts(&kh);
    o.connect_timeout = Duration::from_secs(2);

    let started = Instant::now();
    // Window of 2: the silent host holds one slot, the three others pass through the other.
    let results: Vec<(String, Result<(), Error>, Duration)> = run_windowed(targets, 2, |t| {
        let o = o.clone();
        async move {
            let res = async {
                let c = Connection::connect(&t, &o).await?;
                c.exec(&Command::new("true")).await?.checked()?;
                Ok(())
            }
            .await;
            (t.name.clone(), res, started.elapsed())
        }
    })
    .collect()
    .await;

    let (name, res, at) = results.last().unwrap();
    assert_eq!(name, "silent", "the silent host should finish last");
    let err = res.as_ref().unwrap_err();
    assert!(matches!(err, Error::ConnectTimeout { .. }), "{err}");
    assert!(err.to_string().contains("timed out after 2s"), "{err}");
    assert!(
        *at >= Duration::from_secs(2) && *at < Duration::from_millis(3500),
        "timeout took {at:?}"
    );
    for (name, res, at) in &results[..3] {
        assert!(res.is_ok(), "{name}: {res:?}");
        assert!(
            *at < Duration::from_secs(2),
            "{name} waited for the silent host: {at:?}"
        );
    }
}

#[tokio::test]
async fn connection_failures_are_retried_with_backoff() {
    let env = Env::new();
    // A port with nothing listening: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut t = env.target("root");
    t.port = port;
    let mut o = env.opts();
    o.retries = 2;
    o.retry_backoff = Duration::from_millis(300);
    let started = Instant::now();
    let err = Connection::connect(&t, &o).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    // 300 ms + 600 ms of backoff between three attempts.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "no backoff: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn auth_and_host_key_failures_are_not_retried() {
    let _serial = crate::TIMING.lock().await;
    let env = Env::with(|o| o.log_level("VERBOSE"));
    let mut o = env.opts();
    o.retries = 3;
    o.retry_backoff = Duration::from_secs(2);
    let before = env.sshd.log().matches("Connection from").count();

    let stranger = ClientKey::generate(env.dir.path(), KeyType::Ed25519, None);
    let started = Instant::now();
    let err = Connection::connect(&target_for(&env.sshd, "root", &stranger), &o)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AuthFailed { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "auth failure was retried"
    );

    let mut strict = o.clone();
    strict.known_hosts = vec![env.dir.path().join("empty_known_hosts")];
    let started = Instant::now();
    let err = Connection::connect(&env.target("root"), &strict)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownHostKey { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "host key failure was retried"
    );

    // Give sshd a moment to log, then count: exactly the two attempts above.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = env.sshd.log().matches("Connection from").count();
    assert_eq!(after - before, 2, "{}", env.sshd.log());
}

/// The shape of a large run: 100 hosts, one connection each, a window of 64. As a test user:
/// Debian's bash sources ~/.bashrc even for `ssh host cmd`, and root's may be slow on dev machines.
#[tokio::test(flavor = "multi_thread")]
async fn hundred_hosts_through_a_window() {
    let _serial = crate::TIMING.lock().await;
    let users = kbs_testkit::ensure_test_users();
    let dir = TempDir::new().unwrap();
    let key = ClientKey::generate(dir.path(), KeyType::Ed25519, None);
    let fleet = SshdFleet::start(100, &SshdOptions::new().authorize(&key));
    let kh = dir.path().join("known_hosts");
    fleet.write_known_hosts(&kh, false);
    let o = opts(&kh);
    let started = Instant::now();
    let outputs: Vec<Result<String, Error>> = run_windowed(fleet.iter(), 64, |sshd| {
        let t = target_for(sshd, users.nopasswd, &key);
        let o = o.clone();
        async move {
            let c = Connection::connect(&t, &o).await?;
            Ok(c.exec(&Command::new("hostname")).await?.checked()?.stdout_str())
        }
    })
    .collect()
    .await;
    let took = started.elapsed();
    let failures: Vec<_> = outputs.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(outputs.len(), 100);
    eprintln!("100 hosts connected and ran a command in {took:?}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
}
