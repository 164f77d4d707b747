//! Lifecycle parity: `layerize tar` of the golden fixture gives exactly the diffIDs that
//! lifecycle's exporter rules give (golden/lifecycle/lifecycle-diffids.json), for both the
//! plain and the shuffled variant (other creation order, mtimes and umask).

mod common;

use common::*;

#[test]
fn golden_fixture_diff_ids_equal_lifecycles_for_every_owner_and_variant() {
    let golden: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo().join("golden/lifecycle/lifecycle-diffids.json")).unwrap(),
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for variant in ["plain", "shuffled"] {
        let layers = tmp.path().join(variant);
        make_lifecycle_fixture(&layers, variant);
        let rt = layers.join("example_runtime/rt");
        for expected in golden["expected"].as_array().unwrap() {
            let (uid, gid) = (expected["uid"].to_string(), expected["gid"].to_string());
            let out = json_lines(&[
                "tar",
                s(&rt),
                "--prefix",
                "/layers/example_runtime/rt",
                "--uid",
                &uid,
                "--gid",
                &gid,
            ]);
            assert_eq!(out.len(), 1);
            assert_eq!(
                out[0]["diff_id"], expected["diff_id"],
                "{variant} uid={uid} gid={gid}"
            );
            assert_eq!(
                out[0]["digest"], expected["diff_id"],
                "with no compression digest is the diffID"
            );
        }
    }
}
