use std::sync::Arc;
use std::time::{Duration, Instant};

use kbs_ssh::{Chunk, Command, Error};
use sha2::{Digest, Sha256};

use crate::Env;

const TEN_MIB: usize = 10 * 1024 * 1024;

#[tokio::test]
async fn non_zero_exit_status_is_reported() {
    // Not root: root's ~/.bashrc on dev machines can be slow, and this test counts time.
    let users = kbs_testkit::ensure_test_users();
    let env = Env::new();
    let conn = env.connect(users.nopasswd).await;
    let out = conn
        .exec(&Command::new("echo out; echo err >&2; exit 3"))
        .await
        .unwrap();
    assert_eq!(out.status.code, Some(3));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    let err = out.checked().unwrap_err();
    assert!(matches!(err, Error::CommandFailed { .. }));
    assert!(
        err.to_string().contains("exit status 3") && err.to_string().contains("err"),
        "{err}"
    );

    let killed = conn.exec(&Command::new("kill -KILL $$")).await.unwrap();
    assert_eq!(killed.status.code, None);
    assert!(killed.status.signal.is_some());
}

#[tokio::test]
async fn ten_mib_of_output_and_input_stream_intact() {
    let env = Env::new();
    let conn = env.connect("root").await;
    let file = env.dir.path().join("big");
    let hash = conn
        .exec(&Command::new(format!(
            "head -c {TEN_MIB} /dev/urandom > {0}; sha256sum {0}",
            file.display()
        )))
        .await
        .unwrap()
        .checked()
        .unwrap()
        .stdout_str();
    let remote_hash = hash.split_whitespace().next().unwrap().to_string();

    let started = Instant::now();
    let out = conn
        .exec(&Command::new(format!("cat {}", file.display())))
        .await
        .unwrap()
        .checked()
        .unwrap();
    assert_eq!(out.stdout.len(), TEN_MIB);
    assert_eq!(hex(&Sha256::digest(&out.stdout)), remote_hash);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "10 MiB took {:?}",
        started.elapsed()
    );

    // 10 MiB in and back out at the same time: flow control in both directions.
    let echoed = conn
        .exec(&Command::new("cat").stdin(out.stdout.clone()))
        .await
        .unwrap()
        .checked()
        .unwrap();
    assert_eq!(hex(&Sha256::digest(&echoed.stdout)), remote_hash);
}

#[tokio::test]
async fn many_concurrent_execs_share_one_connection() {
    let _serial = crate::TIMING.lock().await;
    // Not root: root's ~/.bashrc on dev machines can be slow, and this test counts time.
    let users = kbs_testkit::ensure_test_users();
    let env = Env::new();
    let conn = Arc::new(env.connect(users.nopasswd).await);
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move {
                let out = conn
                    .exec(&Command::new(format!("sleep 0.2; echo {i}")))
                    .await
                    .map_err(|e| e.to_string())?;
                if out.stdout_str() == format!("{i}\n") {
                    Ok(())
                } else {
                    Err(format!("command {i} printed {:?}", out.stdout_str()))
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut errors = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            errors.push(e);
        }
    }
    let log = env.sshd.log();
    assert!(errors.is_empty(), "{errors:?}\nsshd log:\n{log}");
    // 40 x 0.2 s run serially would take 8 s; multiplexed they overlap.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
    let logins = log.matches("Accepted publickey").count();
    assert_eq!(logins, 1, "expected a single SSH login:\n{log}");
}

#[tokio::test]
async fn streaming_delivers_chunks_as_they_come() {
    let _serial = crate::TIMING.lock().await;
    // Not root: root's ~/.bashrc on dev machines can be slow, and this test counts time.
    let users = kbs_testkit::ensure_test_users();
    let env = Env::new();
    let conn = env.connect(users.nopasswd).await;
    let started = Instant::now();
    let mut seen: Vec<(String, Duration)> = Vec::new();
    let status = conn
        .exec_streaming(
            &Command::new("echo first; echo warn >&2; sleep 1; echo second"),
            |chunk| {
                let text = match chunk {
                    Chunk::Stdout(d) => format!("out:{}", String::from_utf8_lossy(d)),
                    Chunk::Stderr(d) => format!("err:{}", String::from_utf8_lossy(d)),
                };
                seen.push((text, started.elapsed()));
            },
        )
        .await
        .unwrap();
    assert!(status.success());
    let texts: Vec<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert!(
        texts.contains(&"out:first\n") && texts.contains(&"err:warn\n"),
        "{texts:?}"
    );
    assert_eq!(texts.last(), Some(&"out:second\n"));
    // The first chunk came a second before the last, not all at the end.
    let gap = seen.last().unwrap().1 - seen[0].1;
    assert!(
        gap >= Duration::from_millis(700),
        "chunks were not streamed: {seen:?}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A connection that dies under a running command ends it with an error, never a hang.
#[tokio::test]
async fn dropped_connection_fails_the_command_fast() {
    let env = Env::new();
    let conn = Arc::new(env.connect("root").await);
    let running = {
        let conn = conn.clone();
        // Writes forever; dies of SIGPIPE once its sshd is gone, so nothing is left behind.
        tokio::spawn(async move {
            conn.exec(&Command::new("while :; do echo tick; sleep 0.1; done"))
                .await
        })
    };
    // Wait until the command runs, then kill the server's per-connection processes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.sshd.session_pids().is_empty() {
        assert!(Instant::now() < deadline, "no session process appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give the command time to start on its channel.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    assert!(env.sshd.kill_sessions() > 0);
    let res = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("exec hung after the connection died")
        .unwrap();
    let err = res.unwrap_err();
    assert!(matches!(err, Error::Session { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Later calls fail fast as well.
    let err = conn.exec(&Command::new("true")).await.unwrap_err();
    assert!(matches!(err, Error::Session { .. }), "{err}");
}

/// A server allowing fewer sessions than our per-connection limit: refusals are waited out.
#[tokio::test]
async fn low_max_sessions_server_still_runs_everything() {
    let users = kbs_testkit::ensure_test_users();
    let env = Env::with(|o| o.config_line("MaxSessions 3"));
    let conn = Arc::new(env.connect(users.nopasswd).await);
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move {
                let cmd = Command::new(format!("sleep 0.1; echo {i}"));
                conn.exec(&cmd).await.map(|o| o.stdout_str())
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let out = t.await.unwrap().unwrap_or_else(|e| panic!("command {i}: {e}"));
        assert_eq!(out, format!("{i}\n"));
    }
}
