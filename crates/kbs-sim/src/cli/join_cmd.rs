//! `kubeadm join`: config → preflight, then `join_api` (discovery, TLS bootstrap,
//! control-plane preparation).

use serde_json::json;

use super::config_cmd::io_text;
use super::init_cmd::RootedProbe;
use super::{Context, Failure, JoinArgs};
use crate::config::{self, JoinConfig};
use crate::preflight;

fn phase(name: &str, msg: impl Into<String>) -> Failure {
    Failure::Phase {
        phase: name.to_string(),
        msg: msg.into(),
    }
}

fn mixed_flags(a: &JoinArgs) -> Vec<&'static str> {
    let mut bad = Vec::new();
    if a.apiserver_advertise_address.is_some() {
        bad.push("apiserver-advertise-address");
    }
    if a.certificate_key.is_some() {
        bad.push("certificate-key");
    }
    if a.control_plane {
        bad.push("control-plane");
    }
    if !a.discovery_token_ca_cert_hash.is_empty() {
        bad.push("discovery-token-ca-cert-hash");
    }
    if a.discovery_token.is_some() {
        bad.push("discovery-token");
    }
    if a.discovery_token_unsafe_skip_ca_verification {
        bad.push("discovery-token-unsafe-skip-ca-verification");
    }
    if a.token.is_some() {
        bad.push("token");
    }
    bad
}

fn config_from_flags(a: &JoinArgs) -> String {
    let token = a
        .discovery_token
        .clone()
        .or_else(|| a.token.clone())
        .unwrap_or_default();
    let mut join = json!({"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration"});
    if let Some(ep) = &a.api_server_endpoint {
        join["discovery"] = json!({"bootstrapToken": {
            "apiServerEndpoint": ep, "token": token,
            "caCertHashes": a.discovery_token_ca_cert_hash,
            "unsafeSkipCAVerification": a.discovery_token_unsafe_skip_ca_verification}});
        if let Some(t) = &a.token {
            join["discovery"]["tlsBootstrapToken"] = json!(t);
        }
    }
    if a.control_plane {
        let mut cp = json!({});
        if let Some(k) = &a.certificate_key {
            cp["certificateKey"] = json!(k);
        }
        if let Some(addr) = &a.apiserver_advertise_address {
            cp["localAPIEndpoint"] = json!({"advertiseAddress": addr});
        }
        join["controlPlane"] = cp;
    }
    serde_yaml::to_string(&join).unwrap_or_default()
}

fn load(a: &JoinArgs, ctx: &mut Context) -> Result<JoinConfig, Failure> {
    let text = match &a.config {
        Some(path) => {
            let bad = mixed_flags(a);
            if !bad.is_empty() {
                return Err(Failure::Plain(format!(
                    "can not mix '--config' with arguments [{}]",
                    bad.join(" ")
                )));
            }
            std::fs::read_to_string(path).map_err(|e| {
                Failure::Plain(format!(
                    "unable to read config from \"{path}\" : open {path}: {}",
                    io_text(&e)
                ))
            })?
        }
        None => config_from_flags(a),
    };
    let mut host = ctx.host.clone();
    if let Some(name) = &a.node_name {
        host.hostname = name.clone();
    }
    let cfg = config::load_join(&text, ctx.version, &host).map_err(Failure::Plain)?;
    for w in &cfg.warnings {
        ctx.config_warning(w);
    }
    Ok(cfg)
}

pub fn run(a: JoinArgs, ctx: &mut Context) -> Result<(), Failure> {
    let cfg = load(&a, ctx)?;
    let ignore = preflight::ignore_set(
        &a.ignore_preflight_errors,
        &cfg.join.node_registration.ignore_preflight_errors,
    )
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
    let probe = RootedProbe {
        inner: ctx.probe.as_ref(),
        root: ctx.root.clone(),
    };
    let report = preflight::run_checks(&preflight::join_checks(&cfg), &ignore, ctx.version, &probe);
    ctx.err(&report.output);
    if report.failed {
        return Err(phase("preflight", preflight::PREFLIGHT_FAILED));
    }
    super::join_api::run(&cfg, ctx)
}
