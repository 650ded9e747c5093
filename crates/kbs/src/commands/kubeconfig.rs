//! `kbs kubeconfig`: the cluster's admin kubeconfig, pointing at the HA endpoint, written 0600.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::commands::cluster::read_cluster;
use crate::failure::Failure;
use crate::targets::AccessDefaults;

/// Beside the inventory, named after the cluster, unless `-o` says otherwise (`-` = stdout).
pub fn default_path(inventory_path: &Path, cluster: &str) -> PathBuf {
    let dir = inventory_path.parent().unwrap_or(Path::new("."));
    dir.join(format!("{cluster}-admin.kubeconfig"))
}

pub async fn run(
    inventory_path: &Path,
    output: Option<PathBuf>,
    defaults: AccessDefaults,
    forks: usize,
) -> Result<(), Failure> {
    let (inventory, engine, host) = read_cluster(inventory_path, &defaults, forks).await?;
    let text = kbs_cluster::orchestrate::api::admin_kubeconfig(&engine, &host, &inventory)
        .await
        .map_err(|e| Failure::HostsFailed(format!("{host}: {}", e.message)))?;
    let path = output.unwrap_or_else(|| default_path(inventory_path, &inventory.cluster.name));
    if path == Path::new("-") {
        print!("{text}");
        return Ok(());
    }
    write_private(&path, text.as_bytes())
        .map_err(|e| Failure::BadInput(format!("cannot write {}: {e}", path.display())))?;
    eprintln!(
        "kbs: wrote the admin kubeconfig of cluster {} to {} (mode 0600); use it with: export KUBECONFIG={}",
        inventory.cluster.name,
        path.display(),
        path.display()
    );
    Ok(())
}

/// Writes `contents` to `path` with mode 0600 from the first byte on: a temporary file created
/// 0600 in the same directory, then renamed over the target.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.kbs-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)?;
    let written = file.write_all(contents).and_then(|_| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e);
    }
    std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_private_and_replaces_an_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab-admin.kubeconfig");
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&path, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "temp file left behind"
        );
    }

    #[test]
    fn the_default_sits_beside_the_inventory() {
        assert_eq!(
            default_path(Path::new("/x/inv.yaml"), "book"),
            PathBuf::from("/x/book-admin.kubeconfig")
        );
    }
}
