//! The multi-call simulator binary; see `kbs_sim::multicall`.

fn main() {
    std::process::exit(kbs_sim::multicall::main(std::env::args().collect()));
}
