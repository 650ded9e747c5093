//! The shape of each config kind, and a walker that checks a YAML document against it
//! the way kubeadm's decoders do.
//!
//! kubeadm decodes twice (cmd/kubeadm/app/util/config/initconfiguration.go
//! `documentMapToInitConfiguration`): a strict pass (util/config/strict `VerifyUnmarshalStrict`,
//! sigs.k8s.io/json strict mode) whose unknown fields are only *warnings* for init/join and
//! *errors* for `kubeadm config validate`, then the real decode where a wrong type is always
//! fatal with encoding/json's `json: cannot unmarshal X into Go struct field S.path of type T`.
//! YAML is converted to JSON first with sorted keys, so unknown fields are reported in
//! alphabetical order; that is why the walker sorts keys too.

use serde_yaml::Value;

/// Which kubeadm API a document uses; the few field differences are keyed on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    V1beta3,
    V1beta4,
    /// kubelet.config.k8s.io/v1beta1
    Kubelet,
}

impl Api {
    fn pkg(self) -> &'static str {
        match self {
            Api::V1beta3 => "v1beta3",
            Api::V1beta4 => "v1beta4",
            Api::Kubelet => "v1beta1",
        }
    }
}

/// Where a field exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Avail {
    All,
    V3Only,
    V4Only,
}

/// A field's Go type, as far as decoding cares.
#[derive(Debug)]
pub enum Ty {
    Str,
    I32,
    I64,
    Bool,
    /// metav1.Duration: a string Go's time.ParseDuration accepts.
    Duration,
    /// bootstraptoken/v1 BootstrapTokenString.
    Token,
    /// `[]string`
    StrList,
    /// `map[string]bool`
    BoolMap,
    /// `map[string]string`
    StrMap,
    /// extraArgs: `[]Arg` in v1beta4, `map[string]string` in v1beta3.
    Args,
    List(&'static Struct),
    Struct(&'static Struct),
    /// Anything (embedded Kubernetes types kbs does not use); not checked.
    Any,
}

/// A Go struct: its name and JSON fields.
#[derive(Debug)]
pub struct Struct {
    pub go_name: &'static str,
    /// Package of the type; `None` = the document's API package.
    pub pkg: Option<&'static str>,
    pub fields: &'static [(&'static str, Ty, Avail)],
}

/// What the walk found.
#[derive(Debug, Default)]
pub struct WalkReport {
    /// Strict-decoding problems: `unknown field "path"` entries.
    pub unknown: Vec<String>,
    /// The first fatal decode error (wrong type, bad token or duration).
    pub fatal: Option<String>,
}

/// Checks `doc` (a mapping) against `root`.
pub fn walk(doc: &Value, root: &'static Struct, api: Api) -> WalkReport {
    let mut report = WalkReport::default();
    walk_struct(doc, root, api, "", &mut report);
    report
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Mapping(_) => "object",
        Value::Sequence(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
        Value::Tagged(_) => "object",
    }
}

fn go_type(ty: &Ty, api: Api) -> String {
    match ty {
        Ty::Str => "string".into(),
        Ty::I32 => "int32".into(),
        Ty::I64 => "int64".into(),
        Ty::Bool => "bool".into(),
        Ty::Duration => "v1.Duration".into(),
        Ty::Token => "v1.BootstrapTokenString".into(),
        Ty::StrList => "[]string".into(),
        Ty::BoolMap => "map[string]bool".into(),
        Ty::StrMap => "map[string]string".into(),
        Ty::Args if api == Api::V1beta3 => "map[string]string".into(),
        Ty::Args => format!("[]{}.Arg", api.pkg()),
        Ty::List(s) => format!("[]{}.{}", s.pkg.unwrap_or(api.pkg()), s.go_name),
        Ty::Struct(s) => format!("{}.{}", s.pkg.unwrap_or(api.pkg()), s.go_name),
        Ty::Any => "interface {}".into(),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// Go's json path in type errors drops list indices; strict errors keep them.
fn go_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut skipping = false;
    for c in path.chars() {
        match c {
            '[' => skipping = true,
            ']' => skipping = false,
            c if !skipping => out.push(c),
            _ => {}
        }
    }
    out
}

fn type_error(report: &mut WalkReport, value: &Value, owner: &Struct, path: &str, ty: &Ty, api: Api) {
    if report.fatal.is_none() {
        report.fatal = Some(format!(
            "json: cannot unmarshal {} into Go struct field {}.{} of type {}",
            kind_of(value),
            owner.go_name,
            go_path(path),
            go_type(ty, api)
        ));
    }
}

fn walk_struct(v: &Value, s: &'static Struct, api: Api, path: &str, report: &mut WalkReport) {
    let Value::Mapping(map) = v else { return };
    let mut keys: Vec<(&str, &Value)> = map
        .iter()
        .filter_map(|(k, v)| k.as_str().map(|k| (k, v)))
        .collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for (key, value) in keys {
        let field_path = join(path, key);
        let field = s.fields.iter().find(|(name, _, avail)| {
            *name == key
                && match avail {
                    Avail::All => true,
                    Avail::V3Only => api == Api::V1beta3,
                    Avail::V4Only => api != Api::V1beta3,
                }
        });
        let is_type_meta = path.is_empty() && (key == "apiVersion" || key == "kind");
        match field {
            Some((_, ty, _)) => walk_value(value, ty, s, api, &field_path, report),
            None if is_type_meta => {}
            None => report
                .unknown
                .push(format!("unknown field {}", crate::gofmt::quote(&field_path))),
        }
    }
}

fn walk_value(v: &Value, ty: &Ty, owner: &'static Struct, api: Api, path: &str, report: &mut WalkReport) {
    if v.is_null() {
        return; // JSON null leaves the Go zero value: never an error.
    }
    let ok = match ty {
        Ty::Str => v.is_string(),
        Ty::I32 => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        Ty::I64 => v.is_i64(),
        Ty::Bool => v.is_bool(),
        Ty::Duration => match v.as_str() {
            Some(s) => {
                if let Err(e) = super::duration::parse_go_duration(s) {
                    report.fatal.get_or_insert(e);
                }
                true
            }
            None => false,
        },
        Ty::Token => match v.as_str() {
            Some(s) => {
                if let Err(e) = crate::token::BootstrapToken::parse(s) {
                    report.fatal.get_or_insert(e);
                }
                true
            }
            None => false,
        },
        Ty::StrList => match v.as_sequence() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    if !item.is_string() && !item.is_null() {
                        type_error(report, item, owner, &format!("{path}[{i}]"), &Ty::Str, api);
                    }
                }
                true
            }
            None => false,
        },
        Ty::BoolMap | Ty::StrMap => match v.as_mapping() {
            Some(m) => {
                for (_, item) in m {
                    let bad = match ty {
                        Ty::BoolMap => !item.is_bool(),
                        _ => !item.is_string(),
                    };
                    if bad && !item.is_null() {
                        let elem = if matches!(ty, Ty::BoolMap) {
                            Ty::Bool
                        } else {
                            Ty::Str
                        };
                        type_error(report, item, owner, path, &elem, api);
                    }
                }
                true
            }
            None => false,
        },
        Ty::Args if api == Api::V1beta3 => {
            return walk_value(v, &Ty::StrMap, owner, api, path, report);
        }
        Ty::Args => return walk_value(v, &Ty::List(&ARG), owner, api, path, report),
        Ty::List(s) => match v.as_sequence() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    if item.is_mapping() {
                        walk_struct(item, s, api, &p, report);
                    } else if !item.is_null() {
                        type_error(report, item, owner, &p, &Ty::Struct(s), api);
                    }
                }
                true
            }
            None => false,
        },
        Ty::Struct(s) => {
            if v.is_mapping() {
                walk_struct(v, s, api, path, report);
                true
            } else {
                false
            }
        }
        Ty::Any => true,
    };
    if !ok {
        type_error(report, v, owner, path, ty, api);
    }
}

// ---- kubeadm.k8s.io v1beta3 / v1beta4 (apis/kubeadm/v1beta4/types.go) ----

pub static ARG: Struct = Struct {
    go_name: "Arg",
    pkg: None,
    fields: &[("name", Ty::Str, Avail::All), ("value", Ty::Str, Avail::All)],
};

static ENV_VAR: Struct = Struct {
    go_name: "EnvVar",
    pkg: None,
    fields: &[
        ("name", Ty::Str, Avail::All),
        ("value", Ty::Str, Avail::All),
        ("valueFrom", Ty::Any, Avail::All),
    ],
};

static TAINT: Struct = Struct {
    go_name: "Taint",
    pkg: Some("v1"),
    fields: &[
        ("key", Ty::Str, Avail::All),
        ("value", Ty::Str, Avail::All),
        ("effect", Ty::Str, Avail::All),
        ("timeAdded", Ty::Any, Avail::All),
    ],
};

static NODE_REGISTRATION: Struct = Struct {
    go_name: "NodeRegistrationOptions",
    pkg: None,
    fields: &[
        ("name", Ty::Str, Avail::All),
        ("criSocket", Ty::Str, Avail::All),
        ("taints", Ty::List(&TAINT), Avail::All),
        ("kubeletExtraArgs", Ty::Args, Avail::All),
        ("ignorePreflightErrors", Ty::StrList, Avail::All),
        ("imagePullPolicy", Ty::Str, Avail::All),
        ("imagePullSerial", Ty::Bool, Avail::V4Only),
    ],
};

static API_ENDPOINT: Struct = Struct {
    go_name: "APIEndpoint",
    pkg: None,
    fields: &[
        ("advertiseAddress", Ty::Str, Avail::All),
        ("bindPort", Ty::I32, Avail::All),
    ],
};

static BOOTSTRAP_TOKEN: Struct = Struct {
    go_name: "BootstrapToken",
    pkg: Some("v1"),
    fields: &[
        ("token", Ty::Token, Avail::All),
        ("description", Ty::Str, Avail::All),
        ("ttl", Ty::Duration, Avail::All),
        ("expires", Ty::Str, Avail::All),
        ("usages", Ty::StrList, Avail::All),
        ("groups", Ty::StrList, Avail::All),
    ],
};

static PATCHES: Struct = Struct {
    go_name: "Patches",
    pkg: None,
    fields: &[("directory", Ty::Str, Avail::All)],
};

static TIMEOUTS: Struct = Struct {
    go_name: "Timeouts",
    pkg: None,
    fields: &[
        ("controlPlaneComponentHealthCheck", Ty::Duration, Avail::All),
        ("kubeletHealthCheck", Ty::Duration, Avail::All),
        ("kubernetesAPICall", Ty::Duration, Avail::All),
        ("etcdAPICall", Ty::Duration, Avail::All),
        ("tlsBootstrap", Ty::Duration, Avail::All),
        ("discovery", Ty::Duration, Avail::All),
        ("upgradeManifests", Ty::Duration, Avail::All),
    ],
};

pub static INIT_CONFIGURATION: Struct = Struct {
    go_name: "InitConfiguration",
    pkg: None,
    fields: &[
        ("bootstrapTokens", Ty::List(&BOOTSTRAP_TOKEN), Avail::All),
        ("dryRun", Ty::Bool, Avail::V4Only),
        ("nodeRegistration", Ty::Struct(&NODE_REGISTRATION), Avail::All),
        ("localAPIEndpoint", Ty::Struct(&API_ENDPOINT), Avail::All),
        ("certificateKey", Ty::Str, Avail::All),
        ("skipPhases", Ty::StrList, Avail::All),
        ("patches", Ty::Struct(&PATCHES), Avail::All),
        ("timeouts", Ty::Struct(&TIMEOUTS), Avail::V4Only),
    ],
};

static HOST_PATH_MOUNT: Struct = Struct {
    go_name: "HostPathMount",
    pkg: None,
    fields: &[
        ("name", Ty::Str, Avail::All),
        ("hostPath", Ty::Str, Avail::All),
        ("mountPath", Ty::Str, Avail::All),
        ("readOnly", Ty::Bool, Avail::All),
        ("pathType", Ty::Str, Avail::All),
    ],
};

static CONTROL_PLANE_COMPONENT: Struct = Struct {
    go_name: "ControlPlaneComponent",
    pkg: None,
    fields: &[
        ("extraArgs", Ty::Args, Avail::All),
        ("extraVolumes", Ty::List(&HOST_PATH_MOUNT), Avail::All),
        ("extraEnvs", Ty::List(&ENV_VAR), Avail::V4Only),
    ],
};

static API_SERVER: Struct = Struct {
    go_name: "APIServer",
    pkg: None,
    fields: &[
        ("extraArgs", Ty::Args, Avail::All),
        ("extraVolumes", Ty::List(&HOST_PATH_MOUNT), Avail::All),
        ("extraEnvs", Ty::List(&ENV_VAR), Avail::V4Only),
        ("certSANs", Ty::StrList, Avail::All),
        ("timeoutForControlPlane", Ty::Duration, Avail::V3Only),
    ],
};

static LOCAL_ETCD: Struct = Struct {
    go_name: "LocalEtcd",
    pkg: None,
    fields: &[
        ("imageRepository", Ty::Str, Avail::All),
        ("imageTag", Ty::Str, Avail::All),
        ("dataDir", Ty::Str, Avail::All),
        ("extraArgs", Ty::Args, Avail::All),
        ("extraEnvs", Ty::List(&ENV_VAR), Avail::V4Only),
        ("serverCertSANs", Ty::StrList, Avail::All),
        ("peerCertSANs", Ty::StrList, Avail::All),
    ],
};

static EXTERNAL_ETCD: Struct = Struct {
    go_name: "ExternalEtcd",
    pkg: None,
    fields: &[
        ("endpoints", Ty::StrList, Avail::All),
        ("caFile", Ty::Str, Avail::All),
        ("certFile", Ty::Str, Avail::All),
        ("keyFile", Ty::Str, Avail::All),
    ],
};

static ETCD: Struct = Struct {
    go_name: "Etcd",
    pkg: None,
    fields: &[
        ("local", Ty::Struct(&LOCAL_ETCD), Avail::All),
        ("external", Ty::Struct(&EXTERNAL_ETCD), Avail::All),
    ],
};

static NETWORKING: Struct = Struct {
    go_name: "Networking",
    pkg: None,
    fields: &[
        ("serviceSubnet", Ty::Str, Avail::All),
        ("podSubnet", Ty::Str, Avail::All),
        ("dnsDomain", Ty::Str, Avail::All),
    ],
};

static DNS: Struct = Struct {
    go_name: "DNS",
    pkg: None,
    fields: &[
        ("imageRepository", Ty::Str, Avail::All),
        ("imageTag", Ty::Str, Avail::All),
        ("disabled", Ty::Bool, Avail::V4Only),
    ],
};

static PROXY: Struct = Struct {
    go_name: "Proxy",
    pkg: None,
    fields: &[("disabled", Ty::Bool, Avail::V4Only)],
};

pub static CLUSTER_CONFIGURATION: Struct = Struct {
    go_name: "ClusterConfiguration",
    pkg: None,
    fields: &[
        ("etcd", Ty::Struct(&ETCD), Avail::All),
        ("networking", Ty::Struct(&NETWORKING), Avail::All),
        ("kubernetesVersion", Ty::Str, Avail::All),
        ("controlPlaneEndpoint", Ty::Str, Avail::All),
        ("apiServer", Ty::Struct(&API_SERVER), Avail::All),
        (
            "controllerManager",
            Ty::Struct(&CONTROL_PLANE_COMPONENT),
            Avail::All,
        ),
        ("scheduler", Ty::Struct(&CONTROL_PLANE_COMPONENT), Avail::All),
        ("dns", Ty::Struct(&DNS), Avail::All),
        ("proxy", Ty::Struct(&PROXY), Avail::V4Only),
        ("certificatesDir", Ty::Str, Avail::All),
        ("imageRepository", Ty::Str, Avail::All),
        ("featureGates", Ty::BoolMap, Avail::All),
        ("clusterName", Ty::Str, Avail::All),
        ("encryptionAlgorithm", Ty::Str, Avail::V4Only),
        ("certificateValidityPeriod", Ty::Duration, Avail::V4Only),
        ("caCertificateValidityPeriod", Ty::Duration, Avail::V4Only),
    ],
};

static BOOTSTRAP_TOKEN_DISCOVERY: Struct = Struct {
    go_name: "BootstrapTokenDiscovery",
    pkg: None,
    fields: &[
        ("token", Ty::Str, Avail::All),
        ("apiServerEndpoint", Ty::Str, Avail::All),
        ("caCertHashes", Ty::StrList, Avail::All),
        ("unsafeSkipCAVerification", Ty::Bool, Avail::All),
    ],
};

static FILE_DISCOVERY: Struct = Struct {
    go_name: "FileDiscovery",
    pkg: None,
    fields: &[("kubeConfigPath", Ty::Str, Avail::All)],
};

static DISCOVERY: Struct = Struct {
    go_name: "Discovery",
    pkg: None,
    fields: &[
        (
            "bootstrapToken",
            Ty::Struct(&BOOTSTRAP_TOKEN_DISCOVERY),
            Avail::All,
        ),
        ("file", Ty::Struct(&FILE_DISCOVERY), Avail::All),
        ("tlsBootstrapToken", Ty::Str, Avail::All),
        ("timeout", Ty::Duration, Avail::V3Only),
    ],
};

static JOIN_CONTROL_PLANE: Struct = Struct {
    go_name: "JoinControlPlane",
    pkg: None,
    fields: &[
        ("localAPIEndpoint", Ty::Struct(&API_ENDPOINT), Avail::All),
        ("certificateKey", Ty::Str, Avail::All),
    ],
};

pub static JOIN_CONFIGURATION: Struct = Struct {
    go_name: "JoinConfiguration",
    pkg: None,
    fields: &[
        ("dryRun", Ty::Bool, Avail::V4Only),
        ("nodeRegistration", Ty::Struct(&NODE_REGISTRATION), Avail::All),
        ("caCertPath", Ty::Str, Avail::All),
        ("discovery", Ty::Struct(&DISCOVERY), Avail::All),
        ("controlPlane", Ty::Struct(&JOIN_CONTROL_PLANE), Avail::All),
        ("skipPhases", Ty::StrList, Avail::All),
        ("patches", Ty::Struct(&PATCHES), Avail::All),
        ("timeouts", Ty::Struct(&TIMEOUTS), Avail::V4Only),
    ],
};

// ---- kubelet.config.k8s.io/v1beta1 (k8s.io/kubelet/config/v1beta1/types.go) ----
// The fields kbs and common kubeadm setups use; nested structs kbs never writes are `Any`.

static MEMORY_SWAP: Struct = Struct {
    go_name: "MemorySwapConfiguration",
    pkg: None,
    fields: &[("swapBehavior", Ty::Str, Avail::All)],
};

pub static KUBELET_CONFIGURATION: Struct = Struct {
    go_name: "KubeletConfiguration",
    pkg: None,
    fields: &[
        ("address", Ty::Str, Avail::All),
        ("authentication", Ty::Any, Avail::All),
        ("authorization", Ty::Any, Avail::All),
        ("cgroupDriver", Ty::Str, Avail::All),
        ("cgroupRoot", Ty::Str, Avail::All),
        ("cgroupsPerQOS", Ty::Bool, Avail::All),
        ("clusterDNS", Ty::StrList, Avail::All),
        ("clusterDomain", Ty::Str, Avail::All),
        ("containerLogMaxFiles", Ty::I32, Avail::All),
        ("containerLogMaxSize", Ty::Str, Avail::All),
        ("containerRuntimeEndpoint", Ty::Str, Avail::All),
        ("cpuManagerPolicy", Ty::Str, Avail::All),
        ("cpuManagerReconcilePeriod", Ty::Duration, Avail::All),
        ("enforceNodeAllocatable", Ty::StrList, Avail::All),
        ("evictionHard", Ty::StrMap, Avail::All),
        ("evictionPressureTransitionPeriod", Ty::Duration, Avail::All),
        ("evictionSoft", Ty::StrMap, Avail::All),
        ("failCgroupV1", Ty::Bool, Avail::All),
        ("failSwapOn", Ty::Bool, Avail::All),
        ("featureGates", Ty::BoolMap, Avail::All),
        ("fileCheckFrequency", Ty::Duration, Avail::All),
        ("healthzBindAddress", Ty::Str, Avail::All),
        ("healthzPort", Ty::I32, Avail::All),
        ("httpCheckFrequency", Ty::Duration, Avail::All),
        ("imageMaximumGCAge", Ty::Duration, Avail::All),
        ("imageMinimumGCAge", Ty::Duration, Avail::All),
        ("kubeReserved", Ty::StrMap, Avail::All),
        ("logging", Ty::Any, Avail::All),
        ("maxParallelImagePulls", Ty::I32, Avail::All),
        ("maxPods", Ty::I32, Avail::All),
        ("memorySwap", Ty::Struct(&MEMORY_SWAP), Avail::All),
        ("nodeStatusReportFrequency", Ty::Duration, Avail::All),
        ("nodeStatusUpdateFrequency", Ty::Duration, Avail::All),
        ("podPidsLimit", Ty::I64, Avail::All),
        ("port", Ty::I32, Avail::All),
        ("protectKernelDefaults", Ty::Bool, Avail::All),
        ("providerID", Ty::Str, Avail::All),
        ("readOnlyPort", Ty::I32, Avail::All),
        ("registerWithTaints", Ty::List(&TAINT), Avail::All),
        ("resolvConf", Ty::Str, Avail::All),
        ("rotateCertificates", Ty::Bool, Avail::All),
        ("runtimeRequestTimeout", Ty::Duration, Avail::All),
        ("serializeImagePulls", Ty::Bool, Avail::All),
        ("serverTLSBootstrap", Ty::Bool, Avail::All),
        ("shutdownGracePeriod", Ty::Duration, Avail::All),
        ("shutdownGracePeriodCriticalPods", Ty::Duration, Avail::All),
        ("staticPodPath", Ty::Str, Avail::All),
        ("streamingConnectionIdleTimeout", Ty::Duration, Avail::All),
        ("syncFrequency", Ty::Duration, Avail::All),
        ("systemReserved", Ty::StrMap, Avail::All),
        ("tlsCipherSuites", Ty::StrList, Avail::All),
        ("tlsMinVersion", Ty::Str, Avail::All),
        ("volumeStatsAggPeriod", Ty::Duration, Avail::All),
    ],
};
