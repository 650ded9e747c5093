//! `kubeadm init` up to the point where the API server is needed: config → preflight →
//! certs → kubeconfig → etcd/control-plane manifests → kubelet-start files.
//! The phases from kubelet-start's `systemctl restart kubelet` on are in `init_api`.

use serde_json::json;

use super::config_cmd::io_text;
use super::{Context, Failure, InitArgs, InitPhaseName};
use crate::config::{self, InitConfig};
use crate::preflight;

fn phase(name: &str, msg: impl Into<String>) -> Failure {
    Failure::Phase {
        phase: name.to_string(),
        msg: msg.into(),
    }
}

/// kubeadm `ValidateMixedArguments`: which given flags may not accompany `--config`.
fn mixed_flags(args: &InitArgs) -> Vec<&'static str> {
    let mut bad = Vec::new();
    if args.apiserver_advertise_address.is_some() {
        bad.push("apiserver-advertise-address");
    }
    if args.certificate_key.is_some() {
        bad.push("certificate-key");
    }
    if args.control_plane_endpoint.is_some() {
        bad.push("control-plane-endpoint");
    }
    if args.pod_network_cidr.is_some() {
        bad.push("pod-network-cidr");
    }
    bad
}

/// The config text for flag-only use (`kubeadm init --pod-network-cidr …`).
fn config_from_flags(args: &InitArgs) -> String {
    let mut init = json!({"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration"});
    if let Some(a) = &args.apiserver_advertise_address {
        init["localAPIEndpoint"] = json!({"advertiseAddress": a});
    }
    if let Some(k) = &args.certificate_key {
        init["certificateKey"] = json!(k);
    }
    let mut cluster = json!({"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration"});
    if let Some(p) = &args.pod_network_cidr {
        cluster["networking"] = json!({"podSubnet": p});
    }
    if let Some(e) = &args.control_plane_endpoint {
        cluster["controlPlaneEndpoint"] = json!(e);
    }
    format!(
        "{}---\n{}",
        serde_yaml::to_string(&init).unwrap_or_default(),
        serde_yaml::to_string(&cluster).unwrap_or_default()
    )
}

/// Reads and validates the init configuration, printing kubeadm's warnings.
fn load(
    config_path: Option<&str>,
    args: Option<&InitArgs>,
    ctx: &mut Context,
) -> Result<InitConfig, Failure> {
    let text = match config_path {
        Some(path) => {
            if let Some(a) = args {
                let bad = mixed_flags(a);
                if !bad.is_empty() {
                    return Err(Failure::Plain(format!(
                        "can not mix '--config' with arguments [{}]",
                        bad.join(" ")
                    )));
                }
            }
            std::fs::read_to_string(path).map_err(|e| {
                Failure::Plain(format!(
                    "unable to read config from \"{path}\" : open {path}: {}",
                    io_text(&e)
                ))
            })?
        }
        None => match args {
            Some(a) => config_from_flags(a),
            None => return Err(Failure::Plain("the --config flag is mandatory".to_string())),
        },
    };
    let mut host = ctx.host.clone();
    if let Some(name) = args.and_then(|a| a.node_name.clone()) {
        host.hostname = name;
    }
    let cfg = config::load_init(&text, ctx.version, &host).map_err(Failure::Plain)?;
    for w in &cfg.warnings {
        ctx.config_warning(w);
    }
    Ok(cfg)
}

/// The preflight phase; `Ok` when it passed (possibly with warnings).
fn run_preflight(cfg: &InitConfig, cli_ignore: &[String], ctx: &mut Context) -> Result<(), Failure> {
    let ignore = preflight::ignore_set(cli_ignore, &cfg.init.node_registration.ignore_preflight_errors)
        .map_err(Failure::Plain)?;
    let root_report = preflight::run_checks(
        &[preflight::Check::IsPrivilegedUser],
        &ignore,
        ctx.version,
        ctx.probe.as_ref(),
    );
    ctx.err(&root_report.output);
    if root_report.failed {
        return Err(Failure::Plain(preflight::PREFLIGHT_FAILED.to_string()));
    }
    ctx.out("[preflight] Running pre-flight checks");
    let checks = preflight::init_checks(cfg, false);
    let probe = RootedProbe {
        inner: ctx.probe.as_ref(),
        root: ctx.root.clone(),
    };
    let report = preflight::run_checks(&checks, &ignore, ctx.version, &probe);
    ctx.err(&report.output);
    if report.failed {
        return Err(phase("preflight", preflight::PREFLIGHT_FAILED));
    }
    ctx.out("[preflight] Pulling images required for setting up a Kubernetes cluster");
    ctx.out(
        "[preflight] This might take a minute or two, depending on the speed of your internet connection",
    );
    ctx.out("[preflight] You can also perform this action beforehand using 'kubeadm config images pull'");
    Ok(())
}

pub fn run(args: InitArgs, ctx: &mut Context) -> Result<(), Failure> {
    if let Some(super::InitPhase::Phase {
        phase: InitPhaseName::Preflight {
            config,
            ignore_preflight_errors,
        },
    }) = &args.phase
    {
        let cfg = load(config.as_deref(), None, ctx)?;
        return run_preflight(&cfg, ignore_preflight_errors, ctx);
    }
    if let Some(super::InitPhase::Phase {
        phase:
            InitPhaseName::UploadCerts {
                upload_certs,
                certificate_key,
                skip_certificate_key_print,
                kubeconfig,
                ..
            },
    }) = &args.phase
    {
        return super::token_cmd::upload_certs_phase(
            *upload_certs,
            certificate_key.clone(),
            *skip_certificate_key_print,
            kubeconfig,
            ctx,
        );
    }
    let cfg = load(args.config.as_deref(), Some(&args), ctx)?;
    ctx.out(&format!(
        "[init] Using Kubernetes version: {}",
        cfg.cluster.kubernetes_version
    ));
    let skip = |p: &str| {
        args.skip_phases
            .iter()
            .chain(cfg.init.skip_phases.iter())
            .any(|s| s == p)
    };
    if !skip("preflight") {
        run_preflight(&cfg, &args.ignore_preflight_errors, ctx)?;
    }
    let now = ctx.clock.now();
    let pki_dir = ctx.path(&cfg.cluster.certificates_dir);
    ctx.out(&format!(
        "[certs] Using certificateDir folder {}",
        crate::gofmt::quote(&cfg.cluster.certificates_dir)
    ));
    let (outcome, ca) =
        crate::pki::create_pki(&pki_dir, &cfg, now).map_err(|e| phase("certs", e.to_string()))?;
    for l in &outcome.lines {
        ctx.out(l);
    }
    let kube_dir = ctx.path("/etc/kubernetes");
    let lines = crate::pki::create_kubeconfigs(&kube_dir, &cfg, &ca, now)
        .map_err(|e| phase("kubeconfig", e.to_string()))?;
    for l in &lines {
        ctx.out(l);
    }
    let manifests = ctx.path(preflight::MANIFESTS_DIR);
    let lines = crate::manifests::write_control_plane(&manifests, &cfg)
        .map_err(|e| phase("control-plane", e.to_string()))?;
    for l in &lines {
        ctx.out(l);
    }
    let kubelet_yaml = write_kubelet_files(&cfg, ctx)?;
    super::init_api::run(&cfg, &args, &kubelet_yaml, &ca, ctx)
}

/// kubelet-start: /var/lib/kubelet/config.yaml and kubeadm-flags.env; returns the
/// KubeletConfiguration YAML (uploaded as the `kubelet-config` ConfigMap).
pub(super) fn write_kubelet_files(cfg: &InitConfig, ctx: &mut Context) -> Result<String, Failure> {
    let env_path = "/var/lib/kubelet/kubeadm-flags.env";
    let mut flags = vec![format!(
        "--container-runtime-endpoint={}",
        cfg.init.node_registration.cri_socket
    )];
    for a in &cfg.init.node_registration.kubelet_extra_args.0 {
        flags.push(format!("--{}={}", a.name, a.value));
    }
    let env = format!("KUBELET_KUBEADM_ARGS=\"{}\"\n", flags.join(" "));
    let kubelet = cfg.kubelet.clone().unwrap_or_default();
    let mut conf = serde_json::to_value(&kubelet).unwrap_or_else(|_| json!({}));
    conf["apiVersion"] = json!("kubelet.config.k8s.io/v1beta1");
    conf["kind"] = json!("KubeletConfiguration");
    if kubelet.cgroup_driver.is_empty() {
        conf["cgroupDriver"] = json!("systemd");
    }
    if kubelet.cluster_domain.is_empty() {
        conf["clusterDomain"] = json!(cfg.cluster.networking.dns_domain);
    }
    conf["staticPodPath"] = json!("/etc/kubernetes/manifests");
    let conf_text = serde_yaml::to_string(&conf).unwrap_or_default();
    let werr = |e: crate::pki::PkiError| phase("kubelet-start", e.to_string());
    ctx.out(&format!(
        "[kubelet-start] Writing kubelet environment file with flags to file \"{env_path}\""
    ));
    crate::pki::write_file(&ctx.path(env_path), env.as_bytes(), 0o644).map_err(werr)?;
    ctx.out("[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"");
    crate::pki::write_file(
        &ctx.path("/var/lib/kubelet/config.yaml"),
        conf_text.as_bytes(),
        0o644,
    )
    .map_err(werr)?;
    Ok(conf_text)
}

/// The probe with file checks moved under `KBS_SIM_ROOT` (/proc stays the real one).
pub(super) struct RootedProbe<'a> {
    pub inner: &'a dyn preflight::HostProbe,
    pub root: std::path::PathBuf,
}

impl RootedProbe<'_> {
    fn p(&self, path: &str) -> String {
        if self.root.as_os_str().is_empty() || path.starts_with("/proc/") {
            path.to_string()
        } else {
            self.root.join(path.trim_start_matches('/')).display().to_string()
        }
    }
}

impl preflight::HostProbe for RootedProbe<'_> {
    fn read_file(&self, path: &str) -> std::io::Result<Vec<u8>> {
        self.inner.read_file(&self.p(path))
    }
    fn exists(&self, path: &str) -> bool {
        self.inner.exists(&self.p(path))
    }
    fn dir_is_empty(&self, path: &str) -> std::io::Result<bool> {
        self.inner.dir_is_empty(&self.p(path))
    }
    fn port_in_use(&self, port: u16) -> bool {
        self.inner.port_in_use(port)
    }
    fn service_state(&self, name: &str) -> preflight::ServiceState {
        self.inner.service_state(name)
    }
    fn service_active(&self, name: &str) -> bool {
        self.inner.service_active(name)
    }
    fn num_cpu(&self) -> usize {
        self.inner.num_cpu()
    }
    fn mem_total_mb(&self) -> u64 {
        self.inner.mem_total_mb()
    }
    fn kubelet_version(&self) -> Result<String, String> {
        self.inner.kubelet_version()
    }
    fn in_path(&self, executable: &str) -> bool {
        self.inner.in_path(executable)
    }
    fn hostname_resolves(&self, name: &str) -> bool {
        self.inner.hostname_resolves(name)
    }
    fn is_root(&self) -> bool {
        self.inner.is_root()
    }
    fn cri_connect(&self, path: &str) -> Result<(), String> {
        self.inner.cri_connect(path)
    }
    fn tcp_dial(&self, hostport: &str) -> Result<(), String> {
        self.inner.tcp_dial(hostport)
    }
}
