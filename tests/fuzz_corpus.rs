//! Replays the committed fuzz seed corpora (`fuzz/corpus/<target>/`, including any input a
//! fuzzing run found and that was fixed) through the same checks the `cargo fuzz` targets run,
//! so `cargo test` guards them without a nightly toolchain.

#[path = "../fuzz/fuzz_targets/checks.rs"]
mod checks;

use std::fs;
use std::path::PathBuf;

/// Runs `check` on every file of `fuzz/corpus/<target>/` (there must be some).
fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{}: no seeds", dir.display());
    for input in inputs {
        let data = fs::read(&input).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{}: the {target} check failed",
            input.display()
        );
    }
}

#[test]
fn extract_seeds_never_write_beside_the_target() {
    replay("extract", checks::extract_stays_inside);
}

#[test]
fn layer_toml_seeds_parse_or_fail_cleanly() {
    replay("layer_toml", checks::layer_toml_parses);
}

#[test]
fn record_json_seeds_parse_or_fail_cleanly() {
    replay("record_json", checks::record_json_parses);
}

#[test]
fn oci_json_seeds_parse_or_fail_cleanly() {
    replay("oci_json", checks::oci_json_parses);
}
