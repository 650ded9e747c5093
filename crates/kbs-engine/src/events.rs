//! What the engine tells its reporters while it runs. Every event serializes to one NDJSON line
//! tagged by `event`, e.g. `{"event":"summary","hosts":{"host01":{"ok":9,"changed":2,"failed":0,…}}}`.
//!
//! Events go to an [`EventSink`]: a tokio unbounded sender (the CLI's reporter task reads it), a
//! closure wrapped in [`FnSink`], or a [`Collector`] in tests. Emitting never blocks the run.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// How one task ended on one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Ok,
    Changed,
    Failed,
    Skipped,
}

/// Per-host totals of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostSummary {
    pub ok: u32,
    pub changed: u32,
    pub failed: u32,
    pub skipped: u32,
    /// Exec and upload calls on this host's connection, facts included.
    pub round_trips: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    PhaseStarted {
        phase: String,
        hosts: Vec<String>,
        check_only: bool,
    },
    PhaseFinished {
        phase: String,
        duration_ms: u64,
    },
    TaskStarted {
        host: String,
        task: String,
    },
    TaskResult {
        host: String,
        task: String,
        status: TaskStatus,
        /// Unified diff or a one-line "what would change / what changed".
        #[serde(skip_serializing_if = "Option::is_none")]
        diff: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        duration_ms: u64,
    },
    /// The host is blocked on something outside kbs (a held dpkg lock, a port not open yet).
    Waiting {
        host: String,
        what: String,
    },
    /// The host stops here; the other hosts go on.
    HostFailed {
        host: String,
        step: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        hint: Option<String>,
    },
    Summary {
        hosts: BTreeMap<String, HostSummary>,
    },
}

impl Event {
    /// One NDJSON line (without the newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"event\":\"error\",\"message\":{:?}}}", e.to_string()))
    }
}

/// Where events go.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

impl EventSink for tokio::sync::mpsc::UnboundedSender<Event> {
    fn emit(&self, event: Event) {
        // A reporter that went away must not stop the run.
        let _ = self.send(event);
    }
}

/// A closure as an [`EventSink`].
pub struct FnSink<F>(pub F);

impl<F: Fn(Event) + Send + Sync> EventSink for FnSink<F> {
    fn emit(&self, event: Event) {
        (self.0)(event)
    }
}

/// Drops every event.
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: Event) {}
}

/// Keeps every event, for tests and for callers that want the list afterwards.
#[derive(Default)]
pub struct Collector(Mutex<Vec<Event>>);

impl Collector {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl EventSink for Collector {
    fn emit(&self, event: Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_has_the_ndjson_shape() {
        let mut hosts = BTreeMap::new();
        hosts.insert(
            "host01".to_string(),
            HostSummary {
                ok: 3,
                changed: 1,
                failed: 0,
                skipped: 2,
                round_trips: 7,
            },
        );
        assert_eq!(
            Event::Summary { hosts }.to_json(),
            r#"{"event":"summary","hosts":{"host01":{"ok":3,"changed":1,"failed":0,"skipped":2,"round_trips":7}}}"#
        );
    }

    #[test]
    fn task_result_omits_absent_diff() {
        let e = Event::TaskResult {
            host: "h".into(),
            task: "t".into(),
            status: TaskStatus::Ok,
            diff: None,
            message: None,
            duration_ms: 5,
        };
        assert_eq!(
            e.to_json(),
            r#"{"event":"task_result","host":"h","task":"t","status":"ok","duration_ms":5}"#
        );
    }
}
