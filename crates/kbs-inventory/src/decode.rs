//! Turns the marked YAML tree into a draft inventory, reporting every wrong type, unknown key and
//! malformed value on the way. Rules that relate several values live in `validate`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use ipnet::IpNet;
use marked_yaml::Node;

use crate::findings::{Findings, Pos};
use crate::model::{
    Addon, Addons, Checksums, Cluster, Endpoint, EndpointMode, Group, Host, IngressAddon, IngressController,
    Inventory, ManifestSource, Role, Taint,
};
use crate::ssh::{Bastion, SshSettings};
use crate::suggest;
use crate::syntax::{self, Problem};
use crate::version::KubernetesVersion;
use crate::yaml::{self, Fields, Located, Reader};

const TOP_KEYS: &[&str] = &["cluster", "ssh", "groups", "hosts", "addons"];
const CLUSTER_KEYS: &[&str] = &[
    "name",
    "kubernetesVersion",
    "podSubnet",
    "serviceSubnet",
    "hostSubnet",
    "controlPlaneSchedulable",
    "allowCgroupV1",
    "endpoint",
    "packageRepository",
];
const ENDPOINT_KEYS: &[&str] = &["mode", "address", "port", "interface"];
const SSH_KEYS: &[&str] = &[
    "user",
    "port",
    "identityFile",
    "knownHostsFile",
    "bastion",
    "sudo",
    "connectTimeout",
];
const GROUP_KEYS: &[&str] = &["ssh"];
const HOST_KEYS: &[&str] = &[
    "name", "address", "roles", "nodeIp", "labels", "taints", "groups", "ssh",
];
const ADDONS_KEYS: &[&str] = &["calico", "longhorn", "ingress", "metricsServer", "manifests"];
const ADDON_KEYS: &[&str] = &["enabled", "version", "sha256"];
const INGRESS_KEYS: &[&str] = &["enabled", "version", "controller", "sha256"];
const MANIFESTS_KEYS: &[&str] = &["mirror", "directory"];

pub(crate) const DEFAULT_CLUSTER_NAME: &str = "kubernetes";
pub(crate) const DEFAULT_API_PORT: u16 = 6443;

/// The inventory as decoded, before cross-field rules. Values that failed to decode are `None`
/// (or left out) so the rules can still run on the rest.
pub(crate) struct Draft {
    pub cluster: ClusterDraft,
    pub ssh: SshSettings,
    pub groups: BTreeMap<String, Group>,
    pub hosts: Vec<Host>,
    /// Some host's roles (or the host itself) failed to decode, so counting roles would mislead.
    pub roles_incomplete: bool,
    pub addons: Addons,
}

pub(crate) struct ClusterDraft {
    pub name: String,
    pub kubernetes_version: Option<KubernetesVersion>,
    pub pod_subnet: Option<IpNet>,
    pub service_subnet: Option<IpNet>,
    pub host_subnet: Option<IpNet>,
    pub control_plane_schedulable: bool,
    pub allow_cgroup_v1: bool,
    pub endpoint: Option<Endpoint>,
    pub package_repository: Option<String>,
}

impl Draft {
    /// The finished inventory; `None` if a required value is missing (already reported).
    pub fn into_inventory(self, source_path: &Path) -> Option<Inventory> {
        let cluster = Cluster {
            name: self.cluster.name,
            kubernetes_version: self.cluster.kubernetes_version,
            pod_subnet: self.cluster.pod_subnet?,
            service_subnet: self.cluster.service_subnet?,
            host_subnet: self.cluster.host_subnet,
            control_plane_schedulable: self.cluster.control_plane_schedulable,
            allow_cgroup_v1: self.cluster.allow_cgroup_v1,
            endpoint: self.cluster.endpoint?,
            package_repository: self.cluster.package_repository,
        };
        Some(Inventory {
            cluster,
            ssh: self.ssh,
            groups: self.groups,
            hosts: self.hosts,
            addons: self.addons,
            source_path: source_path.to_path_buf(),
        })
    }
}

/// Where relative and `~` paths in the inventory point.
pub(crate) struct PathContext<'a> {
    pub inventory_dir: &'a Path,
    pub home_dir: Option<&'a Path>,
}

pub(crate) fn decode(root: &Node, paths: &PathContext, findings: &mut Findings) -> Option<Draft> {
    let mut decoder = Decoder {
        reader: Reader { findings },
        paths,
        roles_incomplete: false,
    };
    decoder.inventory(root)
}

struct Decoder<'f, 'p> {
    reader: Reader<'f>,
    paths: &'p PathContext<'p>,
    roles_incomplete: bool,
}

impl Decoder<'_, '_> {
    fn findings(&mut self) -> &mut Findings {
        self.reader.findings
    }

    /// Reports a value problem at `pos`.
    fn problem(&mut self, pos: Pos, problem: Problem) {
        self.findings().error(pos, problem.message, problem.hint);
    }

    fn inventory(&mut self, root: &Node) -> Option<Draft> {
        let top = self.reader.fields(root, "", Pos::START, TOP_KEYS)?;
        let cluster = match self.reader.sub_fields(&top, "cluster", CLUSTER_KEYS) {
            Some(fields) => self.cluster(&fields),
            None => {
                if top.get("cluster").is_none() {
                    self.findings().error(
                        Pos::START,
                        "missing required key `cluster` in the inventory",
                        Some("add a `cluster:` section with at least `podSubnet`".to_string()),
                    );
                }
                ClusterDraft {
                    name: DEFAULT_CLUSTER_NAME.to_string(),
                    kubernetes_version: None,
                    pod_subnet: None,
                    service_subnet: None,
                    host_subnet: None,
                    control_plane_schedulable: false,
                    allow_cgroup_v1: false,
                    endpoint: None,
                    package_repository: None,
                }
            }
        };
        let ssh = match self.reader.sub_fields(&top, "ssh", SSH_KEYS) {
            Some(fields) => self.ssh(&fields),
            None => SshSettings::default(),
        };
        let groups = self.groups(&top);
        let hosts = self.hosts(&top);
        let addons = self.addons(&top);
        Some(Draft {
            cluster,
            ssh,
            groups,
            hosts,
            roles_incomplete: self.roles_incomplete,
            addons,
        })
    }

    fn cluster(&mut self, fields: &Fields) -> ClusterDraft {
        let name = match self.reader.text(fields, "name") {
            Some(name) if syntax::is_dns_label(&name.value) => name.value,
            Some(name) => {
                self.findings().error(
                    name.pos,
                    format!("cluster name `{}` is not a DNS-1123 label", name.value),
                    Some("use lowercase letters, digits and `-`, starting and ending with a letter or digit (at most 63)".to_string()),
                );
                name.value
            }
            None => DEFAULT_CLUSTER_NAME.to_string(),
        };
        let kubernetes_version = self.kubernetes_version(fields);
        let pod_subnet = self
            .reader
            .required_text(
                fields,
                "podSubnet",
                "the pods' network, e.g. `podSubnet: 172.31.0.0/16`",
            )
            .and_then(|text| self.cidr(text, "pod subnet"));
        let service_subnet = match self.reader.text(fields, "serviceSubnet") {
            Some(text) => self.cidr(text, "service subnet"),
            None => "10.96.0.0/12".parse().ok(),
        };
        let host_subnet = self
            .reader
            .text(fields, "hostSubnet")
            .and_then(|text| self.cidr(text, "host subnet"));
        let control_plane_schedulable = self
            .reader
            .boolean(fields, "controlPlaneSchedulable")
            .unwrap_or(false);
        let allow_cgroup_v1 = self.reader.boolean(fields, "allowCgroupV1").unwrap_or(false);
        let endpoint = match self.reader.sub_fields(fields, "endpoint", ENDPOINT_KEYS) {
            Some(endpoint) => self.endpoint(&endpoint),
            None if fields.get("endpoint").is_some() => None,
            None => Some(Endpoint {
                mode: EndpointMode::None,
                address: None,
                port: DEFAULT_API_PORT,
                interface: None,
            }),
        };
        let package_repository = self.package_repository(fields);
        ClusterDraft {
            name,
            kubernetes_version,
            pod_subnet,
            service_subnet,
            host_subnet,
            control_plane_schedulable,
            allow_cgroup_v1,
            endpoint,
            package_repository,
        }
    }

    /// A mirror of pkgs.k8s.io: an http(s) URL under which `core:/stable:/v1.XX/deb/` lives.
    fn package_repository(&mut self, fields: &Fields) -> Option<String> {
        let text = self.reader.text(fields, "packageRepository")?;
        let url = text.value.trim_end_matches('/');
        if !is_http_url(url) {
            self.findings().error(
                text.pos,
                format!("package repository `{}` is not an http(s) URL", text.value),
                Some(
                    "give the base URL of a pkgs.k8s.io mirror, e.g. `https://pkgs.k8s.io` or `http://mirror.lan/k8s`"
                        .to_string(),
                ),
            );
            return None;
        }
        Some(url.to_string())
    }

    fn kubernetes_version(&mut self, fields: &Fields) -> Option<KubernetesVersion> {
        let text = self.reader.text(fields, "kubernetesVersion")?;
        let supported = format!("supported versions are {}", KubernetesVersion::supported_list());
        match KubernetesVersion::parse(&text.value) {
            Ok(version) if version.is_supported() => Some(version),
            Ok(version) => {
                self.findings().error(
                    text.pos,
                    format!("Kubernetes {version} is not supported"),
                    Some(format!("{supported}, written as 1.MM or 1.MM.P")),
                );
                None
            }
            Err(message) => {
                self.findings().error(text.pos, message, Some(supported));
                None
            }
        }
    }

    fn cidr(&mut self, text: Located<String>, what: &str) -> Option<IpNet> {
        syntax::cidr(&text.value, what)
            .map_err(|problem| self.problem(text.pos, problem))
            .ok()
    }

    /// The endpoint's own syntax; which fields each mode needs is checked in `validate`.
    fn endpoint(&mut self, fields: &Fields) -> Option<Endpoint> {
        let modes = EndpointMode::ALL.map(|m| m.as_str());
        let mode = match self.reader.required_text(
            fields,
            "mode",
            &format!("set `mode:` to one of {}", modes.join(", ")),
        ) {
            Some(text) => match EndpointMode::ALL.into_iter().find(|m| m.as_str() == text.value) {
                Some(mode) => Some(mode),
                None => {
                    let suggestion = suggest::did_you_mean(&text.value, modes);
                    self.findings().error(
                        text.pos,
                        format!(
                            "unknown endpoint mode `{}`{}",
                            text.value,
                            suggest::suffix(suggestion.as_deref())
                        ),
                        Some(format!("modes are {}", modes.join(", "))),
                    );
                    None
                }
            },
            None => None,
        };
        let address = self.reader.text(fields, "address").and_then(|text| {
            match syntax::address(&text.value, "endpoint address") {
                Ok(()) => Some(text.value),
                Err(problem) => {
                    self.problem(text.pos, problem);
                    None
                }
            }
        });
        let port = self.reader.port(fields, "port").unwrap_or(DEFAULT_API_PORT);
        let interface = self.reader.text(fields, "interface").map(|text| text.value);
        Some(Endpoint {
            mode: mode?,
            address,
            port,
            interface,
        })
    }

    fn ssh(&mut self, fields: &Fields) -> SshSettings {
        let user = self.reader.text(fields, "user").map(|text| text.value);
        let port = self.reader.port(fields, "port");
        let identity_file = self.reader.text(fields, "identityFile").and_then(|text| {
            let path = self.resolve_path(&text)?;
            if !path.is_file() {
                self.findings().error(
                    text.pos,
                    format!("identity file {} does not exist", path.display()),
                    Some(
                        "`~` is your home directory; relative paths start at the inventory file's directory"
                            .to_string(),
                    ),
                );
            }
            Some(path)
        });
        let known_hosts_file = self
            .reader
            .text(fields, "knownHostsFile")
            .and_then(|text| self.resolve_path(&text));
        let bastion =
            self.reader
                .text(fields, "bastion")
                .and_then(|text| match Bastion::parse(&text.value) {
                    Ok(bastion) => Some(bastion),
                    Err(message) => {
                        self.findings().error(
                            text.pos,
                            message,
                            Some("write [user@]host[:port], e.g. admin@jump.example:22".to_string()),
                        );
                        None
                    }
                });
        let sudo = self.reader.boolean(fields, "sudo");
        let connect_timeout = self.reader.text(fields, "connectTimeout").and_then(|text| {
            syntax::duration(&text.value)
                .map_err(|problem| self.problem(text.pos, problem))
                .ok()
        });
        SshSettings {
            user,
            port,
            identity_file,
            known_hosts_file,
            bastion,
            sudo,
            connect_timeout,
        }
    }

    /// `~` and `~/x` are under the home directory; relative paths start at the inventory's directory.
    fn resolve_path(&mut self, text: &Located<String>) -> Option<PathBuf> {
        let raw = text.value.as_str();
        let joined = if raw == "~" || raw.starts_with("~/") {
            let Some(home) = self.paths.home_dir else {
                self.findings().error(
                    text.pos,
                    format!("cannot expand `~` in `{raw}`: the home directory is unknown"),
                    Some("set HOME or write an absolute path".to_string()),
                );
                return None;
            };
            home.join(raw.trim_start_matches('~').trim_start_matches('/'))
        } else if raw.starts_with('~') {
            self.findings().error(
                text.pos,
                format!("`{raw}`: only `~/` (your own home) is expanded"),
                Some("write an absolute path".to_string()),
            );
            return None;
        } else {
            self.paths.inventory_dir.join(raw)
        };
        Some(without_dot_components(&joined))
    }

    fn groups(&mut self, top: &Fields) -> BTreeMap<String, Group> {
        let mut groups = BTreeMap::new();
        let Some(field) = top.get("groups") else {
            return groups;
        };
        let Some(map) = self.reader.mapping(field.value, "groups", field.key_pos) else {
            return groups;
        };
        for (name, value) in map.entries() {
            let path = format!("groups.{}", name.as_str());
            let pos = yaml::scalar_pos(name);
            let ssh = match self.reader.fields(value, &path, pos, GROUP_KEYS) {
                Some(group) => match self.reader.sub_fields(&group, "ssh", SSH_KEYS) {
                    Some(ssh) => self.ssh(&ssh),
                    None => SshSettings::default(),
                },
                None => SshSettings::default(),
            };
            groups.insert(name.as_str().to_string(), Group { ssh });
        }
        groups
    }

    fn hosts(&mut self, top: &Fields) -> Vec<Host> {
        if top.get("hosts").is_none() {
            self.findings().error(
                Pos::START,
                "missing required key `hosts` in the inventory",
                Some("list the machines under `hosts:`, each with name, address and roles".to_string()),
            );
            return Vec::new();
        }
        let items = self
            .reader
            .list(top, "hosts", "write one `- name: …` entry per host");
        items
            .into_iter()
            .filter_map(|(path, pos, node)| self.host(node, &path, pos))
            .collect()
    }

    fn host(&mut self, node: &Node, path: &str, pos: Pos) -> Option<Host> {
        if let Some(name) = node.as_mapping().and_then(|map| map.get_scalar("name")) {
            if !name.as_str().is_empty() {
                self.findings().name_host(path, name.as_str());
            }
        }
        let Some(fields) = self.reader.fields(node, path, pos, HOST_KEYS) else {
            self.roles_incomplete = true;
            return None;
        };
        let name =
            match self
                .reader
                .required_text(&fields, "name", "every host needs a `name:`, its node name")
            {
                Some(name) => {
                    if !syntax::is_dns_subdomain(&name.value) {
                        self.findings().error(
                            name.pos,
                            format!("host name `{}` is not a valid DNS-1123 name", name.value),
                            Some("use lowercase letters, digits, `-` and `.`, e.g. host01".to_string()),
                        );
                    }
                    name.value
                }
                None => String::new(),
            };
        let address = match self.reader.required_text(
            &fields,
            "address",
            "every host needs an `address:` to connect to",
        ) {
            Some(address) => {
                if let Err(problem) = syntax::address(&address.value, "address") {
                    self.problem(address.pos, problem);
                }
                address.value
            }
            None => String::new(),
        };
        let errors_before_roles = self.findings().error_count();
        let roles = self.roles(&fields);
        self.roles_incomplete |= self.findings().error_count() > errors_before_roles;
        let node_ip = match self.reader.text(&fields, "nodeIp") {
            Some(text) => syntax::ip(&text.value, "nodeIp")
                .map_err(|problem| self.problem(text.pos, problem))
                .ok(),
            None => address.parse::<IpAddr>().ok(),
        };
        let labels = self.labels(&fields);
        let taints = self.taints(&fields);
        let groups = self
            .reader
            .list(&fields, "groups", "write `groups: [name, …]`")
            .into_iter()
            .filter_map(|(item_path, item_pos, item)| self.reader.scalar_text(item, &item_path, item_pos))
            .map(|text| text.value)
            .collect();
        let ssh = match self.reader.sub_fields(&fields, "ssh", SSH_KEYS) {
            Some(ssh) => self.ssh(&ssh),
            None => SshSettings::default(),
        };
        Some(Host {
            name,
            address,
            roles,
            node_ip,
            labels,
            taints,
            groups,
            ssh,
        })
    }

    fn roles(&mut self, fields: &Fields) -> Vec<Role> {
        if fields.get("roles").is_none() {
            let place = self.findings().describe(&fields.path);
            self.findings().error(
                fields.pos,
                format!("missing required key `roles` in {place}"),
                Some("give at least one of control-plane, worker, lb, e.g. `roles: [worker]`".to_string()),
            );
            return Vec::new();
        }
        let items = self.reader.list(
            fields,
            "roles",
            "write `roles: [control-plane]` or `roles: [worker]`",
        );
        let mut roles = Vec::new();
        for (path, pos, item) in items {
            let Some(text) = self.reader.scalar_text(item, &path, pos) else {
                continue;
            };
            match Role::from_name(&text.value) {
                Some(role) if !roles.contains(&role) => roles.push(role),
                Some(_) => {}
                None => {
                    let names = Role::ALL.map(|r| r.as_str());
                    // kubeadm's own old name for control planes.
                    let suggestion = if text.value == "master" {
                        Some("control-plane".to_string())
                    } else {
                        suggest::did_you_mean(&text.value, names)
                    };
                    self.findings().error(
                        text.pos,
                        format!(
                            "unknown role `{}`{}",
                            text.value,
                            suggest::suffix(suggestion.as_deref())
                        ),
                        Some(format!("roles are {}", names.join(", "))),
                    );
                }
            }
        }
        if let Some(Node::Sequence(items)) = fields.get("roles").map(|field| field.value) {
            if items.is_empty() {
                let pos = self.findings().pos_of(&fields.child("roles"));
                let place = self.findings().describe(&fields.child("roles"));
                self.findings().error(
                    pos,
                    format!("{place} is empty"),
                    Some("give at least one of control-plane, worker, lb".to_string()),
                );
            }
        }
        roles
    }

    fn labels(&mut self, fields: &Fields) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        let Some(field) = fields.get("labels") else {
            return labels;
        };
        let path = fields.child("labels");
        let Some(map) = self.reader.mapping(field.value, &path, field.key_pos) else {
            return labels;
        };
        for (key, value) in map.entries() {
            let key_pos = yaml::scalar_pos(key);
            if !syntax::is_label_key(key.as_str()) {
                self.findings().error(
                    key_pos,
                    format!("label key `{}` is not valid", key.as_str()),
                    Some("write [prefix/]name: a name of letters, digits, `-`, `_`, `.` (at most 63), prefix a DNS name".to_string()),
                );
                continue;
            }
            let label_path = format!("{path}.{}", key.as_str());
            let Some(text) = self.reader.scalar_text(value, &label_path, yaml::node_pos(value)) else {
                continue;
            };
            // `key:` alone is an empty label value, as in Kubernetes.
            let value_text = if yaml::is_null(value) {
                String::new()
            } else {
                text.value
            };
            if !syntax::is_label_value(&value_text) {
                self.findings().error(
                    text.pos,
                    format!("label value `{value_text}` of `{}` is not valid", key.as_str()),
                    Some("at most 63 letters, digits, `-`, `_`, `.`, starting and ending with a letter or digit".to_string()),
                );
                continue;
            }
            labels.insert(key.as_str().to_string(), value_text);
        }
        labels
    }

    fn taints(&mut self, fields: &Fields) -> Vec<Taint> {
        let items = self
            .reader
            .list(fields, "taints", "write `taints: [\"key=value:NoSchedule\"]`");
        let mut taints = Vec::new();
        for (path, pos, item) in items {
            let Some(text) = self.reader.scalar_text(item, &path, pos) else {
                continue;
            };
            match syntax::taint(&text.value) {
                Ok(taint) => taints.push(taint),
                Err(problem) => self.problem(text.pos, problem),
            }
        }
        taints
    }

    fn addons(&mut self, top: &Fields) -> Addons {
        let Some(fields) = self.reader.sub_fields(top, "addons", ADDONS_KEYS) else {
            return Addons::default();
        };
        Addons {
            calico: self.addon(&fields, "calico"),
            longhorn: self.addon(&fields, "longhorn"),
            ingress: self.ingress(&fields),
            metrics_server: self.addon(&fields, "metricsServer"),
            manifests: self.manifest_source(&fields),
        }
    }

    /// `addons.manifests`: a mirror URL or a local directory, not both.
    fn manifest_source(&mut self, addons: &Fields) -> ManifestSource {
        let Some(fields) = self.reader.sub_fields(addons, "manifests", MANIFESTS_KEYS) else {
            return ManifestSource::Upstream;
        };
        let mirror = self.reader.text(&fields, "mirror");
        let directory = self.reader.text(&fields, "directory");
        if let (Some(_), Some(second)) = (&mirror, &directory) {
            self.findings().error(
                second.pos,
                "`mirror` and `directory` are both set: manifests come from one place".to_string(),
                Some("keep `mirror` (an http(s) server) or `directory` (files on this machine)".to_string()),
            );
            return ManifestSource::Upstream;
        }
        if let Some(text) = mirror {
            let url = text.value.trim_end_matches('/');
            if !is_http_url(url) {
                self.findings().error(
                    text.pos,
                    format!("manifest mirror `{}` is not an http(s) URL", text.value),
                    Some(
                        "give the base URL under which `<upstream host>/<upstream path>` is served, e.g. `http://10.61.0.1/manifests`"
                            .to_string(),
                    ),
                );
                return ManifestSource::Upstream;
            }
            return ManifestSource::Mirror(url.to_string());
        }
        if let Some(text) = directory {
            let Some(path) = self.resolve_path(&text) else {
                return ManifestSource::Upstream;
            };
            if !path.is_dir() {
                self.findings().error(
                    text.pos,
                    format!("manifest directory {} does not exist", path.display()),
                    Some(
                        "lay it out as `<upstream host>/<upstream path>`; relative paths start at the inventory file's directory"
                            .to_string(),
                    ),
                );
                return ManifestSource::Upstream;
            }
            return ManifestSource::Directory(path);
        }
        ManifestSource::Upstream
    }

    /// `sha256: {file name: 64 hex digits}`; an optional `sha256:` prefix on a value is accepted.
    fn checksums(&mut self, fields: &Fields) -> Checksums {
        let mut sums = Checksums::new();
        let Some(field) = fields.get("sha256") else {
            return sums;
        };
        let path = fields.child("sha256");
        let Some(map) = self.reader.mapping(field.value, &path, field.key_pos) else {
            return sums;
        };
        for (key, value) in map.entries() {
            let name = key.as_str();
            if name.is_empty() || name.contains('/') {
                self.findings().error(
                    yaml::scalar_pos(key),
                    format!("`{name}` is not a manifest file name"),
                    Some("use the last part of the manifest's URL, e.g. `operator-crds.yaml`".to_string()),
                );
                continue;
            }
            let Some(text) = self
                .reader
                .scalar_text(value, &format!("{path}.{name}"), yaml::node_pos(value))
            else {
                continue;
            };
            let hex = text
                .value
                .trim()
                .strip_prefix("sha256:")
                .unwrap_or(text.value.trim());
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                self.findings().error(
                    text.pos,
                    format!("SHA-256 `{}` of `{name}` is not 64 hex digits", text.value),
                    Some("print it with `sha256sum FILE`".to_string()),
                );
                continue;
            }
            sums.insert(name.to_string(), hex.to_ascii_lowercase());
        }
        sums
    }

    /// An add-on that is listed is enabled unless it says otherwise; `calico:` alone counts as listed.
    fn addon(&mut self, addons: &Fields, key: &str) -> Addon {
        if !is_listed(addons, key) {
            return Addon::default();
        }
        match self.reader.sub_fields(addons, key, ADDON_KEYS) {
            Some(fields) => Addon {
                enabled: self.reader.boolean(&fields, "enabled").unwrap_or(true),
                version: self.reader.text(&fields, "version").map(|text| text.value),
                sha256: self.checksums(&fields),
            },
            None => Addon {
                enabled: addons.get(key).is_none(),
                version: None,
                sha256: Checksums::new(),
            },
        }
    }

    fn ingress(&mut self, addons: &Fields) -> IngressAddon {
        if !is_listed(addons, "ingress") {
            return IngressAddon::default();
        }
        let Some(fields) = self.reader.sub_fields(addons, "ingress", INGRESS_KEYS) else {
            return IngressAddon {
                enabled: addons.get("ingress").is_none(),
                ..IngressAddon::default()
            };
        };
        let controller = self.reader.text(&fields, "controller").and_then(|text| {
            let names = IngressController::ALL.map(|c| c.as_str());
            let found = IngressController::ALL
                .into_iter()
                .find(|c| c.as_str() == text.value);
            if found.is_none() {
                let suggestion = suggest::did_you_mean(&text.value, names);
                self.findings().error(
                    text.pos,
                    format!(
                        "unknown ingress controller `{}`{}",
                        text.value,
                        suggest::suffix(suggestion.as_deref())
                    ),
                    Some(format!(
                        "controllers are {}; leave it out for kbs' default",
                        names.join(", ")
                    )),
                );
            }
            found
        });
        IngressAddon {
            enabled: self.reader.boolean(&fields, "enabled").unwrap_or(true),
            version: self.reader.text(&fields, "version").map(|text| text.value),
            controller,
            sha256: self.checksums(&fields),
        }
    }
}

/// `http(s)://` and a host, no whitespace: enough for a base URL kbs appends paths to.
fn is_http_url(url: &str) -> bool {
    let has_scheme = url.starts_with("http://") || url.starts_with("https://");
    let host_part = url.split_once("://").map(|(_, rest)| rest).unwrap_or("");
    has_scheme && !host_part.is_empty() && !url.chars().any(char::is_whitespace)
}

/// Whether the key is present at all, even with an empty value.
fn is_listed(fields: &Fields, key: &str) -> bool {
    fields.entries().any(|(k, _)| k.as_str() == key)
}

/// `dir/./key` → `dir/key`, so messages show the path a user would write.
fn without_dot_components(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}
