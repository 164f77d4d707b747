//! Fuzz target: see `checks::extract_stays_inside`.
#![no_main]

mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::extract_stays_inside(data));
