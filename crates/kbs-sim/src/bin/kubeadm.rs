//! The simulated `kubeadm` binary; all behaviour lives in `kbs_sim::cli`.

fn main() {
    std::process::exit(kbs_sim::cli::main_with(std::env::args().collect()));
}
