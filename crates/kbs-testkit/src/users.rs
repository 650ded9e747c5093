//! Local users for sudo tests, created idempotently (tests run as root).
//!
//! - `kbs-nopw`: NOPASSWD sudo.
//! - `kbs-pw`: sudo with a password ([`TestUsers::password`]).
//! - `kbs-nosudo`: no sudo rights at all.
//!
//! Their passwords are not locked (`*` or a real hash): with `UsePAM no` sshd refuses accounts whose
//! password field starts with `!`, even for key logins.

use std::process::Command;
use std::sync::OnceLock;

use crate::run;

/// Names and the sudo password of the test users.
#[derive(Debug, Clone)]
pub struct TestUsers {
    pub nopasswd: &'static str,
    pub passwd: &'static str,
    pub nosudo: &'static str,
    pub password: &'static str,
}

const USERS: TestUsers = TestUsers {
    nopasswd: "kbs-nopw",
    passwd: "kbs-pw",
    nosudo: "kbs-nosudo",
    password: "kbs-Test-pw-7d1c",
};

/// Create the test users and their sudoers rules if missing; returns their names.
pub fn ensure_test_users() -> TestUsers {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        crate::require_root();
        for user in [USERS.nopasswd, USERS.passwd, USERS.nosudo] {
            let exists = Command::new("id")
                .arg(user)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if !exists {
                let out = Command::new("useradd")
                    .args(["-m", "-s", "/bin/bash", user])
                    .output()
                    .expect("run useradd");
                // Exit 9: another test process created it meanwhile, which is what we wanted.
                assert!(
                    out.status.success() || out.status.code() == Some(9),
                    "useradd {user} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        run(Command::new("usermod").args(["-p", "*", USERS.nopasswd]));
        run(Command::new("usermod").args(["-p", "*", USERS.nosudo]));
        let mut chpasswd = Command::new("sh");
        chpasswd.args([
            "-c",
            &format!(
                "printf '%s:%s\\n' '{}' '{}' | chpasswd",
                USERS.passwd, USERS.password
            ),
        ]);
        run(&mut chpasswd);
        let rules = format!(
            "{n} ALL=(ALL:ALL) NOPASSWD: ALL\n{p} ALL=(ALL:ALL) ALL\nDefaults:{p} !lecture\n",
            n = USERS.nopasswd,
            p = USERS.passwd
        );
        // sudo ignores names with a dot, so the temp file is never half-read as a rule.
        let tmp = format!("/etc/sudoers.d/.kbs-testkit.{}", std::process::id());
        std::fs::write(&tmp, rules).expect("write sudoers rule");
        run(Command::new("chmod").args(["0440", &tmp]));
        run(Command::new("visudo").args(["-cq", "-f", &tmp]));
        std::fs::rename(&tmp, "/etc/sudoers.d/kbs-testkit").expect("install sudoers rule");
    });
    USERS.clone()
}
