//! The property each fuzz target checks, shared with the seed-corpus regression test
//! (`tests/fuzz_corpus.rs` includes this file): parsers return errors, never panic, and an
//! extraction never writes beside its target.
#![allow(dead_code)]

use std::fs;
use std::path::Path;

use layerize::{ExtractOptions, LayerRecord, LayerToml, extract};

/// Extracts `data` (a tar, plain or compressed) into a fresh temp dir, with whiteouts when its
/// length is odd; afterwards the temp root must hold only the target.
pub fn extract_stays_inside(data: &[u8]) {
    let root = tempfile::tempdir().expect("temp dir");
    let target = root.path().join("target");
    let options = ExtractOptions {
        whiteouts: data.len() % 2 == 1,
        max_bytes: Some(16 << 20),
    };
    let _ = extract(Path::new("fuzz-input"), data, &target, options);
    for entry in fs::read_dir(root.path()).expect("temp root readable") {
        let name = entry.expect("entry").file_name();
        assert_eq!(
            name, "target",
            "extraction wrote {name:?} beside its target"
        );
    }
}

/// Parses `data` as a layer toml; a parsed toml's metadata converts to JSON.
pub fn layer_toml_parses(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(toml) = LayerToml::parse(Path::new("fuzz.toml"), text) {
        let _ = toml.metadata_json();
    }
}

/// Parses `data` as a layer record; a parsed record serializes and parses back.
pub fn record_json_parses(data: &[u8]) {
    if let Ok(record) = serde_json::from_slice::<LayerRecord>(data) {
        let json = serde_json::to_vec(&record).expect("records serialize");
        serde_json::from_slice::<LayerRecord>(&json).expect("a serialized record parses");
    }
}

/// Parses `data` as an OCI image manifest, index and configuration.
pub fn oci_json_parses(data: &[u8]) {
    let _ = serde_json::from_slice::<oci_spec::image::ImageManifest>(data);
    let _ = serde_json::from_slice::<oci_spec::image::ImageIndex>(data);
    let _ = serde_json::from_slice::<oci_spec::image::ImageConfiguration>(data);
}
