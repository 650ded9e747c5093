//! The real `kubeadm` binary: version selection by environment and exit codes.

use std::process::Command;

fn kubeadm(args: &[&str], version: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kubeadm"))
        .args(args)
        .env("KBS_SIM_VERSION", version)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_comes_from_the_environment() {
    assert_eq!(
        kubeadm(&["version", "-o", "short"], "1.37.1"),
        (0, "v1.37.1\n".into(), String::new())
    );
    let (code, out, _) = kubeadm(&["version"], "1.35.0");
    assert_eq!(code, 0);
    assert!(
        out.starts_with("kubeadm version: &version.Info{Major:\"1\", Minor:\"35\","),
        "{out}"
    );
}

#[test]
fn config_validate_v1beta3_depends_on_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kubeadm.yaml");
    std::fs::write(&file, "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\nkubernetesVersion: v1.35.4\nnetworking:\n  podSubnet: 172.31.0.0/16\n").unwrap();
    let path = file.display().to_string();
    assert_eq!(
        kubeadm(&["config", "validate", "--config", &path], "1.35.4"),
        (0, "ok\n".into(), String::new())
    );
    let (code, out, err) = kubeadm(&["config", "validate", "--config", &path], "1.36.0");
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "error: your configuration file uses an old API spec: \"kubeadm.k8s.io/v1beta3\" (kind: \"ClusterConfiguration\"). Please use kubeadm v1.35 instead and run 'kubeadm config migrate --old-config old.yaml --new-config new.yaml', which will write the new, similar spec using a newer API version.\nTo see the stack trace of this error execute with --v=5 or higher\n"
    );
}

#[test]
fn missing_config_file() {
    let (code, _, err) = kubeadm(
        &["config", "validate", "--config", "/nonexistent/k.yaml"],
        "1.36.0",
    );
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: open /nonexistent/k.yaml: no such file or directory\n"),
        "{err}"
    );
}

#[test]
fn multicall_binary_serves_kubelet_version_and_kubeadm() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_kbs-sim"))
            .args(args)
            .env("KBS_SIM_VERSION", "1.36.4")
            .env("KBS_SIM_KUBELET_VERSION", "1.35.7")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // kubelet and kubeadm on one host may differ: that is what KubeletVersion checks.
    assert_eq!(
        run(&["kubelet", "--version"]),
        (0, "Kubernetes v1.35.7\n".to_string())
    );
    assert_eq!(
        run(&["kubeadm", "version", "-o", "short"]),
        (0, "v1.36.4\n".to_string())
    );
    assert_eq!(run(&["frobnicate"]).0, 1);
}
