//! Add-on installation against a fake first control plane (kbs-engine's FakeTransport answering
//! kubectl like a small cluster) and a fake download server: the order of steps, the checksum
//! gate before anything is applied, mirror resolution, Longhorn's preflight, the ingress fixes,
//! and a second run that changes nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kbs_cluster::addons::kubectl::answer_batch;
use kbs_cluster::addons::lock::sha256_hex;
use kbs_cluster::addons::{install, AddonContext, AddonEvent, Deadlines, Fetch};
use kbs_engine::testing::{fail_with, ok_with, FakeTransport};
use kbs_engine::{ExecResult, Remote, Script};
use kbs_inventory::Inventory;

/// Serves every URL it was given; records what was asked.
#[derive(Default)]
struct FakeFetch {
    files: BTreeMap<String, Vec<u8>>,
    asked: Mutex<Vec<String>>,
}

impl Fetch for FakeFetch {
    fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        self.asked.lock().unwrap().push(url.to_string());
        self.files
            .get(url)
            .cloned()
            .ok_or_else(|| "the server answered HTTP 404".to_string())
    }
}

/// The first control plane as kubectl sees the cluster: objects appear once applied, the
/// ingress Service is pinned once patched, the record ConfigMap keeps what was written.
#[derive(Default)]
struct Cluster {
    applied: Vec<String>,
    service_pinned: bool,
    class_default: bool,
    record: BTreeMap<String, String>,
    /// Calico's operator refuses the pool (TigeraStatus Degraded).
    calico_broken: bool,
}

fn handle(state: &Mutex<Cluster>, script: &Script) -> ExecResult {
    // Several gets in one script: answer each as if sent alone, framed as the script prints.
    if let Some(answer) = answer_batch(script, |s| handle(state, s)) {
        return answer;
    }
    let mut c = state.lock().unwrap();
    let t = script.text.as_str();
    if t.contains("apply --server-side") && t.contains("--field-manager kbs-addon-") {
        let json_start = t.find('{').unwrap();
        let json_end = t.rfind('}').unwrap();
        let cm: serde_json::Value = serde_json::from_str(&t[json_start..=json_end]).unwrap();
        for (k, v) in cm["data"].as_object().unwrap() {
            c.record.insert(k.clone(), v.as_str().unwrap().to_string());
        }
        return ok_with("configmap/kbs-addons serverside-applied\n");
    }
    if t.contains(" apply --server-side --force-conflicts --field-manager kbs -f ") {
        c.applied.push(t.rsplit(' ').next().unwrap().to_string());
        return ok_with("serverside-applied\n");
    }
    if t.contains("get configmap kbs-addons") {
        if c.record.is_empty() {
            return fail_with(
                1,
                "Error from server (NotFound): configmaps \"kbs-addons\" not found\n",
            );
        }
        return ok_with(&serde_json::json!({"data": c.record}).to_string());
    }
    if t.contains("patch service") {
        c.service_pinned = true;
        return ok_with("service/x patched\n");
    }
    if t.contains("annotate ingressclass") {
        c.class_default = true;
        return ok_with("ingressclass.networking.k8s.io/x annotated\n");
    }
    if t.contains("get service") {
        let node_port = if c.service_pinned {
            (80, 443)
        } else {
            (31080, 31443)
        };
        return ok_with(
            &serde_json::json!({"spec": {"type": "NodePort", "ports": [
                {"port": 80, "nodePort": node_port.0}, {"port": 443, "nodePort": node_port.1}]}})
            .to_string(),
        );
    }
    if t.contains("get ingressclass") {
        let ann = if c.class_default {
            serde_json::json!({"ingressclass.kubernetes.io/is-default-class": "true"})
        } else {
            serde_json::json!({})
        };
        return ok_with(&serde_json::json!({"metadata": {"annotations": ann}}).to_string());
    }
    let available = serde_json::json!({"status": {"conditions": [{"type": "Available", "status": "True"}],
        "desiredNumberScheduled": 2, "numberReady": 2}});
    if t.contains("get tigerastatus") && c.calico_broken {
        return ok_with(
            r#"{"status":{"conditions":[{"type":"Available","status":"False","message":"Could not resolve CalicoNetwork IPPool"}]}}"#,
        );
    }
    if t.contains("get tigerastatus") || t.contains("get deployment") || t.contains("get daemonset") {
        if c.applied.is_empty() {
            return fail_with(1, "Error from server (NotFound): not found\n");
        }
        return ok_with(&available.to_string());
    }
    if t.contains("get nodes") {
        return ok_with(
            &serde_json::json!({"items": [{"metadata": {"name": "host01"},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}]})
            .to_string(),
        );
    }
    if t.contains("iscsid") {
        return ok_with("iscsid=active\nnfs-common=installed\nmultipathd=inactive\n");
    }
    ok_with("")
}

struct Setup {
    _dir: tempfile::TempDir,
    inventory: Inventory,
    fetch: Arc<FakeFetch>,
}

const INVENTORY: &str = "cluster:
  podSubnet: 172.31.0.0/16
hosts:
  - name: host01
    address: 192.168.61.11
    roles: [control-plane, worker]
addons:
  calico:
  longhorn:
  ingress:
  metricsServer:
";

fn setup(extra: &str) -> Setup {
    setup_with(&format!("{INVENTORY}{extra}"))
}

/// INVENTORY with the add-on line `key` replaced by `line`.
fn replacing(key: &str, line: &str) -> String {
    let from = format!("  {key}:\n");
    assert!(INVENTORY.contains(&from));
    INVENTORY.replace(&from, line)
}

fn setup_with(yaml: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.yaml");
    std::fs::write(&path, yaml).unwrap();
    let inventory = kbs_inventory::load(&path).unwrap().inventory;
    let mut fetch = FakeFetch::default();
    // The fake server holds every upstream file of the plain inventory.
    let plain = Inventory::from_str(INVENTORY, &path).unwrap().inventory;
    for kind in kbs_cluster::addons::plan::plan(&plain, 36, &renderer())
        .unwrap()
        .iter()
        .flat_map(|p| p.files.clone())
    {
        if let kbs_cluster::addons::PlannedFile::Upstream { url, .. } = kind {
            let contents = format!("# upstream {url}\n").into_bytes();
            fetch.files.insert(url.clone(), contents.clone());
            fetch.files.insert(
                format!("http://10.61.0.1/manifests/{}", url.split_once("://").unwrap().1),
                contents,
            );
        }
    }
    Setup {
        _dir: dir,
        inventory,
        fetch: Arc::new(fetch),
    }
}

fn renderer() -> kbs_engine::Renderer {
    kbs_engine::Renderer::new(&kbs_engine::Library::embedded().unwrap())
}

fn context<'a>(s: &'a Setup, remote: &'a Remote) -> AddonContext<'a> {
    let mut ctx = AddonContext::new(
        &s.inventory,
        36,
        "host01",
        remote,
        vec![("host01".into(), remote)],
    )
    .unwrap();
    ctx.fetch = s.fetch.clone();
    ctx.deadlines = Deadlines {
        ready: Duration::from_secs(2),
        crds: Duration::from_secs(1),
    };
    ctx
}

fn fake_cluster() -> (Arc<FakeTransport>, Arc<Mutex<Cluster>>) {
    let state = Arc::new(Mutex::new(Cluster::default()));
    let s = state.clone();
    (
        Arc::new(FakeTransport::new(move |script| handle(&s, script))),
        state,
    )
}

fn events() -> (Arc<Mutex<Vec<String>>>, impl Fn(&AddonEvent) + Send + Sync) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    (log, move |e: &AddonEvent| l.lock().unwrap().push(e.to_string()))
}

#[tokio::test]
async fn installs_in_order_records_the_lock_and_a_second_run_changes_nothing() {
    let s = setup("");
    let (fake, state) = fake_cluster();
    let remote = Remote::new(fake.clone());
    let ctx = context(&s, &remote);
    let (log, progress) = events();
    let report = install(&ctx, &progress).await.unwrap();
    assert!(report.changed());
    assert!(report.lock_written);
    let names: Vec<&str> = report.addons.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        ["calico", "longhorn", "traefik", "metrics-server"],
        "book's order, Traefik by default"
    );

    // Applied server-side, in order, from the uploaded files.
    let applied = state.lock().unwrap().applied.clone();
    let dir = "/etc/kubernetes/kbs/addons";
    assert_eq!(
        applied,
        [
            format!("{dir}/calico/operator-crds.yaml"),
            format!("{dir}/calico/tigera-operator.yaml"),
            format!("{dir}/calico/installation.yaml"),
            format!("{dir}/longhorn/longhorn.yaml"),
            format!("{dir}/traefik/kubernetes-crd-definition-v1.yml"),
            format!("{dir}/traefik/kubernetes-crd-rbac.yml"),
            format!("{dir}/traefik/traefik.yaml"),
            format!("{dir}/metrics-server/components.yaml"),
        ]
    );
    let uploads = fake.uploads();
    assert!(uploads.iter().all(|u| u.mode == 0o600), "{uploads:?}");
    let installation = uploads
        .iter()
        .find(|u| u.path.ends_with("/installation.yaml"))
        .unwrap();
    let text = String::from_utf8(installation.contents.clone()).unwrap();
    assert!(text.contains("cidr: 172.31.0.0/16"), "{text}");
    assert!(text.contains("kind: Installation"), "{text}");
    assert!(fake
        .scripts()
        .iter()
        .any(|s| s.contains("umask 077 && mkdir -p /etc/kubernetes/kbs/addons/calico")));
    // The ingress fixes ran, and readiness was polled.
    let scripts = fake.scripts();
    assert!(
        scripts
            .iter()
            .any(|s| s.contains("-n traefik patch service traefik --type merge")),
        "{scripts:?}"
    );
    assert!(scripts.iter().any(
        |s| s.contains("annotate ingressclass traefik ingressclass.kubernetes.io/is-default-class=true")
    ));
    assert!(scripts.iter().any(|s| s.contains("get tigerastatus calico")));
    // The lock file beside the inventory holds every upstream URL.
    let lock = std::fs::read_to_string(&report.lock_file).unwrap();
    assert_eq!(
        report.lock_file,
        s.inventory.source_path.with_file_name("lab.lock.yaml")
    );
    let crds = "https://raw.githubusercontent.com/projectcalico/calico/v3.33.1/manifests/operator-crds.yaml";
    assert!(
        lock.contains(&format!(
            "{crds}: {}",
            sha256_hex(format!("# upstream {crds}\n").as_bytes())
        )),
        "{lock}"
    );
    assert!(log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.starts_with("calico v3.33.1: ready after")));

    // Second run: same files, all ready: nothing uploaded or applied, each add-on unchanged.
    let (fake2, state2) = (fake.clone(), state.clone());
    let before_uploads = fake2.uploads().len();
    let before_applies = state2.lock().unwrap().applied.len();
    let (log2, progress2) = events();
    let again = install(&ctx, &progress2).await.unwrap();
    assert!(!again.changed(), "{again:?}");
    assert!(!again.lock_written);
    assert_eq!(state2.lock().unwrap().applied.len(), before_applies);
    assert_eq!(fake2.uploads().len(), before_uploads);
    assert!(
        log2.lock()
            .unwrap()
            .contains(&"traefik v3.7.13: unchanged".to_string()),
        "{:?}",
        log2.lock().unwrap()
    );
}

#[tokio::test]
async fn a_changed_manifest_is_refused_before_anything_is_applied() {
    let s = setup("");
    // A lock file from an earlier run recorded other bytes for Longhorn's manifest.
    let url = "https://raw.githubusercontent.com/longhorn/longhorn/v1.12.1/deploy/longhorn.yaml";
    let lock_path = s.inventory.source_path.with_file_name("lab.lock.yaml");
    std::fs::write(
        &lock_path,
        format!("manifests:\n  {url}: {}\n", sha256_hex(b"the old file")),
    )
    .unwrap();
    let (fake, _) = fake_cluster();
    let remote = Remote::new(fake.clone());
    let ctx = context(&s, &remote);
    let (_, progress) = events();
    let err = install(&ctx, &progress).await.unwrap_err().to_string();
    assert!(err.contains("nothing was applied"), "{err}");
    assert!(err.contains("longhorn longhorn.yaml"), "{err}");
    assert!(err.contains(&format!("url:      {url}")), "{err}");
    assert!(
        err.contains(&format!("expected: {}", sha256_hex(b"the old file"))),
        "{err}"
    );
    let actual = sha256_hex(format!("# upstream {url}\n").as_bytes());
    assert!(err.contains(&format!("actual:   {actual}")), "{err}");
    // Nothing reached the cluster: no script at all, no upload; the lock file is untouched.
    assert!(
        fake.scripts().iter().all(|s| !s.contains("apply")),
        "{:?}",
        fake.scripts()
    );
    assert!(fake.scripts().is_empty(), "{:?}", fake.scripts());
    assert!(fake.uploads().is_empty());
    assert!(!std::fs::read_to_string(&lock_path).unwrap().contains(&actual));
}

/// Runs install with `addons.<key>.sha256: {<file>: <sum>}`; returns the error text.
async fn install_with_sum(key: &str, file: &str, sum: &str) -> (Setup, Arc<FakeTransport>, String) {
    let s = setup_with(&replacing(
        key,
        &format!("  {key}: {{sha256: {{{file}: {sum}}}}}\n"),
    ));
    let (fake, _) = fake_cluster();
    let remote = Remote::new(fake.clone());
    let (_, progress) = events();
    let err = install(&context(&s, &remote), &progress)
        .await
        .unwrap_err()
        .to_string();
    (s, fake, err)
}

#[tokio::test]
async fn an_inventory_sum_that_differs_is_refused_too() {
    let (_, fake, err) = install_with_sum("ingress", "kubernetes-crd-rbac.yml", &"0".repeat(64)).await;
    assert!(err.contains("(addons.ingress.sha256 in the inventory)"), "{err}");
    assert!(fake.scripts().is_empty());
}

#[tokio::test]
async fn a_mirror_is_read_at_host_and_path_of_the_upstream_url() {
    let s = setup("  manifests: {mirror: \"http://10.61.0.1/manifests\"}\n");
    let (fake, _) = fake_cluster();
    let remote = Remote::new(fake);
    let (_, progress) = events();
    install(&context(&s, &remote), &progress).await.unwrap();
    let asked = s.fetch.asked.lock().unwrap().clone();
    assert!(
        asked.iter().all(|u| u.starts_with("http://10.61.0.1/manifests/")),
        "{asked:?}"
    );
    assert!(asked.contains(
        &"http://10.61.0.1/manifests/raw.githubusercontent.com/projectcalico/calico/v3.33.1/manifests/operator-crds.yaml".to_string()
    ));
    assert!(asked.contains(
        &"http://10.61.0.1/manifests/github.com/kubernetes-sigs/metrics-server/releases/download/v0.9.0/components.yaml".to_string()
    ));
}

#[tokio::test]
async fn a_local_directory_is_read_and_uploaded() {
    let s = setup("");
    let mirror = s.inventory.source_path.with_file_name("mirror");
    for (url, contents) in &s.fetch.files {
        if let Some(rest) = url.strip_prefix("https://") {
            let path = mirror.join(rest);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
    }
    let path = s.inventory.source_path.clone();
    std::fs::write(&path, format!("{INVENTORY}  manifests: {{directory: mirror}}\n")).unwrap();
    let inventory = kbs_inventory::load(&path).unwrap().inventory;
    let (fake, _) = fake_cluster();
    let remote = Remote::new(fake.clone());
    let mut ctx = context(&s, &remote);
    ctx.inventory = &inventory;
    let (log, progress) = events();
    install(&ctx, &progress).await.unwrap();
    assert!(s.fetch.asked.lock().unwrap().is_empty(), "nothing downloaded");
    let read = log
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.starts_with("calico: read operator-crds.yaml"))
        .cloned()
        .unwrap();
    assert!(
        read.contains(&mirror.join("raw.githubusercontent.com").display().to_string()),
        "{read}"
    );
    let crds = fake
        .uploads()
        .into_iter()
        .find(|u| u.path.ends_with("calico/operator-crds.yaml"))
        .unwrap();
    assert!(String::from_utf8(crds.contents)
        .unwrap()
        .starts_with("# upstream https://raw.githubusercontent.com/projectcalico"));
}

#[tokio::test]
async fn longhorn_is_not_applied_when_a_node_lacks_iscsid() {
    let s = setup("");
    let (fake, state) = fake_cluster();
    let cp = Remote::new(fake.clone());
    let bad = Remote::new(Arc::new(FakeTransport::rules(vec![(
        "iscsid",
        ok_with("iscsid=inactive\nnfs-common=installed\nmultipathd=inactive\n"),
    )])));
    let mut ctx = context(&s, &cp);
    ctx.nodes = vec![("host01".into(), &cp), ("host04".into(), &bad)];
    let (_, progress) = events();
    let err = install(&ctx, &progress).await.unwrap_err().to_string();
    assert!(err.contains("host04: iscsid is not running"), "{err}");
    assert!(!err.contains("host01:"), "{err}");
    assert!(state.lock().unwrap().applied.is_empty(), "nothing applied");
}

#[tokio::test]
async fn a_checksum_for_a_file_the_addon_does_not_have_is_named() {
    let (s, _, err) = install_with_sum("metricsServer", "metrics.yaml", &"a".repeat(64)).await;
    assert!(err.starts_with("addons.metricsServer.sha256 names `metrics.yaml`, which is not a manifest of metrics-server v0.9.0 (its manifests: components.yaml)"), "{err}");
    assert!(
        s.fetch.asked.lock().unwrap().is_empty(),
        "refused before downloading"
    );
}

#[tokio::test]
async fn an_addon_that_never_gets_ready_times_out_with_the_reason() {
    let s = setup("");
    let (fake, state) = fake_cluster();
    state.lock().unwrap().calico_broken = true;
    let remote = Remote::new(fake);
    let mut ctx = context(&s, &remote);
    ctx.deadlines.ready = Duration::from_millis(300);
    let (log, progress) = events();
    let err = install(&ctx, &progress).await.unwrap_err().to_string();
    assert!(err.starts_with("calico is not ready after"), "{err}");
    assert!(err.contains("Could not resolve CalicoNetwork IPPool"), "{err}");
    assert!(log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.starts_with("calico: waiting: tigerastatus calico")));
    assert!(
        state.lock().unwrap().record.is_empty(),
        "not recorded as installed"
    );
}

#[test]
fn lock_path_for_the_example_inventories() {
    assert_eq!(
        kbs_cluster::addons::lock::lock_path(Path::new("inventory/vagrant.yaml")),
        Path::new("inventory/vagrant.lock.yaml")
    );
}

#[tokio::test]
async fn a_changed_pod_subnet_reapplies_calico_only() {
    let s = setup("");
    let (fake, state) = fake_cluster();
    let remote = Remote::new(fake);
    let (_, progress) = events();
    install(&context(&s, &remote), &progress).await.unwrap();
    let before = state.lock().unwrap().applied.len();
    // The same cluster, the inventory now with another pod subnet: Calico's Installation differs.
    let path = s.inventory.source_path.clone();
    std::fs::write(&path, INVENTORY.replace("172.31.0.0/16", "172.30.0.0/16")).unwrap();
    let moved = kbs_inventory::load(&path).unwrap().inventory;
    let mut ctx = context(&s, &remote);
    ctx.inventory = &moved;
    let report = install(&ctx, &progress).await.unwrap();
    let changed: Vec<&str> = report
        .addons
        .iter()
        .filter(|a| a.changed)
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(changed, ["calico"]);
    let applied = state.lock().unwrap().applied[before..].to_vec();
    assert_eq!(applied.len(), 3, "Calico's three files again: {applied:?}");
}
