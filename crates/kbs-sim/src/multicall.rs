//! One binary, many tools: `kbs-sim` dispatches on the name it was started as
//! (`/usr/bin/kubeadm` → kubeadm) or on its first argument (`kbs-sim kubelet --version`),
//! so every package installs the same build under its tool's name.

use std::path::Path;

/// The tools this binary can be.
pub const TOOLS: [&str; 7] = [
    "kubeadm",
    "kubelet",
    "kube-apiserver",
    "kubectl",
    "kube-vip",
    "containerd",
    "crictl",
];

/// Runs the tool `args` name; returns the exit status.
pub fn main(mut args: Vec<String>) -> i32 {
    let invoked = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_string();
    let tool = if TOOLS.contains(&invoked.as_str()) {
        invoked
    } else if args.len() > 1 && TOOLS.contains(&args[1].as_str()) {
        args.remove(0);
        args[0].clone()
    } else {
        eprintln!(
            "usage: kbs-sim <{}> [args...] (or install it under a tool's name)",
            TOOLS.join("|")
        );
        return 1;
    };
    match tool.as_str() {
        "kubeadm" => crate::cli::main_with(args),
        "kube-apiserver" => crate::apiserver::main(&args[1..]),
        "kubectl" => crate::kubectl::main(&args[1..]),
        "kube-vip" => crate::kube_vip::main(&args[1..]),
        "containerd" => crate::containerd::main(&args),
        "crictl" => crate::containerd::crictl(&args),
        _ => crate::kubelet::main(&args[1..]),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dispatches_every_packaged_tool_name() {
        let run = |argv: &[&str]| super::main(argv.iter().map(|s| s.to_string()).collect());
        assert_eq!(run(&["/usr/bin/kubectl", "version", "--client"]), 0);
        assert_eq!(run(&["kbs-sim", "kubectl", "version", "--client"]), 0);
        // kube-apiserver parses its flags before touching any file.
        assert_eq!(run(&["/usr/bin/kube-apiserver", "--secure-port=notaport"]), 1);
        assert_eq!(run(&["kbs-sim", "nosuchtool"]), 1);
    }
}
