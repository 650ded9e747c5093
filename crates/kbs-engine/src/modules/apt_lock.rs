//! Waiting for another process's dpkg lock, visibly. Ubuntu hosts often run unattended-upgrades
//! right after boot; failing at once would make the first `kbs apply` on fresh VMs fail for no
//! reason, and waiting silently would look like a hang.

use super::{ModuleCtx, ModuleError};
use crate::facts::{parse_lock_holder, LockHolder, DPKG_LOCK_HOLDER_FN};

/// A snippet printing the lock holder inside a section named `dpkg_lock`.
pub fn holder_section() -> String {
    super::probe::section("dpkg_lock", &format!("{DPKG_LOCK_HOLDER_FN}kbs_dpkg_lock_holder"))
}

/// Parses [`holder_section`]'s output.
pub fn holder_from(output: &str) -> Option<LockHolder> {
    super::probe::get(output, "dpkg_lock").and_then(parse_lock_holder)
}

fn describe(holder: &LockHolder) -> String {
    let guess = if holder.command.starts_with("unattended") || holder.command.starts_with("apt.systemd") {
        ", unattended-upgrades?"
    } else {
        ""
    };
    if holder.command.is_empty() {
        format!("the dpkg lock held by PID {}{guess}", holder.pid)
    } else {
        format!(
            "the dpkg lock held by PID {} ({}{guess})",
            holder.pid, holder.command
        )
    }
}

/// apt-get with the environment and options every kbs apt call uses. `DPkg::Lock::Timeout` closes
/// the race between our lock probe and apt taking the lock itself.
pub fn apt_get(ctx: &ModuleCtx<'_>, args: &str) -> String {
    format!(
        "DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get -q -y -o DPkg::Lock::Timeout={} {args}",
        ctx.timing.dpkg_lock_timeout.as_secs().max(1)
    )
}

/// Turns an apt failure into a message that says what to do.
pub fn apt_error(what: &str, tail: &str) -> ModuleError {
    let e = ModuleError::new(format!("{what} failed: {tail}"));
    if tail.contains("Could not get lock") || tail.contains("Unable to acquire the dpkg frontend lock") {
        e.hint("another apt or dpkg process holds the lock; wait for it (or stop unattended-upgrades) and re-run kbs")
    } else if tail.contains("dpkg was interrupted") {
        e.hint("run `sudo dpkg --configure -a` on the host, then re-run kbs")
    } else if tail.contains("Temporary failure resolving")
        || tail.contains("Could not connect")
        || tail.contains("Failed to fetch")
    {
        e.hint("the host cannot reach the package repository: check its DNS, proxy and the repository URL")
    } else {
        e
    }
}

/// Returns once nobody holds the dpkg lock; `first` is what the check already saw (`None` = free).
pub async fn wait_until_free(ctx: &ModuleCtx<'_>, first: Option<LockHolder>) -> Result<(), ModuleError> {
    let Some(holder) = first else { return Ok(()) };
    ctx.waiting(describe(&holder));
    let mut last = holder;
    let timeout = ctx.timing.dpkg_lock_timeout;
    let started = tokio::time::Instant::now();
    let mut interval = ctx.timing.poll_initial;
    loop {
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            break;
        }
        tokio::time::sleep(interval.min(timeout - elapsed)).await;
        interval = (interval * 2).min(ctx.timing.poll_max);
        let out = ctx.exec(holder_section()).await?;
        match holder_from(&out.stdout) {
            None => return Ok(()),
            Some(h) => {
                if h.pid != last.pid {
                    ctx.waiting(describe(&h));
                }
                last = h;
            }
        }
    }
    Err(ModuleError::new(format!(
        "{} did not go away within {}s",
        describe(&last),
        timeout.as_secs_f32()
    ))
    .hint(format!(
        "let that process finish (unattended-upgrades can take a while after boot) or stop it on the host \
             (`sudo systemctl stop unattended-upgrades`, or `sudo kill {}`), then re-run kbs",
        last.pid
    )))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::events::Event;
    use crate::modules::test_support::Harness;
    use crate::testing::{ok_with, FakeTransport};

    fn held(pid: u32) -> String {
        format!("@@kbs:dpkg_lock\n{pid} unattended-upgr\n@@kbs:end\n")
    }

    #[tokio::test]
    async fn waits_visibly_until_the_lock_is_released() {
        let probes = Arc::new(AtomicU32::new(0));
        let p = probes.clone();
        let h = Harness::new(FakeTransport::new(move |_| {
            // Held for two more probes, then free.
            if p.fetch_add(1, Ordering::SeqCst) < 2 {
                ok_with(&held(812))
            } else {
                ok_with("@@kbs:dpkg_lock\n\n@@kbs:end\n")
            }
        }));
        let first = Some(LockHolder {
            pid: 812,
            command: "unattended-upgr".into(),
        });
        wait_until_free(&h.ctx(false), first).await.unwrap();
        assert_eq!(probes.load(Ordering::SeqCst), 3);
        let events = h.events.events();
        assert_eq!(
            events,
            vec![Event::Waiting {
                host: "host01".into(),
                what: "the dpkg lock held by PID 812 (unattended-upgr, unattended-upgrades?)".into()
            }],
            "announced once"
        );
    }

    #[tokio::test]
    async fn times_out_with_a_clear_message() {
        let h = Harness::new(FakeTransport::rules(vec![("/proc/locks", ok_with(&held(812)))]));
        let started = std::time::Instant::now();
        let first = Some(LockHolder {
            pid: 812,
            command: "unattended-upgr".into(),
        });
        let err = wait_until_free(&h.ctx(false), first).await.unwrap_err();
        assert!(started.elapsed() >= h.timing.dpkg_lock_timeout);
        assert!(
            err.message
                .starts_with("the dpkg lock held by PID 812 (unattended-upgr"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("did not go away within 0.3s"),
            "{}",
            err.message
        );
        assert!(err.hint.unwrap().contains("kill 812"));
        // Backoff: far fewer probes than a fixed 10 ms sleep would make.
        assert!(h.fake.scripts().len() < 15, "{} probes", h.fake.scripts().len());
    }

    #[test]
    fn classifies_apt_failures() {
        assert!(
            apt_error("x", "E: Could not get lock /var/lib/dpkg/lock-frontend")
                .hint
                .is_some()
        );
        assert!(apt_error("x", "E: boom").hint.is_none());
    }
}
