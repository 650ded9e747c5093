//! Longhorn's preflight, on every node before Longhorn is applied: longhorn-manager refuses a
//! node without a running iscsid or without nfs-common, and multipathd grabbing Longhorn's
//! `/dev/sd*` devices breaks its volumes. One round trip per node, all nodes at once.

use futures_util::future::join_all;
use kbs_engine::{Remote, Script};

use super::error::{AddonError, NodeLack};

/// Prints one `key=value` line per fact, then multipath.conf when multipathd runs.
pub const PREFLIGHT_SCRIPT: &str = r#"if systemctl is-active --quiet iscsid; then echo iscsid=active; else echo iscsid=inactive; fi
if dpkg-query -W -f='${Status}' nfs-common 2>/dev/null | grep -q 'install ok installed'; then echo nfs-common=installed; else echo nfs-common=missing; fi
if systemctl is-active --quiet multipathd; then echo multipathd=active; echo '--- /etc/multipath.conf'; cat /etc/multipath.conf 2>/dev/null; else echo multipathd=inactive; fi
"#;

/// What a node lacks, from the preflight script's output (empty: fit for Longhorn).
pub fn lacks(output: &str) -> Vec<String> {
    let (facts, conf) = output
        .split_once("--- /etc/multipath.conf")
        .unwrap_or((output, ""));
    let has = |line: &str| facts.lines().any(|l| l.trim() == line);
    let mut missing = Vec::new();
    if !has("iscsid=active") {
        missing.push("iscsid is not running (open-iscsi)".to_string());
    }
    if !has("nfs-common=installed") {
        missing.push("nfs-common is not installed".to_string());
    }
    if has("multipathd=active") && !blacklists_sd(conf) {
        missing.push("multipathd is running without blacklisting sd devices".to_string());
    }
    missing
}

/// Whether multipath.conf has a `blacklist { devnode "^sd…" }`: Longhorn's documented fix.
pub fn blacklists_sd(conf: &str) -> bool {
    let mut depth = 0usize;
    let mut in_blacklist = false;
    for raw in conf.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if depth == 0 && line.starts_with("blacklist") && !line.starts_with("blacklist_exceptions") {
            in_blacklist = true;
        }
        if in_blacklist && line.starts_with("devnode") && line.contains("\"^sd") {
            return true;
        }
        depth += line.matches('{').count();
        depth = depth.saturating_sub(line.matches('}').count());
        if depth == 0 {
            in_blacklist = false;
        }
    }
    false
}

/// Runs the preflight on every node; an error names each node and what it lacks.
pub async fn preflight(nodes: &[(String, &Remote)]) -> Result<(), AddonError> {
    let results = join_all(nodes.iter().map(|(name, remote)| async move {
        let out = remote.exec(&Script::root(PREFLIGHT_SCRIPT)).await;
        (name.clone(), out)
    }))
    .await;
    let mut lacking = Vec::new();
    for (node, out) in results {
        let missing = match out {
            Ok(out) if out.success() => lacks(&out.stdout),
            Ok(out) => vec![format!("the check failed: {}", out.tail())],
            Err(e) => vec![format!("unreachable: {}", e.message)],
        };
        if !missing.is_empty() {
            lacking.push(NodeLack { node, missing });
        }
    }
    if lacking.is_empty() {
        Ok(())
    } else {
        Err(AddonError::LonghornPreflight(lacking))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use kbs_engine::testing::{ok_with, FakeTransport};

    #[test]
    fn multipath_blacklist_of_sd_devices_is_recognised() {
        assert!(blacklists_sd(
            "defaults {\n  user_friendly_names yes\n}\nblacklist {\n    devnode \"^sd[a-z0-9]+\"\n}\n"
        ));
        assert!(!blacklists_sd("defaults {\n  user_friendly_names yes\n}\n"));
        assert!(!blacklists_sd(
            "blacklist_exceptions {\n  devnode \"^sd[a-z0-9]+\"\n}\n"
        ));
        assert!(!blacklists_sd("blacklist {\n  # devnode \"^sd[a-z0-9]+\"\n}\n"));
    }

    #[tokio::test]
    async fn the_node_without_iscsid_is_named_and_fit_nodes_are_not() {
        let fit = "iscsid=active\nnfs-common=installed\nmultipathd=inactive\n";
        let host01 = Remote::new(Arc::new(FakeTransport::rules(vec![("iscsid", ok_with(fit))])));
        let host02 = Remote::new(Arc::new(FakeTransport::rules(vec![(
            "iscsid",
            ok_with("iscsid=inactive\nnfs-common=installed\nmultipathd=active\n--- /etc/multipath.conf\ndefaults {}\n"),
        )])));
        let nodes = vec![("host01".to_string(), &host01), ("host02".to_string(), &host02)];
        let err = preflight(&nodes).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\n  host02: iscsid is not running (open-iscsi); multipathd is running without blacklisting sd devices"), "{text}");
        assert!(!text.contains("host01"), "{text}");
        assert!(text.contains("systemctl enable --now iscsid"), "{text}");
        assert!(preflight(&nodes[..1]).await.is_ok());
    }

    #[test]
    fn every_fact_is_checked() {
        assert_eq!(
            lacks("iscsid=active\nnfs-common=installed\nmultipathd=inactive\n"),
            Vec::<String>::new()
        );
        assert_eq!(
            lacks("iscsid=active\nnfs-common=missing\nmultipathd=inactive\n"),
            ["nfs-common is not installed"]
        );
        assert_eq!(lacks("").len(), 2, "no output proves nothing");
    }
}
