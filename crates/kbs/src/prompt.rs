//! Asking the user for secrets: the sudo password (`--ask-become-pass`) and key passphrases.
//!
//! On a terminal the answer is read without echo; otherwise one line is read from standard input, so
//! scripts can pipe it in (`printf '%s\n' "$PASS" | kbs exec -K …`) instead of putting it in arguments.

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use kbs_ssh::{PassphrasePrompt, Secret};
use zeroize::Zeroize;

/// Reads the sudo password once for the whole run.
pub fn become_password() -> Result<Secret, String> {
    read_secret("sudo password for the hosts: ")
}

fn read_secret(question: &str) -> Result<Secret, String> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(question)
            .map(Secret::new)
            .map_err(|error| format!("cannot read the password from the terminal: {error}"));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|error| format!("cannot read the password from standard input: {error}"))?;
    let secret = Secret::new(line.trim_end_matches(['\n', '\r']));
    // The read buffer held the secret too.
    line.zeroize();
    Ok(secret)
}

/// Asks for key passphrases on the terminal; without one, encrypted keys are skipped (and the
/// transport's error says to set `KBS_KEY_PASSPHRASE`).
pub struct TerminalPassphrasePrompt;

impl PassphrasePrompt for TerminalPassphrasePrompt {
    fn passphrase(&self, key_file: &Path) -> Option<Secret> {
        if !std::io::stdin().is_terminal() {
            return None;
        }
        rpassword::prompt_password(format!("passphrase for {}: ", key_file.display()))
            .ok()
            .map(Secret::new)
    }
}
