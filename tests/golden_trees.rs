//! Golden diffIDs for edge-case trees (golden/make-trees.sh, expected values in
//! golden/trees.json from an independent Go archive/tar oracle), the same for trees created in
//! another order with other mtimes and umask; and round trips through peers: GNU tar lists and
//! extracts every layer we write, `layerize extract` gives the same tree, gzip/zstd blobs pass
//! `gzip -t`/`zstd -t`, decompress to the diffID, and are identical run to run.

mod common;

use std::path::Path;

use common::*;

fn build_trees(root: &Path, variant: &str) {
    sh(&format!(
        "{} {} {variant}",
        repo().join("golden/make-trees.sh").display(),
        root.display()
    ));
}

fn golden() -> Vec<serde_json::Value> {
    let bytes = std::fs::read(repo().join("golden/trees.json")).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    json["expected"].as_array().unwrap().clone()
}

#[test]
fn every_tree_has_its_golden_diff_id_in_both_variants() {
    let tmp = tempfile::tempdir().unwrap();
    let expected = golden();
    assert!(
        expected.len() >= 24,
        "golden/trees.json lists every tree for three owners"
    );
    for variant in ["plain", "shuffled"] {
        let root = tmp.path().join(variant);
        build_trees(&root, variant);
        for case in &expected {
            let tree = case["tree"].as_str().unwrap();
            let (uid, gid) = (case["uid"].to_string(), case["gid"].to_string());
            let prefix = format!("/layers/golden_bp/{tree}");
            let out = json_lines(&[
                "tar",
                s(&root.join(tree)),
                "--prefix",
                &prefix,
                "--uid",
                &uid,
                "--gid",
                &gid,
            ]);
            assert_eq!(
                out[0]["diff_id"], case["diff_id"],
                "{tree} ({variant}, {uid}:{gid})"
            );
        }
    }
}

#[test]
fn gnu_tar_and_layerize_extract_give_back_the_tree() {
    require_tool("tar");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("trees");
    build_trees(&root, "plain");
    for tree in [
        "long-names",
        "non-utf8",
        "deep",
        "empty",
        "links",
        "ordering",
        "modes",
    ] {
        let blob = tmp.path().join(format!("{tree}.tar"));
        let prefix = format!("/layers/golden_bp/{tree}");
        run_layerize(
            &[
                "tar",
                s(&root.join(tree)),
                "--prefix",
                &prefix,
                "--output",
                s(&blob),
            ],
            0,
        );

        let listing = sh(&format!("tar -tvf {}", blob.display()));
        let entries = listing.lines().count();
        let walked = walkdir::WalkDir::new(root.join(tree)).into_iter().count();
        assert_eq!(
            entries,
            walked + 2,
            "{tree}: GNU tar lists the ancestors and every entry"
        );

        let by_gnu = tmp.path().join(format!("gnu-{tree}"));
        std::fs::create_dir(&by_gnu).unwrap();
        sh(&format!(
            "tar --no-same-owner -xpf {} -C {}",
            blob.display(),
            by_gnu.display()
        ));
        let by_us = tmp.path().join(format!("ours-{tree}"));
        run_layerize(&["extract", s(&blob), s(&by_us)], 0);

        let source = tree_manifest(&root.join(tree));
        let in_image = format!("layers/golden_bp/{tree}");
        assert_eq!(
            tree_manifest(&by_gnu.join(&in_image)),
            source,
            "{tree}: GNU tar extraction"
        );
        assert_eq!(
            tree_manifest(&by_us.join(&in_image)),
            source,
            "{tree}: layerize extraction"
        );
    }
}

#[test]
fn compressed_blobs_are_valid_deterministic_and_decompress_to_the_diff_id() {
    require_tool("gzip");
    require_tool("zstd");
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    make_lifecycle_fixture(&tree, "plain");
    let layer = tree.join("example_runtime/rt");
    let plain = json_lines(&["tar", s(&layer), "--prefix", "/layers/example_runtime/rt"]);
    let diff_id = plain[0]["diff_id"].as_str().unwrap().to_owned();
    for (compression, test_cmd, cat_cmd) in [
        ("gzip", "gzip -t", "gzip -dc"),
        ("zstd", "zstd -q -t", "zstd -q -dc"),
    ] {
        let mut digests = Vec::new();
        for run in 0..2 {
            let blob = tmp.path().join(format!("rt-{run}.{compression}"));
            let out = json_lines(&[
                "tar",
                s(&layer),
                "--prefix",
                "/layers/example_runtime/rt",
                "--compression",
                compression,
                "--output",
                s(&blob),
            ]);
            assert_eq!(out[0]["diff_id"].as_str().unwrap(), diff_id);
            assert_eq!(
                out[0]["size"].as_u64().unwrap(),
                std::fs::metadata(&blob).unwrap().len()
            );
            sh(&format!("{test_cmd} {}", blob.display()));
            let decompressed = sh(&format!(
                "{cat_cmd} {} | sha256sum | cut -d' ' -f1",
                blob.display()
            ));
            assert_eq!(
                format!("sha256:{}", decompressed.trim()),
                diff_id,
                "{compression}"
            );
            let blob_digest = sh(&format!("sha256sum {} | cut -d' ' -f1", blob.display()));
            assert_eq!(
                format!("sha256:{}", blob_digest.trim()),
                out[0]["digest"].as_str().unwrap()
            );
            digests.push(out[0]["digest"].clone());
        }
        assert_eq!(
            digests[0], digests[1],
            "{compression}: same input, same bytes"
        );
    }
}
