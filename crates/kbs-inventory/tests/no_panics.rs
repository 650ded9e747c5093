//! Mangled inventories must produce diagnostics, never a panic: a deterministic mutation run
//! over the Vagrant inventory (deleting, duplicating and inserting characters and lines).

use std::path::Path;

use kbs_inventory::Inventory;

/// A tiny deterministic generator, so a failure reproduces exactly.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

const SPICE: &[&str] = &[
    ":",
    "-",
    " ",
    "\n",
    "\t",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    "&a",
    "*a",
    "!!str ",
    "~",
    "#",
    ",",
    "---\n",
    "?",
    "é",
    "0",
    "-1",
    "host01",
    "control-plane",
    "1.36",
    "/",
    "\\",
];

#[test]
fn mutated_inventories_never_panic() {
    let original = include_str!("../../../inventory/vagrant.yaml");
    let mut rng = Lcg(0x6b6273);
    for round in 0..3000 {
        let mut text: Vec<char> = original.chars().collect();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(text.len());
            match rng.below(4) {
                0 => {
                    let len = 1 + rng.below(12);
                    text.drain(at..(at + len).min(text.len()));
                }
                1 => {
                    let len = 1 + rng.below(40);
                    let piece: Vec<char> = text[at..(at + len).min(text.len())].to_vec();
                    text.splice(at..at, piece);
                }
                _ => {
                    let spice = SPICE[rng.below(SPICE.len())];
                    text.splice(at..at, spice.chars());
                }
            }
        }
        let yaml: String = text.into_iter().collect();
        let result = std::panic::catch_unwind(|| Inventory::from_str(&yaml, Path::new("fuzz.yaml")));
        match result {
            Ok(Err(error)) => assert!(
                error.error_count() > 0,
                "round {round}: error without diagnostics"
            ),
            Ok(Ok(_)) => {}
            Err(_) => panic!("round {round}: panicked on:\n{yaml}"),
        }
    }
}
