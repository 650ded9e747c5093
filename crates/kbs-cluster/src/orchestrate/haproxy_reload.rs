//! Making HAProxy run the configuration kbs wrote, and knowing that it does.
//!
//! `systemctl reload haproxy` succeeds even when HAProxy rejects the new configuration: the
//! Debian unit only sends SIGUSR2 to the master, which logs `Loading failure!` and keeps the old
//! workers (an FD limit too low for `maxconn` is one such case; `haproxy -c` does not catch it).
//! So the reload is followed by reading the master's own verdict from the journal, and the
//! SHA-256 of the configuration that loaded is recorded on the host: a later run that finds the
//! file unchanged but not loaded (a reload that failed before) reloads again instead of trusting
//! the file.

use kbs_engine::{Mode, ModuleError, Outcome, Script};

use super::{module_error, ClusterRun};
use crate::endpoint::HAPROXY_CONFIG_PATH;

/// The SHA-256 of the configuration HAProxy last loaded successfully, as kbs saw it.
const LOADED_MARK: &str = "/var/lib/kbs/haproxy.loaded";

/// How long HAProxy's master gets to say whether a reload loaded (tenths of a second).
const VERDICT_TENTHS: u32 = 100;

/// Exit status of the script when a running HAProxy did not load the configuration.
const NOT_LOADED: u32 = 3;
/// Exit status of the script when HAProxy was not running and does not start.
const NOT_STARTED: u32 = 4;

/// The shell script: enable the unit, then reload (or start, if it is not running) unless the
/// recorded configuration is the one on disk and HAProxy runs. Prints the changes,
/// comma-separated, or nothing. With `apply` false it changes nothing and prints `would` where
/// it would first change something.
fn script(apply: bool) -> String {
    let dry = u8::from(!apply);
    format!(
        r#"set -u
cfg={HAPROXY_CONFIG_PATH}; mark={LOADED_MARK}; dry={dry}
# A dry run stops, saying so, where the first change would be made.
would() {{ if [ "$dry" = 1 ]; then echo would; exit 0; fi; }}
want=$(sha256sum "$cfg" | cut -d' ' -f1) || exit 1
changes=""
if ! systemctl is-enabled -q haproxy; then
  would
  systemctl enable -q haproxy || exit 1
  changes="enable haproxy"
fi
if [ "$(cat "$mark" 2>/dev/null)" = "$want" ] && systemctl is-active -q haproxy; then
  echo "$changes"; exit 0
fi
would
cursor=$(journalctl -u haproxy -n 0 --show-cursor -o cat --no-pager 2>/dev/null | sed -n 's/^-- cursor: //p')
since() {{
  if [ -n "$cursor" ]; then journalctl -u haproxy --after-cursor="$cursor" -o cat --no-pager
  else journalctl -u haproxy -o cat --no-pager; fi
}}
# HAProxy's own complaints first; systemd's lines only when it made none.
complaints() {{ since | grep -E 'ALERT|Loading failure' >&2 || since | tail -n 10 >&2; }}
if systemctl is-active -q haproxy; then
  systemctl reload haproxy || {{ complaints; exit {NOT_LOADED}; }}
else
  # A unit that failed to start before may be rate-limited; this is a new attempt.
  systemctl reset-failed haproxy 2>/dev/null
  systemctl start haproxy 2>/dev/null || {{ complaints; exit {NOT_STARTED}; }}
fi
i=0
while [ $i -lt {VERDICT_TENTHS} ]; do
  log=$(since)
  case "$log" in
    *"Loading failure"*) complaints; exit {NOT_LOADED} ;;
    *"Loading success"*)
      mkdir -p "$(dirname "$mark")" && echo "$want" > "$mark"
      echo "${{changes:+$changes, }}reload haproxy"; exit 0 ;;
  esac
  sleep 0.1; i=$((i+1))
done
echo "HAProxy's master said neither 'Loading success' nor 'Loading failure' within 10 s" >&2
exit {NOT_LOADED}
"#
    )
}

/// Step "HAProxy running": enabled, and running the configuration in [`HAPROXY_CONFIG_PATH`].
pub async fn ensure_loaded(run: &ClusterRun<'_>, host: &str) -> Result<Outcome, ModuleError> {
    let apply = run.mode == Mode::Apply;
    let out = run.engine.exec(host, &Script::root(script(apply))).await?;
    if !out.success() {
        let what = match out.code {
            Some(NOT_LOADED) => "HAProxy did not load the new configuration (it keeps running the old one)",
            Some(NOT_STARTED) => "HAProxy does not start with the new configuration",
            _ => "checking the HAProxy service failed",
        };
        return Err(module_error(
            format!("{what}:\n{}", out.tail()),
            format!(
                "fix what HAProxy reports on {host} (e.g. `journalctl -u haproxy` there), then re-run; kbs reloads it again"
            ),
        ));
    }
    let printed = out.stdout.trim();
    Ok(match printed {
        "" => Outcome::ok(),
        "would" => Outcome::changed("reload haproxy"),
        changes => Outcome::changed(changes),
    })
}

#[cfg(test)]
mod tests {
    use super::script;

    #[test]
    fn a_dry_run_changes_nothing() {
        let dry = script(false);
        // Every changing command comes after a `would`, which ends a dry run.
        for change in ["systemctl enable", "systemctl reload", "systemctl start"] {
            let at = dry.find(change).unwrap();
            let guard = dry[..at].rfind("\n  would\n").or(dry[..at].rfind("\nwould\n"));
            assert!(guard.is_some(), "{change} is not guarded");
        }
        assert!(dry.contains("dry=1"));
        assert!(script(true).contains("dry=0"));
    }

    #[test]
    fn the_script_is_valid_shell() {
        for apply in [true, false] {
            let status = std::process::Command::new("sh")
                .args(["-n", "-c", &script(apply)])
                .status()
                .unwrap();
            assert!(status.success(), "apply={apply}");
        }
    }
}
