use std::sync::Arc;

use kbs_ssh::{Command, Connection, Error};
use kbs_testkit::{write_known_hosts, Sshd, SshdOptions};

use crate::{opts, target_for, Env};

#[tokio::test]
async fn hop_through_a_bastion() {
    let env = Env::new();
    let bastion = Sshd::start(&SshdOptions::new().authorize(&env.key).log_level("DEBUG"));
    let kh = env.dir.path().join("known_hosts_both");
    write_known_hosts(
        &kh,
        &[env.sshd.known_hosts_entry(), bastion.known_hosts_entry()],
        false,
    );

    let mut target = env.target("root");
    target.bastion = Some(Box::new(target_for(&bastion, "root", &env.key)));
    let conn = Connection::connect(&target, &opts(&kh))
        .await
        .expect("through bastion");
    let out = conn.exec(&Command::new("echo via-bastion")).await.unwrap();
    assert_eq!(out.stdout_str(), "via-bastion\n");
    let log = bastion.log();
    assert!(
        log.contains(&format!("target 127.0.0.1 port {}", env.sshd.port())),
        "bastion did not forward to the target:\n{log}"
    );

    // One bastion session shared by several targets.
    let jump = Arc::new(
        Connection::connect(&target_for(&bastion, "root", &env.key), &opts(&kh))
            .await
            .unwrap(),
    );
    let mut t = env.target("root");
    t.name = "shared-hop".into();
    let c = Connection::connect_via(&t, &opts(&kh), jump.clone())
        .await
        .unwrap();
    assert!(c.exec(&Command::new("true")).await.unwrap().status.success());
}

#[tokio::test]
async fn target_key_is_checked_under_the_targets_name() {
    let env = Env::new();
    let bastion = Sshd::start(&SshdOptions::new().authorize(&env.key));
    // Only the bastion is known.
    let kh = env.dir.path().join("known_hosts_bastion_only");
    write_known_hosts(&kh, &[bastion.known_hosts_entry()], false);
    let mut target = env.target("root");
    target.bastion = Some(Box::new(target_for(&bastion, "root", &env.key)));
    let err = Connection::connect(&target, &opts(&kh)).await.unwrap_err();
    let Error::UnknownHostKey { host, lookup, .. } = &err else {
        panic!("expected UnknownHostKey for the target, got {err}");
    };
    assert_eq!(host, &target.name);
    assert_eq!(lookup, &format!("[127.0.0.1]:{}", env.sshd.port()));
}

#[tokio::test]
async fn bastion_without_forwarding_is_a_clear_error() {
    let env = Env::new();
    let bastion = Sshd::start(&SshdOptions::new().authorize(&env.key).allow_tcp_forwarding(false));
    let kh = env.dir.path().join("known_hosts_nofwd");
    write_known_hosts(
        &kh,
        &[env.sshd.known_hosts_entry(), bastion.known_hosts_entry()],
        false,
    );
    let mut target = env.target("root");
    target.bastion = Some(Box::new(target_for(&bastion, "root", &env.key)));
    let err = Connection::connect(&target, &opts(&kh))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("AllowTcpForwarding") && err.contains("bastion"),
        "{err}"
    );
}

/// Hosts behind one bastion share a single login to it, and a broken bastion fails them all fast
/// with its own reason.
#[tokio::test]
async fn hosts_behind_one_bastion_share_its_session() {
    use futures_util::StreamExt;
    use kbs_testkit::SshdFleet;

    let env = Env::new();
    let bastion = Sshd::start(&SshdOptions::new().authorize(&env.key));
    let fleet = SshdFleet::start(6, &SshdOptions::new().authorize(&env.key));
    let kh = env.dir.path().join("known_hosts_fleet");
    let mut entries: Vec<_> = fleet.iter().map(Sshd::known_hosts_entry).collect();
    entries.push(bastion.known_hosts_entry());
    write_known_hosts(&kh, &entries, false);
    let jump = target_for(&bastion, "root", &env.key);
    let targets: Vec<_> = fleet
        .iter()
        .map(|s| {
            let mut t = target_for(s, "root", &env.key);
            t.bastion = Some(Box::new(jump.clone()));
            t
        })
        .collect();

    let o = opts(&kh);
    let results: Vec<Result<(), Error>> = kbs_ssh::run_windowed(targets.clone(), 6, |t| {
        let o = o.clone();
        async move {
            let c = Connection::connect(&t, &o).await?;
            c.exec(&Command::new("true")).await?.checked()?;
            Ok(())
        }
    })
    .collect()
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        bastion.log().matches("Accepted publickey").count(),
        1,
        "{}",
        bastion.log()
    );

    // The bastion's key unknown: every host says so, naming the bastion.
    let only_targets = env.dir.path().join("known_hosts_no_bastion");
    write_known_hosts(&only_targets, &entries[..6], false);
    let o = opts(&only_targets);
    let results: Vec<Result<Connection, Error>> = kbs_ssh::run_windowed(targets, 6, |t| {
        let o = o.clone();
        async move { Connection::connect(&t, &o).await }
    })
    .collect()
    .await;
    for r in results {
        let err = r.unwrap_err();
        assert!(matches!(err, Error::Bastion { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&jump.name) && msg.contains("unknown"), "{msg}");
    }
}
