//! `kbs`: the command-line tool. It only parses arguments and wires the library crates together.

fn main() {
    println!("kbs {}", env!("CARGO_PKG_VERSION"));
}
