//! kubeadm configuration files: multi-document YAML, API version policy, strict decoding,
//! defaulting and validation, with kubeadm's messages.
//!
//! The pipeline mirrors cmd/kubeadm/app/util/config (`SplitConfigDocuments`,
//! `validateSupportedVersion`, `documentMapToInitConfiguration`,
//! `documentMapToJoinConfiguration`, `ValidateConfig`):
//! split → known kinds → per document in sorted GVK order: version policy, strict check
//! (warning for init/join, error for `config validate`), decode → defaults → validation.

pub mod duration;
pub mod features;
pub mod schema;
pub mod types;
pub mod validate;

use serde_yaml::Value;

use crate::version::Version;
use schema::{Api, Struct};
pub use types::*;
pub use validate::HostFacts;

pub const KUBEADM_GROUP: &str = "kubeadm.k8s.io";
pub const KUBELET_GROUP: &str = "kubelet.config.k8s.io";
pub const KUBEPROXY_GROUP: &str = "kubeproxy.config.k8s.io";

/// A document's apiVersion and kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    fn from_api_version(api_version: &str, kind: &str) -> Gvk {
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        Gvk {
            group,
            version,
            kind: kind.to_string(),
        }
    }

    /// `group/version`
    pub fn group_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// schema.GroupVersionKind.String(): `group/version, Kind=kind` (sort key too).
    pub fn go_string(&self) -> String {
        format!("{}, Kind={}", self.group_version(), self.kind)
    }

    /// `%#v` of a schema.GroupVersionKind.
    pub fn go_syntax(&self) -> String {
        format!(
            "schema.GroupVersionKind{{Group:{}, Version:{}, Kind:{}}}",
            crate::gofmt::quote(&self.group),
            crate::gofmt::quote(&self.version),
            crate::gofmt::quote(&self.kind)
        )
    }
}

/// One YAML document of a config file.
#[derive(Debug, Clone)]
pub struct Document {
    pub gvk: Gvk,
    pub value: Value,
}

/// Whether strict-decoding problems stop the command (`kubeadm config validate`) or are
/// printed as warnings (`init`, `join`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    Warn,
    Error,
}

/// A successfully read file: its documents and the warnings kubeadm would have logged.
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    pub init: Option<(InitConfiguration, Api)>,
    pub cluster: Option<(ClusterConfiguration, Api)>,
    pub join: Option<(JoinConfiguration, Api)>,
    pub kubelet: Option<KubeletConfiguration>,
    /// Messages kubeadm prints through klog at warning level (`W... file.go:N] msg`).
    pub warnings: Vec<String>,
}

/// kubeadm `SplitConfigDocuments`: `---`-separated YAML documents, each with apiVersion and kind.
pub fn split_documents(text: &str) -> Result<Vec<Document>, String> {
    let mut docs = Vec::new();
    for chunk in split_yaml(text) {
        if chunk.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_yaml::from_str(&chunk).map_err(|e| format!("error converting YAML to JSON: yaml: {e}"))?;
        if value.is_null() {
            continue;
        }
        let api_version = value.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
        let gvk = Gvk::from_api_version(api_version, kind);
        if gvk.version.is_empty() || gvk.kind.is_empty() {
            return Err(format!(
                "invalid configuration for GroupVersionKind {}: kind and apiVersion is mandatory information that must be specified",
                gvk.go_string()
            ));
        }
        docs.push(Document { gvk, value });
    }
    Ok(docs)
}

fn split_yaml(text: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    out
}

/// The kubeadm config API versions this kubeadm has stopped reading, with the last
/// kubeadm release that read them (util/config/common.go `oldKnownAPIVersions`;
/// v1beta3 was removed in 1.36).
fn removed_in(group_version: &str, kubeadm: Version) -> Option<&'static str> {
    match group_version {
        "kubeadm.k8s.io/v1alpha1" => Some("v1.11"),
        "kubeadm.k8s.io/v1alpha2" => Some("v1.12"),
        "kubeadm.k8s.io/v1alpha3" => Some("v1.14"),
        "kubeadm.k8s.io/v1beta1" => Some("v1.15"),
        "kubeadm.k8s.io/v1beta2" => Some("v1.22"),
        "kubeadm.k8s.io/v1beta3" if kubeadm >= Version::new(1, 36, 0) => Some("v1.35"),
        _ => None,
    }
}

/// `validateSupportedVersion`: removed versions are errors, the deprecated one a warning.
fn check_supported_version(
    gvk: &Gvk,
    kubeadm: Version,
    allow_deprecated: bool,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let gv = gvk.group_version();
    if let Some(use_version) = removed_in(&gv, kubeadm) {
        return Err(format!(
            "your configuration file uses an old API spec: {} (kind: {}). Please use kubeadm {} instead and run 'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will write the new, similar spec using a newer API version.",
            crate::gofmt::quote(&gv),
            crate::gofmt::quote(&gvk.kind),
            use_version
        ));
    }
    if gv == "kubeadm.k8s.io/v1beta3" && !allow_deprecated {
        warnings.push(format!(
            "your configuration file uses a deprecated API spec: {} (kind: {}). Please use 'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will write the new, similar spec using a newer API version.",
            crate::gofmt::quote(&gv),
            crate::gofmt::quote(&gvk.kind)
        ));
    }
    Ok(())
}

/// The schema for a known kind, or `None` for kinds kubeadm does not decode strictly.
fn schema_for(gvk: &Gvk) -> Option<(&'static Struct, Api)> {
    let api = match (gvk.group.as_str(), gvk.version.as_str()) {
        (KUBEADM_GROUP, "v1beta4") => Api::V1beta4,
        (KUBEADM_GROUP, "v1beta3") => Api::V1beta3,
        (KUBELET_GROUP, "v1beta1") => Api::Kubelet,
        _ => return None,
    };
    let s = match (api, gvk.kind.as_str()) {
        (Api::Kubelet, "KubeletConfiguration") => &schema::KUBELET_CONFIGURATION,
        (Api::Kubelet, _) => return None,
        (_, "InitConfiguration") => &schema::INIT_CONFIGURATION,
        (_, "ClusterConfiguration") => &schema::CLUSTER_CONFIGURATION,
        (_, "JoinConfiguration") => &schema::JOIN_CONFIGURATION,
        _ => return None,
    };
    Some((s, api))
}

fn is_known(gvk: &Gvk, kubeadm: Version) -> bool {
    if gvk.group == KUBEADM_GROUP && removed_in(&gvk.group_version(), kubeadm).is_some() {
        return true; // reported by the version policy instead, as kubeadm does
    }
    if gvk.group == KUBEADM_GROUP
        && matches!(gvk.kind.as_str(), "ResetConfiguration" | "UpgradeConfiguration")
    {
        return true;
    }
    if gvk.group == KUBEPROXY_GROUP && gvk.version == "v1alpha1" && gvk.kind == "KubeProxyConfiguration" {
        return true;
    }
    schema_for(gvk).is_some()
}

/// kubeadm `validateKnownGVKs` (used by `config validate`).
fn check_known(docs: &[Document], kubeadm: Version) -> Result<(), String> {
    let unknown: Vec<String> = docs
        .iter()
        .filter(|d| !is_known(&d.gvk, kubeadm))
        .map(|d| d.gvk.go_syntax())
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "unknown configuration APIs: []schema.GroupVersionKind{{{}}}",
            unknown.join(", ")
        ))
    }
}

/// Reads every document of `text`: version policy, strict check, decode.
/// `allow_deprecated` is true for `config validate` (no deprecation warning).
pub fn decode(text: &str, kubeadm: Version, strictness: Strictness) -> Result<Decoded, String> {
    let mut docs = split_documents(text)?;
    if strictness == Strictness::Error {
        check_known(&docs, kubeadm)?;
    }
    docs.sort_by_key(|d| d.gvk.go_string());
    let allow_deprecated = strictness == Strictness::Error;
    let mut out = Decoded::default();
    for doc in &docs {
        if doc.gvk.group == KUBEADM_GROUP {
            check_supported_version(&doc.gvk, kubeadm, allow_deprecated, &mut out.warnings)?;
        }
        let Some((schema, api)) = schema_for(&doc.gvk) else {
            if !is_known(&doc.gvk, kubeadm) {
                if doc.gvk.group == KUBEADM_GROUP || doc.gvk.group == KUBELET_GROUP {
                    return Err(format!(
                        "no kind {} is registered for version {} in scheme \"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31\"",
                        crate::gofmt::quote(&doc.gvk.kind),
                        crate::gofmt::quote(&doc.gvk.group_version())
                    ));
                }
                out.warnings.push(format!(
                    "[config] WARNING: Ignored configuration document with GroupVersionKind {}",
                    doc.gvk.go_string()
                ));
            }
            continue;
        };
        let report = schema::walk(&doc.value, schema, api);
        let strict_problem = if let Some(fatal) = &report.fatal {
            Some(fatal.clone())
        } else if !report.unknown.is_empty() {
            Some(format!("strict decoding error: {}", report.unknown.join(", ")))
        } else {
            None
        };
        if let Some(problem) = strict_problem {
            let msg = format!(
                "error unmarshaling configuration {}: {}",
                doc.gvk.go_syntax(),
                problem
            );
            match strictness {
                Strictness::Error => return Err(msg),
                Strictness::Warn => out.warnings.push(msg),
            }
        }
        if let Some(fatal) = report.fatal {
            return Err(fatal);
        }
        let decode_err = |e: serde_yaml::Error| format!("error decoding {}: {e}", doc.gvk.kind);
        match doc.gvk.kind.as_str() {
            "InitConfiguration" => {
                out.init = Some((
                    serde_yaml::from_value(doc.value.clone()).map_err(decode_err)?,
                    api,
                ))
            }
            "ClusterConfiguration" => {
                out.cluster = Some((
                    serde_yaml::from_value(doc.value.clone()).map_err(decode_err)?,
                    api,
                ))
            }
            "JoinConfiguration" => {
                out.join = Some((
                    serde_yaml::from_value(doc.value.clone()).map_err(decode_err)?,
                    api,
                ))
            }
            "KubeletConfiguration" => {
                out.kubelet = Some(serde_yaml::from_value(doc.value.clone()).map_err(decode_err)?)
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The configuration `kubeadm init` works from: InitConfiguration + ClusterConfiguration,
/// defaulted and validated.
#[derive(Debug, Clone)]
pub struct InitConfig {
    pub init: InitConfiguration,
    pub cluster: ClusterConfiguration,
    pub kubelet: Option<KubeletConfiguration>,
    pub warnings: Vec<String>,
}

/// The configuration `kubeadm join` works from.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    pub join: JoinConfiguration,
    pub warnings: Vec<String>,
}

/// `kubeadm init --config F`: strict problems are warnings; everything else is fatal.
pub fn load_init(text: &str, kubeadm: Version, host: &HostFacts) -> Result<InitConfig, String> {
    let decoded = decode(text, kubeadm, Strictness::Warn)?;
    init_from_decoded(decoded, kubeadm, host)
}

fn init_from_decoded(decoded: Decoded, kubeadm: Version, host: &HostFacts) -> Result<InitConfig, String> {
    if decoded.init.is_none() && decoded.cluster.is_none() {
        return Err(
            "no InitConfiguration or ClusterConfiguration kind was found in the configuration file"
                .to_string(),
        );
    }
    let mut init = decoded.init.map(|(c, _)| c).unwrap_or_default();
    let mut cluster = decoded.cluster.map(|(c, _)| c).unwrap_or_default();
    let mut warnings = decoded.warnings;
    validate::default_init(&mut init, &mut cluster, kubeadm, host, &mut warnings)?;
    validate::validate_init(&init, &cluster, kubeadm)?;
    Ok(InitConfig {
        init,
        cluster,
        kubelet: decoded.kubelet,
        warnings,
    })
}

/// `kubeadm join --config F`.
pub fn load_join(text: &str, kubeadm: Version, host: &HostFacts) -> Result<JoinConfig, String> {
    let decoded = decode(text, kubeadm, Strictness::Warn)?;
    join_from_decoded(decoded, host)
}

fn join_from_decoded(decoded: Decoded, host: &HostFacts) -> Result<JoinConfig, String> {
    let Some((mut join, _)) = decoded.join else {
        return Err("no JoinConfiguration kind was found in the YAML file".to_string());
    };
    let mut warnings = decoded.warnings;
    validate::default_join(&mut join, host, &mut warnings);
    validate::validate_join(&join)?;
    Ok(JoinConfig { join, warnings })
}

/// `kubeadm config validate --config F`: strict, and validates every kind present.
pub fn validate_file(text: &str, kubeadm: Version, host: &HostFacts) -> Result<Vec<String>, String> {
    let decoded = decode(text, kubeadm, Strictness::Error)?;
    let mut warnings = Vec::new();
    if decoded.init.is_some() || decoded.cluster.is_some() {
        let d = Decoded {
            join: None,
            ..decoded.clone()
        };
        warnings.extend(init_from_decoded(d, kubeadm, host)?.warnings);
    }
    if decoded.join.is_some() {
        let d = Decoded {
            init: None,
            cluster: None,
            ..decoded
        };
        warnings.extend(join_from_decoded(d, host)?.warnings);
    }
    warnings.dedup();
    Ok(warnings)
}

#[cfg(test)]
mod tests;
