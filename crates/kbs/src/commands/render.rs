//! `kbs render INVENTORY HOST`: print the kubeadm config `kbs apply` gives a host, without
//! touching any host. Secrets print as `<redacted>` unless `--show-secrets`; then they are freshly
//! minted for display, because kbs keeps no state and a real run mints its own. The CA pin of a
//! join exists only after `kubeadm init`, so it is always a placeholder here, and a comment says
//! so. An `lb`-only host gets its HAProxy config instead.

use std::path::Path;

use kbs_cluster::kubeadm_config::{KUBEADM_CONFIG_PATH, REDACTED};
use kbs_cluster::{kubeadm_config, ConfigInput, Haproxy, KubeadmRole, Secrets};
use kbs_engine::{Library, Renderer};
use kbs_inventory::{EndpointMode, Inventory, Role};

use crate::cli::RenderArgs;
use crate::commands::load_inventory;
use crate::failure::Failure;

pub fn run(args: RenderArgs) -> Result<(), Failure> {
    let inventory = load_inventory(&args.inventory)?;
    let text = render(
        &inventory,
        &args.host,
        args.show_secrets,
        args.templates.as_deref(),
    )?;
    print!("{text}");
    Ok(())
}

/// What `kbs render` prints for `host_name`.
pub fn render(
    inventory: &Inventory,
    host_name: &str,
    show_secrets: bool,
    templates: Option<&Path>,
) -> Result<String, Failure> {
    let host = inventory.host(host_name).ok_or_else(|| {
        // The selector's message suggests the closest host name.
        let message = match inventory.select(host_name) {
            Err(error) => error.to_string(),
            Ok(_) => format!("`{host_name}` is a pattern; name one host"),
        };
        Failure::BadInput(format!("render: {message}"))
    })?;
    let Some(role) = KubeadmRole::of(inventory, host) else {
        if host.has_role(Role::Lb) && inventory.cluster.endpoint.mode == EndpointMode::Haproxy {
            return haproxy(inventory, host_name, templates);
        }
        return Err(Failure::BadInput(format!(
            "render: {host_name} has neither the control-plane nor the worker role, so it gets no kubeadm config"
        )));
    };
    let row = kbs_cluster::minor_versions(inventory).map_err(|e| Failure::BadInput(e.to_string()))?;
    let pinned = inventory.cluster.kubernetes_version.and_then(|v| v.patch);
    let version = match pinned {
        Some(patch) => format!("v1.{}.{patch}", row.minor),
        None => format!("v1.{}.<patch>", row.minor),
    };
    let mut input = ConfigInput::redacted(version.clone());
    if show_secrets {
        let secrets = Secrets::mint().map_err(|e| Failure::BadInput(format!("render: {e}")))?;
        input.token = secrets.token().clone();
        input.certificate_key = secrets.certificate_key().clone();
    }
    let config = kubeadm_config(inventory, host_name, &input)
        .map_err(|e| Failure::BadInput(format!("render: {e}")))?;

    let command = match role {
        KubeadmRole::Init => "kubeadm init --config FILE --upload-certs",
        KubeadmRole::JoinControlPlane => "kubeadm join --config FILE (control plane)",
        KubeadmRole::Worker => "kubeadm join --config FILE (worker)",
    };
    let mut out = format!("# kubeadm config for {host_name}: {command}\n");
    out.push_str(&format!(
        "# `kbs apply` writes it to {KUBEADM_CONFIG_PATH} (mode 0600).\n"
    ));
    if show_secrets {
        out.push_str(
            "# The token and certificate key below were minted for this display only: every run mints its own.\n",
        );
    } else {
        out.push_str(&format!(
            "# Secrets show as {REDACTED}; --show-secrets prints example values minted now.\n"
        ));
    }
    if pinned.is_none() && role == KubeadmRole::Init {
        out.push_str(&format!(
            "# kubernetesVersion: {version} is the newest 1.{} patch the hosts' package repository offers, found at run time.\n",
            row.minor
        ));
    }
    if role != KubeadmRole::Init {
        out.push_str(
            "# caCertHashes: the CA pin is computed from the cluster CA after `kubeadm init`; shown as a placeholder.\n",
        );
    }
    out.push_str(config.text.expose());
    Ok(out)
}

fn haproxy(inventory: &Inventory, host_name: &str, templates: Option<&Path>) -> Result<String, Failure> {
    let library = Library::load(None, templates).map_err(|e| Failure::BadInput(e.to_string()))?;
    let config = Haproxy::for_inventory(inventory, &Default::default())
        .and_then(|h| h.render(&Renderer::new(&library)))
        .map_err(|e| Failure::BadInput(format!("render: {e}")))?;
    Ok(format!(
        "# {host_name} is an lb host: no kubeadm config; `kbs apply` writes this to {}\n{config}",
        kbs_cluster::endpoint::HAPROXY_CONFIG_PATH
    ))
}
