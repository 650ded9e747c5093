use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kbs_ssh::{Command, Connection, Error, PassphrasePrompt, Secret};
use kbs_testkit::{ClientKey, KeyType, SshAgent, SshdOptions, TempDir};

use crate::{opts, target_for, Env};

async fn whoami_with(kind: KeyType, sshd_opts: impl FnOnce(SshdOptions) -> SshdOptions) -> Env {
    let dir = TempDir::new().unwrap();
    let key = ClientKey::generate(dir.path(), kind, None);
    let env = Env::with(|o| sshd_opts(o.authorize(&key)));
    let conn = Connection::connect(&target_for(&env.sshd, "root", &key), &env.opts())
        .await
        .unwrap_or_else(|e| panic!("{kind:?}: {e}\n{}", env.sshd.log()));
    let out = conn
        .exec(&Command::new("whoami"))
        .await
        .unwrap()
        .checked()
        .unwrap();
    assert_eq!(out.stdout_str(), "root\n");
    env
}

#[tokio::test]
async fn ed25519_key() {
    whoami_with(KeyType::Ed25519, |o| o).await;
}

#[tokio::test]
async fn ecdsa_key() {
    whoami_with(KeyType::Ecdsa, |o| o).await;
}

#[tokio::test]
async fn rsa_key_signs_with_sha2() {
    // Refuse SHA-1 explicitly, and log the algorithm the client used.
    let env = whoami_with(KeyType::Rsa, |o| {
        o.log_level("DEBUG2")
            .config_line("PubkeyAcceptedAlgorithms rsa-sha2-512,rsa-sha2-256,ssh-ed25519")
    })
    .await;
    let log = env.sshd.log();
    assert!(
        log.contains("pkalg rsa-sha2-"),
        "sshd log shows no rsa-sha2 auth:\n{log}"
    );
    assert!(
        !log.contains("pkalg ssh-rsa "),
        "client offered SHA-1 ssh-rsa:\n{log}"
    );
}

#[tokio::test]
async fn agent_keys_are_tried_first() {
    let env = Env::new();
    let agent = SshAgent::start();
    agent.add(&env.key);
    // The file key is not authorized: success can only come from the agent.
    let other = ClientKey::generate(env.dir.path(), KeyType::Ed25519, None);
    let mut target = target_for(&env.sshd, "root", &other);
    target.use_agent = true;
    std::env::set_var("SSH_AUTH_SOCK", agent.socket());
    let conn = Connection::connect(&target, &env.opts())
        .await
        .expect("agent auth");
    let out = conn.exec(&Command::new("echo agent-ok")).await.unwrap();
    assert_eq!(out.stdout_str(), "agent-ok\n");
}

struct CountingPrompt {
    calls: AtomicUsize,
    answer: &'static str,
}

impl PassphrasePrompt for CountingPrompt {
    fn passphrase(&self, _key_file: &Path) -> Option<Secret> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Some(Secret::new(self.answer))
    }
}

/// All passphrase sources in one test: they share the process environment.
#[tokio::test]
async fn encrypted_key_via_option_env_and_prompt() {
    let dir = TempDir::new().unwrap();
    let key = ClientKey::generate(dir.path(), KeyType::Ed25519, Some("open sesame"));
    let env = Env::with(|o| o.authorize(&key));
    let target = target_for(&env.sshd, "root", &key);
    std::env::remove_var(kbs_ssh::PASSPHRASE_ENV);

    // No passphrase anywhere: a clear error naming the key and the variable.
    let err = Connection::connect(&target, &opts(&env.known_hosts))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Key { .. }), "{err}");
    assert!(err.to_string().contains(kbs_ssh::PASSPHRASE_ENV), "{err}");

    // The option.
    let mut o = opts(&env.known_hosts);
    o.key_passphrase = Some(Secret::new("open sesame"));
    Connection::connect(&target, &o).await.expect("passphrase option");

    // A wrong one: says so, never echoes it.
    let mut o = opts(&env.known_hosts);
    o.key_passphrase = Some(Secret::new("wrong guess"));
    let err = Connection::connect(&target, &o).await.unwrap_err().to_string();
    assert!(err.contains("passphrase does not decrypt"), "{err}");
    assert!(!err.contains("wrong guess"));

    // The prompt, asked once for two connections sharing the options.
    let prompt = Arc::new(CountingPrompt {
        calls: AtomicUsize::new(0),
        answer: "open sesame",
    });
    let mut o = opts(&env.known_hosts);
    o.prompt = Some(prompt.clone());
    Connection::connect(&target, &o).await.expect("prompt 1");
    Connection::connect(&target, &o).await.expect("prompt 2");
    assert_eq!(prompt.calls.load(Ordering::SeqCst), 1);

    // The environment variable.
    std::env::set_var(kbs_ssh::PASSPHRASE_ENV, "open sesame");
    let res = Connection::connect(&target, &opts(&env.known_hosts)).await;
    std::env::remove_var(kbs_ssh::PASSPHRASE_ENV);
    res.expect("passphrase from env");
}

#[tokio::test]
async fn wrong_key_says_what_was_tried() {
    let env = Env::new();
    let stranger = ClientKey::generate(env.dir.path(), KeyType::Ed25519, None);
    let err = Connection::connect(&target_for(&env.sshd, "root", &stranger), &env.opts())
        .await
        .unwrap_err();
    let Error::AuthFailed {
        tried,
        server_accepts,
        ..
    } = &err
    else {
        panic!("expected AuthFailed, got {err}");
    };
    assert!(tried.contains(&stranger.path.display().to_string()), "{err}");
    assert!(tried.contains("SHA256:"), "{err}");
    assert!(server_accepts.contains("publickey"), "{err}");
    assert!(err.to_string().contains("authorized_keys"), "{err}");
}

#[tokio::test]
async fn ssh_config_alias_resolves_to_a_working_target() {
    let env = Env::new();
    let cfg = env.dir.path().join("ssh_config");
    std::fs::write(
        &cfg,
        format!(
            "Host node1\n  HostName {}\n  Port {}\n  User root\n  IdentityFile {}\n",
            env.sshd.host(),
            env.sshd.port(),
            env.key.path.display()
        ),
    )
    .unwrap();
    let entry = kbs_ssh::ssh_config::lookup(&cfg, "node1").unwrap();
    let mut target = kbs_ssh::Target::new("node1", entry.host_name.unwrap(), entry.user.unwrap());
    target.port = entry.port.unwrap();
    target.identity_files = entry.identity_files;
    target.use_agent = false;
    let conn = Connection::connect(&target, &env.opts())
        .await
        .expect("connect via ssh_config");
    assert_eq!(
        conn.exec(&Command::new("echo hi")).await.unwrap().stdout_str(),
        "hi\n"
    );
}
