//! The kbs task engine: playbooks of tasks, modules that check before they change, facts, and a
//! runner that streams events.
//!
//! A run is a list of [`Phase`]s (playbook + host set + strategy). On each host the engine gathers
//! [`Facts`] once, then runs each task's module: the module checks the host's state (one remote
//! script), reports `ok` or `changed` with a diff, and in [`Mode::Apply`] changes only what differs.
//! [`Mode::Check`] (`kbs plan`, `--dry-run`) changes nothing. A host that fails stops alone; the
//! others go on. Everything the reporters show arrives as [`Event`]s.
//!
//! ```
//! use std::sync::Arc;
//! use kbs_engine::testing::FakeTransport;
//! use kbs_engine::{Collector, Engine, Library, Mode, Phase, Transport, Vars};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let library = Library::from_sources(
//!     [("hello.yaml".to_string(), "name: hello\ntasks:\n  - name: greet\n    module: command\n    args: { cmd: 'echo hi' }\n".to_string())],
//!     [],
//! ).unwrap();
//! let inventory = kbs_inventory::Inventory::from_str(
//!     "cluster:\n  podSubnet: 10.244.0.0/16\nhosts:\n  - name: host01\n    address: 10.0.0.1\n    roles: [control-plane]\n",
//!     std::path::Path::new("inventory.yaml"),
//! ).unwrap().inventory;
//! // In kbs: SshTransport::new(connection, privilege).
//! let fake: Arc<dyn Transport> = Arc::new(FakeTransport::rules(vec![]));
//! let events = Arc::new(Collector::default());
//! let engine = Engine::new(library, vec![(inventory.hosts[0].clone(), fake)], Vars::default(), events.clone());
//! let report = engine.run(&[Phase::new("hello", "hello")], Mode::Check, None).await.unwrap();
//! assert!(report.success());
//! assert_eq!(report.hosts["host01"].changed, 1); // "would run: echo hi"
//! assert_eq!(report.hosts["host01"].round_trips, 1); // facts; check mode never ran the command
//! # });
//! ```

//! Wiring it into the CLI (events to a reporter task over a channel, NDJSON with
//! [`Event::to_json`]; `Summary` is always the last event of [`Engine::run`]):
//!
//! ```no_run
//! # async fn demo(inventory: kbs_inventory::Inventory, conns: Vec<(kbs_ssh::Connection, kbs_ssh::Privilege)>,
//! #               vars: kbs_engine::Vars) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use kbs_engine::{Engine, Event, Library, Mode, Phase, SshTransport, Transport};
//!
//! let library = Library::load(None, None)?; // or Some(dir) from --playbooks
//! let hosts: Vec<(kbs_inventory::Host, Arc<dyn Transport>)> = inventory
//!     .hosts
//!     .iter()
//!     .cloned()
//!     .zip(conns)
//!     .map(|(h, (conn, privilege))| (h, Arc::new(SshTransport::new(Arc::new(conn), privilege)) as Arc<dyn Transport>))
//!     .collect();
//! let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
//! let reporter = tokio::spawn(async move {
//!     while let Some(event) = rx.recv().await {
//!         println!("{}", event.to_json());
//!         if matches!(event, Event::Summary { .. }) { break; }
//!     }
//! });
//! let engine = Engine::new(library, hosts, vars, Arc::new(tx)).window(64);
//! let report = engine.run(&[Phase::new("prepare", "prepare")], Mode::Check, Some("prepare")).await?;
//! reporter.await?;
//! std::process::exit(if report.success() { 0 } else { 1 });
//! # }
//! ```

pub mod batch;
pub mod events;
pub mod facts;
pub mod lock;
pub mod modules;
pub mod playbook;
pub mod render;
pub mod runner;
pub mod strategy;
pub mod testing;
pub mod transport;

pub use events::{Collector, Event, EventSink, FnSink, HostSummary, NoEvents, TaskStatus};
pub use facts::{Facts, KubeadmState};
pub use modules::{ModuleError, Outcome, Timing};
pub use playbook::{HostSet, Library, LibraryError, Playbook, Strategy, Task};
pub use render::{RenderError, Renderer};
pub use runner::{Engine, EngineError, HostFailure, Mode, Phase, PhaseGuard, RunReport, Vars};
pub use transport::{
    sh_quote, ExecResult, Remote, Script, SshTransport, Transport, TransportError, Unreachable, Upload,
};
