//! `build --cache-dir --output` over the bundled examples: the image is exported after the
//! final commit (skopeo reads it, its label lists the launch layers) and the volume cache is
//! saved, so a second build with the same cache dir restores the deps layer and the deps
//! buildpack reuses it.

mod common;

use std::path::Path;

use common::{repo, require_tool, run_layerize, s, sh};
use serde_json::Value;

/// The example build with `--json`, a cache dir and an export to `oci:<image>:v1`: its JSON
/// lines and its stderr (where buildpack output goes under `--json`).
fn build(layers: &Path, cache: &Path, image: &Path) -> (Vec<Value>, String) {
    let ex = repo().join("examples");
    let output = format!("oci:{}:v1", s(image));
    let out = run_layerize(
        &[
            "build",
            "--app",
            s(&ex.join("app")),
            "--buildpacks",
            s(&ex.join("buildpacks")),
            "--group",
            s(&ex.join("group.toml")),
            "--layers",
            s(layers),
            "--cache-dir",
            s(cache),
            "--output",
            &output,
            "--json",
        ],
        0,
    );
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn summary(lines: &[Value]) -> &Value {
    lines.iter().find(|l| l["type"] == "summary").unwrap()
}

fn deps_diff_id(lines: &[Value]) -> String {
    let deps = lines
        .iter()
        .find(|l| l["type"] == "buildpack" && l["buildpack"] == "example/deps")
        .unwrap();
    let layer = deps["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["layer"] == "deps")
        .unwrap();
    layer["diff_id"].as_str().unwrap().to_owned()
}

#[test]
fn build_exports_the_image_and_a_second_build_restores_the_cache() {
    require_tool("skopeo");
    let dir = tempfile::tempdir().unwrap();
    let (cache, image) = (dir.path().join("cache"), dir.path().join("image"));

    let (first, log) = build(&dir.path().join("layers1"), &cache, &image);
    assert!(log.contains("[example/deps] installed"), "{log}");
    let sum = summary(&first);
    assert_eq!(sum["cache_restored"]["layers"], serde_json::json!([]));
    let saved: Vec<&str> = sum["cache_saved"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert!(saved.contains(&"example/deps:deps"), "{saved:?}");
    let exported = &sum["exported"];
    assert_eq!(exported["image"], format!("oci:{}:v1", s(&image)));

    let inspect: Value =
        serde_json::from_str(&sh(&format!("skopeo inspect oci:{}:v1", s(&image)))).unwrap();
    assert_eq!(
        inspect["Digest"], exported["manifest"],
        "skopeo sees the manifest the build reported"
    );
    let label: Value = serde_json::from_str(
        inspect["Labels"]["io.buildpacks.lifecycle.metadata"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let mut launch = Vec::new();
    for bp in label["buildpacks"].as_array().unwrap() {
        for (name, layer) in bp["layers"].as_object().unwrap() {
            if layer["launch"] == true {
                launch.push(format!("{}:{name}", bp["key"].as_str().unwrap()));
            }
        }
    }
    launch.sort();
    assert_eq!(
        launch,
        [
            "example/deps:deps",
            "example/pip:site",
            "example/runtime:rt"
        ]
    );
    assert_eq!(
        exported["layers"].as_array().unwrap().len(),
        launch.len() + 1
    );
    let image_layers = inspect["Layers"].as_array().unwrap().len();
    assert_eq!(
        image_layers,
        exported["layers"].as_array().unwrap().len(),
        "the launch layers and the app"
    );

    // A fresh layers dir with the same cache: the deps layer comes back and is reused.
    let (second, log) = build(&dir.path().join("layers2"), &cache, &image);
    assert!(
        log.contains("[example/deps] requirements unchanged: reusing the cached deps layer"),
        "{log}"
    );
    let sum = summary(&second);
    let restored: Vec<&str> = sum["cache_restored"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert!(restored.contains(&"example/deps:deps"), "{restored:?}");
    assert_eq!(deps_diff_id(&second), deps_diff_id(&first));
    assert_eq!(sum["cache_saved"]["unchanged"], true, "{sum}");
    assert_eq!(sum["exported"]["image"], exported["image"]);
}
