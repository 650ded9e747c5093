//! `apt_packages`: packages installed, optionally at a version and held.
//!
//! A version spec is resolved against the repository's offers (`apt-cache madison`): `1.36` is the
//! newest 1.36.x, `1.36.4` the newest revision of it (`1.36.4-1.1` or `-2.1`), a full string is
//! exact, empty means any. An installed version that satisfies the spec is kept: kbs installs the
//! newest match but never upgrades a running node behind the user's back (that is `kubeadm upgrade`'s
//! job). Check is one script (installed versions, offers, holds and the dpkg lock); apply is one more
//! (plus `apt-get update` when the offers are missing and `update_cache` is set).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::apt_lock::{self, apt_error, apt_get};
use super::dpkg_version;
use super::probe;
use super::{ModuleCtx, ModuleError, Outcome};
use crate::transport::sh_quote;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum PackageSpec {
    Name(String),
    Versioned {
        name: String,
        #[serde(default)]
        version: String,
    },
}

impl PackageSpec {
    fn name(&self) -> &str {
        match self {
            PackageSpec::Name(n) | PackageSpec::Versioned { name: n, .. } => n,
        }
    }

    fn version(&self) -> &str {
        match self {
            PackageSpec::Name(_) => "",
            PackageSpec::Versioned { version, .. } => version,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub packages: Vec<PackageSpec>,
    /// `apt-mark hold` them after installing (kubelet, kubeadm, kubectl).
    #[serde(default)]
    pub hold: bool,
    /// Run `apt-get update` before installing (only when something needs installing).
    #[serde(default = "yes")]
    pub update_cache: bool,
}

fn yes() -> bool {
    true
}

/// What the host has and what the repository offers.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct State {
    pub installed: BTreeMap<String, String>,
    pub offered: BTreeMap<String, Vec<String>>,
    pub held: BTreeSet<String>,
}

pub fn check_script(args: &Args) -> String {
    let names: Vec<String> = args.packages.iter().map(|p| sh_quote(p.name())).collect();
    let versioned: Vec<String> = args
        .packages
        .iter()
        .filter(|p| !p.version().is_empty())
        .map(|p| sh_quote(p.name()))
        .collect();
    let madison = if versioned.is_empty() {
        String::new()
    } else {
        format!("apt-cache madison {} 2>/dev/null", versioned.join(" "))
    };
    format!(
        "LC_ALL=C; export LC_ALL\n{}{}{}{}",
        probe::section(
            "installed",
            &format!(
                "dpkg-query -W -f='${{db:Status-Abbrev}}|${{Package}}|${{Version}}\\n' {} 2>/dev/null",
                names.join(" ")
            )
        ),
        probe::section("offered", &madison),
        probe::section("held", "apt-mark showhold 2>/dev/null"),
        apt_lock::holder_section()
    )
}

pub fn parse_state(output: &str) -> Option<State> {
    let mut s = State::default();
    for line in probe::get(output, "installed")?.lines() {
        let mut parts = line.splitn(3, '|');
        if let (Some(status), Some(name), Some(version)) = (parts.next(), parts.next(), parts.next()) {
            if status.chars().nth(1) == Some('i') && !version.is_empty() {
                s.installed.insert(name.to_string(), version.to_string());
            }
        }
    }
    for line in probe::get(output, "offered")?.lines() {
        let parts: Vec<&str> = line.split('|').map(str::trim).collect();
        if parts.len() >= 2 && !parts[0].is_empty() {
            let versions = s.offered.entry(parts[0].to_string()).or_default();
            if !versions.iter().any(|v| v == parts[1]) {
                versions.push(parts[1].to_string());
            }
        }
    }
    s.held = probe::get(output, "held")?
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    Some(s)
}

/// What to do for one package.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Keep,
    /// Install `name=version` (or plain `name` when no spec).
    Install {
        target: String,
        from: Option<String>,
    },
    /// The repository offers nothing matching the spec (yet).
    Unresolved {
        spec: String,
    },
}

pub fn decide(spec: &PackageSpec, state: &State) -> Action {
    let installed = state.installed.get(spec.name());
    if let Some(v) = installed {
        if dpkg_version::matches(spec.version(), v) {
            return Action::Keep;
        }
    }
    if spec.version().is_empty() {
        return Action::Install {
            target: spec.name().to_string(),
            from: installed.cloned(),
        };
    }
    let best = state
        .offered
        .get(spec.name())
        .into_iter()
        .flatten()
        .filter(|v| dpkg_version::matches(spec.version(), v))
        .max_by(|a, b| dpkg_version::compare(a, b));
    match best {
        Some(v) => Action::Install {
            target: format!("{}={v}", spec.name()),
            from: installed.cloned(),
        },
        None => Action::Unresolved {
            spec: spec.version().to_string(),
        },
    }
}

struct Plan {
    /// What the repositories offer, for error messages.
    offered: BTreeMap<String, Vec<String>>,
    installs: Vec<String>,
    unresolved: Vec<String>,
    to_hold: Vec<String>,
    lines: Vec<String>,
}

fn plan(args: &Args, state: &State) -> Plan {
    let mut p = Plan {
        offered: state.offered.clone(),
        installs: Vec::new(),
        unresolved: Vec::new(),
        to_hold: Vec::new(),
        lines: Vec::new(),
    };
    for spec in &args.packages {
        match decide(spec, state) {
            Action::Keep => {}
            Action::Install { target, from } => {
                p.lines.push(match from {
                    Some(old) => format!(
                        "{}: {old} → {}",
                        spec.name(),
                        target.split_once('=').map(|t| t.1).unwrap_or("newest")
                    ),
                    None => format!("install {target}"),
                });
                p.installs.push(target);
            }
            Action::Unresolved { spec: v } => {
                p.lines.push(format!(
                    "install {} {v}.x (not in the package lists yet)",
                    spec.name()
                ));
                p.unresolved.push(spec.name().to_string());
            }
        }
        if args.hold && !state.held.contains(spec.name()) {
            p.to_hold.push(spec.name().to_string());
        }
    }
    if !p.to_hold.is_empty() {
        p.lines.push(format!("hold {}", p.to_hold.join(" ")));
    }
    p
}

pub async fn run(args: Args, ctx: &ModuleCtx<'_>) -> Result<Outcome, ModuleError> {
    let out = ctx.exec(check_script(&args)).await?;
    let state = parse_state(&out.stdout)
        .ok_or_else(|| ModuleError::new(format!("reading package state failed: {}", out.tail())))?;
    let mut p = plan(&args, &state);
    if p.lines.is_empty() {
        return Ok(Outcome::ok());
    }
    let summary = p.lines.join("\n");
    if ctx.check_only {
        return Ok(Outcome::changed(summary));
    }
    apt_lock::wait_until_free(ctx, apt_lock::holder_from(&out.stdout)).await?;

    let needs_install = !p.installs.is_empty() || !p.unresolved.is_empty();
    if needs_install && args.update_cache {
        let script = format!("{} || exit $?\n{}", apt_get(ctx, "update"), check_script(&args));
        let out = ctx.exec(script).await?;
        if !out.success() {
            return Err(apt_error("apt-get update", &out.tail()));
        }
        let state = parse_state(&out.stdout)
            .ok_or_else(|| ModuleError::new(format!("reading package state failed: {}", out.tail())))?;
        p = plan(&args, &state);
    }
    if let Some(name) = p.unresolved.first() {
        let spec = args
            .packages
            .iter()
            .find(|s| s.name() == name)
            .map(|s| s.version())
            .unwrap_or("");
        let offered = p
            .offered
            .get(name)
            .map(|v| v.join(", "))
            .filter(|v| !v.is_empty());
        return Err(ModuleError::new(format!(
            "no version of {name} matching `{spec}` is offered by the configured repositories{}",
            offered.map(|v| format!(" (offered: {v})")).unwrap_or_default()
        ))
        .hint(format!(
            "`apt-cache madison {name}` on the host lists what its repositories offer; add a repository that \
             has {name} {spec}.x (for Kubernetes packages: the pkgs.k8s.io repository of that minor)"
        )));
    }
    let mut script = String::from("set -e\n");
    if !p.installs.is_empty() {
        let targets: Vec<String> = p.installs.iter().map(|t| sh_quote(t)).collect();
        script.push_str(&apt_get(
            ctx,
            &format!(
                "--allow-downgrades --allow-change-held-packages -o Dpkg::Options::=--force-confdef \
                 -o Dpkg::Options::=--force-confold install {}\n",
                targets.join(" ")
            ),
        ));
    }
    if !p.to_hold.is_empty() {
        let names: Vec<String> = p.to_hold.iter().map(|t| sh_quote(t)).collect();
        script.push_str(&format!("apt-mark hold {} >/dev/null\n", names.join(" ")));
    }
    let out = ctx.exec(script).await?;
    if !out.success() {
        return Err(apt_error("installing packages", &out.tail()));
    }
    Ok(Outcome::changed(summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::test_support::Harness;
    use crate::testing::{ok_with, FakeTransport};

    fn kube_args() -> Args {
        serde_json::from_value(serde_json::json!({
            "packages": [
                {"name": "kubelet", "version": "1.36"},
                {"name": "kubeadm", "version": "1.36"},
                "curl"
            ],
            "hold": true
        }))
        .unwrap()
    }

    fn output(installed: &str, offered: &str, held: &str, lock: &str) -> String {
        format!(
            "@@kbs:installed\n{installed}\n@@kbs:end\n@@kbs:offered\n{offered}\n@@kbs:end\n@@kbs:held\n{held}\n@@kbs:end\n@@kbs:dpkg_lock\n{lock}\n@@kbs:end\n"
        )
    }

    const MADISON: &str = "   kubelet | 1.36.4-1.1 | https://pkgs.k8s.io/core:/stable:/v1.36/deb  Packages
   kubelet | 1.36.10-1.1 | https://pkgs.k8s.io/core:/stable:/v1.36/deb  Packages
   kubelet | 1.36.3-1.1 | https://pkgs.k8s.io/core:/stable:/v1.36/deb  Packages
   kubeadm | 1.36.10-2.1 | https://pkgs.k8s.io/core:/stable:/v1.36/deb  Packages
   kubeadm | 1.36.10-1.1 | https://pkgs.k8s.io/core:/stable:/v1.36/deb  Packages";

    #[test]
    fn resolves_the_newest_patch_and_revision() {
        let state = parse_state(&output("ii |curl|8.5.0-2", MADISON, "", "")).unwrap();
        let a = kube_args();
        assert_eq!(
            decide(&a.packages[0], &state),
            Action::Install {
                target: "kubelet=1.36.10-1.1".into(),
                from: None
            }
        );
        assert_eq!(
            decide(&a.packages[1], &state),
            Action::Install {
                target: "kubeadm=1.36.10-2.1".into(),
                from: None
            }
        );
        assert_eq!(decide(&a.packages[2], &state), Action::Keep);
    }

    #[test]
    fn keeps_a_matching_install_and_replaces_a_wrong_minor() {
        let state = parse_state(&output(
            "hi |kubelet|1.36.4-1.1\nii |kubeadm|1.35.2-1.1",
            MADISON,
            "kubelet",
            "",
        ))
        .unwrap();
        let a = kube_args();
        assert_eq!(decide(&a.packages[0], &state), Action::Keep);
        assert_eq!(
            decide(&a.packages[1], &state),
            Action::Install {
                target: "kubeadm=1.36.10-2.1".into(),
                from: Some("1.35.2-1.1".into())
            }
        );
    }

    #[tokio::test]
    async fn installs_pinned_and_holds_in_one_apply_script() {
        let state = output("", MADISON, "", "");
        let h = Harness::new(FakeTransport::rules(vec![("dpkg-query", ok_with(&state))]));
        let out = run(kube_args(), &h.ctx(false)).await.unwrap();
        assert_eq!(
            out.diff.as_deref(),
            Some("install kubelet=1.36.10-1.1\ninstall kubeadm=1.36.10-2.1\ninstall curl\nhold kubelet kubeadm curl")
        );
        let scripts = h.fake.scripts();
        assert_eq!(scripts.len(), 3, "check, update+recheck, install");
        assert!(scripts[1].contains("apt-get -q -y -o DPkg::Lock::Timeout=1 update"));
        let install = &scripts[2];
        assert!(
            install.contains("install kubelet=1.36.10-1.1 kubeadm=1.36.10-2.1 curl"),
            "{install}"
        );
        assert!(install.contains("apt-mark hold kubelet kubeadm curl"));
        assert!(install.contains("DEBIAN_FRONTEND=noninteractive"));
    }

    #[tokio::test]
    async fn installed_and_held_is_ok_in_one_round_trip() {
        let state = output(
            "hi |kubelet|1.36.10-1.1\nhi |kubeadm|1.36.10-2.1\nhi |curl|8.5.0-2",
            MADISON,
            "kubelet\nkubeadm\ncurl",
            "",
        );
        let h = Harness::new(FakeTransport::rules(vec![("dpkg-query", ok_with(&state))]));
        assert_eq!(run(kube_args(), &h.ctx(false)).await.unwrap(), Outcome::ok());
        assert_eq!(h.remote.round_trips(), 1);
    }

    #[tokio::test]
    async fn check_mode_before_the_repository_exists_says_what_it_would_do() {
        let h = Harness::new(FakeTransport::rules(vec![(
            "dpkg-query",
            ok_with(&output("", "", "", "")),
        )]));
        let out = run(kube_args(), &h.ctx(true)).await.unwrap();
        assert!(out
            .diff
            .unwrap()
            .starts_with("install kubelet 1.36.x (not in the package lists yet)"));
        assert_eq!(h.remote.round_trips(), 1);
    }

    #[tokio::test]
    async fn apply_fails_clearly_when_the_version_is_not_offered() {
        let h = Harness::new(FakeTransport::rules(vec![(
            "dpkg-query",
            ok_with(&output("", "", "", "")),
        )]));
        let err = run(kube_args(), &h.ctx(false)).await.unwrap_err();
        assert_eq!(
            err.message,
            "no version of kubelet matching `1.36` is offered by the configured repositories"
        );
        assert!(err.hint.unwrap().contains("apt-cache madison kubelet"));
    }

    #[tokio::test]
    async fn containerd_1_is_not_taken_for_a_minor_that_needs_2() {
        let args: Args =
            serde_json::from_value(serde_json::json!({"packages": [{"name": "containerd", "version": "2"}]}))
                .unwrap();
        let state = output(
            "ii |containerd|1.7.28-1",
            " containerd | 1.7.28-1 | http://deb.debian.org Packages",
            "",
            "",
        );
        let h = Harness::new(FakeTransport::rules(vec![("dpkg-query", ok_with(&state))]));
        let err = run(args, &h.ctx(false)).await.unwrap_err();
        assert_eq!(
            err.message,
            "no version of containerd matching `2` is offered by the configured repositories (offered: 1.7.28-1)"
        );
        assert!(
            h.fake.scripts().iter().all(|s| !s.contains(" install ")),
            "nothing installed"
        );
    }

    #[tokio::test]
    async fn waits_for_a_held_lock_before_installing() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let checks = std::sync::Arc::new(AtomicU32::new(0));
        let c = checks.clone();
        let h = Harness::new(FakeTransport::new(move |s| {
            if s.text.contains("dpkg-query") && c.fetch_add(1, Ordering::SeqCst) == 0 {
                ok_with(&output("", MADISON, "", "4242 apt-get"))
            } else if s.text.contains("dpkg-query") {
                ok_with(&output("", MADISON, "", ""))
            } else {
                ok_with("@@kbs:dpkg_lock\n\n@@kbs:end\n")
            }
        }));
        run(kube_args(), &h.ctx(false)).await.unwrap();
        let events = h.events.events();
        assert!(
            matches!(&events[0], crate::events::Event::Waiting { what, .. } if what == "the dpkg lock held by PID 4242 (apt-get)")
        );
    }
}
