//! Fuzz target: see `checks::layer_toml_parses`.
#![no_main]

mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::layer_toml_parses(data));
