//! Waiting for the cluster: poll with backoff until a deadline, never a fixed sleep, and say what
//! is being waited for so a slow host is visible.

use std::time::{Duration, Instant};

use kbs_engine::{ModuleError, Script};

use super::{module_error, ClusterRun};

/// Polls `url` with curl from `host` until it answers 2xx, or fails at the deadline with the last
/// answer. `-k`: the point is whether the server answers; TLS trust is kubeadm's business.
pub async fn https_ok(
    run: &ClusterRun<'_>,
    host: &str,
    url: &str,
    what: &str,
    deadline: Duration,
) -> Result<Duration, ModuleError> {
    let started = Instant::now();
    let script = Script::root(format!("curl -ksS --fail --max-time 5 {url} 2>&1"));
    let mut pause = Duration::from_millis(200);
    let mut said_waiting = false;
    loop {
        let out = run.engine.exec(host, &script).await?;
        if out.success() {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= deadline {
            return Err(module_error(
                format!(
                    "{what} did not answer at {url} within {}s: {}",
                    deadline.as_secs(),
                    out.tail()
                ),
                format!(
                    "look at the kubelet and the API server on {host}: `journalctl -u kubelet`, `crictl ps`"
                ),
            ));
        }
        if !said_waiting && started.elapsed() > Duration::from_secs(2) {
            run.engine.waiting(host, format!("waiting for {what} ({url})"));
            said_waiting = true;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(3));
    }
}
