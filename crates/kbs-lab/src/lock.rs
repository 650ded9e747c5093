//! Locks: one lab per machine at a time (across processes and threads), one repository re-index at a time.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Condvar, Mutex};

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

/// The lock on the whole lab: the file lock keeps other processes out, and an in-process gate keeps other
/// threads of this process out (flock on a second descriptor of the same process would block forever when
/// two tests of one binary bring up a lab at once).
#[derive(Debug)]
pub struct LabLock {
    _file: FileLock,
}

static LAB_OWNED: Mutex<bool> = Mutex::new(false);
static LAB_RELEASED: Condvar = Condvar::new();

impl LabLock {
    pub fn acquire(path: &Path) -> Result<LabLock> {
        {
            let mut owned = LAB_OWNED.lock().unwrap_or_else(|e| e.into_inner());
            while *owned {
                owned = LAB_RELEASED.wait(owned).unwrap_or_else(|e| e.into_inner());
            }
            *owned = true;
        }
        match FileLock::acquire(path, "the lab") {
            Ok(file) => Ok(LabLock { _file: file }),
            Err(e) => {
                release_gate();
                Err(e)
            }
        }
    }
}

impl Drop for LabLock {
    fn drop(&mut self) {
        release_gate();
    }
}

fn release_gate() {
    *LAB_OWNED.lock().unwrap_or_else(|e| e.into_inner()) = false;
    LAB_RELEASED.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_second_thread_waits_for_the_lab_instead_of_deadlocking() {
        let path = std::env::temp_dir().join(format!("kbs-lab-lock-test-{}", std::process::id()));
        let first = LabLock::acquire(&path).unwrap();
        let started = Instant::now();
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || {
                let _second = LabLock::acquire(&path).unwrap();
                started.elapsed()
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        drop(first);
        let waited = waiter.join().unwrap();
        assert!(
            waited >= Duration::from_millis(300),
            "the second lab did not wait: {waited:?}"
        );
        let _ = std::fs::remove_file(path);
    }
}
