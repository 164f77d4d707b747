//! Read-only build layers, played as a build: buildpack `example/runtime` commits its layer,
//! a later buildpack changes it, `check` reports and attributes the change under each policy,
//! `restore` puts it back (a re-commit is then a cache hit with the same diffID), `capture`
//! records a delta that applied over the original gives the modified tree.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};

const OWNER: &str = "example/runtime";
const LATER: &str = "later/bp";

/// A layers dir holding the golden fixture, and its layer `rt`.
fn fixture(tmp: &Path) -> (PathBuf, PathBuf) {
    let layers = tmp.join("layers");
    make_lifecycle_fixture(&layers, "plain");
    let rt = layers.join("example_runtime/rt");
    (layers, rt)
}

fn commit(layers: &Path) -> Value {
    let out = json_lines(&["commit", "--layers", s(layers), "--buildpack", OWNER]);
    assert_eq!(out.len(), 1, "{out:?}");
    out[0].clone()
}

/// What a later buildpack does to the layer: every kind of change, including a same-size
/// content change with the mtime set back (`touch -d`) that only ctime and inode reveal.
fn tamper(rt: &Path) {
    sh(&format!(
        r#"cd {rt}
        old=$(stat -c %y a/b)
        printf 'Y' > a/b; touch -d "$old" a/b
        echo new > added.txt
        rm a-b
        chmod 0600 a.c
        ln -sfn elsewhere share/rt-link
        rm -r lib/python3.12/site-packages/pkg
        mkdir -p lib/python3.12/__pycache__ && echo pyc > lib/python3.12/__pycache__/m.pyc
        rm "share/doc/na$(printf '\xef')ve.txt"
        rm empty-dir && true || rmdir empty-dir; printf file > empty-dir
        "#,
        rt = rt.display()
    ));
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

/// Every entry with its mtime (ns) and owner: what a restore must bring back too.
fn mtimes(root: &Path) -> Vec<String> {
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            format!(
                "{} {}.{} {}:{}",
                e.path().display(),
                m.mtime(),
                m.mtime_nsec(),
                m.uid(),
                m.gid()
            )
        })
        .collect()
}

#[test]
fn commit_gives_lifecycles_diff_id_and_a_second_commit_is_a_cache_hit() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, rt) = fixture(tmp.path());
    let golden: Value = serde_json::from_slice(
        &std::fs::read(repo().join("golden/lifecycle/lifecycle-diffids.json")).unwrap(),
    )
    .unwrap();
    let first = commit(&layers);
    assert_eq!(first["outcome"], "committed");
    assert_eq!(first["diff_id"], golden["expected"][0]["diff_id"]);
    let tar = json_lines(&["tar", s(&rt), "--prefix", "/layers/example_runtime/rt"]);
    assert_eq!(first["diff_id"], tar[0]["diff_id"]);
    let again = commit(&layers);
    assert_eq!(again["outcome"], "cache-hit");
    assert_eq!(again["diff_id"], first["diff_id"]);

    // Another build user changes the tar: not a hit, and lifecycle's diffID for that owner.
    let other = json_lines(&[
        "commit",
        "--layers",
        s(&layers),
        "--buildpack",
        OWNER,
        "--uid",
        "1000",
        "--gid",
        "1000",
    ]);
    assert_eq!(other[0]["outcome"], "committed");
    assert_eq!(other[0]["diff_id"], golden["expected"][1]["diff_id"]);
}

#[test]
fn check_reports_exactly_the_changed_paths_attributed_to_the_later_buildpack() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, rt) = fixture(tmp.path());
    commit(&layers);
    let quiet = json_lines(&["check", "--layers", s(&layers), "--by", LATER]);
    assert!(quiet.is_empty(), "unchanged layer reported: {quiet:?}");
    tamper(&rt);

    let report = json_lines(&["check", "--layers", s(&layers), "--by", LATER]);
    assert_eq!(report.len(), 1);
    let r = &report[0];
    assert_eq!(
        (&r["owner"], &r["layer"], &r["by"]),
        (&json!(OWNER), &json!("rt"), &json!(LATER))
    );
    let pkg = "lib/python3.12/site-packages/pkg";
    let mut removed = vec!["a-b".to_owned(), pkg.to_owned()];
    removed.extend((1..=40).map(|i| format!("{pkg}/m{i}.py")));
    removed.push("share/doc/na\u{fffd}ve.txt".to_owned());
    let mut got_removed = strings(&r["removed"]);
    got_removed.sort();
    removed.sort();
    assert_eq!(got_removed, removed);
    assert_eq!(
        strings(&r["added"]),
        [
            "added.txt",
            "lib/python3.12/__pycache__",
            "lib/python3.12/__pycache__/m.pyc"
        ]
    );
    assert_eq!(
        r["details"],
        json!([
            {"path": "a/b", "what": ["content"]},
            {"path": "a.c", "what": ["mode"]},
            {"path": "empty-dir", "what": ["type"]},
            {"path": "share/rt-link", "what": ["link-target"]},
        ])
    );
    assert_eq!(
        strings(&r["modified"]),
        ["a/b", "a.c", "empty-dir", "share/rt-link"]
    );

    // Policies: fail exits 3 (and still reports), ignore says nothing, warn exits 0.
    let out = run_layerize(
        &[
            "check",
            "--layers",
            s(&layers),
            "--by",
            LATER,
            "--policy",
            "fail",
            "--json",
        ],
        3,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("changed by later/bp"));
    let out = run_layerize(
        &[
            "check",
            "--layers",
            s(&layers),
            "--by",
            LATER,
            "--policy",
            "ignore",
        ],
        0,
    );
    assert!(out.stdout.is_empty());
    let out = run_layerize(&["check", "--layers", s(&layers), "--by", LATER], 0);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("CHANGED BY") && table.contains("  ~ a/b (content)"),
        "{table}"
    );
}

#[test]
fn restore_brings_back_content_modes_and_original_mtimes_and_recommit_is_a_hit() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, rt) = fixture(tmp.path());
    let committed = commit(&layers);
    let (tree, times) = (tree_manifest(&rt), mtimes(&rt));
    tamper(&rt);
    assert_ne!(tree_manifest(&rt), tree);

    let restored = json_lines(&["restore", "--layers", s(&layers)]);
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0]["deleted"], 3);
    assert_eq!(tree_manifest(&rt), tree);
    assert_eq!(
        mtimes(&rt),
        times,
        "restored entries keep their original mtimes"
    );
    let again = commit(&layers);
    assert_eq!(again["outcome"], "cache-hit");
    assert_eq!(again["diff_id"], committed["diff_id"]);
    assert!(json_lines(&["restore", "--layers", s(&layers)]).is_empty());

    // The whole layer dir gone: re-extracted whole, via check --restore.
    std::fs::remove_dir_all(&rt).unwrap();
    let report = json_lines(&["check", "--layers", s(&layers), "--by", LATER, "--restore"]);
    assert_eq!(report[0]["removed"].as_array().unwrap().len(), 73);
    assert_eq!(tree_manifest(&rt), tree);
    assert_eq!(mtimes(&rt), times);
    assert_eq!(commit(&layers)["outcome"], "cache-hit");
}

#[test]
fn capture_records_a_delta_that_applied_over_the_original_gives_the_modified_tree() {
    require_tool("umoci");
    let tmp = tempfile::tempdir().unwrap();
    let (layers, rt) = fixture(tmp.path());
    let original = commit(&layers);
    tamper(&rt);
    let modified = tree_manifest(&rt);
    let report = json_lines(&[
        "check",
        "--layers",
        s(&layers),
        "--by",
        LATER,
        "--policy",
        "capture",
    ]);
    let delta = report[0]["delta"]
        .as_str()
        .expect("delta diffID")
        .to_owned();
    // The captured state is now the expected one: nothing more to report.
    assert!(json_lines(&["check", "--layers", s(&layers), "--by", "third/bp"]).is_empty());
    let record: Value = serde_json::from_slice(
        &std::fs::read(layers.join(".layerize/records/later_bp/rt@example_runtime.1.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(record["owner"], LATER);
    assert_eq!(record["diff_id"], delta);
    assert_eq!(
        record["delta_of"],
        json!({"owner": OWNER, "layer": "rt", "seq": 1})
    );

    let blob = |d: &str| layers.join(".layerize/blobs/sha256").join(&d[7..]);
    let original_tar = blob(original["diff_id"].as_str().unwrap());
    let root = tmp.path().join("applied");
    run_layerize(&["extract", s(&original_tar), s(&root)], 0);
    run_layerize(&["extract", "--whiteouts", s(&blob(&delta)), s(&root)], 0);
    assert_eq!(
        tree_manifest(&root.join("layers/example_runtime/rt")),
        modified
    );

    sh(&format!(
        "cd {t} && umoci init --layout img && umoci new --image img:t \
         && umoci raw add-layer --image img:t {o} && umoci raw add-layer --image img:t {d} \
         && umoci unpack --rootless --image img:t bundle >/dev/null",
        t = tmp.path().display(),
        o = original_tar.display(),
        d = blob(&delta).display()
    ));
    let unpacked = tmp.path().join("bundle/rootfs/layers/example_runtime/rt");
    assert_eq!(tree_manifest(&unpacked), modified);

    // restore now returns to the captured state, which is the expected one.
    std::fs::remove_dir_all(&rt).unwrap();
    json_lines(&["restore", "--layers", s(&layers)]);
    assert_eq!(tree_manifest(&rt), modified);
}

#[test]
fn deferred_layer_waits_for_finalize_and_later_changes_are_free() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, rt) = fixture(tmp.path());
    let out = json_lines(&[
        "commit",
        "--layers",
        s(&layers),
        "--buildpack",
        OWNER,
        "--defer",
        "example/runtime:rt",
    ]);
    assert_eq!(out[0]["outcome"], "deferred");
    std::fs::write(rt.join("added-later"), "x").unwrap();
    assert!(json_lines(&["check", "--layers", s(&layers), "--by", LATER]).is_empty());
    let fin = json_lines(&["commit", "--layers", s(&layers), "--finalize"]);
    assert_eq!(fin[0]["outcome"], "committed");
    let tar = json_lines(&["tar", s(&rt), "--prefix", "/layers/example_runtime/rt"]);
    assert_eq!(
        fin[0]["diff_id"], tar[0]["diff_id"],
        "finalize commits the changed layer"
    );
    assert!(json_lines(&["commit", "--layers", s(&layers), "--finalize"]).is_empty());
}

#[test]
fn a_cache_hit_reads_no_file_content() {
    // Proof by an unreadable file: the second commit runs as `nobody`, which may lstat the
    // layer but not read bin/private (0700 root). A hit succeeds; a commit that re-reads
    // content fails on that file, which the control at the end shows.
    assert_eq!(
        sh("id -u").trim(),
        "0",
        "needs root to run a commit as another user"
    );
    require_tool("setpriv");
    let tmp = tempfile::tempdir().unwrap();
    let (layers, rt) = fixture(tmp.path());
    let first = commit(&layers);
    sh(&format!(
        "chmod 0755 {t} && chmod -R a+rwX {t}/layers/.layerize",
        t = tmp.path().display()
    ));
    let as_nobody = |code: i32| {
        let bin = env!("CARGO_BIN_EXE_layerize");
        let out = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                bin,
                "commit",
                "--layers",
            ])
            .args([s(&layers), "--buildpack", OWNER, "--json"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let hit: Value = serde_json::from_slice(&as_nobody(0).stdout).unwrap();
    assert_eq!(hit["outcome"], "cache-hit");
    assert_eq!(hit["diff_id"], first["diff_id"]);

    std::fs::write(rt.join("a.c"), "z").unwrap();
    let out = as_nobody(4);
    assert!(String::from_utf8_lossy(&out.stderr).contains("bin/private"));
}

#[test]
fn restore_never_writes_through_a_symlink_planted_in_the_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let (layers, rt) = fixture(tmp.path());
    commit(&layers);
    let tree = tree_manifest(&rt);
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::remove_dir_all(rt.join("bin")).unwrap();
    std::os::unix::fs::symlink(&outside, rt.join("bin")).unwrap();
    std::fs::remove_dir_all(rt.join("lib/python3.12")).unwrap();
    std::os::unix::fs::symlink(&outside, rt.join("lib/python3.12")).unwrap();

    let report = json_lines(&["check", "--layers", s(&layers), "--by", LATER, "--restore"]);
    let details = report[0]["details"].as_array().unwrap();
    assert!(
        details.contains(&json!({"path": "bin", "what": ["type"]})),
        "{details:?}"
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote outside the layer"
    );
    assert_eq!(tree_manifest(&rt), tree);
}
