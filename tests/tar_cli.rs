//! `layerize tar` behaviour beyond digests: names with and without `--prefix`, owners from the
//! environment, fifos skipped with a warning, and errors that name the path.

mod common;

use std::fs;

use common::*;

fn entries(blob: &std::path::Path) -> Vec<(String, u64, u64, u32)> {
    let mut archive = tar::Archive::new(fs::File::open(blob).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().display().to_string(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mode().unwrap(),
            )
        })
        .collect()
}

#[test]
fn names_are_relative_without_prefix_and_absolute_after_ancestors_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("src");
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::write(dir.join("bin/tool"), "x").unwrap();
    let blob = tmp.path().join("out.tar");

    run_layerize(
        &[
            "tar",
            s(&dir),
            "--output",
            s(&blob),
            "--uid",
            "7",
            "--gid",
            "8",
        ],
        0,
    );
    let names: Vec<String> = entries(&blob).into_iter().map(|e| e.0).collect();
    assert_eq!(names, ["bin", "bin/tool"]);

    run_layerize(
        &[
            "tar",
            s(&dir),
            "--prefix",
            "/a/b/c/",
            "--output",
            s(&blob),
            "--uid",
            "7",
            "--gid",
            "8",
        ],
        0,
    );
    let all = entries(&blob);
    let names: Vec<&str> = all.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        ["/a", "/a/b", "/a/b/c", "/a/b/c/bin", "/a/b/c/bin/tool"]
    );
    assert_eq!(
        (all[0].1, all[0].2, all[0].3),
        (0, 0, 0o755),
        "ancestors are 0755 root"
    );
    assert_eq!(
        (all[2].1, all[2].2),
        (7, 8),
        "the dir itself has the build user"
    );
}

#[test]
fn owner_defaults_to_cnb_user_and_group_ids() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("f"), "x").unwrap();
    let blob = tmp.path().join("out.tar");
    let out = layerize()
        .args(["tar", s(tmp.path()), "--output", s(&blob)])
        .env("CNB_USER_ID", "1234")
        .env("CNB_GROUP_ID", "5678")
        .output()
        .unwrap();
    assert!(out.status.success());
    let all = entries(&blob);
    assert_eq!((all[0].1, all[0].2), (1234, 5678));

    let out = layerize()
        .args(["tar", s(tmp.path())])
        .env("CNB_USER_ID", "cnb")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CNB_USER_ID"));
}

#[test]
fn fifos_are_skipped_with_a_warning_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("f"), "x").unwrap();
    sh(&format!("mkfifo {}", dir.join("pipe").display()));
    let out = run_layerize(&["tar", s(&dir), "--json"], 0);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("pipe") && stderr.contains("fifo skipped"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["files"], 1);
}

#[test]
fn a_missing_dir_is_invalid_input_and_leaves_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let blob = tmp.path().join("out.tar");
    let out = run_layerize(&["tar", s(&missing), "--output", s(&blob)], 4);
    assert!(String::from_utf8_lossy(&out.stderr).contains(s(&missing)));
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "no output, no temp file"
    );
}
