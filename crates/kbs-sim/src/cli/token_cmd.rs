//! `kubeadm token create|list|delete` and `kubeadm init phase upload-certs` against the
//! API server (cmd/kubeadm/app/cmd/token.go, phases/init/uploadcerts.go).

use super::cluster;
use super::{Context, Failure, TokenCommand};
use crate::kubeclient::{Client, Kubeconfig};
use crate::token::{BootstrapToken, TokenRecord};

fn client(ctx: &Context, kubeconfig: &str) -> Result<Client, Failure> {
    let path = ctx.path(kubeconfig);
    let kc = Kubeconfig::load(&path).map_err(|_| {
        Failure::Plain(format!(
            "failed to load admin kubeconfig: open {kubeconfig}: no such file or directory"
        ))
    })?;
    let (hp, _) = kc.host_port().map_err(Failure::Plain)?;
    ctx.probe.tcp_dial(&hp).map_err(|e| {
        Failure::Plain(format!("failed to list bootstrap tokens: Get \"{}/api/v1/namespaces/kube-system/secrets?timeout=10s\": {e}", kc.server))
    })?;
    Client::new(kc).map_err(Failure::Plain)
}

/// `23h`, `59m`, `<forever>`, `<invalid>` as `kubeadm token list` prints TTLs
/// (k8s.io/apimachinery duration.ShortHumanDuration).
fn ttl_text(rec: &TokenRecord, now: std::time::SystemTime) -> String {
    let Some(exp) = rec.expires else {
        return "<forever>".into();
    };
    let Ok(left) = exp.duration_since(now) else {
        return "<invalid>".into();
    };
    let s = left.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

pub fn run(cmd: TokenCommand, ctx: &mut Context) -> Result<(), Failure> {
    match cmd {
        TokenCommand::Generate => generate(ctx),
        TokenCommand::Create {
            token,
            ttl,
            description,
            usages,
            groups,
            print_join_command,
            kubeconfig,
        } => {
            let token = match token {
                Some(t) => BootstrapToken::parse(&t).map_err(Failure::Plain)?,
                None => BootstrapToken::generate().map_err(Failure::Plain)?,
            };
            let ttl = crate::config::duration::parse_go_duration(&ttl)
                .map_err(|e| Failure::Plain(format!("invalid argument \"{ttl}\" for \"--ttl\" flag: {e}")))?;
            let mut c = client(ctx, &kubeconfig)?;
            let mut rec = TokenRecord::new(token.clone(), ctx.clock.now(), ttl);
            rec.description = description;
            rec.usages = usages;
            rec.groups = groups;
            // `kubeadm token create` takes no config: kubeadm's default kubernetesAPICall timeout.
            cluster::create_token(&mut c, &rec, cluster::DEFAULT_API_CALL_TIMEOUT).map_err(Failure::Plain)?;
            if print_join_command {
                let kc = Kubeconfig::load(&ctx.path(&kubeconfig)).map_err(Failure::Plain)?;
                let hash = crate::pki::ca_cert_hash(&kc.ca_pem).map_err(|e| Failure::Plain(e.to_string()))?;
                let host = kc.server.trim_start_matches("https://").to_string();
                ctx.out(&format!(
                    "kubeadm join {host} --token {token} --discovery-token-ca-cert-hash {hash} "
                ));
            } else {
                ctx.out(&token.to_string());
            }
            Ok(())
        }
        TokenCommand::List { kubeconfig } => {
            let mut c = client(ctx, &kubeconfig)?;
            let tokens = cluster::list_tokens(&mut c).map_err(Failure::Plain)?;
            let now = ctx.clock.now();
            let mut rows = vec![
                ["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"]
                    .map(String::from)
                    .to_vec(),
            ];
            for t in tokens.iter().filter(|t| !t.is_expired(now)) {
                let mut usages = t.usages.clone();
                usages.sort();
                rows.push(vec![
                    t.token.to_string(),
                    ttl_text(t, now),
                    t.expires
                        .map(crate::clock::rfc3339)
                        .unwrap_or_else(|| "<never>".into()),
                    if usages.is_empty() {
                        "<none>".into()
                    } else {
                        usages.join(",")
                    },
                    if t.description.is_empty() {
                        "<none>".into()
                    } else {
                        t.description.clone()
                    },
                    if t.groups.is_empty() {
                        "<none>".into()
                    } else {
                        t.groups.join(",")
                    },
                ]);
            }
            let widths: Vec<usize> = (0..6)
                .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
                .collect();
            for r in rows {
                let line: Vec<String> = r
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if i == 5 {
                            c.clone()
                        } else {
                            format!("{c:<w$}   ", w = widths[i])
                        }
                    })
                    .collect();
                ctx.out(line.concat().trim_end());
            }
            Ok(())
        }
        TokenCommand::Delete { tokens, kubeconfig } => {
            if tokens.is_empty() {
                return Err(Failure::Plain("missing subcommand; 'token delete' is missing token of form \"[a-z0-9]{6}\" or \"[a-z0-9]{6}\\.[a-z0-9]{16}\"".into()));
            }
            let mut c = client(ctx, &kubeconfig)?;
            for t in tokens {
                let id = t.split('.').next().unwrap_or("").to_string();
                let name = format!("bootstrap-token-{id}");
                let r = c
                    .request(
                        "DELETE",
                        &format!("/api/v1/namespaces/kube-system/secrets/{name}"),
                        "",
                        b"",
                    )
                    .map_err(Failure::Plain)?;
                if !r.ok() {
                    return Err(Failure::Plain(format!(
                        "failed to delete bootstrap token with name {name:?}: {}",
                        r.message()
                    )));
                }
                ctx.out(&format!("bootstrap token {id:?} deleted"));
            }
            Ok(())
        }
    }
}

fn generate(ctx: &mut Context) -> Result<(), Failure> {
    let t = BootstrapToken::generate().map_err(Failure::Plain)?;
    ctx.out(&t.to_string());
    Ok(())
}

/// `kubeadm init phase upload-certs --upload-certs [--certificate-key K]`.
pub fn upload_certs_phase(
    upload: bool,
    key: Option<String>,
    skip_print: bool,
    kubeconfig: &str,
    ctx: &mut Context,
) -> Result<(), Failure> {
    if !upload {
        ctx.out("[upload-certs] Skipping phase. Please see --upload-certs");
        return Ok(());
    }
    let key = match key {
        Some(k) => crate::certs_upload::CertificateKey::parse(&k, "certificateKey")
            .map_err(|e| Failure::Plain(e.0))?,
        None => crate::certs_upload::CertificateKey::generate().map_err(Failure::Plain)?,
    };
    let mut c = client(ctx, kubeconfig)?;
    ctx.out("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace");
    let pki = ctx.path("/etc/kubernetes/pki");
    let phase = |m: String| Failure::Phase {
        phase: "upload-certs".into(),
        msg: m,
    };
    cluster::upload_certs(&mut c, &pki, &key, ctx.clock.now()).map_err(phase)?;
    ctx.out("[upload-certs] Using certificate key:");
    if !skip_print {
        ctx.out(&key.to_hex());
    }
    Ok(())
}
