//! Advisory file locks (flock): one lab per machine at a time, one repository re-index at a time.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{Error, Result};

/// Held until dropped; the kernel releases it if the process dies.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the lock on `path`, waiting (and saying so) while another process holds it.
    pub fn acquire(path: &Path, what: &str) -> Result<FileLock> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("locking {what}"), parent, e))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io(format!("locking {what}"), path, e))?;
        let fd = file.as_raw_fd();
        // SAFETY: flock(2) on a descriptor we own for the lifetime of the returned guard.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let holder = std::fs::read_to_string(path).unwrap_or_default();
            tracing::warn!(
                "waiting for {what}: locked by {} ({})",
                holder.trim(),
                path.display()
            );
            eprintln!(
                "kbs-lab: waiting for {what}: {} holds {}",
                holder.trim(),
                path.display()
            );
            // SAFETY: as above, blocking this time.
            if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
                return Err(Error::io(
                    format!("locking {what}"),
                    path,
                    std::io::Error::last_os_error(),
                ));
            }
        }
        let _ = file.set_len(0);
        let _ = writeln!(file, "pid {}", std::process::id());
        Ok(FileLock { _file: file })
    }
}
