use std::time::{Duration, Instant};

use kbs_ssh::{Command, Error, Privilege, Secret};
use kbs_testkit::ensure_test_users;

use crate::Env;

fn with_password(p: &str) -> Privilege {
    Privilege::Sudo {
        password: Some(Secret::new(p)),
    }
}

const NOPASS: Privilege = Privilege::Sudo { password: None };

#[tokio::test]
async fn sudo_without_password() {
    let users = ensure_test_users();
    let env = Env::new();
    let conn = env.connect(users.nopasswd).await;
    let out = conn
        .exec(&Command::new("id -u").privilege(NOPASS))
        .await
        .unwrap()
        .checked()
        .unwrap();
    assert_eq!(out.stdout_str(), "0\n");
    // A password given anyway is never fed to the command.
    let out = conn
        .exec(
            &Command::new("cat")
                .stdin("data\n")
                .privilege(with_password("unused")),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout_str(), "data\n");
}

#[tokio::test]
async fn sudo_with_password_keeps_stdin_intact() {
    let users = ensure_test_users();
    let env = Env::new();
    let conn = env.connect(users.passwd).await;
    let sudo = with_password(users.password);
    let out = conn
        .exec(&Command::new("id -u").privilege(sudo.clone()))
        .await
        .unwrap()
        .checked()
        .unwrap();
    assert_eq!(out.stdout_str(), "0\n");
    // Twice: the second run may find cached credentials and must still not leak the password line.
    for _ in 0..2 {
        let input = b"line one\nline two\x00binary\n".to_vec();
        let out = conn
            .exec(&Command::new("cat").stdin(input.clone()).privilege(sudo.clone()))
            .await
            .unwrap()
            .checked()
            .unwrap();
        assert_eq!(out.stdout, input);
    }
}

#[tokio::test]
async fn wrong_sudo_password_is_a_clear_error() {
    let users = ensure_test_users();
    let env = Env::new();
    let conn = env.connect(users.passwd).await;
    let started = Instant::now();
    let err = conn
        .exec(
            &Command::new("id -u")
                .stdin(vec![b'x'; 100_000])
                .privilege(with_password("not-the-password")),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SudoWrongPassword { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("refused the password given with --ask-become-pass"),
        "{msg}"
    );
    assert!(!msg.contains("not-the-password"));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn sudo_n_needing_a_password_suggests_ask_become_pass() {
    let users = ensure_test_users();
    let env = Env::new();
    let conn = env.connect(users.passwd).await;
    let err = conn
        .exec(&Command::new("id -u").privilege(NOPASS))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SudoPasswordRequired { .. }), "{err}");
    assert!(err.to_string().contains("--ask-become-pass"), "{err}");
}

#[tokio::test]
async fn user_without_sudo_rights_is_denied() {
    let users = ensure_test_users();
    let env = Env::new();
    let conn = env.connect(users.nosudo).await;
    let err = conn
        .exec(&Command::new("id -u").privilege(NOPASS))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::SudoDenied { .. } | Error::SudoPasswordRequired { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn root_runs_directly_without_sudo() {
    let env = Env::new();
    let conn = env.connect("root").await;
    let out = conn
        .exec(
            &Command::new("cat; id -u")
                .stdin("in\n")
                .privilege(with_password("ignored")),
        )
        .await
        .unwrap()
        .checked()
        .unwrap();
    assert_eq!(out.stdout_str(), "in\n0\n");
}
