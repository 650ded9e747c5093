//! Golden files for the templates hosts receive. `KBS_UPDATE_GOLDEN=1 cargo test -p kbs-engine
//! --test golden` rewrites them; review the diff before committing.

use std::path::PathBuf;

use kbs_engine::{Library, Renderer};
use minijinja::{context, Value};

fn renderer() -> Renderer {
    Renderer::new(&Library::embedded().expect("embedded library"))
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("KBS_UPDATE_GOLDEN").is_some() {
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

fn versions(minor: u32) -> Value {
    context! { minor => minor, pause_image => "registry.k8s.io/pause:3.10.1" }
}

fn containerd(version: u32, minor: u32) -> String {
    renderer()
        .template(
            &format!("containerd/config-v{version}.toml.j2"),
            &context! { versions => versions(minor) },
        )
        .unwrap()
}

#[test]
fn containerd_v3_for_containerd_2() {
    let text = containerd(3, 36);
    golden("containerd-config-v3.toml", &text);
    let doc: toml::Table = text.parse().expect("valid TOML");
    assert_eq!(doc["version"].as_integer(), Some(3));
    let plugins = &doc["plugins"];
    assert_eq!(
        plugins["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"].as_str(),
        Some("registry.k8s.io/pause:3.10.1")
    );
    let runc = &plugins["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"];
    assert_eq!(runc["options"]["SystemdCgroup"].as_bool(), Some(true));
    assert_eq!(runc["runtime_type"].as_str(), Some("io.containerd.runc.v2"));
}

#[test]
fn containerd_v2_for_containerd_1() {
    let text = containerd(2, 35);
    golden("containerd-config-v2.toml", &text);
    let doc: toml::Table = text.parse().expect("valid TOML");
    assert_eq!(doc["version"].as_integer(), Some(2));
    let cri = &doc["plugins"]["io.containerd.grpc.v1.cri"];
    assert_eq!(
        cri["sandbox_image"].as_str(),
        Some("registry.k8s.io/pause:3.10.1")
    );
    assert_eq!(
        cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"].as_bool(),
        Some(true)
    );
}

#[test]
fn crictl_yaml() {
    let text = renderer().template("crictl.yaml.j2", &context! {}).unwrap();
    golden("crictl.yaml", &text);
    assert!(text.contains("runtime-endpoint: unix:///run/containerd/containerd.sock\n"));
}

#[test]
fn sysctl_and_modules_files() {
    let r = renderer();
    let values: std::collections::BTreeMap<&str, &str> = [
        ("net.bridge.bridge-nf-call-ip6tables", "1"),
        ("net.bridge.bridge-nf-call-iptables", "1"),
        ("net.ipv4.ip_forward", "1"),
    ]
    .into();
    let values = context! { values => values };
    golden(
        "99-kubernetes.conf",
        &r.template("sysctl.conf.j2", &values).unwrap(),
    );
    let modules = context! { modules => vec!["overlay", "br_netfilter"] };
    golden(
        "modules-load-kubernetes.conf",
        &r.template("modules-load.conf.j2", &modules).unwrap(),
    );
}

#[test]
fn pkgs_k8s_io_sources_line() {
    let text = renderer()
        .template(
            "apt-source.list.j2",
            &context! {
                url => "https://pkgs.k8s.io/core:/stable:/v1.36/deb/",
                keyring => "/etc/apt/keyrings/kubernetes-apt-keyring.gpg",
                suite => "/",
                components => Vec::<String>::new(),
                comment => "Kubernetes 1.36",
            },
        )
        .unwrap();
    golden("kubernetes.list", &text);
    assert!(text.ends_with(
        "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.36/deb/ /\n"
    ));
}
