//! Shows a run of the engine as it happens: a live view on a terminal (indicatif), plain lines when
//! output is piped, or NDJSON events (`--output json`) for machines. All three read the same
//! [`Event`] stream, so what a person sees and what a script parses cannot disagree.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kbs_engine::{Event, HostSummary, TaskStatus};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// For people: a live view on a terminal, plain lines otherwise.
    Text,
    /// One JSON event per line; the last is the summary.
    Json,
}

/// What the reporter shows besides changes and failures.
#[derive(Debug, Clone, Copy)]
pub struct Detail {
    /// Also tasks that were already in the desired state.
    pub show_ok: bool,
    /// Diffs of changed tasks (always in `plan`).
    pub show_diffs: bool,
    /// Only failures and the summary.
    pub quiet: bool,
}

/// Starts a reporter task; events sent to the returned sender are shown until it is dropped.
pub fn start(format: OutputFormat, detail: Detail) -> (UnboundedSender<Event>, JoinHandle<()>) {
    let (sender, receiver) = unbounded_channel();
    let task = tokio::spawn(async move {
        match format {
            OutputFormat::Json => json(receiver).await,
            OutputFormat::Text if std::io::stderr().is_terminal() && !detail.quiet => {
                live(receiver, detail).await
            }
            OutputFormat::Text => plain(receiver, detail).await,
        }
    });
    (sender, task)
}

async fn json(mut events: UnboundedReceiver<Event>) {
    while let Some(event) = events.recv().await {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", event.to_json());
    }
}

async fn plain(mut events: UnboundedReceiver<Event>, detail: Detail) {
    let mut width = 0;
    while let Some(event) = events.recv().await {
        if let Event::PhaseStarted { hosts, .. } = &event {
            width = hosts.iter().map(String::len).max().unwrap_or(0).max(width);
        }
        if let Some(text) = describe(&event, detail, width) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
        }
    }
}

/// The lines an event becomes in plain and live output; `None` for events not shown at this detail.
fn describe(event: &Event, detail: Detail, width: usize) -> Option<String> {
    match event {
        Event::PhaseStarted {
            phase,
            hosts,
            check_only,
        } => (!detail.quiet).then(|| {
            let mode = if *check_only { " (check only)" } else { "" };
            format!("== {phase}{mode}: {} host{} ==", hosts.len(), plural(hosts.len()))
        }),
        Event::PhaseFinished { phase, duration_ms } => {
            (!detail.quiet).then(|| format!("== {phase} done in {} ==", seconds(*duration_ms)))
        }
        Event::TaskStarted { .. } => None,
        Event::TaskResult {
            host,
            task,
            status,
            diff,
            message,
            ..
        } => {
            let shown = match status {
                TaskStatus::Failed => true,
                TaskStatus::Changed => !detail.quiet,
                TaskStatus::Ok | TaskStatus::Skipped => detail.show_ok && !detail.quiet,
            };
            if !shown {
                return None;
            }
            let mut text = format!("{host:<width$}  {:<7}  {task}", status_word(*status));
            if let Some(message) = message.as_deref().filter(|m| !m.is_empty()) {
                text.push_str(&format!(": {message}"));
            }
            if let Some(diff) = diff.as_deref().filter(|_| detail.show_diffs) {
                for line in diff.lines() {
                    text.push_str(&format!("\n{:width$}    {line}", ""));
                }
            }
            Some(text)
        }
        Event::Waiting { host, what } => Some(format!("{host:<width$}  waiting  {what}")),
        Event::HostFailed {
            host,
            step,
            message,
            hint,
        } => {
            let mut text = format!("{host:<width$}  FAILED   {step}: {message}");
            if let Some(hint) = hint {
                text.push_str(&format!("\n{:width$}    hint: {hint}", ""));
            }
            Some(text)
        }
        Event::Summary { hosts } => Some(summary_table(hosts)),
    }
}

/// On a terminal: one line per phase with a bar over its hosts, one line per host with the task at
/// hand (up to `MAX_HOST_LINES` hosts; beyond that the phase bar alone), and changes and failures
/// printed above them as they happen.
const MAX_HOST_LINES: usize = 24;

async fn live(mut events: UnboundedReceiver<Event>, detail: Detail) {
    let view = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let mut phase_bar: Option<ProgressBar> = None;
    let mut host_lines: BTreeMap<String, ProgressBar> = BTreeMap::new();
    let mut width = 0;
    let host_style = ProgressStyle::with_template("  {spinner} {prefix} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let phase_style = ProgressStyle::with_template("{prefix:.bold} [{bar:30}] {pos}/{len} hosts {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");

    while let Some(event) = events.recv().await {
        match &event {
            Event::PhaseStarted { phase, hosts, .. } => {
                width = hosts.iter().map(String::len).max().unwrap_or(0).max(width);
                let bar = view.add(ProgressBar::new(hosts.len() as u64));
                bar.set_style(phase_style.clone());
                bar.set_prefix(phase.clone());
                bar.enable_steady_tick(Duration::from_millis(200));
                phase_bar = Some(bar);
                host_lines.clear();
                if hosts.len() <= MAX_HOST_LINES {
                    for host in hosts {
                        let line = view.add(ProgressBar::new_spinner());
                        line.set_style(host_style.clone());
                        line.set_prefix(format!("{host:<width$}"));
                        line.set_message("waiting to start");
                        line.enable_steady_tick(Duration::from_millis(120));
                        host_lines.insert(host.clone(), line);
                    }
                }
            }
            Event::TaskStarted { host, task } => {
                if let Some(line) = host_lines.get(host) {
                    line.set_message(task.clone());
                }
            }
            Event::PhaseFinished { phase, duration_ms } => {
                for (_, line) in std::mem::take(&mut host_lines) {
                    line.finish_and_clear();
                }
                if let Some(bar) = phase_bar.take() {
                    bar.finish_and_clear();
                }
                let _ = view.println(format!("{phase} done in {}", seconds(*duration_ms)));
            }
            Event::HostFailed { host, .. } => {
                if let Some(line) = host_lines.remove(host) {
                    line.finish_and_clear();
                }
                if let Some(bar) = &phase_bar {
                    bar.inc(1);
                }
                if let Some(text) = describe(&event, detail, width) {
                    let _ = view.println(text);
                }
            }
            Event::Summary { .. } => {
                let _ = view.clear();
                if let Some(text) = describe(&event, detail, width) {
                    println!("{text}");
                }
            }
            _ => {
                if let Some(text) = describe(&event, detail, width) {
                    let _ = view.println(text);
                }
            }
        }
    }
    let _ = view.clear();
}

fn summary_table(hosts: &BTreeMap<String, HostSummary>) -> String {
    let width = hosts.keys().map(String::len).max().unwrap_or(4).max(4);
    let mut text = format!(
        "{:<width$}  {:>5}  {:>7}  {:>6}  {:>7}  {:>11}",
        "HOST", "OK", "CHANGED", "FAILED", "SKIPPED", "ROUND TRIPS"
    );
    for (host, counts) in hosts {
        text.push_str(&format!(
            "\n{host:<width$}  {:>5}  {:>7}  {:>6}  {:>7}  {:>11}",
            counts.ok, counts.changed, counts.failed, counts.skipped, counts.round_trips
        ));
    }
    text
}

fn status_word(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Ok => "ok",
        TaskStatus::Changed => "changed",
        TaskStatus::Failed => "FAILED",
        TaskStatus::Skipped => "skipped",
    }
}

fn seconds(milliseconds: u64) -> String {
    format!("{:.1}s", milliseconds as f64 / 1000.0)
}

fn plural(count: usize) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NORMAL: Detail = Detail {
        show_ok: false,
        show_diffs: true,
        quiet: false,
    };

    #[test]
    fn changes_show_their_diff_and_ok_tasks_only_when_asked() {
        let changed = Event::TaskResult {
            host: "host01".into(),
            task: "sysctl net.ipv4.ip_forward".into(),
            status: TaskStatus::Changed,
            diff: Some("- 0\n+ 1".into()),
            message: None,
            duration_ms: 3,
        };
        assert_eq!(
            describe(&changed, NORMAL, 6).as_deref(),
            Some("host01  changed  sysctl net.ipv4.ip_forward\n          - 0\n          + 1")
        );
        let ok = Event::TaskResult {
            host: "host01".into(),
            task: "sysctl net.ipv4.ip_forward".into(),
            status: TaskStatus::Ok,
            diff: None,
            message: None,
            duration_ms: 1,
        };
        assert_eq!(describe(&ok, NORMAL, 6), None);
        let verbose = Detail {
            show_ok: true,
            ..NORMAL
        };
        assert_eq!(
            describe(&ok, verbose, 6).as_deref(),
            Some("host01  ok       sysctl net.ipv4.ip_forward")
        );
    }

    #[test]
    fn a_failed_host_names_the_step_and_the_hint_even_when_quiet() {
        let failed = Event::HostFailed {
            host: "host03".into(),
            step: "install packages".into(),
            message: "the dpkg lock is still held by PID 42 (unattended-upgr)".into(),
            hint: Some("wait for it to finish or stop it, then run kbs again".into()),
        };
        let quiet = Detail {
            quiet: true,
            ..NORMAL
        };
        assert_eq!(
            describe(&failed, quiet, 6).as_deref(),
            Some(
                "host03  FAILED   install packages: the dpkg lock is still held by PID 42 (unattended-upgr)\n\
                 \x20         hint: wait for it to finish or stop it, then run kbs again"
            )
        );
    }

    #[test]
    fn the_summary_is_a_table_of_every_host() {
        let mut hosts = BTreeMap::new();
        hosts.insert(
            "host01".to_string(),
            HostSummary {
                ok: 20,
                changed: 3,
                failed: 0,
                skipped: 1,
                round_trips: 31,
            },
        );
        assert_eq!(
            summary_table(&hosts),
            "HOST       OK  CHANGED  FAILED  SKIPPED  ROUND TRIPS\nhost01     20        3       0        1           31"
        );
    }
}
