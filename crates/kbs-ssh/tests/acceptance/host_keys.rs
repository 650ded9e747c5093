use std::process::Command as Proc;

use kbs_ssh::{Command, Connection, Error};
use kbs_testkit::{write_known_hosts, ClientKey, KeyType, KnownHostsEntry};

use crate::{opts, Env};

fn fingerprint(pubkey_file: &std::path::Path) -> String {
    let out = Proc::new("ssh-keygen")
        .arg("-lf")
        .arg(pubkey_file)
        .output()
        .unwrap();
    // "256 SHA256:xxxx comment (ED25519)"
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn unknown_key_is_refused_then_learned_with_accept_new() {
    let env = Env::new();
    let known_hosts = env.dir.path().join("ssh").join("fresh_known_hosts");
    let target = env.target("root");

    let err = Connection::connect(&target, &opts(&known_hosts))
        .await
        .unwrap_err();
    let expected_fp = fingerprint(&env.sshd.dir().join("ssh_host_ed25519_key.pub"));
    let Error::UnknownHostKey { key, lookup, .. } = &err else {
        panic!("expected UnknownHostKey, got {err}");
    };
    assert_eq!(key, &format!("ssh-ed25519 {expected_fp}"));
    assert_eq!(lookup, &format!("[127.0.0.1]:{}", env.sshd.port()));
    let msg = err.to_string();
    assert!(
        msg.contains("--accept-new-host-keys") && msg.contains(&target.name),
        "{msg}"
    );
    assert!(!known_hosts.exists(), "nothing may be written without accept-new");

    let mut o = opts(&known_hosts);
    o.accept_new_host_keys = true;
    Connection::connect(&target, &o).await.expect("accept-new");
    let text = std::fs::read_to_string(&known_hosts).unwrap();
    let entry = env.sshd.known_hosts_entry();
    assert_eq!(text, format!("{} {}\n", entry.host, entry.key));

    // Now known: strict checking passes.
    let conn = Connection::connect(&target, &opts(&known_hosts))
        .await
        .expect("learned key");
    assert!(conn.exec(&Command::new("true")).await.unwrap().status.success());
}

#[tokio::test]
async fn changed_key_is_a_hard_error_naming_file_and_line() {
    let env = Env::new();
    let impostor = ClientKey::generate(env.dir.path(), KeyType::Ed25519, None);
    let kh = env.dir.path().join("known_hosts_changed");
    let lookup = format!("[127.0.0.1]:{}", env.sshd.port());
    std::fs::write(
        &kh,
        format!(
            "# comment line\nother.example {}\n{lookup} {}\n",
            impostor.public, impostor.public
        ),
    )
    .unwrap();
    for accept_new in [false, true] {
        let mut o = opts(&kh);
        o.accept_new_host_keys = accept_new;
        let err = Connection::connect(&env.target("root"), &o).await.unwrap_err();
        let Error::HostKeyChanged { file, line, .. } = &err else {
            panic!("expected HostKeyChanged, got {err}");
        };
        assert_eq!((file, *line), (&kh, 3));
        assert!(err.to_string().contains(&format!("{}:3", kh.display())), "{err}");
    }
    // accept-new must not have appended anything.
    assert_eq!(std::fs::read_to_string(&kh).unwrap().lines().count(), 3);
}

#[tokio::test]
async fn hashed_entry_is_accepted() {
    let env = Env::new();
    let kh = env.dir.path().join("known_hosts_hashed");
    write_known_hosts(&kh, &[env.sshd.known_hosts_entry()], true);
    let text = std::fs::read_to_string(&kh).unwrap();
    assert!(
        text.starts_with("|1|") && !text.contains("127.0.0.1"),
        "not hashed: {text}"
    );
    Connection::connect(&env.target("root"), &opts(&kh))
        .await
        .expect("hashed known_hosts");
}

#[tokio::test]
async fn port_22_entry_does_not_vouch_for_other_ports() {
    let env = Env::new();
    let kh = env.dir.path().join("known_hosts_port22");
    write_known_hosts(
        &kh,
        &[KnownHostsEntry::new("127.0.0.1", 22, env.sshd.host_key())],
        false,
    );
    let err = Connection::connect(&env.target("root"), &opts(&kh))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownHostKey { .. }), "{err}");
}

#[tokio::test]
async fn host_known_by_another_key_type_negotiates_that_type() {
    let env = Env::with(|o| o.all_host_key_types());
    for kind in [KeyType::Ecdsa, KeyType::Rsa] {
        let kh = env.dir.path().join(format!("known_hosts_{kind:?}"));
        let key = env.sshd.host_key_of(kind).unwrap();
        write_known_hosts(
            &kh,
            &[KnownHostsEntry::new("127.0.0.1", env.sshd.port(), key)],
            false,
        );
        Connection::connect(&env.target("root"), &opts(&kh))
            .await
            .unwrap_or_else(|e| panic!("host known by its {kind:?} key: {e}"));
    }
}

#[tokio::test]
async fn revoked_key_is_refused() {
    let env = Env::new();
    let kh = env.dir.path().join("known_hosts_revoked");
    let entry = env.sshd.known_hosts_entry();
    std::fs::write(&kh, format!("@revoked {} {}\n", entry.host, entry.key)).unwrap();
    let mut o = opts(&kh);
    o.accept_new_host_keys = true;
    let err = Connection::connect(&env.target("root"), &o).await.unwrap_err();
    assert!(matches!(err, Error::HostKeyRevoked { line: 1, .. }), "{err}");
}
