//! Privilege escalation with sudo, without ever putting the password in an argument, the
//! environment or a log.
//!
//! The remote command line is always `sh -c '<wrapper>'`. With a password the wrapper reads the
//! first stdin line into an unexported shell variable (`read` takes exactly one line from a pipe, so
//! the command's own stdin follows intact) and:
//! 1. if `sudo -n true` works (NOPASSWD or cached), runs the script with `sudo -n`: the password is
//!    never handed to sudo, so it can never leak into the command's stdin;
//! 2. else checks the password once with `sudo -S -k true` fed only the password (one attempt, so a
//!    wrong password fails fast instead of sudo eating the upload's bytes as further attempts);
//! 3. then runs the script under `sudo -S -k`, fed the password line followed by the rest of stdin.
//!    `-k` makes sudo always read that line, even if credentials are cached, so it is consumed.
//!    `printf` is a shell builtin, so the password is in no process's argv.
//!
//! Failures of sudo itself are reported on stderr behind [`MARKER`] with exit status 125 and turned
//! into typed errors by [`classify`].

use zeroize::Zeroizing;

use crate::{Error, Secret};

/// How to run a command on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Privilege {
    /// As the login user.
    #[default]
    None,
    /// As root via sudo; without a password `sudo -n` (fails clearly if a password is needed).
    /// When the connection is already logged in as root, commands run directly.
    Sudo { password: Option<Secret> },
}

pub(crate) const MARKER: &str = "KBS-SUDO-ERROR:";

/// Quote a string for POSIX sh as one word.
pub(crate) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The exec line for `script` under `privilege`, and the bytes to send on stdin before the
/// command's own stdin (the password line, if any).
pub(crate) fn wrap(script: &str, privilege: &Privilege) -> (String, Option<Zeroizing<Vec<u8>>>) {
    let inner = format!("sh -c {}", sh_quote(script));
    match privilege {
        Privilege::None => (inner, None),
        Privilege::Sudo { password: None } => {
            let wrapper = format!(
                "e=$(LC_ALL=C sudo -n true 2>&1) || {{ printf '{MARKER}%s\\n' \"$e\" >&2; exit 125; }}\n\
                 exec sudo -n -- {inner}"
            );
            (format!("sh -c {}", sh_quote(&wrapper)), None)
        }
        Privilege::Sudo { password: Some(pw) } => {
            let wrapper = format!(
                "IFS= read -r kbs_pw || kbs_pw=\n\
                 if LC_ALL=C sudo -n true 2>/dev/null; then kbs_pw=; exec sudo -n -- {inner}; fi\n\
                 e=$(printf '%s\\n' \"$kbs_pw\" | LC_ALL=C sudo -S -k -p '' true 2>&1) || \
                 {{ kbs_pw=; printf '{MARKER}%s\\n' \"$e\" >&2; exit 125; }}\n\
                 {{ printf '%s\\n' \"$kbs_pw\"; kbs_pw=; exec cat; }} | sudo -S -k -p '' -- {inner}"
            );
            let mut line = Zeroizing::new(Vec::with_capacity(pw.expose().len() + 1));
            line.extend_from_slice(pw.expose().as_bytes());
            line.push(b'\n');
            (format!("sh -c {}", sh_quote(&wrapper)), Some(line))
        }
    }
}

/// Turn the wrapper's marker line into the matching error.
pub(crate) fn classify(stderr_head: &[u8], host: &str, user: &str, privilege: &Privilege) -> Option<Error> {
    let text = String::from_utf8_lossy(stderr_head);
    let message = text.strip_prefix(MARKER)?.trim().replace('\n', " ");
    let (host, user) = (host.to_string(), user.to_string());
    let with_password = matches!(privilege, Privilege::Sudo { password: Some(_) });
    // Wording of sudo 1.9 and of sudo-rs (default on Ubuntu since 25.10), in the C locale.
    let needs_password = ["password is required", "authentication is required"];
    let refused = [
        "incorrect password",
        "Sorry, try again",
        "no password was provided",
        "incorrect authentication",
        "Authentication failed",
    ];
    Some(if needs_password.iter().any(|m| message.contains(m)) {
        Error::SudoPasswordRequired { host, user }
    } else if with_password && refused.iter().any(|m| message.contains(m)) {
        Error::SudoWrongPassword { host, user }
    } else {
        Error::SudoDenied { host, user, message }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_not_in_the_command_line() {
        let p = Privilege::Sudo {
            password: Some(Secret::new("s3cr3t")),
        };
        let (line, stdin) = wrap("echo 'hi'", &p);
        assert!(!line.contains("s3cr3t"));
        assert_eq!(stdin.as_deref().map(Vec::as_slice), Some(&b"s3cr3t\n"[..]));
    }

    #[test]
    fn classifies_sudo_and_sudo_rs_messages() {
        let pw = Privilege::Sudo {
            password: Some(Secret::new("x")),
        };
        let nopw = Privilege::Sudo { password: None };
        let c = |text: &str, p: &Privilege| classify(format!("{MARKER}{text}\n").as_bytes(), "h", "u", p);
        assert!(matches!(
            c("sudo: a password is required", &nopw),
            Some(Error::SudoPasswordRequired { .. })
        ));
        assert!(matches!(
            c("sudo: interactive authentication is required", &nopw),
            Some(Error::SudoPasswordRequired { .. })
        ));
        assert!(matches!(
            c("Sorry, try again.\nsudo: 1 incorrect password attempt", &pw),
            Some(Error::SudoWrongPassword { .. })
        ));
        assert!(matches!(
            c("sudo-rs: Authentication failed, try again.", &pw),
            Some(Error::SudoWrongPassword { .. })
        ));
        assert!(matches!(
            c("u is not in the sudoers file.", &pw),
            Some(Error::SudoDenied { .. })
        ));
        assert!(classify(b"plain stderr", "h", "u", &pw).is_none());
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
    }
}
