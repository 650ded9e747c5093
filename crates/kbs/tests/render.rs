//! `kbs render` end to end: the real binary on the vagrant inventory. The redacted output is a
//! golden file (`KBS_UPDATE_GOLDEN=1 cargo test -p kbs --test render` rewrites it); with
//! `--show-secrets` the token and certificate key appear, freshly minted.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A home with the identity file inventory/vagrant.yaml names (`~/.vagrant.d/kbs_ed25519`).
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".vagrant.d")).unwrap();
        std::fs::write(dir.path().join(".vagrant.d/kbs_ed25519"), "").unwrap();
        Home { dir }
    }

    fn kbs(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kbs"))
            .args(args)
            .env("HOME", self.dir.path())
            .env_remove("XDG_STATE_HOME")
            .output()
            .unwrap()
    }

    fn render(&self, inventory: &Path, host: &str, extra: &[&str]) -> Output {
        let inventory = inventory.to_str().unwrap();
        let mut args = vec!["render", inventory, host];
        args.extend_from_slice(extra);
        self.kbs(&args)
    }
}

fn vagrant() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../inventory/vagrant.yaml")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kbs render failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/render")
        .join(name);
    if std::env::var_os("KBS_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with KBS_UPDATE_GOLDEN=1", path.display()));
    assert_eq!(
        actual, expected,
        "{name} differs from its golden file (KBS_UPDATE_GOLDEN=1 to accept)"
    );
}

/// The value after `key: ` on the first line that has it.
fn value_of(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| {
            l.trim_start()
                .trim_start_matches("- ")
                .strip_prefix(&format!("{key}: "))
        })
        .map(str::to_string)
}

#[test]
fn redacted_output_matches_the_golden_files() {
    let home = Home::new();
    for host in ["host01", "host02", "host04"] {
        let text = stdout(&home.render(&vagrant(), host, &[]));
        golden(&format!("{host}.txt"), &text);
        assert_eq!(
            value_of(&text, "token").as_deref(),
            Some("<redacted>"),
            "{host}:\n{text}"
        );
        if host != "host04" {
            assert_eq!(
                value_of(&text, "certificateKey").as_deref(),
                Some("<redacted>"),
                "{host}"
            );
        }
        if host != "host01" {
            assert!(
                text.contains("- sha256:<computed from the cluster CA after init>"),
                "{host}:\n{text}"
            );
            assert!(text
                .contains("# caCertHashes: the CA pin is computed from the cluster CA after `kubeadm init`"));
        }
    }
}

#[test]
fn show_secrets_prints_a_minted_token_and_key() {
    let home = Home::new();
    let first = stdout(&home.render(&vagrant(), "host02", &["--show-secrets"]));
    let token = value_of(&first, "token").unwrap();
    let key = value_of(&first, "certificateKey").unwrap();
    assert!(kbs_token_shape(&token), "{token}");
    assert_eq!(key.len(), 64);
    assert!(!first.contains("<redacted>"), "{first}");
    // The CA pin is still unknown before init.
    assert!(first.contains("sha256:<computed from the cluster CA after init>"));
    let second = stdout(&home.render(&vagrant(), "host02", &["--show-secrets"]));
    assert_ne!(
        value_of(&second, "token").unwrap(),
        token,
        "each run mints its own"
    );
}

fn kbs_token_shape(token: &str) -> bool {
    let ok =
        |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    matches!(token.split_once('.'), Some((a, b)) if ok(a, 6) && ok(b, 16))
}

#[test]
fn unknown_host_is_bad_input_with_a_suggestion() {
    let home = Home::new();
    let out = home.render(&vagrant(), "host1", &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("host1"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn an_lb_host_gets_its_haproxy_config() {
    let home = Home::new();
    let inventory = home.dir.path().join("haproxy.yaml");
    std::fs::write(
        &inventory,
        "cluster:\n  podSubnet: 172.31.0.0/16\n  endpoint: { mode: haproxy, port: 8443 }\nhosts:\n  \
         - { name: lb1, address: 192.168.61.9, roles: [lb] }\n  \
         - { name: host01, address: 192.168.61.11, roles: [control-plane] }\n",
    )
    .unwrap();
    let text = stdout(&home.render(&inventory, "lb1", &[]));
    assert!(
        text.contains("server host01 192.168.61.11:6443 check check-ssl verify none"),
        "{text}"
    );
    assert!(text.contains("bind *:8443"), "{text}");
}
