//! The book's manual sequence, by hand over SSH, on four lab hosts (systemd-nspawn machines running the
//! kbs-sim packages from the lab's signed repository) — and the failures the real components give on the
//! way, with their real messages. kbs itself is not involved: this is what kbs will have to drive.
//!
//! One lab serves the whole file (one bridge per machine), so the file has its own `main`: it brings up
//! four hosts, runs the steps in order (each reported with its time; the cluster steps depend on the ones
//! before, so the first failing cluster step ends the run), and always takes the lab down.
//! Run as root: `cargo build -p kbs-lab -p kbs-sim && cargo test -p kbs-sim --test lab_sequence`.
//!
//! Cluster: host01 init (kube-vip with super-admin.conf), host02 + host03 control planes, host04 worker,
//! VIP 10.61.0.10, pod subnet 172.31.0.0/16, NodePort range 80-32767. Failure cases ride along where they
//! cost least: before init on host01 (config and preflight), on host04 before it becomes the worker (a
//! 1.35 init whose kube-vip mounts admin.conf, and a NodePort outside that API server's default range),
//! on host02/host03 before their joins (CA pin, uploaded certs, token expiry, concurrent joins), and in
//! the add-on steps (client-side apply of the CRDs, a pool outside podSubnet, unapproved serving CSRs).

use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use kbs_lab::{Lab, UpOptions};
use serde_json::Value;

const VIP: &str = "10.61.0.10";
const POD_SUBNET: &str = "172.31.0.0/16";
const ADMIN: &str = "KUBECONFIG=/etc/kubernetes/admin.conf";
const V136: &str = "1.36";
const V135: &str = "1.35";

/// What every step gets: the lab and the cluster's secrets (random per run, never on a command line).
struct Run {
    lab: Lab,
    token: String,
    key: String,
    /// `sha256:…` of host01's CA, once init ran.
    ca_hash: String,
}

type Step = fn(&mut Run);

fn main() {
    kbs_testkit::require_root();
    let started = Instant::now();
    let mut opts = UpOptions::new(4);
    opts.sim_binary = Some(PathBuf::from(env!("CARGO_BIN_EXE_kbs-sim")));
    opts.server_exe = sibling_binary("kbs-lab");
    let lab = Lab::up(opts).unwrap_or_else(|e| {
        eprintln!("kbs-lab up failed: {e}");
        std::process::exit(1);
    });
    println!("lab up: 4 hosts in {:.1} s", started.elapsed().as_secs_f64());
    let mut run = Run {
        lab,
        token: random_token(),
        key: random_hex(32),
        ca_hash: String::new(),
    };

    let steps: &[(&str, Step)] = &[
        ("prepare_hosts", prepare_hosts),
        ("init_refuses_v1beta3_on_1_36", init_refuses_v1beta3_on_1_36),
        (
            "init_refuses_map_kubelet_extra_args",
            init_refuses_map_kubelet_extra_args,
        ),
        (
            "preflight_ip_forward_is_an_error_swap_a_warning",
            preflight_ip_forward_is_an_error_swap_a_warning,
        ),
        (
            "kube_vip_with_admin_conf_deadlocks_init_on_1_35",
            kube_vip_with_admin_conf_deadlocks_init_on_1_35,
        ),
        ("init_host01_behind_kube_vip", init_host01_behind_kube_vip),
        ("join_refuses_a_wrong_ca_hash", join_refuses_a_wrong_ca_hash),
        (
            "control_plane_join_refuses_expired_uploaded_certs_and_worker_join_an_expired_token",
            expired_uploaded_certs_and_expired_token,
        ),
        (
            "concurrent_control_plane_joins_one_refused_then_joined_alone",
            concurrent_control_plane_joins,
        ),
        ("worker_host04_joins", worker_host04_joins),
        ("crictl_lists_the_static_pods", crictl_lists_the_static_pods),
        (
            "calico_crds_refused_client_side_then_created_server_side",
            calico_crds,
        ),
        (
            "calico_pool_outside_pod_subnet_keeps_nodes_not_ready_then_ready",
            calico_pool_and_node_readiness,
        ),
        (
            "metrics_server_not_ready_until_serving_csrs_approved",
            metrics_server_waits_for_serving_csrs,
        ),
        ("longhorn_runs_with_iscsid", longhorn),
        ("ingress_nodeport_80_443_and_default_class", ingress),
        ("four_nodes_ready", four_nodes_ready),
        (
            "vip_moves_when_its_holder_stops_and_the_api_stays_up",
            vip_moves_when_its_holder_stops,
        ),
        (
            "reset_of_the_store_leader_removes_its_etcd_member",
            reset_removes_the_etcd_member,
        ),
    ];
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let mut failed: Vec<&str> = Vec::new();
    for (name, step) in steps {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let t = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| step(&mut run)));
        let verdict = if result.is_ok() { "ok" } else { "FAILED" };
        println!("test {name} ... {verdict} ({:.1} s)", t.elapsed().as_secs_f64());
        if result.is_err() {
            failed.push(name);
            // The cluster steps build on each other: what follows would only fail for this reason.
            break;
        }
    }
    if !failed.is_empty() {
        dump_logs(&run.lab);
    }
    if let Err(e) = run.lab.down() {
        eprintln!("kbs-lab down failed: {e}");
        failed.push("lab_down");
    }
    println!(
        "\n{} steps, {} failed, {:.1} s in all",
        steps.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        println!("failed: {}", failed.join(", "));
        std::process::exit(101);
    }
}

/// `target/<profile>/NAME` next to this test binary (`target/<profile>/deps/…`), if built.
fn sibling_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let mut f = std::fs::File::open("/dev/urandom").expect("open /dev/urandom");
    std::io::Read::read_exact(&mut f, &mut buf).expect("read /dev/urandom");
    buf
}

fn random_hex(n: usize) -> String {
    random_bytes(n).iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn random_token() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let chars: String = random_bytes(22)
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("{}.{}", &chars[..6], &chars[6..])
}

// ---------------------------------------------------------------- helpers

struct Out {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn text(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn run(lab: &Lab, host: &str, command: &str) -> Out {
    let out = lab
        .ssh(host, command)
        .unwrap_or_else(|e| panic!("ssh to {host}: {e}"));
    Out {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `command` and fails the step unless it succeeds; returns its trimmed stdout.
fn sh(lab: &Lab, host: &str, command: &str) -> String {
    let out = run(lab, host, command);
    assert!(out.ok, "{host}: `{command}` failed:\n{}", out.text());
    out.stdout.trim().to_string()
}

/// Writes a file on the guest through its root (no secret ever crosses a command line).
fn put(lab: &Lab, host: &str, path: &str, text: &str) {
    let root = lab.host(host).expect("host").root();
    let at = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(at.parent().expect("parent")).expect("mkdir on the guest");
    std::fs::write(&at, text).unwrap_or_else(|e| panic!("write {}: {e}", at.display()));
}

/// Whether `path` exists on the guest.
fn guest_has(lab: &Lab, host: &str, path: &str) -> bool {
    let root = lab.host(host).expect("host").root();
    root.join(path.trim_start_matches('/')).exists()
}

/// The command failed, and its standard error contains `message`.
fn assert_fails_with(out: &Out, message: &str) {
    assert!(!out.ok, "expected a failure with {message:?}:\n{}", out.text());
    assert!(
        out.stderr.contains(message),
        "expected {message:?}:\n{}",
        out.text()
    );
}

/// The command succeeded, and its standard output contains `message`.
fn assert_succeeds_with(out: &Out, message: &str) {
    assert!(out.ok, "expected success:\n{}", out.text());
    assert!(
        out.stdout.contains(message),
        "expected {message:?}:\n{}",
        out.text()
    );
}

/// Polls `f` every 500 ms until it returns `Some`, or fails after `limit` with `what` and the last state.
fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if start.elapsed() >= limit => {
                panic!("{what}: not within {limit:?}; last: {last}")
            }
            Err(_) => sleep(Duration::from_millis(500)),
        }
    }
}

/// `kubectl ARGS` on host01 as the cluster admin.
fn kubectl(lab: &Lab, args: &str) -> Out {
    run(lab, "host01", &format!("{ADMIN} kubectl {args}"))
}

/// `kubectl ARGS` on host01, which must succeed; its trimmed stdout.
fn kubectl_ok(lab: &Lab, args: &str) -> String {
    sh(lab, "host01", &format!("{ADMIN} kubectl {args}"))
}

fn kubectl_json(lab: &Lab, args: &str) -> Value {
    let text = kubectl_ok(lab, &format!("{args} -o json"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("kubectl {args}: {e}\n{text}"))
}

fn in_parallel(lab: &Lab, hosts: &[&str], f: impl Fn(&Lab, &str) + Sync) {
    std::thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .map(|h| {
                let f = &f;
                s.spawn(move || f(lab, h))
            })
            .collect();
        let panics = handles.into_iter().filter_map(|h| h.join().err()).count();
        assert_eq!(panics, 0, "{panics} host(s) failed (see above)");
    });
}

fn address(host: &str) -> String {
    let n: u8 = host.trim_start_matches("host").parse().expect("hostNN");
    format!("10.61.0.{}", 10 + n)
}

fn dump_logs(lab: &Lab) {
    for h in ["host01", "host02", "host03", "host04"] {
        let out = run(
            lab,
            h,
            "systemctl status kubelet --no-pager 2>&1 | head -20; journalctl -u kubelet --no-pager 2>&1 | grep -v 'config.yaml: no such file' | tail -n 30; ip -o -4 addr show dev host0",
        );
        eprintln!("===== {h}: last kubelet log lines\n{}", out.stdout);
    }
}

// ---------------------------------------------------------------- host preparation

/// The pkgs.k8s.io-style source for `minor`, signed-by its dearmored Release.key.
fn k8s_source(minor: &str) -> String {
    format!(
        "set -e; mkdir -p /etc/apt/keyrings; \
         curl -fsSL http://10.61.0.1/core:/stable:/v{minor}/deb/Release.key | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg; \
         echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] http://10.61.0.1/core:/stable:/v{minor}/deb/ /' > /etc/apt/sources.list.d/kubernetes.list; \
         apt-get update -q >/dev/null"
    )
}

/// The newest package version of the minor in the configured repository (`1.36.4-2.1`).
fn newest(lab: &Lab, host: &str) -> String {
    sh(lab, host, "apt-cache madison kubeadm | awk 'NR==1 {print $3}'")
}

fn install_kubernetes(lab: &Lab, host: &str, minor: &str) -> String {
    sh(lab, host, &k8s_source(minor));
    let v = newest(lab, host);
    assert!(
        v.starts_with(&format!("{minor}.")),
        "{host}: newest kubeadm is {v:?}"
    );
    sh(
        lab,
        host,
        &format!(
            "set -e; export DEBIAN_FRONTEND=noninteractive; \
             apt-get install -y -q --allow-change-held-packages --allow-downgrades kubelet={v} kubeadm={v} kubectl={v} >/dev/null; \
             apt-mark hold kubelet kubeadm kubectl >/dev/null"
        ),
    );
    v
}

const CONTAINERD_CONFIG: &str = "version = 3\n\
[plugins.'io.containerd.cri.v1.images'.pinned_images]\n  sandbox = 'registry.k8s.io/pause:3.10.1'\n\
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n  runtime_type = 'io.containerd.runc.v2'\n\
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n  SystemdCgroup = true\n";

fn prepare_hosts(r: &mut Run) {
    in_parallel(&r.lab, &["host01", "host02", "host03", "host04"], |lab, h| {
        // host04 first serves the 1.35 case; it moves to 1.36 before it joins.
        let minor = if h == "host04" { V135 } else { V136 };
        sh(
            lab,
            h,
            "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null; \
             apt-get install -y -q open-iscsi nfs-common conntrack socat >/dev/null; \
             printf 'overlay\\nbr_netfilter\\n' > /etc/modules-load.d/k8s.conf; modprobe overlay; modprobe br_netfilter; \
             printf 'net.bridge.bridge-nf-call-iptables = 1\\nnet.bridge.bridge-nf-call-ip6tables = 1\\nnet.ipv4.ip_forward = 1\\n' > /etc/sysctl.d/k8s.conf; \
             sysctl --system >/dev/null; swapoff -a; if [ -f /etc/fstab ]; then sed -i '/\\sswap\\s/ s/^/#/' /etc/fstab; fi",
        );
        sh(lab, h, &k8s_source(minor));
        sh(
            lab,
            h,
            "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q containerd cri-tools >/dev/null",
        );
        put(lab, h, "/etc/containerd/config.toml", CONTAINERD_CONFIG);
        put(
            lab,
            h,
            "/etc/crictl.yaml",
            "runtime-endpoint: unix:///run/containerd/containerd.sock\n",
        );
        sh(
            lab,
            h,
            "systemctl restart containerd && systemctl enable --now iscsid",
        );
        install_kubernetes(lab, h, minor);
        sh(lab, h, "systemctl enable --now kubelet");
        assert_eq!(sh(lab, h, "cat /proc/sys/net/ipv4/ip_forward"), "1");
        assert_eq!(
            sh(lab, h, "systemctl is-active containerd iscsid"),
            "active\nactive"
        );
        let info = sh(lab, h, "crictl info");
        assert!(info.contains("\"systemdCgroup\": true"), "{h}: {info}");
    });
}

// ---------------------------------------------------------------- configs

fn init_config(r: &Run, host: &str, version: &str, extra_cluster: &str) -> String {
    let ip = address(host);
    format!(
        "apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
- token: \"{token}\"
  ttl: 24h0m0s
certificateKey: \"{key}\"
localAPIEndpoint:
  advertiseAddress: {ip}
  bindPort: 6443
{node_registration}timeouts:
  controlPlaneComponentHealthCheck: 2m0s
  kubernetesAPICall: 1m0s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v{version}
controlPlaneEndpoint: {VIP}:6443
networking:
  podSubnet: {POD_SUBNET}
apiServer:
  certSANs:
  - {VIP}
{extra_cluster}---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
serverTLSBootstrap: true
",
        token = r.token,
        key = r.key,
        node_registration = node_registration(host),
    )
}

/// The node's name, CRI socket and its lab address for the kubelet (v1beta4 `{name, value}` list).
fn node_registration(host: &str) -> String {
    let ip = address(host);
    format!(
        "nodeRegistration:\n  name: {host}\n  criSocket: unix:///run/containerd/containerd.sock\n  kubeletExtraArgs:\n  - name: node-ip\n    value: {ip}\n"
    )
}

const WIDE_NODE_PORTS: &str = "  extraArgs:\n  - name: service-node-port-range\n    value: 80-32767\n";

fn join_config(r: &Run, host: &str, ca_hash: &str, control_plane: bool) -> String {
    let ip = address(host);
    let mut text = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: {VIP}:6443
    token: \"{token}\"
    caCertHashes:
    - \"{ca_hash}\"
{node_registration}",
        token = r.token,
        node_registration = node_registration(host),
    );
    if control_plane {
        let _ = write!(
            text,
            "controlPlane:\n  certificateKey: \"{key}\"\n  localAPIEndpoint:\n    advertiseAddress: {ip}\n    bindPort: 6443\n",
            key = r.key
        );
    }
    text
}

/// kube-vip's static pod as its docs generate it for ARP mode, on the guest's interface `host0`.
fn kube_vip_manifest(kubeconfig: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: kube-vip
  namespace: kube-system
spec:
  containers:
  - name: kube-vip
    image: ghcr.io/kube-vip/kube-vip:v1.2.3
    args:
    - manager
    env:
    - name: vip_arp
      value: \"true\"
    - name: port
      value: \"6443\"
    - name: vip_interface
      value: host0
    - name: vip_cidr
      value: \"32\"
    - name: cp_enable
      value: \"true\"
    - name: cp_namespace
      value: kube-system
    - name: vip_leaderelection
      value: \"true\"
    - name: vip_leasename
      value: plndr-cp-lock
    - name: vip_leaseduration
      value: \"5\"
    - name: vip_renewdeadline
      value: \"3\"
    - name: vip_retryperiod
      value: \"1\"
    - name: address
      value: \"{VIP}\"
    volumeMounts:
    - mountPath: /etc/kubernetes/admin.conf
      name: kubeconfig
  hostAliases:
  - hostnames:
    - kubernetes
    ip: 127.0.0.1
  hostNetwork: true
  volumes:
  - hostPath:
      path: {kubeconfig}
    name: kubeconfig
"
    )
}

fn put_kube_vip(lab: &Lab, host: &str, kubeconfig: &str) {
    put(
        lab,
        host,
        "/etc/kubernetes/manifests/kube-vip.yaml",
        &kube_vip_manifest(kubeconfig),
    );
}

fn has_vip(lab: &Lab, host: &str) -> bool {
    sh(lab, host, "ip -o -4 addr show dev host0").contains(&format!(" {VIP}/32 "))
}

// ---------------------------------------------------------------- failures before init

fn init_refuses_v1beta3_on_1_36(r: &mut Run) {
    let v1beta3 = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n---\napiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n";
    put(&r.lab, "host01", "/root/v1beta3.yaml", v1beta3);
    let out = run(&r.lab, "host01", "kubeadm init --config /root/v1beta3.yaml");
    assert_fails_with(&out, "your configuration file uses an old API spec: \"kubeadm.k8s.io/v1beta3\" (kind: \"ClusterConfiguration\"). Please use kubeadm v1.35 instead");
    assert!(!guest_has(&r.lab, "host01", "/etc/kubernetes/pki/ca.crt"));
}

fn init_refuses_map_kubelet_extra_args(r: &mut Run) {
    let text = init_config(r, "host01", "1.36.4", WIDE_NODE_PORTS).replace(
        "  kubeletExtraArgs:\n  - name: node-ip\n    value: 10.61.0.11\n",
        "  kubeletExtraArgs:\n    node-ip: 10.61.0.11\n",
    );
    assert!(text.contains("    node-ip: 10.61.0.11\n"));
    put(&r.lab, "host01", "/root/map-args.yaml", &text);
    let out = run(
        &r.lab,
        "host01",
        "kubeadm init --config /root/map-args.yaml --upload-certs",
    );
    assert_fails_with(&out, "json: cannot unmarshal object into Go struct field NodeRegistrationOptions.nodeRegistration.kubeletExtraArgs of type []v1beta4.Arg");
}

fn preflight_ip_forward_is_an_error_swap_a_warning(r: &mut Run) {
    let lab = &r.lab;
    put(
        lab,
        "host01",
        "/root/kubeadm.yaml",
        &init_config(r, "host01", "1.36.4", WIDE_NODE_PORTS),
    );
    // Swap cannot be switched on inside a container: the guest's /proc/swaps is shadowed with one that
    // lists a swap file, which is what kubeadm (and the kubelet) read.
    sh(
        lab,
        "host01",
        "set -e; printf 'Filename\\t\\t\\t\\tType\\t\\tSize\\t\\tUsed\\t\\tPriority\\n/swapfile                               file\\t\\t1048572\\t\\t0\\t\\t-2\\n' > /run/fake-swaps; \
         mount --bind /run/fake-swaps /proc/swaps; sysctl -qw net.ipv4.ip_forward=0",
    );
    let out = run(
        lab,
        "host01",
        "kubeadm init --config /root/kubeadm.yaml --upload-certs",
    );
    sh(
        lab,
        "host01",
        "umount /proc/swaps; sysctl -qw net.ipv4.ip_forward=1",
    );
    assert_fails_with(&out, "\t[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1\n");
    assert!(out.stderr.contains("\t[WARNING Swap]: "), "{}", out.text());
    assert!(!out.stderr.contains("[ERROR Swap]"), "{}", out.text());
    assert!(
        out.stderr
            .contains("error execution phase preflight: preflight checks failed"),
        "{}",
        out.text()
    );
    // Preflight fails before anything is written.
    assert!(!guest_has(lab, "host01", "/etc/kubernetes/pki/ca.crt"));
}

/// On 1.29+ the init node's admin.conf has no rights until init created `kubeadm:cluster-admins`, and
/// init needs the VIP first: kube-vip never leads, init times out, the VIP never appears (kube-vip#684).
/// The same API server, reached directly, refuses NodePort 80 with its default range.
fn kube_vip_with_admin_conf_deadlocks_init_on_1_35(r: &mut Run) {
    let lab = &r.lab;
    let h = "host04";
    put_kube_vip(lab, h, "/etc/kubernetes/admin.conf");
    let text = init_config(r, h, "1.35.7", "").replace("kubernetesAPICall: 1m0s", "kubernetesAPICall: 20s");
    put(lab, h, "/root/kubeadm.yaml", &text);
    let out = run(lab, h, "kubeadm init --config /root/kubeadm.yaml --upload-certs");
    assert_fails_with(&out, "error execution phase upload-config/kubeadm: could not bootstrap the admin user in file admin.conf: unable to create ClusterRoleBinding: Post \"https://10.61.0.10:6443/apis/rbac.authorization.k8s.io/v1/clusterrolebindings?timeout=10s\"");
    assert!(!has_vip(lab, h), "the VIP came up on {h}");
    let log = sh(lab, h, "journalctl -u kubelet --no-pager -o cat");
    // kube-vip's logrus line, the message quoted as Go's %q.
    assert!(
        log.contains(r#"level=error msg="error retrieving resource lock kube-system/plndr-cp-lock: leases.coordination.k8s.io \"plndr-cp-lock\" is forbidden: User \"kubernetes-admin\" cannot get resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-system\"""#),
        "kube-vip's log has no Forbidden:\n{log}"
    );

    // That API server runs; straight to it (not through the VIP) with super-admin.conf.
    sh(
        lab,
        h,
        "sed 's#server: https://10.61.0.10:6443#server: https://10.61.0.14:6443#' /etc/kubernetes/super-admin.conf > /root/direct.conf",
    );
    put(lab, h, "/root/svc.yaml", &ingress_service(Some((80, 443))));
    let out = run(lab, h, "KUBECONFIG=/root/direct.conf kubectl create namespace ingress-nginx && KUBECONFIG=/root/direct.conf kubectl apply -f /root/svc.yaml");
    assert_fails_with(&out, "The Service \"ingress-nginx-controller\" is invalid: [spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767, spec.ports[1].nodePort: Invalid value: 443: provided port is not in the valid range. The range of valid ports is 30000-32767]");

    // Back to a clean host on 1.36 for its worker join.
    let out = run(lab, h, "kubeadm reset -f");
    assert!(out.ok, "{}", out.text());
    sh(
        lab,
        h,
        "rm -f /root/direct.conf /etc/kubernetes/manifests/kube-vip.yaml",
    );
    assert!(sh(lab, h, "ls /etc/kubernetes/manifests").is_empty());
    let v = install_kubernetes(lab, h, V136);
    assert_eq!(
        sh(lab, h, "kubeadm version -o short"),
        format!("v{}", v.split('-').next().unwrap())
    );
    sh(lab, h, "systemctl enable --now kubelet");
}

// ---------------------------------------------------------------- init

fn init_host01_behind_kube_vip(r: &mut Run) {
    let h = "host01";
    put_kube_vip(&r.lab, h, "/etc/kubernetes/super-admin.conf");
    let out = run(
        &r.lab,
        h,
        "kubeadm init --config /root/kubeadm.yaml --upload-certs",
    );
    assert_succeeds_with(
        &out,
        "Your Kubernetes control-plane has initialized successfully!",
    );
    // The certificate key is in the file, so init prints it but never needed it on a command line.
    assert!(out.stdout.contains(&r.key), "{}", out.text());

    // The pin, computed as the kubeadm docs do it, matches the one init prints.
    let hash = sh(
        &r.lab,
        h,
        "openssl x509 -pubkey -in /etc/kubernetes/pki/ca.crt | openssl pkey -pubin -outform der 2>/dev/null | openssl dgst -sha256 -hex | sed 's/^.* //'",
    );
    r.ca_hash = format!("sha256:{hash}");
    assert!(
        out.stdout
            .contains(&format!("--discovery-token-ca-cert-hash {}", r.ca_hash)),
        "{}",
        out.text()
    );
    assert!(has_vip(&r.lab, h), "kube-vip did not add {VIP} on host01");
    // The API through the VIP, from another guest.
    let version = sh(
        &r.lab,
        "host02",
        &format!("curl -fsSk https://{VIP}:6443/version"),
    );
    assert!(
        version.contains("\"gitVersion\": \"v1.36.4\"") || version.contains("\"gitVersion\":\"v1.36.4\""),
        "{version}"
    );
    let nodes = kubectl_json(&r.lab, "get nodes");
    assert_eq!(nodes["items"].as_array().map(Vec::len), Some(1), "{nodes}");
}

// ---------------------------------------------------------------- joins

fn join_refuses_a_wrong_ca_hash(r: &mut Run) {
    let wrong = format!("sha256:{}", random_hex(32));
    put(
        &r.lab,
        "host02",
        "/root/join.yaml",
        &join_config(r, "host02", &wrong, true),
    );
    let out = run(&r.lab, "host02", "kubeadm join --config /root/join.yaml");
    assert_fails_with(&out, "couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"sha256:");
    assert!(out.stderr.contains("\" are pinned"), "{}", out.text());
    assert!(!guest_has(&r.lab, "host02", "/etc/kubernetes/kubelet.conf"));
}

/// `kubeadm join --config /root/join.yaml` on `host` until it fails naming `marker` (the API server's
/// controllers act on the clock once a second); a join that got further is reset before the next try.
fn join_until_it_fails_with(lab: &Lab, host: &str, marker: &str) -> Out {
    eventually(
        Duration::from_secs(20),
        &format!("a join failing with {marker}"),
        || {
            let out = run(lab, host, "kubeadm join --config /root/join.yaml");
            if !out.ok && out.stderr.contains(marker) {
                Ok(out)
            } else {
                run(lab, host, "kubeadm reset -f");
                Err(out.text())
            }
        },
    )
}

fn expired_uploaded_certs_and_expired_token(r: &mut Run) {
    let lab = &r.lab;
    // Two hours and a minute on the API server's clock: the uploaded certs (and their key) are gone.
    lab.clock(Some("host01"), 2 * 3600 + 60).expect("clock");
    put(
        lab,
        "host02",
        "/root/join.yaml",
        &join_config(r, "host02", &r.ca_hash, true),
    );
    let out = join_until_it_fails_with(lab, "host02", "kubeadm-certs");
    assert_fails_with(&out, "error execution phase control-plane-prepare/download-certs: error downloading certs: error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one");
    sh(lab, "host02", "kubeadm reset -f >/dev/null");

    // A day after init the join token has expired too: discovery finds no signature for it.
    lab.clock(Some("host01"), 22 * 3600).expect("clock");
    put(
        lab,
        "host04",
        "/root/join.yaml",
        &join_config(r, "host04", &r.ca_hash, false),
    );
    let id = &r.token[..6];
    let out = join_until_it_fails_with(lab, "host04", "JWS");
    assert_fails_with(&out, &format!("couldn't validate the identity of the API Server: could not find a JWS signature in the cluster-info ConfigMap for token ID \"{id}\""));
    assert!(!guest_has(lab, "host04", "/etc/kubernetes/kubelet.conf"));

    // Back to the present; what kbs does for a later join: a fresh token and freshly uploaded certs.
    lab.clock(Some("host01"), -(24 * 3600 + 60)).expect("clock");
    let token = sh(lab, "host01", "kubeadm token create --ttl 30m");
    assert_ne!(token, r.token);
    r.token = token;
    // The key travels in a file read by the remote shell, never as a literal on the ssh command line
    // (kubeadm itself only takes it as a flag).
    put(lab, "host01", "/root/cert-key", &format!("{}\n", r.key));
    let out = run(
        lab,
        "host01",
        "read -r key < /root/cert-key && kubeadm init phase upload-certs --upload-certs --certificate-key \"$key\" --skip-certificate-key-print; rc=$?; rm -f /root/cert-key; exit $rc",
    );
    assert_succeeds_with(
        &out,
        "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\"",
    );
}

fn concurrent_control_plane_joins(r: &mut Run) {
    let lab = &r.lab;
    // kube-vip goes on every control plane before its join; joined nodes mount admin.conf (it has
    // rights there: the kubeadm:cluster-admins binding exists by then).
    for h in ["host02", "host03"] {
        put(lab, h, "/root/join.yaml", &join_config(r, h, &r.ca_hash, true));
        put_kube_vip(lab, h, "/etc/kubernetes/admin.conf");
    }
    let results: Vec<(String, Out)> = std::thread::scope(|s| {
        let handles: Vec<_> = ["host02", "host03"]
            .into_iter()
            .map(|h| {
                s.spawn(move || {
                    (
                        h.to_string(),
                        run(lab, h, "kubeadm join --config /root/join.yaml"),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("join thread"))
            .collect()
    });
    let refused: Vec<&(String, Out)> = results.iter().filter(|(_, o)| !o.ok).collect();
    let report: String = results
        .iter()
        .map(|(h, o)| format!("== {h}\n{}\n", o.text()))
        .collect();
    assert_eq!(refused.len(), 1, "exactly one join must be refused:\n{report}");
    let (loser, out) = refused[0];
    assert!(
        out.stderr
            .contains("etcdserver: too many learner members in cluster"),
        "{report}"
    );
    let winner = if loser == "host02" { "host03" } else { "host02" };
    assert!(
        results.iter().any(|(h, o)| h == winner
            && o.stdout
                .contains("This node has joined the cluster and a new control plane instance was created")),
        "{report}"
    );

    // The refused one is reset and joins alone.
    let out = run(lab, loser, "kubeadm reset -f");
    assert!(out.ok, "{}", out.text());
    put_kube_vip(lab, loser, "/etc/kubernetes/admin.conf");
    let out = run(lab, loser, "kubeadm join --config /root/join.yaml");
    assert!(out.ok, "{loser} alone:\n{}", out.text());

    let members = kubectl_json(lab, "get etcdmembers.kbs-sim.io");
    let mut names: Vec<String> = members["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|m| m["spec"]["isLearner"] != true)
        .map(|m| m["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["host01", "host02", "host03"], "{members}");
    // The API answers through the local server of every control plane, and kube-vip runs on each.
    for h in ["host02", "host03"] {
        let out = sh(lab, h, &format!("{ADMIN} kubectl get nodes -o name"));
        assert!(
            out.contains("node/host01") && out.contains(&format!("node/{h}")),
            "{h}: {out}"
        );
    }
}

fn worker_host04_joins(r: &mut Run) {
    put(
        &r.lab,
        "host04",
        "/root/join.yaml",
        &join_config(r, "host04", &r.ca_hash, false),
    );
    let out = run(&r.lab, "host04", "kubeadm join --config /root/join.yaml");
    assert_succeeds_with(&out, "This node has joined the cluster:");
    let nodes = eventually(Duration::from_secs(30), "four Nodes", || {
        let n = kubectl_json(&r.lab, "get nodes");
        let count = n["items"].as_array().map(Vec::len).unwrap_or(0);
        if count == 4 {
            Ok(n)
        } else {
            Err(n.to_string())
        }
    });
    // Every Node is NotReady (no CNI yet) with the not-ready taint.
    for n in nodes["items"].as_array().unwrap() {
        let name = n["metadata"]["name"].as_str().unwrap_or("");
        assert!(!node_ready(n), "{name} is Ready without a CNI: {n}");
        let tainted = n["spec"]["taints"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["key"] == "node.kubernetes.io/not-ready"));
        assert!(tainted, "{name} lacks the not-ready taint: {n}");
    }
}

fn crictl_lists_the_static_pods(r: &mut Run) {
    let ps = sh(&r.lab, "host02", "crictl ps");
    let mut lines = ps.lines();
    assert!(lines.next().unwrap_or("").starts_with("CONTAINER"), "{ps}");
    for name in [
        "kube-apiserver",
        "kube-vip",
        "etcd",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        assert!(
            ps.lines()
                .any(|l| l.contains(&format!(" {name} ")) && l.contains("Running")),
            "{name} missing:\n{ps}"
        );
    }
    assert_eq!(
        sh(&r.lab, "host04", "crictl ps | wc -l"),
        "1",
        "a worker runs no static pods"
    );
}

// ---------------------------------------------------------------- add-ons

fn node_ready(n: &Value) -> bool {
    n["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn apply(lab: &Lab, name: &str, text: &str, args: &str) -> Out {
    let path = format!("/root/addons/{name}");
    put(lab, "host01", &path, text);
    kubectl(lab, &format!("{args} -f {path}"))
}

fn deployment_available(lab: &Lab, ns: &str, name: &str) -> Result<(), String> {
    let out = kubectl(lab, &format!("-n {ns} get deployment {name} -o json"));
    let d: Value = serde_json::from_str(&out.stdout).map_err(|e| format!("{e}: {}", out.text()))?;
    let available = d["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Available" && c["status"] == "True")
    });
    if available {
        Ok(())
    } else {
        Err(d["status"].to_string())
    }
}

fn metrics_server_waits_for_serving_csrs(r: &mut Run) {
    let lab = &r.lab;
    // Every node asked for a serving certificate and nobody approves them but us. Nodes that were reset
    // and joined again asked twice (a new kubelet key each time), as real kubelets do.
    let hosts = ["host01", "host02", "host03", "host04"];
    let pending = eventually(
        Duration::from_secs(30),
        "a pending kubelet-serving CSR from every node",
        || {
            let csrs = kubectl_json(lab, "get csr");
            let pending: Vec<Value> = csrs["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| {
                    c["spec"]["signerName"] == "kubernetes.io/kubelet-serving"
                        && c["status"]["certificate"].is_null()
                })
                .cloned()
                .collect();
            let requestors: std::collections::BTreeSet<&str> = pending
                .iter()
                .filter_map(|c| c["spec"]["username"].as_str())
                .collect();
            let wanted: std::collections::BTreeSet<String> =
                hosts.iter().map(|h| format!("system:node:{h}")).collect();
            if requestors
                .iter()
                .map(|u| u.to_string())
                .collect::<std::collections::BTreeSet<_>>()
                == wanted
            {
                Ok(pending)
            } else {
                Err(csrs.to_string())
            }
        },
    );
    let out = apply(lab, "metrics-server.yaml", &metrics_server(), "apply");
    assert!(out.ok, "{}", out.text());
    let out = kubectl(
        lab,
        "-n kube-system wait --for=condition=Available deployment/metrics-server --timeout=5s",
    );
    assert!(
        !out.ok,
        "metrics-server became available with unapproved serving CSRs:\n{}",
        out.text()
    );
    assert!(
        out.stderr
            .contains("timed out waiting for the condition on deployments/metrics-server"),
        "{}",
        out.text()
    );
    let status = deployment_available(lab, "kube-system", "metrics-server").unwrap_err();
    assert!(status.contains("tls: internal error"), "{status}");

    // Approve the pending serving CSRs of the cluster's own nodes (requestor system:node:<host>).
    let names: Vec<String> = pending
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    kubectl_ok(lab, &format!("certificate approve {}", names.join(" ")));
    let csrs = kubectl_json(lab, "get csr");
    for n in &names {
        let c = csrs["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["metadata"]["name"] == n.as_str())
            .expect("csr");
        assert!(c["status"]["certificate"].is_string(), "{n} not issued: {c}");
    }
    eventually(Duration::from_secs(20), "metrics-server available", || {
        deployment_available(lab, "kube-system", "metrics-server")
    });
}

fn calico_crds(r: &mut Run) {
    let lab = &r.lab;
    let crds = calico_crds_yaml();
    assert!(
        crds.len() > 300 * 1024,
        "the CRD file must exceed the annotation limit"
    );
    let out = apply(lab, "operator-crds.yaml", &crds, "apply");
    assert_fails_with(&out, "The CustomResourceDefinition \"installations.operator.tigera.io\" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes");
    let out = apply(lab, "operator-crds.yaml", &crds, "apply --server-side");
    assert_succeeds_with(
        &out,
        "customresourcedefinition.apiextensions.k8s.io/installations.operator.tigera.io serverside-applied",
    );
    let out = apply(lab, "tigera-operator.yaml", &tigera_operator(), "create");
    assert!(out.ok, "{}", out.text());
}

fn calico_pool_and_node_readiness(r: &mut Run) {
    let lab = &r.lab;
    // Calico's own default pool, not the cluster's podSubnet.
    let out = apply(
        lab,
        "custom-resources-wrong.yaml",
        &installation("192.168.0.0/16"),
        "create",
    );
    assert!(out.ok, "{}", out.text());
    let status = eventually(Duration::from_secs(20), "tigerastatus calico degraded", || {
        let t = kubectl(lab, "get tigerastatus calico -o json");
        let v: Value = serde_json::from_str(&t.stdout).map_err(|e| format!("{e}: {}", t.text()))?;
        let degraded = v["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Degraded" && c["status"] == "True"));
        if degraded {
            Ok(v)
        } else {
            Err(v.to_string())
        }
    });
    assert!(
        status.to_string().contains("IPPool 192.168.0.0/16 is not within the platform's configured pod network CIDR(s) [172.31.0.0/16]"),
        "{status}"
    );
    sleep(Duration::from_secs(3));
    let nodes = kubectl_json(lab, "get nodes");
    for n in nodes["items"].as_array().unwrap() {
        assert!(
            !node_ready(n),
            "{} Ready with a pool outside podSubnet",
            n["metadata"]["name"]
        );
    }
    assert!(!guest_has(lab, "host02", "/etc/cni/net.d/10-calico.conflist"));

    // The pool = podSubnet: Calico runs and each node becomes Ready once its own CNI config is written
    // (by its kubelet, standing in for calico-node): host04's kubelet is stopped meanwhile, so it stays
    // NotReady until it runs again.
    sh(lab, "host04", "systemctl stop kubelet");
    kubectl_ok(lab, "delete installation default");
    let out = apply(lab, "custom-resources.yaml", &installation(POD_SUBNET), "create");
    assert!(out.ok, "{}", out.text());
    for h in ["host01", "host02", "host03"] {
        let out = kubectl(lab, &format!("wait --for=condition=Ready node/{h} --timeout=60s"));
        assert!(out.ok, "{}", out.text());
    }
    let host04 = kubectl_json(lab, "get node host04");
    assert!(
        !node_ready(&host04),
        "host04 Ready without its CNI config: {host04}"
    );
    assert!(!guest_has(lab, "host04", "/etc/cni/net.d/10-calico.conflist"));
    sh(lab, "host04", "systemctl start kubelet");
    let out = kubectl(lab, "wait --for=condition=Ready nodes --all --timeout=60s");
    assert!(out.ok, "{}", out.text());
    let out = kubectl(
        lab,
        "wait --for=condition=Available tigerastatus/calico --timeout=30s",
    );
    assert!(out.ok, "{}", out.text());
    for h in ["host01", "host02", "host03", "host04"] {
        let conf = sh(lab, h, "cat /etc/cni/net.d/10-calico.conflist");
        assert!(conf.contains(POD_SUBNET), "{h}: {conf}");
    }
}

fn longhorn(r: &mut Run) {
    let lab = &r.lab;
    for h in ["host01", "host02", "host03", "host04"] {
        assert_eq!(sh(lab, h, "systemctl is-active iscsid"), "active", "{h}");
    }
    let out = apply(lab, "longhorn.yaml", &longhorn_manifests(), "apply");
    assert!(out.ok, "{}", out.text());
    eventually(
        Duration::from_secs(30),
        "longhorn-driver-deployer available",
        || deployment_available(lab, "longhorn-system", "longhorn-driver-deployer"),
    );
    let out = run(
        lab,
        "host01",
        &format!(
            "{ADMIN} kubectl -n longhorn-system rollout status daemonset/longhorn-manager --timeout=30s"
        ),
    );
    assert!(out.ok, "{}", out.text());
}

fn ingress(r: &mut Run) {
    let lab = &r.lab;
    let out = apply(lab, "ingress-nginx.yaml", &ingress_nginx(), "apply");
    assert!(out.ok, "{}", out.text());
    // The book's patch: the controller's Service on NodePorts 80 and 443 (the range is 80-32767 here).
    let out = kubectl(lab, "-n ingress-nginx patch service ingress-nginx-controller --type=json -p '[{\"op\":\"replace\",\"path\":\"/spec/ports/0/nodePort\",\"value\":80},{\"op\":\"replace\",\"path\":\"/spec/ports/1/nodePort\",\"value\":443}]'");
    assert!(out.ok, "{}", out.text());
    let svc = kubectl_json(lab, "-n ingress-nginx get service ingress-nginx-controller");
    assert_eq!(svc["spec"]["ports"][0]["nodePort"], 80, "{svc}");
    assert_eq!(svc["spec"]["ports"][1]["nodePort"], 443, "{svc}");
    sh(
        lab,
        "host01",
        &format!(
            "{ADMIN} kubectl annotate ingressclass nginx ingressclass.kubernetes.io/is-default-class=true"
        ),
    );
    let class = kubectl_json(lab, "get ingressclass nginx");
    assert_eq!(
        class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"],
        "true"
    );
    eventually(
        Duration::from_secs(30),
        "ingress-nginx-controller available",
        || deployment_available(lab, "ingress-nginx", "ingress-nginx-controller"),
    );
}

fn four_nodes_ready(r: &mut Run) {
    let nodes = kubectl_json(&r.lab, "get nodes");
    let mut ready: Vec<String> = nodes["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| node_ready(n))
        .map(|n| n["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    ready.sort();
    assert_eq!(ready, ["host01", "host02", "host03", "host04"], "{nodes}");
    for n in nodes["items"].as_array().unwrap() {
        let tainted = n["spec"]["taints"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["key"] == "node.kubernetes.io/not-ready"));
        assert!(!tainted, "{}", n);
    }
}

/// Stopping host01's kubelet stops its API server and kube-vip: kube-vip releases the VIP, the Lease
/// expires, another control plane takes the VIP, and with 2 of 3 etcd members the API answers through it.
fn vip_moves_when_its_holder_stops(r: &mut Run) {
    let lab = &r.lab;
    assert!(has_vip(lab, "host01"), "host01 should hold the VIP after init");
    sh(lab, "host01", "systemctl stop kubelet");
    assert!(
        !has_vip(lab, "host01"),
        "kube-vip kept the VIP on host01 after it was stopped"
    );
    let holder = eventually(
        Duration::from_secs(20),
        "another control plane holding the VIP",
        || {
            ["host02", "host03"]
                .into_iter()
                .find(|h| has_vip(lab, h))
                .ok_or_else(|| "no holder".to_string())
        },
    );
    let nodes = eventually(Duration::from_secs(20), "the API through the VIP", || {
        let out = run(lab, "host02", &format!("{ADMIN} kubectl get nodes -o name"));
        if out.ok {
            Ok(out.stdout)
        } else {
            Err(out.text())
        }
    });
    assert_eq!(nodes.lines().count(), 4, "via {holder}: {nodes}");
    // host01 comes back as a member; its kube-vip follows the new leader.
    sh(lab, "host01", "systemctl start kubelet");
    eventually(Duration::from_secs(30), "host01's API server back", || {
        let out = run(lab, "host01", "curl -fsSk https://10.61.0.11:6443/version");
        if out.ok {
            Ok(())
        } else {
            Err(out.text())
        }
    });
    assert!(has_vip(lab, holder), "the VIP moved again from {holder}");
}

/// The control plane whose API server leads the replicated store now, as it tells its peers.
fn store_leader(lab: &Lab) -> Option<&'static str> {
    ["host01", "host02", "host03"].into_iter().find(|h| {
        let out = run(
            lab,
            h,
            "curl -sfk --cert /etc/kubernetes/pki/apiserver-kubelet-client.crt \
             --key /etc/kubernetes/pki/apiserver-kubelet-client.key https://127.0.0.1:6443/kbs-sim/replica",
        );
        out.ok && serde_json::from_str::<Value>(&out.stdout).is_ok_and(|r| r["leader"] == true)
    })
}

/// Last, since it shrinks the cluster: the store's leader resets, which is the hard case (its
/// API server stops right after the removal); the member is gone from the list the others keep,
/// as with etcd, whose `MemberRemove` returns only once committed; the API stays up.
fn reset_removes_the_etcd_member(r: &mut Run) {
    let lab = &r.lab;
    let target = eventually(Duration::from_secs(10), "a store leader", || {
        store_leader(lab).ok_or_else(|| "no API server leads".to_string())
    });
    let staying = ["host01", "host02", "host03"]
        .into_iter()
        .find(|h| *h != target)
        .unwrap();
    let out = run(lab, target, "kubeadm reset -f");
    assert!(out.ok, "{}", out.text());
    assert!(
        !out.stderr.contains("Failed to remove etcd member"),
        "{}",
        out.text()
    );
    let mut expected: Vec<&str> = ["host01", "host02", "host03"]
        .into_iter()
        .filter(|h| *h != target)
        .collect();
    expected.sort();
    // A new leader is elected: ask until the API answers, then compare. The staying control
    // plane's own API server is asked, not the VIP: when the target held the VIP too, its move
    // is kube-vip's business (checked above), not the member list's.
    let own_api = format!(
        "sed 's#server: .*#server: https://{}:6443#' /etc/kubernetes/admin.conf > /root/own-api.conf",
        lab.host(staying).unwrap().address
    );
    sh(lab, staying, &own_api);
    let members = eventually(Duration::from_secs(30), "the member list", || {
        let out = run(
            lab,
            staying,
            "KUBECONFIG=/root/own-api.conf kubectl get etcdmembers.kbs-sim.io -o json",
        );
        if out.ok {
            serde_json::from_str::<Value>(&out.stdout).map_err(|e| e.to_string())
        } else {
            Err(out.text())
        }
    });
    let mut names: Vec<String> = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["metadata"]["name"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    assert_eq!(names, expected, "reset of the store leader {target}: {members}");
    assert_eq!(
        sh(lab, target, "crictl ps | wc -l"),
        "1",
        "static pods left on {target}"
    );
    // Like real kubeadm, reset leaves the Node object: deleting it is the operator's step.
    let out = sh(
        lab,
        staying,
        &format!("KUBECONFIG=/root/own-api.conf kubectl get node {target} -o name"),
    );
    assert_eq!(out, format!("node/{target}"));
}

// ---------------------------------------------------------------- small add-on manifests

fn namespace(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n---\n")
}

/// A workload of one container whose pods carry `app: <name>`; `host_network` as the real manifest has it.
fn workload(kind: &str, ns: &str, name: &str, image: &str, host_network: bool) -> String {
    format!(
        "apiVersion: apps/v1
kind: {kind}
metadata:
  name: {name}
  namespace: {ns}
spec:
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      hostNetwork: {host_network}
      containers:
      - name: {name}
        image: {image}
---
"
    )
}

/// The ingress-nginx controller's NodePort Service; `node_ports` fixes the ports' nodePorts.
fn ingress_service(node_ports: Option<(u16, u16)>) -> String {
    let (http, https) = match node_ports {
        Some((a, b)) => (format!("\n    nodePort: {a}"), format!("\n    nodePort: {b}")),
        None => (String::new(), String::new()),
    };
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: ingress-nginx-controller
  namespace: ingress-nginx
spec:
  type: NodePort
  selector:
    app: ingress-nginx-controller
  ports:
  - name: http
    port: 80
    targetPort: http{http}
  - name: https
    port: 443
    targetPort: https{https}
---
"
    )
}

/// The Calico operator's CRDs; the Installation CRD carries a schema as large as the real one's, so
/// client-side apply's last-applied annotation would exceed 256 KiB.
fn calico_crds_yaml() -> String {
    let crd = |plural: &str, kind: &str, scope: &str, schema: &str| {
        format!(
            "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: {plural}.operator.tigera.io
spec:
  group: operator.tigera.io
  names:
    kind: {kind}
    listKind: {kind}List
    plural: {plural}
    singular: {singular}
  scope: {scope}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {{}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
{schema}",
            singular = kind.to_lowercase()
        )
    };
    let mut props = String::from("        properties:\n");
    for i in 0..1500 {
        let _ = write!(
            props,
            "          field{i:04}:\n            description: Field {i} of the Installation spec, as the operator's schema documents every knob of calico-node, typha and the CNI plugin in detail.\n            type: string\n"
        );
    }
    [
        crd("installations", "Installation", "Cluster", &props),
        crd("tigerastatuses", "TigeraStatus", "Cluster", ""),
        crd("apiservers", "APIServer", "Cluster", ""),
    ]
    .join("---\n")
}

fn tigera_operator() -> String {
    namespace("tigera-operator")
        + &workload(
            "Deployment",
            "tigera-operator",
            "tigera-operator",
            "quay.io/tigera/operator:v1.40.1",
            true,
        )
}

fn installation(cidr: &str) -> String {
    format!(
        "apiVersion: operator.tigera.io/v1
kind: Installation
metadata:
  name: default
spec:
  calicoNetwork:
    ipPools:
    - name: default-ipv4-ippool
      blockSize: 26
      cidr: {cidr}
      encapsulation: VXLANCrossSubnet
      natOutgoing: Enabled
      nodeSelector: all()
"
    )
}

fn metrics_server() -> String {
    workload(
        "Deployment",
        "kube-system",
        "metrics-server",
        "registry.k8s.io/metrics-server/metrics-server:v0.9.0",
        false,
    )
}

fn longhorn_manifests() -> String {
    let image = "longhornio/longhorn-manager:v1.12.1";
    namespace("longhorn-system")
        + &workload("DaemonSet", "longhorn-system", "longhorn-manager", image, false)
        + &workload(
            "Deployment",
            "longhorn-system",
            "longhorn-driver-deployer",
            image,
            false,
        )
}

fn ingress_nginx() -> String {
    namespace("ingress-nginx")
        + &ingress_service(None)
        + &workload(
            "Deployment",
            "ingress-nginx",
            "ingress-nginx-controller",
            "registry.k8s.io/ingress-nginx/controller:v1.15.1",
            false,
        )
        + "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: nginx\nspec:\n  controller: k8s.io/ingress-nginx\n"
}
