//! Logging: a full debug log to a file for every run, and a terse, human stream on standard error.
//!
//! The file is where a failure is investigated; its path is printed when a run fails. Secrets never reach
//! it because the transport never hands them to `tracing` (see kbs-ssh's `Secret`).

use std::fs::{self, File, OpenOptions};
use std::io::IsTerminal;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, Layer};

/// Where the log of this run is written; kept so the path can be shown on failure.
pub struct LogFile {
    pub path: PathBuf,
}

/// Starts logging. `verbose` raises what standard error shows; the file always gets debug detail
/// (trace with -vvv).
pub fn init(verbose: u8, quiet: bool, log_file: Option<&Path>) -> Result<LogFile, String> {
    let path = match log_file {
        Some(path) => path.to_path_buf(),
        None => default_log_path()?,
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::create_dir_all(dir)
            .map_err(|error| format!("cannot create the log directory {}: {error}", dir.display()))?;
    }
    // The log can hold host names, addresses and command output: readable by its owner only.
    let file: File = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .map_err(|error| format!("cannot open the log file {}: {error}", path.display()))?;

    let stderr_level = match (quiet, verbose) {
        (true, _) => LevelFilter::ERROR,
        (false, 0) => LevelFilter::WARN,
        (false, 1) => LevelFilter::INFO,
        (false, 2) => LevelFilter::DEBUG,
        (false, _) => LevelFilter::TRACE,
    };
    let file_level = if verbose >= 3 {
        LevelFilter::TRACE
    } else {
        LevelFilter::DEBUG
    };

    let stderr_layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .with_filter(stderr_level);
    let file_layer = fmt::layer()
        .with_writer(file)
        .with_ansi(false)
        .with_filter(file_level);
    tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
        .try_init()
        .map_err(|error| format!("cannot start logging: {error}"))?;
    Ok(LogFile { path })
}

fn default_log_path() -> Result<PathBuf, String> {
    let state_dir = match std::env::var_os("XDG_STATE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let home = std::env::var_os("HOME")
                .ok_or("HOME is not set; give the log a place with --log-file FILE")?;
            PathBuf::from(home).join(".local/state")
        }
    };
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default();
    Ok(state_dir
        .join("kbs/logs")
        .join(format!("kbs-{stamp}-{}.log", std::process::id())))
}
