//! Add-ons: Calico, Longhorn, an ingress controller and metrics-server, installed with kubectl
//! on the first control plane after the nodes have joined.
//!
//! [`install`] works in this order, and each step finishes for every add-on before the next:
//! 1. plan: the enabled add-ons and their versions ([`versions`]), their upstream manifests and
//!    the documents kbs renders itself (Calico's `Installation`, Traefik's Deployment);
//! 2. read every upstream manifest (upstream, `addons.manifests.mirror` or `.directory`, see
//!    [`source`]) and check its SHA-256 against the inventory or the lock file ([`lock`]) —
//!    a mismatch stops here, before anything touches the cluster;
//! 3. Longhorn's preflight on every node ([`longhorn`]);
//! 4. per add-on: if the cluster's record (`kube-system/kbs-addons`) already holds the same
//!    version and file sums and the add-on is ready, nothing is done ("unchanged"); otherwise
//!    upload its files (0600 in 0700 directories), `kubectl apply --server-side`, the ingress
//!    Service and IngressClass fixes ([`ingress`]), wait until ready ([`readiness`]) and record.
//!
//! ```no_run
//! # async fn demo(inventory: &kbs_inventory::Inventory, cp: &kbs_engine::Remote,
//! #               nodes: Vec<(String, &kbs_engine::Remote)>) -> Result<(), Box<dyn std::error::Error>> {
//! use kbs_cluster::addons::{install, AddonContext};
//! let ctx = AddonContext::new(inventory, 36, "host01", cp, nodes)?;
//! let report = install(&ctx, &|event| eprintln!("{event}")).await?;
//! println!("{} add-ons, changed: {}", report.addons.len(), report.changed());
//! # Ok(()) }
//! ```

pub mod error;
pub mod ingress;
pub mod kubectl;
pub mod lock;
pub mod longhorn;
pub mod plan;
pub mod readiness;
pub mod source;
pub mod versions;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kbs_engine::{Library, Remote, Renderer, Script, Upload};
use kbs_inventory::Inventory;

pub use error::{AddonError, Mismatch, NodeLack};
pub use ingress::{ingress_nodes, IngressTarget};
pub use plan::{plan, AddonPlan, PlannedFile};
pub use source::{Fetch, HttpFetch, Location};
pub use versions::{addon_versions, newest_minor_for, AddonKind, AddonVersions, ADDON_TABLE};

use kubectl::{apply_script, crd_not_ready_yet, Kubectl, REMOTE_DIR};
use readiness::State;

/// How long kbs waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// For one add-on to become ready after it was applied.
    pub ready: Duration,
    /// For a just-created CRD to be served, so objects of its kind can be applied.
    pub crds: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            ready: Duration::from_secs(600),
            crds: Duration::from_secs(60),
        }
    }
}

/// Everything [`install`] needs.
pub struct AddonContext<'a> {
    pub inventory: &'a Inventory,
    /// The inventory file: the lock file is written beside it.
    pub inventory_path: PathBuf,
    /// The Kubernetes minor (36 for 1.36): picks the versions.
    pub minor: u32,
    /// The first control plane's name and connection: kubectl runs there with admin.conf.
    pub kubectl_host: String,
    pub kubectl: &'a Remote,
    /// Every node (name, connection), for Longhorn's preflight.
    pub nodes: Vec<(String, &'a Remote)>,
    pub deadlines: Deadlines,
    /// Downloads manifests; [`HttpFetch`] unless a test replaces it.
    pub fetch: Arc<dyn Fetch>,
    /// Renders kbs' own add-on documents (`templates/addons/`); `--templates DIR` may override.
    pub renderer: Renderer,
}

impl<'a> AddonContext<'a> {
    /// Defaults: the inventory's own path, [`Deadlines::default`], HTTP, the built-in templates.
    pub fn new(
        inventory: &'a Inventory,
        minor: u32,
        kubectl_host: &str,
        kubectl: &'a Remote,
        nodes: Vec<(String, &'a Remote)>,
    ) -> Result<Self, AddonError> {
        let library = Library::embedded().map_err(|e| AddonError::Render(e.to_string()))?;
        Ok(AddonContext {
            inventory,
            inventory_path: inventory.source_path.clone(),
            minor,
            kubectl_host: kubectl_host.to_string(),
            kubectl,
            nodes,
            deadlines: Deadlines::default(),
            fetch: Arc::new(HttpFetch::default()),
            renderer: Renderer::new(&library),
        })
    }
}

/// What [`install`] reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddonEvent {
    Read {
        addon: String,
        file: String,
        origin: String,
    },
    LockWritten {
        path: PathBuf,
    },
    Preflight {
        nodes: usize,
    },
    Unchanged {
        addon: String,
        version: String,
    },
    Applied {
        addon: String,
        file: String,
    },
    Patched {
        addon: String,
        what: String,
    },
    Waiting {
        addon: String,
        why: String,
    },
    Ready {
        addon: String,
        version: String,
        elapsed: Duration,
    },
}

impl fmt::Display for AddonEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddonEvent::Read { addon, file, origin } => write!(f, "{addon}: read {file} from {origin}"),
            AddonEvent::LockWritten { path } => write!(f, "recorded manifest sums in {}", path.display()),
            AddonEvent::Preflight { nodes } => write!(f, "longhorn: preflight passed on {nodes} nodes"),
            AddonEvent::Unchanged { addon, version } => write!(f, "{addon} {version}: unchanged"),
            AddonEvent::Applied { addon, file } => write!(f, "{addon}: applied {file}"),
            AddonEvent::Patched { addon, what } => write!(f, "{addon}: {what}"),
            AddonEvent::Waiting { addon, why } => write!(f, "{addon}: waiting: {why}"),
            AddonEvent::Ready {
                addon,
                version,
                elapsed,
            } => {
                write!(f, "{addon} {version}: ready after {:.1} s", elapsed.as_secs_f64())
            }
        }
    }
}

/// The progress callback.
pub type Progress<'a> = &'a (dyn Fn(&AddonEvent) + Send + Sync);

/// One add-on's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonOutcome {
    pub name: String,
    pub version: String,
    /// False when the cluster already had exactly this and it was ready.
    pub changed: bool,
    pub elapsed: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddonReport {
    pub addons: Vec<AddonOutcome>,
    pub lock_file: PathBuf,
    /// New manifest sums were recorded in the lock file.
    pub lock_written: bool,
    /// E.g. ingress-nginx on a minor it was not tested with.
    pub warnings: Vec<String>,
}

impl AddonReport {
    pub fn changed(&self) -> bool {
        self.addons.iter().any(|a| a.changed)
    }
}

/// An add-on's files as they will be uploaded, and the sum the cluster's record keeps.
struct Bundle {
    plan: AddonPlan,
    files: Vec<(String, Vec<u8>)>,
}

impl Bundle {
    /// `<version> sha256:<sum over the file names and their sums>`: any change to any file
    /// (or to the rendered pod subnet) changes it.
    fn record_value(&self) -> String {
        let listing: String = self
            .files
            .iter()
            .map(|(name, contents)| format!("{name} {}\n", lock::sha256_hex(contents)))
            .collect();
        format!(
            "{} sha256:{}",
            self.plan.version,
            lock::sha256_hex(listing.as_bytes())
        )
    }
}

/// Installs every enabled add-on; see the module documentation for the order.
pub async fn install(ctx: &AddonContext<'_>, progress: Progress<'_>) -> Result<AddonReport, AddonError> {
    let plans = plan(ctx.inventory, ctx.minor, &ctx.renderer)?;
    let warnings = plans.iter().filter_map(|p| p.warning.clone()).collect();
    let (bundles, lock_file, lock_written) = read_and_verify(ctx, plans, progress).await?;
    if bundles.iter().any(|b| b.plan.kind == AddonKind::Longhorn) {
        longhorn::preflight(&ctx.nodes).await?;
        progress(&AddonEvent::Preflight {
            nodes: ctx.nodes.len(),
        });
    }
    let kubectl = Kubectl {
        host: &ctx.kubectl_host,
        remote: ctx.kubectl,
    };
    let record = kubectl.read_record().await?;
    let mut addons = Vec::new();
    for bundle in &bundles {
        addons.push(install_one(ctx, &kubectl, &record, bundle, progress).await?);
    }
    Ok(AddonReport {
        addons,
        lock_file,
        lock_written,
        warnings,
    })
}

/// Reads every upstream file and checks every sum; writes the lock file only when all match.
async fn read_and_verify(
    ctx: &AddonContext<'_>,
    plans: Vec<AddonPlan>,
    progress: Progress<'_>,
) -> Result<(Vec<Bundle>, PathBuf, bool), AddonError> {
    let source = &ctx.inventory.addons.manifests;
    let mut bundles = Vec::new();
    let mut origins = BTreeMap::new();
    for plan in plans {
        let mut files = Vec::new();
        for file in &plan.files {
            let contents = match file {
                PlannedFile::Rendered { contents, .. } => contents.clone().into_bytes(),
                PlannedFile::Upstream { name, url } => {
                    let location = source::locate(source, url);
                    let bytes = source::read(&ctx.fetch, &location, plan.kind.name(), name).await?;
                    progress(&AddonEvent::Read {
                        addon: plan.kind.name().to_string(),
                        file: name.clone(),
                        origin: location.to_string(),
                    });
                    origins.insert(url.clone(), location.to_string());
                    bytes
                }
            };
            files.push((file.name().to_string(), contents));
        }
        bundles.push(Bundle { plan, files });
    }
    let lock_path = lock::lock_path(&ctx.inventory_path);
    let origins = &origins;
    let candidates: Vec<lock::Candidate> = bundles
        .iter()
        .flat_map(|b| {
            b.plan
                .files
                .iter()
                .zip(&b.files)
                .filter_map(move |(planned, (name, contents))| match planned {
                    PlannedFile::Upstream { url, .. } => Some(lock::Candidate {
                        addon: b.plan.kind.name(),
                        file: name,
                        url,
                        origin: origins.get(url).cloned().unwrap_or_else(|| url.clone()),
                        contents,
                        pinned: b
                            .plan
                            .sha256
                            .get(name)
                            .map(|sum| (b.plan.kind.inventory_key(), sum.clone())),
                    }),
                    PlannedFile::Rendered { .. } => None,
                })
        })
        .collect();
    let current = lock::LockFile::read(&lock_path)?;
    let (next, changed) = lock::verify(&current, &candidates, &lock_path)?;
    if changed {
        next.write(&lock_path)?;
        progress(&AddonEvent::LockWritten {
            path: lock_path.clone(),
        });
    }
    Ok((bundles, lock_path, changed))
}

async fn install_one(
    ctx: &AddonContext<'_>,
    kubectl: &Kubectl<'_>,
    record: &BTreeMap<String, String>,
    bundle: &Bundle,
    progress: Progress<'_>,
) -> Result<AddonOutcome, AddonError> {
    let start = Instant::now();
    let kind = bundle.plan.kind;
    let name = kind.name().to_string();
    let version = bundle.plan.version.clone();
    let want = bundle.record_value();
    if record.get(&name) == Some(&want) && readiness::check(kubectl, kind).await? == State::Ready {
        // Same files, and ready: only the ingress fixes may have been undone by someone.
        let fixed = ensure_ingress(kubectl, kind, progress).await?;
        if !fixed {
            progress(&AddonEvent::Unchanged {
                addon: name.clone(),
                version: version.clone(),
            });
        }
        return Ok(AddonOutcome {
            name,
            version,
            changed: fixed,
            elapsed: start.elapsed(),
        });
    }
    let dir = format!("{REMOTE_DIR}/{name}");
    kubectl
        .run_ok(
            &format!("create {dir}"),
            format!("umask 077 && mkdir -p {dir} && chmod 0700 {REMOTE_DIR} {dir}"),
        )
        .await?;
    for (file, contents) in &bundle.files {
        let path = format!("{dir}/{file}");
        ctx.kubectl
            .upload(&Upload {
                path: path.clone(),
                contents: contents.clone(),
                mode: 0o600,
                owner: None,
            })
            .await
            .map_err(|e| {
                AddonError::remote(
                    kubectl.host,
                    &format!("upload {path}"),
                    e.message,
                    e.hint
                        .unwrap_or_else(|| "check the host's disk and permissions".into()),
                )
            })?;
        apply_file(ctx, kubectl, &name, file, &path).await?;
        progress(&AddonEvent::Applied {
            addon: name.clone(),
            file: file.clone(),
        });
    }
    ensure_ingress(kubectl, kind, progress).await?;
    readiness::wait(kubectl, kind, ctx.deadlines.ready, progress).await?;
    kubectl.write_record(&name, &want).await?;
    progress(&AddonEvent::Ready {
        addon: name.clone(),
        version: version.clone(),
        elapsed: start.elapsed(),
    });
    Ok(AddonOutcome {
        name,
        version,
        changed: true,
        elapsed: start.elapsed(),
    })
}

/// Server-side apply of one uploaded file, trying again while a CRD it needs is not served yet.
async fn apply_file(
    ctx: &AddonContext<'_>,
    kubectl: &Kubectl<'_>,
    addon: &str,
    file: &str,
    path: &str,
) -> Result<(), AddonError> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(500);
    loop {
        let out = kubectl
            .remote
            .exec(&Script::root(apply_script(path)))
            .await
            .map_err(|e| {
                AddonError::remote(
                    kubectl.host,
                    &format!("apply {addon} {file}"),
                    e.message,
                    e.hint
                        .unwrap_or_else(|| "check that the host is reachable, then re-run kbs".into()),
                )
            })?;
        if out.success() {
            return Ok(());
        }
        if !crd_not_ready_yet(&out.stderr) || start.elapsed() >= ctx.deadlines.crds {
            return Err(AddonError::remote(
                kubectl.host,
                &format!("kubectl apply of {addon} {file}"),
                out.tail(),
                "read kubectl's message above; fix the cause and re-run kbs apply",
            ));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// The ingress controller's Service on nodePorts 80/443 and its IngressClass the default; true
/// when something had to change. Both objects are read in one round trip first.
async fn ensure_ingress(
    kubectl: &Kubectl<'_>,
    kind: AddonKind,
    progress: Progress<'_>,
) -> Result<bool, AddonError> {
    if !matches!(kind, AddonKind::IngressNginx | AddonKind::Traefik) {
        return Ok(false);
    }
    let t = IngressTarget::for_kind(kind);
    let target = |resource: &str, namespace: Option<&str>, name: &str| kubectl::Target {
        resource: resource.to_string(),
        namespace: namespace.map(str::to_string),
        name: Some(name.to_string()),
    };
    let found = kubectl
        .get_many(&[
            target("service", Some(t.namespace), t.service),
            target("ingressclass", None, t.ingress_class),
        ])
        .await?;
    let pinned = matches!(&found[0], kubectl::Got::Found(svc) if t.service_pinned(svc));
    let default = matches!(&found[1], kubectl::Got::Found(class) if IngressTarget::class_is_default(class));
    if !pinned {
        kubectl
            .run_ok(
                "patch the ingress Service to nodePorts 80/443",
                t.patch_service_script(),
            )
            .await?;
        progress(&AddonEvent::Patched {
            addon: kind.name().to_string(),
            what: format!("service {}/{} on nodePorts 80 and 443", t.namespace, t.service),
        });
    }
    if !default {
        kubectl
            .run_ok("mark the IngressClass default", t.default_class_script())
            .await?;
        progress(&AddonEvent::Patched {
            addon: kind.name().to_string(),
            what: format!("ingressclass {} is the default", t.ingress_class),
        });
    }
    Ok(!pinned || !default)
}
