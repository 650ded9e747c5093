//! `swap_off`: no active swap now (`swapoff -a`) and none at boot (swap lines in /etc/fstab
//! commented out). The new fstab is computed here, so the diff shows exactly what changes, and
//! written atomically.

use serde::Deserialize;

use super::probe;
use super::{unified_diff, ModuleCtx, ModuleError, Outcome};
use crate::transport::Upload;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {}

const FSTAB: &str = "/etc/fstab";

pub fn check_script() -> String {
    format!(
        "{}{}",
        probe::section("swaps", "tail -n +2 /proc/swaps 2>/dev/null | awk '{ print $1 }'"),
        probe::file_section("fstab", FSTAB)
    )
}

/// fstab with every active swap line commented out (`# ` prefix), or `None` if it has none.
pub fn comment_swap_lines(fstab: &str) -> Option<String> {
    let mut changed = false;
    let lines: Vec<String> = fstab
        .split_inclusive('\n')
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !line.trim_start().starts_with('#') && fields.len() >= 3 && fields[2] == "swap" {
                changed = true;
                format!("# {line}")
            } else {
                line.to_string()
            }
        })
        .collect();
    changed.then(|| lines.concat())
}

pub async fn run(_args: Args, ctx: &ModuleCtx<'_>) -> Result<Outcome, ModuleError> {
    let out = ctx.exec(check_script()).await?;
    let (Some(swaps), Some(fstab)) = (probe::get(&out.stdout, "swaps"), probe::get(&out.stdout, "fstab"))
    else {
        return Err(ModuleError::new(format!(
            "reading swap state failed: {}",
            out.tail()
        )));
    };
    let active: Vec<&str> = swaps.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let fstab = probe::parse_file(fstab);
    let new_fstab = fstab.as_ref().and_then(|f| comment_swap_lines(&f.content));

    let mut changes = Vec::new();
    if !active.is_empty() {
        changes.push(format!("swapoff {}", active.join(", ")));
    }
    if let (Some(old), Some(new)) = (&fstab, &new_fstab) {
        changes.push(unified_diff(FSTAB, &old.content, new));
    }
    if changes.is_empty() {
        return Ok(Outcome::ok());
    }
    if !ctx.check_only {
        if let (Some(old), Some(new)) = (&fstab, new_fstab) {
            ctx.upload(Upload {
                path: FSTAB.into(),
                contents: new.into_bytes(),
                mode: old.mode,
                owner: Some((old.owner.clone(), old.group.clone())),
            })
            .await?;
        }
        // daemon-reload drops the swap units systemd generated from the old fstab.
        ctx.exec_ok(
            "turning swap off",
            "swapoff -a && if command -v systemctl >/dev/null 2>&1; then systemctl daemon-reload; fi",
        )
        .await?;
    }
    Ok(Outcome::changed(changes.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_support::Harness;
    use crate::testing::{ok_with, FakeTransport};

    const FSTAB_IN: &str =
        "UUID=abc / ext4 defaults 0 1\n/swap.img\tnone\tswap\tsw\t0\t0\n# /old none swap sw 0 0\n";

    fn state(swaps: &str, fstab: &str) -> String {
        format!("@@kbs:swaps\n{swaps}\n@@kbs:end\n@@kbs:fstab\npresent\n644 root root\n{fstab}\n@@kbs:end\n")
    }

    #[test]
    fn comments_only_live_swap_lines() {
        let out = comment_swap_lines(FSTAB_IN).unwrap();
        assert_eq!(
            out,
            "UUID=abc / ext4 defaults 0 1\n# /swap.img\tnone\tswap\tsw\t0\t0\n# /old none swap sw 0 0\n"
        );
        assert_eq!(comment_swap_lines(&out), None, "idempotent");
    }

    #[tokio::test]
    async fn turns_swap_off_and_rewrites_fstab() {
        let h = Harness::new(FakeTransport::rules(vec![(
            "/proc/swaps",
            ok_with(&state("/swap.img", FSTAB_IN)),
        )]));
        let out = run(Args {}, &h.ctx(false)).await.unwrap();
        let diff = out.diff.unwrap();
        assert!(diff.starts_with("swapoff /swap.img\n"));
        assert!(diff.contains("+# /swap.img"));
        assert_eq!(h.fake.uploads()[0].path, "/etc/fstab");
        assert!(h.fake.scripts()[1].starts_with("swapoff -a"));
    }

    #[tokio::test]
    async fn no_swap_is_ok_in_one_round_trip() {
        let done = comment_swap_lines(FSTAB_IN).unwrap();
        let h = Harness::new(FakeTransport::rules(vec![(
            "/proc/swaps",
            ok_with(&state("", &done)),
        )]));
        assert_eq!(run(Args {}, &h.ctx(false)).await.unwrap(), Outcome::ok());
        assert_eq!(h.remote.round_trips(), 1);
    }
}
