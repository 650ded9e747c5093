//! Output of one command run on many hosts: each line prefixed with its host (or, grouped, one block
//! per host as it finishes), failures as they happen, and a closing summary.

use std::fmt;
use std::io::Write;
use std::time::Duration;

use crate::output::lines::LineSplitter;

/// How one host's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostOutcome {
    pub host: String,
    pub ending: Ending,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The command exited 0.
    Succeeded,
    /// The command exited non-zero or was killed by a signal.
    CommandFailed(String),
    /// kbs could not connect or log in.
    Unreachable(String),
    /// Connected, but the command could not be run to its end (sudo refused, connection lost).
    Broken(String),
}

/// Prints per-host output; shared by all hosts of a run.
pub struct HostPrinter {
    width: usize,
    grouped: bool,
}

impl HostPrinter {
    pub fn new<'a>(names: impl Iterator<Item = &'a str>, grouped: bool) -> Self {
        HostPrinter {
            width: names.map(str::len).max().unwrap_or(0),
            grouped,
        }
    }

    /// The output stream of one host's command.
    pub fn stream<'p>(&'p self, host: &str) -> HostStream<'p> {
        HostStream {
            printer: self,
            host: host.to_string(),
            stdout: LineSplitter::default(),
            stderr: LineSplitter::default(),
            block: Vec::new(),
        }
    }

    pub fn unreachable(&self, host: &str, reason: &str) -> HostOutcome {
        self.problem(host, "unreachable", reason);
        HostOutcome {
            host: host.to_string(),
            ending: Ending::Unreachable(reason.to_string()),
        }
    }

    pub fn failed(&self, host: &str, reason: &str) -> HostOutcome {
        self.problem(host, "failed", reason);
        HostOutcome {
            host: host.to_string(),
            ending: Ending::Broken(reason.to_string()),
        }
    }

    fn problem(&self, host: &str, what: &str, reason: &str) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{} | {what}: {reason}", self.pad(host));
    }

    fn pad(&self, host: &str) -> String {
        format!("{host:<width$}", width = self.width)
    }
}

/// One host's output as it arrives.
pub struct HostStream<'p> {
    printer: &'p HostPrinter,
    host: String,
    stdout: LineSplitter,
    stderr: LineSplitter,
    /// Lines kept for a grouped block, in arrival order.
    block: Vec<String>,
}

impl HostStream<'_> {
    pub fn stdout(&mut self, bytes: &[u8]) {
        let lines = self.stdout.push(bytes);
        self.emit(lines, false);
    }

    pub fn stderr(&mut self, bytes: &[u8]) {
        let lines = self.stderr.push(bytes);
        self.emit(lines, true);
    }

    /// Shows what is left (an unterminated last line, a grouped block) and reports the exit.
    pub fn finish(mut self, code: Option<u32>, signal: Option<&str>) -> HostOutcome {
        let status = match (code, signal) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "ended without an exit status".to_string(),
        };
        let ending = if code == Some(0) {
            Ending::Succeeded
        } else {
            Ending::CommandFailed(status.clone())
        };
        self.flush_with_status(&status);
        HostOutcome {
            host: self.host.clone(),
            ending,
        }
    }

    /// Shows what is left when the command could not finish.
    pub fn flush(mut self) {
        self.flush_with_status("interrupted");
    }

    fn flush_with_status(&mut self, status: &str) {
        if let Some(line) = self.stdout.finish() {
            self.emit(vec![line], false);
        }
        if let Some(line) = self.stderr.finish() {
            self.emit(vec![line], true);
        }
        if self.printer.grouped {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "== {} ({status}) ==", self.host);
            for line in self.block.drain(..) {
                let _ = writeln!(out, "{line}");
            }
        }
    }

    fn emit(&mut self, lines: Vec<String>, is_stderr: bool) {
        if lines.is_empty() {
            return;
        }
        if self.printer.grouped {
            self.block.extend(lines);
            return;
        }
        let prefix = self.printer.pad(&self.host);
        // One lock per batch of lines: another host's lines never land inside a line of this one.
        if is_stderr {
            let mut err = std::io::stderr().lock();
            for line in lines {
                let _ = writeln!(err, "{prefix} | {line}");
            }
        } else {
            let mut out = std::io::stdout().lock();
            for line in lines {
                let _ = writeln!(out, "{prefix} | {line}");
            }
        }
    }
}

/// The closing line of a run over many hosts.
pub struct Summary {
    total: usize,
    succeeded: usize,
    failed: Vec<(String, String)>,
    unreachable: Vec<String>,
    elapsed: Duration,
}

impl Summary {
    pub fn new(outcomes: &[HostOutcome], elapsed: Duration) -> Self {
        let mut summary = Summary {
            total: outcomes.len(),
            succeeded: 0,
            failed: Vec::new(),
            unreachable: Vec::new(),
            elapsed,
        };
        for outcome in outcomes {
            match &outcome.ending {
                Ending::Succeeded => summary.succeeded += 1,
                Ending::CommandFailed(why) | Ending::Broken(why) => {
                    summary.failed.push((outcome.host.clone(), why.clone()))
                }
                Ending::Unreachable(_) => summary.unreachable.push(outcome.host.clone()),
            }
        }
        summary.failed.sort();
        summary.unreachable.sort();
        summary
    }

    pub fn all_ok(&self) -> bool {
        self.failed.is_empty() && self.unreachable.is_empty()
    }

    /// One line naming what went wrong, for the final error.
    pub fn failure_line(&self) -> String {
        let mut parts = Vec::new();
        if !self.failed.is_empty() {
            parts.push(format!(
                "failed on {}",
                self.failed
                    .iter()
                    .map(|(host, _)| host.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !self.unreachable.is_empty() {
            parts.push(format!("could not reach {}", self.unreachable.join(", ")));
        }
        parts.join("; ")
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} host{} in {:.1}s: {} ok, {} failed",
            self.total,
            if self.total == 1 { "" } else { "s" },
            self.elapsed.as_secs_f64(),
            self.succeeded,
            self.failed.len()
        )?;
        if !self.failed.is_empty() {
            let details: Vec<String> = self
                .failed
                .iter()
                .map(|(host, why)| format!("{host}: {why}"))
                .collect();
            write!(f, " ({})", details.join(", "))?;
        }
        write!(f, ", {} unreachable", self.unreachable.len())?;
        if !self.unreachable.is_empty() {
            write!(f, " ({})", self.unreachable.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(host: &str, ending: Ending) -> HostOutcome {
        HostOutcome {
            host: host.to_string(),
            ending,
        }
    }

    #[test]
    fn the_summary_counts_and_names_every_host_that_did_not_succeed() {
        let outcomes = vec![
            outcome("host02", Ending::CommandFailed("exit 3".into())),
            outcome("host01", Ending::Succeeded),
            outcome("host04", Ending::Unreachable("timed out".into())),
            outcome("host03", Ending::Broken("sudo refused".into())),
        ];
        let summary = Summary::new(&outcomes, Duration::from_millis(1234));
        assert_eq!(
            summary.to_string(),
            "4 hosts in 1.2s: 1 ok, 2 failed (host02: exit 3, host03: sudo refused), 1 unreachable (host04)"
        );
        assert!(!summary.all_ok());
        assert_eq!(
            summary.failure_line(),
            "failed on host02, host03; could not reach host04"
        );
    }

    #[test]
    fn an_all_good_run_says_so() {
        let summary = Summary::new(&[outcome("host01", Ending::Succeeded)], Duration::from_secs(2));
        assert_eq!(
            summary.to_string(),
            "1 host in 2.0s: 1 ok, 0 failed, 0 unreachable"
        );
        assert!(summary.all_ok());
    }
}
