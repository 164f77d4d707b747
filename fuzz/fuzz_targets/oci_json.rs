//! Fuzz target: see `checks::oci_json_parses`.
#![no_main]

mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::oci_json_parses(data));
