//! `kubeadm config validate --config F` (cmd/kubeadm/app/cmd/config.go): strict, prints `ok`.

use super::{Context, Failure};

pub fn validate(config: Option<&str>, ctx: &mut Context) -> Result<(), Failure> {
    let Some(path) = config else {
        return Err(Failure::Plain("the --config flag is mandatory".to_string()));
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| Failure::Plain(format!("open {path}: {}", io_text(&e))))?;
    let warnings = crate::config::validate_file(&text, ctx.version, &ctx.host).map_err(Failure::Plain)?;
    for w in warnings {
        ctx.config_warning(&w);
    }
    ctx.out("ok");
    Ok(())
}

/// Go's error text for a failed open.
pub fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "i/o timeout".to_string(),
        _ => e.to_string(),
    }
}
