//! Preflight tests on a fake host: exact kubeadm output, severity and ignores.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::*;
use crate::config::{load_init, load_join, HostFacts};

/// A healthy control-plane candidate unless a test changes something.
pub(crate) struct FakeHost {
    pub files: HashMap<String, Vec<u8>>,
    pub existing: HashSet<String>,
    pub nonempty_dirs: HashSet<String>,
    pub ports_in_use: HashSet<u16>,
    pub kubelet: ServiceState,
    pub cpus: usize,
    pub mem_mb: u64,
    pub kubelet_version: Result<String, String>,
    pub missing_exes: HashSet<String>,
    pub root: bool,
    pub cri: Result<(), String>,
    /// What a TCP dial to any address gives (tests never touch the network).
    pub dial: Result<(), String>,
}

impl Default for FakeHost {
    fn default() -> Self {
        let mut files = HashMap::new();
        files.insert(IPV4_FORWARD.to_string(), b"1\n".to_vec());
        files.insert(
            "/proc/swaps".to_string(),
            b"Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n".to_vec(),
        );
        FakeHost {
            files,
            existing: HashSet::new(),
            nonempty_dirs: HashSet::new(),
            ports_in_use: HashSet::new(),
            kubelet: ServiceState::Enabled,
            cpus: 2,
            mem_mb: 1975,
            kubelet_version: Ok("Kubernetes v1.36.4".into()),
            missing_exes: HashSet::new(),
            root: true,
            cri: Ok(()),
            dial: Err("connect: connection refused".to_string()),
        }
    }
}

impl HostProbe for FakeHost {
    fn read_file(&self, path: &str) -> std::io::Result<Vec<u8>> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
    fn exists(&self, path: &str) -> bool {
        self.existing.contains(path) || self.files.contains_key(path)
    }
    fn dir_is_empty(&self, path: &str) -> std::io::Result<bool> {
        Ok(!self.nonempty_dirs.contains(path))
    }
    fn port_in_use(&self, port: u16) -> bool {
        self.ports_in_use.contains(&port)
    }
    fn service_state(&self, name: &str) -> ServiceState {
        if name == "kubelet" {
            self.kubelet
        } else {
            ServiceState::Missing
        }
    }
    fn service_active(&self, _name: &str) -> bool {
        false
    }
    fn num_cpu(&self) -> usize {
        self.cpus
    }
    fn mem_total_mb(&self) -> u64 {
        self.mem_mb
    }
    fn kubelet_version(&self) -> Result<String, String> {
        self.kubelet_version.clone()
    }
    fn in_path(&self, executable: &str) -> bool {
        !self.missing_exes.contains(executable)
    }
    fn hostname_resolves(&self, _name: &str) -> bool {
        true
    }
    fn is_root(&self) -> bool {
        self.root
    }
    fn cri_connect(&self, _path: &str) -> Result<(), String> {
        self.cri.clone()
    }
    fn tcp_dial(&self, hostport: &str) -> Result<(), String> {
        self.dial.clone().map_err(|e| format!("dial tcp {hostport}: {e}"))
    }
}

const V136: Version = Version::new(1, 36, 4);

fn facts() -> HostFacts {
    HostFacts {
        hostname: "host01".into(),
        default_address: Some("10.61.0.11".parse().unwrap()),
    }
}

fn init_cfg() -> InitConfig {
    load_init(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n",
        V136,
        &facts(),
    )
    .unwrap()
}

fn join_cfg(control_plane: bool) -> JoinConfig {
    let mut text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    apiServerEndpoint: 10.61.0.10:6443\n    token: abcdef.0123456789abcdef\n    unsafeSkipCAVerification: true\n".to_string();
    if control_plane {
        text.push_str("controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: 10.61.0.12\n");
    }
    load_join(&text, V136, &facts()).unwrap()
}

fn run_init(host: &FakeHost, ignore: &BTreeSet<String>) -> Report {
    run_checks(&init_checks(&init_cfg(), false), ignore, V136, host)
}

#[test]
fn healthy_control_plane_passes_silently() {
    let r = run_init(&FakeHost::default(), &BTreeSet::new());
    assert_eq!(
        r,
        Report {
            output: String::new(),
            failed: false
        }
    );
}

#[test]
fn ip_forward_unset_is_an_error_with_kubeadms_output() {
    let mut host = FakeHost::default();
    host.files.insert(IPV4_FORWARD.into(), b"0\n".to_vec());
    let r = run_init(&host, &BTreeSet::new());
    assert!(r.failed);
    assert_eq!(
        r.output,
        "[preflight] Some fatal errors occurred:\n\t[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`\n"
    );
}

#[test]
fn swap_on_is_only_a_warning() {
    let mut host = FakeHost::default();
    host.files.insert(
        "/proc/swaps".into(),
        b"Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/swap.img                               file\t\t2097148\t\t0\t\t-2\n".to_vec(),
    );
    let r = run_init(&host, &BTreeSet::new());
    assert!(!r.failed);
    assert_eq!(
        r.output,
        "\t[WARNING Swap]: swap is supported for cgroup v2 only. The kubelet must be properly configured to use swap. Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, or disable swap on the node\n"
    );
}

#[test]
fn kubelet_not_enabled_is_a_warning() {
    let host = FakeHost {
        kubelet: ServiceState::Disabled,
        ..Default::default()
    };
    let r = run_init(&host, &BTreeSet::new());
    assert!(!r.failed);
    assert_eq!(r.output, "\t[WARNING Service-Kubelet]: kubelet service is not enabled, please run 'systemctl enable kubelet.service'\n");
}

#[test]
fn ignore_preflight_errors_turns_errors_into_warnings() {
    let mut host = FakeHost::default();
    host.files.insert(IPV4_FORWARD.into(), b"0\n".to_vec());
    host.cpus = 1;
    // From the config file (nodeRegistration.ignorePreflightErrors) and the flag, any case.
    let ignore = ignore_set(
        &["numcpu".to_string()],
        &["FileContent--proc-sys-net-ipv4-ip_forward".to_string()],
    )
    .unwrap();
    let r = run_init(&host, &ignore);
    assert!(!r.failed, "{}", r.output);
    assert_eq!(
        r.output,
        "\t[WARNING NumCPU]: the number of available CPUs 1 is less than the required 2\n\t[WARNING FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1\n"
    );
    // Only the named check is ignored.
    let only_cpu = ignore_set(&["NumCPU".to_string()], &[]).unwrap();
    assert!(run_init(&host, &only_cpu).failed);
    // `all` ignores everything.
    let all = ignore_set(&["all".to_string()], &[]).unwrap();
    assert!(!run_init(&host, &all).failed);
}

#[test]
fn all_cannot_be_combined_with_names() {
    assert_eq!(
        ignore_set(&["all".to_string(), "Swap".to_string()], &[]).unwrap_err(),
        "ignore-preflight-errors: Invalid value: \"all,swap\": don't specify individual checks if 'all' is used"
    );
    assert_eq!(ignore_set(&["Swap,NumCPU".to_string()], &[]).unwrap().len(), 2);
}

#[test]
fn control_plane_resources_ports_and_leftovers() {
    let mut host = FakeHost {
        cpus: 1,
        mem_mb: 969,
        ..Default::default()
    };
    host.ports_in_use.extend([6443, 10250, 2379]);
    host.existing
        .insert("/etc/kubernetes/manifests/kube-apiserver.yaml".into());
    host.nonempty_dirs.insert("/var/lib/etcd".into());
    let r = run_init(&host, &BTreeSet::new());
    assert!(r.failed);
    let errors: Vec<&str> = r.output.lines().filter(|l| l.starts_with("\t[ERROR")).collect();
    assert_eq!(
        errors,
        vec![
            "\t[ERROR NumCPU]: the number of available CPUs 1 is less than the required 2",
            "\t[ERROR Mem]: the system RAM (969 MB) is less than the minimum 1700 MB",
            "\t[ERROR Port-6443]: Port 6443 is in use",
            "\t[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]: /etc/kubernetes/manifests/kube-apiserver.yaml already exists",
            "\t[ERROR Port-10250]: Port 10250 is in use",
            "\t[ERROR Port-2379]: Port 2379 is in use",
            "\t[ERROR DirAvailable--var-lib-etcd]: /var/lib/etcd is not empty",
        ]
    );
}

#[test]
fn missing_cri_socket_and_executables() {
    let mut host = FakeHost {
        cri: Err("no such file or directory".into()),
        ..Default::default()
    };
    host.missing_exes.insert("iptables".into());
    host.missing_exes.insert("ethtool".into());
    let r = run_init(&host, &BTreeSet::new());
    assert!(r.failed);
    assert!(
        r.output
            .contains("\t[WARNING FileExisting-ethtool]: ethtool not found in system path\n"),
        "{}",
        r.output
    );
    assert!(r
        .output
        .contains("\t[ERROR FileExisting-iptables]: iptables not found in system path\n"));
    assert!(r.output.contains(
        "\t[ERROR CRI]: could not connect to the container runtime: failed to create new CRI runtime service: validate service connection: validate CRI v1 runtime API for endpoint \"unix:///var/run/containerd/containerd.sock\": rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix /var/run/containerd/containerd.sock: connect: no such file or directory\"\n"
    ));
}

#[test]
fn kubelet_version_skew() {
    let newer = FakeHost {
        kubelet_version: Ok("Kubernetes v1.37.0".into()),
        ..Default::default()
    };
    let r = run_init(&newer, &BTreeSet::new());
    assert!(r.output.contains("\t[ERROR KubeletVersion]: the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: \"1.37.0\" Control plane version: \"1.36.4\"\n"), "{}", r.output);
    let too_old = FakeHost {
        kubelet_version: Ok("Kubernetes v1.32.9".into()),
        ..Default::default()
    };
    let r = run_init(&too_old, &BTreeSet::new());
    assert!(r.output.contains("\t[ERROR KubeletVersion]: Kubelet version \"1.32.9\" is lower than kubeadm can support. Please upgrade kubelet\n"), "{}", r.output);
    let skewed_ok = FakeHost {
        kubelet_version: Ok("Kubernetes v1.35.0".into()),
        ..Default::default()
    };
    assert!(!run_init(&skewed_ok, &BTreeSet::new()).failed);
    let missing = FakeHost {
        kubelet_version: Err(
            "cannot execute 'kubelet --version': exec: \"kubelet\": executable file not found in $PATH"
                .into(),
        ),
        ..Default::default()
    };
    assert!(run_init(&missing, &BTreeSet::new())
        .output
        .contains("[ERROR KubeletVersion]: couldn't get kubelet version: cannot execute"));
}

#[test]
fn worker_join_checks_kubelet_conf_not_cpu() {
    let mut host = FakeHost {
        cpus: 1,
        mem_mb: 900,
        ..Default::default()
    };
    host.existing.insert("/etc/kubernetes/kubelet.conf".into());
    let r = run_checks(&join_checks(&join_cfg(false)), &BTreeSet::new(), V136, &host);
    assert!(r.failed);
    assert_eq!(
        r.output.lines().filter(|l| l.starts_with("\t[ERROR")).collect::<Vec<_>>(),
        vec!["\t[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists"]
    );
    let names: Vec<String> = join_checks(&join_cfg(false)).iter().map(Check::name).collect();
    assert!(names.contains(&"FileAvailable--etc-kubernetes-pki-ca.crt".to_string()));
    assert!(names.contains(&"FileContent--proc-sys-net-ipv4-ip_forward".to_string()));
}

#[test]
fn control_plane_join_adds_control_plane_checks() {
    let cfg = join_cfg(true);
    let names: Vec<String> = join_checks(&cfg).iter().map(Check::name).collect();
    assert!(!names.contains(&"FileAvailable--etc-kubernetes-pki-ca.crt".to_string()));
    let cp: Vec<String> = join_control_plane_checks(&cfg, "v1.36.4")
        .iter()
        .map(Check::name)
        .collect();
    assert_eq!(
        cp,
        vec![
            "NumCPU",
            "Mem",
            "KubernetesVersion",
            "Firewalld",
            "Port-6443",
            "Port-10259",
            "Port-10257",
            "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
            "FileAvailable--etc-kubernetes-manifests-kube-controller-manager.yaml",
            "FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml",
            "FileAvailable--etc-kubernetes-manifests-etcd.yaml",
            "Port-2379",
            "Port-2380",
            "DirAvailable--var-lib-etcd",
        ]
    );
}

#[test]
fn not_root() {
    let host = FakeHost {
        root: false,
        ..Default::default()
    };
    let r = run_checks(&[Check::IsPrivilegedUser], &BTreeSet::new(), V136, &host);
    assert!(r
        .output
        .contains("\t[ERROR IsPrivilegedUser]: user is not running as root\n"));
}
