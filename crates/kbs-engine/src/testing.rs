//! A fake [`Transport`] for tests: it records every script and upload and answers with whatever
//! its handler says, so module logic is tested without touching any real machine. A batch of
//! checks (see [`crate::batch`]) is recorded as one call and answered part by part.
//!
//! ```
//! use kbs_engine::testing::{FakeTransport, ok_with};
//! let fake = FakeTransport::rules(vec![("sysctl -n", ok_with("0\n"))]);
//! assert!(fake.scripts().is_empty());
//! ```

use std::sync::Mutex;
use std::time::Duration;

use crate::transport::{BoxFuture, ExecResult, Script, Transport, TransportError, Upload};

type Handler = Box<dyn Fn(&Script) -> Result<ExecResult, TransportError> + Send + Sync>;
type UploadHook = Box<dyn Fn(&Upload) + Send + Sync>;

/// One call the fake received.
#[derive(Debug, Clone)]
pub enum Call {
    Exec(Script),
    Upload(Upload),
}

pub struct FakeTransport {
    handler: Handler,
    on_upload: UploadHook,
    delay: Duration,
    log: Mutex<Vec<Call>>,
}

/// Exit 0 with this stdout.
pub fn ok_with(stdout: &str) -> ExecResult {
    ExecResult {
        code: Some(0),
        stdout: stdout.into(),
        stderr: String::new(),
    }
}

/// Exit `code` with this stderr.
pub fn fail_with(code: u32, stderr: &str) -> ExecResult {
    ExecResult {
        code: Some(code),
        stdout: String::new(),
        stderr: stderr.into(),
    }
}

impl FakeTransport {
    /// Answers every script with `handler`.
    pub fn new(handler: impl Fn(&Script) -> ExecResult + Send + Sync + 'static) -> Self {
        FakeTransport {
            handler: Box::new(move |s| Ok(handler(s))),
            on_upload: Box::new(|_| {}),
            delay: Duration::ZERO,
            log: Mutex::new(Vec::new()),
        }
    }

    /// The first rule whose text occurs in the script answers; no match answers exit 0, no output.
    pub fn rules(rules: Vec<(&'static str, ExecResult)>) -> Self {
        FakeTransport::new(move |s| {
            rules
                .iter()
                .find(|(needle, _)| s.text.contains(needle))
                .map(|(_, r)| r.clone())
                .unwrap_or_else(|| ok_with(""))
        })
    }

    /// Every exec fails as if the connection broke.
    pub fn unreachable(message: &str) -> Self {
        let message = message.to_string();
        FakeTransport {
            handler: Box::new(move |_| {
                Err(TransportError {
                    message: message.clone(),
                    hint: None,
                })
            }),
            on_upload: Box::new(|_| {}),
            delay: Duration::ZERO,
            log: Mutex::new(Vec::new()),
        }
    }

    /// Each call takes this long (a slow host).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Called for every upload (e.g. to update a simulated file system).
    pub fn on_upload(mut self, hook: impl Fn(&Upload) + Send + Sync + 'static) -> Self {
        self.on_upload = Box::new(hook);
        self
    }

    pub fn calls(&self) -> Vec<Call> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn scripts(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Exec(s) => Some(s.text),
                Call::Upload(_) => None,
            })
            .collect()
    }

    pub fn uploads(&self) -> Vec<Upload> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Upload(u) => Some(u),
                Call::Exec(_) => None,
            })
            .collect()
    }

    fn record(&self, call: Call) {
        if let Ok(mut l) = self.log.lock() {
            l.push(call);
        }
    }
}

impl Transport for FakeTransport {
    fn exec<'a>(&'a self, script: &'a Script) -> BoxFuture<'a, Result<ExecResult, TransportError>> {
        Box::pin(async move {
            self.record(Call::Exec(script.clone()));
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            // A batch of checks is one call; the handler answers each part as if sent alone.
            if let Some(parts) = crate::batch::split(&script.text) {
                let results = parts
                    .into_iter()
                    .map(|text| {
                        (self.handler)(&Script {
                            text,
                            ..script.clone()
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(ExecResult {
                    code: Some(0),
                    stdout: crate::batch::frame(&results),
                    stderr: String::new(),
                });
            }
            (self.handler)(script)
        })
    }

    fn upload<'a>(&'a self, file: &'a Upload) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            self.record(Call::Upload(file.clone()));
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            (self.on_upload)(file);
            Ok(())
        })
    }
}
