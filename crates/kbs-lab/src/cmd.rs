//! Running the host's tools (ip, mount, gpg, debootstrap, apt-get …) with errors that say which step failed.

use std::process::{Command, Output, Stdio};

use crate::error::{Error, Result};

/// Runs `cmd` to completion; returns its standard output, or an error naming `step` with the tail of
/// the command's error output and `hint`.
pub fn run(step: &str, hint: &str, cmd: &mut Command) -> Result<String> {
    let output = output(step, hint, cmd)?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    Err(Error::new(step, failure_text(cmd, &output), hint))
}

/// Runs `cmd` and returns its raw output whatever its exit status; fails only if it cannot start.
pub fn output(step: &str, hint: &str, cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null()).output().map_err(|error| {
        let program = cmd.get_program().to_string_lossy().into_owned();
        if error.kind() == std::io::ErrorKind::NotFound {
            Error::new(
                step,
                format!("`{program}` is not installed"),
                format!("install it (kbs-lab up installs the host packages it needs), then retry; {hint}"),
            )
        } else {
            Error::new(step, format!("cannot run `{program}`: {error}"), hint)
        }
    })
}

/// `program args…: exit status N: last lines of stderr (or stdout)`.
pub fn failure_text(cmd: &Command, output: &Output) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    let err = String::from_utf8_lossy(&output.stderr);
    let out = String::from_utf8_lossy(&output.stdout);
    let text = if err.trim().is_empty() { out } else { err };
    let tail: Vec<&str> = text.trim().lines().rev().take(12).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!(
        "`{line}` failed ({}):\n    {}",
        output.status,
        tail.join("\n    ")
    )
}
