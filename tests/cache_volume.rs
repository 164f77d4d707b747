//! The volume cache: save, wipe the layers dir, restore: cached layers come back with the same
//! diffIDs and tomls; saving twice unchanged writes nothing; a flipped byte or a truncated tar in
//! the cache is caught, reported, and the layer left out, never half-extracted.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::cnb::make_build;
use common::*;

fn save(root: &Path) -> serde_json::Value {
    json_lines(&[
        "cache",
        "save",
        "--layers",
        s(&root.join("layers")),
        "--cache-dir",
        s(&root.join("cache")),
        "--group",
        s(&root.join("group.toml")),
        "--uid",
        "1000",
        "--gid",
        "1000",
    ])
    .remove(0)
}

fn restore(root: &Path) -> (serde_json::Value, String) {
    let out = run_layerize(
        &[
            "cache",
            "restore",
            "--layers",
            s(&root.join("layers")),
            "--cache-dir",
            s(&root.join("cache")),
            "--json",
        ],
        0,
    );
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn diff_id(dir: &Path) -> serde_json::Value {
    json_lines(&["tar", s(dir), "--uid", "1000", "--gid", "1000"])[0]["diff_id"].clone()
}

fn blob_stats(cache: &Path) -> Vec<(String, u64, i64, i64)> {
    let mut stats: Vec<_> = std::fs::read_dir(cache.join("committed"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (
                e.file_name().into_string().unwrap(),
                m.ino(),
                m.mtime(),
                m.mtime_nsec(),
            )
        })
        .collect();
    stats.sort();
    stats
}

#[test]
fn save_wipe_restore_gives_back_the_cache_layers_and_a_second_save_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    make_build(root);
    let layers = root.join("layers");
    let before = [
        diff_id(&layers.join("example_jdk/jdk")),
        diff_id(&layers.join("example_jdk/cache-only")),
    ];
    let first = save(root);
    let names: Vec<_> = first["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["example/jdk:cache-only", "example/jdk:jdk"]);
    assert_eq!(first["unchanged"], false);
    let cache = root.join("cache");
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(cache.join("committed/io.buildpacks.lifecycle.cache.metadata")).unwrap(),
    )
    .unwrap();
    let jdk = &meta["buildpacks"][0]["layers"]["jdk"];
    assert_eq!(jdk["data"]["version"], "21.0.2");
    assert!(
        cache
            .join("committed")
            .join(format!("{}.tar", jdk["sha"].as_str().unwrap()))
            .is_file()
    );

    let stats = blob_stats(&cache);
    let second = save(root);
    assert_eq!(second["unchanged"], true);
    assert!(
        second["layers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["action"] == "reused")
    );
    assert_eq!(blob_stats(&cache), stats, "no blob or metadata rewritten");
    assert!(!cache.join("staging").exists());

    std::fs::remove_dir_all(&layers).unwrap();
    let (report, stderr) = restore(root);
    assert!(
        report["warnings"].as_array().unwrap().is_empty(),
        "{stderr}"
    );
    assert_eq!(report["layers"].as_array().unwrap().len(), 2);
    assert_eq!(diff_id(&layers.join("example_jdk/jdk")), before[0]);
    assert_eq!(diff_id(&layers.join("example_jdk/cache-only")), before[1]);
    assert!(
        !layers.join("example_jdk/build-only").exists(),
        "not a cache layer"
    );
    assert!(
        !layers.join("example_app/web").exists(),
        "not a cache layer"
    );
    let toml = std::fs::read_to_string(layers.join("example_jdk/jdk.toml")).unwrap();
    assert!(
        toml.contains("launch = true") && toml.contains("version = \"21.0.2\""),
        "{toml}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&layers)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".layerize-restore"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let third = save(root);
    assert_eq!(
        third["unchanged"], true,
        "restored layers are the same layers"
    );
}

#[test]
fn a_flipped_byte_or_a_truncated_tar_is_reported_and_the_layer_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    make_build(root);
    let meta = save(root);
    let sha = |name: &str| {
        meta["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .unwrap()["diff_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let committed = root.join("cache/committed");
    let jdk_tar = committed.join(format!("{}.tar", sha("example/jdk:jdk")));
    let mut bytes = std::fs::read(&jdk_tar).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::remove_file(&jdk_tar).unwrap();
    std::fs::write(&jdk_tar, &bytes).unwrap();
    let m2_tar = committed.join(format!("{}.tar", sha("example/jdk:cache-only")));
    let len = std::fs::metadata(&m2_tar).unwrap().len();
    let truncated = std::fs::read(&m2_tar).unwrap()[..(len as usize / 2)].to_vec();
    std::fs::remove_file(&m2_tar).unwrap();
    std::fs::write(&m2_tar, truncated).unwrap();

    let layers = root.join("layers");
    std::fs::remove_dir_all(&layers).unwrap();
    let (report, stderr) = restore(root);
    assert!(report["layers"].as_array().unwrap().is_empty(), "{report}");
    let warnings = report["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(
        stderr.contains("example/jdk:jdk: not restored") && stderr.contains("does not match"),
        "{stderr}"
    );
    assert!(
        stderr.contains("example/jdk:cache-only: not restored"),
        "{stderr}"
    );
    assert!(
        !layers.join("example_jdk/jdk").exists(),
        "nothing extracted from a bad tar"
    );
    assert!(!layers.join("example_jdk/cache-only").exists());
    assert!(!layers.join("example_jdk/jdk.toml").exists());
    let entries: Vec<_> = std::fs::read_dir(&layers)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != ".layerize" && n != "example_jdk")
        .collect();
    assert!(entries.is_empty(), "temp dirs removed: {entries:?}");
}

/// `layerize commit` of example/jdk's layers with the save's tar owner, as `nobody` when
/// `nobody` is set; the JSON line of each layer, by layer name.
fn commit_jdk(layers: &Path, nobody: bool) -> Vec<serde_json::Value> {
    let bin = env!("CARGO_BIN_EXE_layerize");
    let mut command = if nobody {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin]);
        c
    } else {
        std::process::Command::new(bin)
    };
    let out = command
        .args([
            "commit",
            "--layers",
            s(layers),
            "--buildpack",
            "example/jdk",
        ])
        .args(["--uid", "1000", "--gid", "1000", "--json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let mut lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lines.sort_by_key(|l| l["layer"].as_str().unwrap().to_owned());
    lines
}

#[test]
fn the_owners_commit_of_a_restored_layer_is_a_hit_without_reading_it_unless_it_changed_it() {
    assert_eq!(sh("id -u").trim(), "0", "needs root to commit as nobody");
    require_tool("setpriv");
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    make_build(root);
    let layers = root.join("layers");
    // Root-only content: a commit as nobody that read it would fail.
    sh(&format!(
        "printf secret > {l}/example_jdk/jdk/lib/private && chmod 0600 {l}/example_jdk/jdk/lib/private",
        l = layers.display()
    ));
    let saved = save(root);
    let sha = |name: &str| {
        saved["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .unwrap()["diff_id"]
            .clone()
    };
    assert!(
        root.join("cache/committed/io.layerize.cache.specs")
            .is_file()
    );

    std::fs::remove_dir_all(&layers).unwrap();
    let (report, stderr) = restore(root);
    assert!(
        report["warnings"].as_array().unwrap().is_empty(),
        "{stderr}"
    );
    sh(&format!(
        "chmod 0755 {r} && chmod -R a+rwX {r}/layers/.layerize",
        r = root.display()
    ));
    let hits = commit_jdk(&layers, true);
    let got: Vec<_> = hits
        .iter()
        .map(|l| {
            (
                l["layer"].clone(),
                l["outcome"].clone(),
                l["diff_id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "cache-only".into(),
                "cache-hit".into(),
                sha("example/jdk:cache-only")
            ),
            ("jdk".into(), "cache-hit".into(), sha("example/jdk:jdk")),
        ]
    );
    let again = commit_jdk(&layers, true);
    assert_eq!(again, hits, "the promoted record is an ordinary record");

    // The owner changes a restored layer before its commit: re-tarred, a new diffID.
    std::fs::remove_dir_all(&layers).unwrap();
    restore(root);
    std::fs::write(
        layers.join("example_jdk/jdk/bin/java"),
        "#!/bin/sh\necho 22\n",
    )
    .unwrap();
    let changed = commit_jdk(&layers, false);
    assert_eq!(changed[0]["outcome"], "cache-hit");
    assert_eq!(changed[1]["outcome"], "committed");
    assert_ne!(changed[1]["diff_id"], sha("example/jdk:jdk"));
    assert_eq!(changed[1]["files"], hits[1]["files"]);
}
