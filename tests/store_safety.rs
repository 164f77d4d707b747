//! The store under crashes and concurrent writers: a writer killed with SIGKILL at any point
//! leaves a store that `layerize verify` passes (no half-written blob under its final name) and
//! a rerun completes; two writers on one store serialize by its lock; a corrupt blob is found
//! and named. Writers are `layerize tar --store` (blobs under the lock), `layerize commit`
//! (blobs, snapshots and records under the lock) and `layerize cache save` (which commits).

mod common;

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

use common::{json_lines, layerize, run_layerize, s};

/// A tree of `files` files of 256 KiB of varied bytes (so gzip has work to do).
fn make_tree(dir: &Path, files: usize, seed: u64) {
    fs::create_dir_all(dir).unwrap();
    let mut state = seed;
    for i in 0..files {
        let bytes: Vec<u8> = (0..256 * 1024)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                (state >> 59) as u8
            })
            .collect();
        fs::write(dir.join(format!("f{i:03}")), bytes).unwrap();
    }
}

/// Starts `layerize ARGS` with its output piped.
fn spawn(args: &[&str]) -> Child {
    layerize()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn spawn_put(dir: &Path, store: &Path) -> Child {
    spawn(&[
        "tar",
        s(dir),
        "--store",
        s(store),
        "--compression",
        "gzip",
        "--json",
    ])
}

fn entries(dir: &Path) -> usize {
    fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn verify(store: &Path) -> serde_json::Value {
    let lines = json_lines(&["verify", "--store", s(store)]);
    let summary = lines.last().unwrap().clone();
    assert_eq!(summary["problems"], 0, "{lines:?}");
    summary
}

/// SIGKILLs 24 writers from `spawn` on `store`: the even ones as soon as a temp file shows up
/// in `tmp/` (a blob or record being written), the odd ones 0..~70 ms in. After each kill the
/// store must verify. Returns how many were killed while writing.
fn kill_repeatedly(store: &Path, spawn: &dyn Fn() -> Child) -> usize {
    let mut killed_mid_write = 0;
    for round in 0..24u64 {
        let mut child = spawn();
        if round % 2 == 0 {
            while entries(&store.join("tmp")) == 0 && child.try_wait().unwrap().is_none() {}
            if child.try_wait().unwrap().is_none() {
                killed_mid_write += 1;
            }
        } else {
            std::thread::sleep(std::time::Duration::from_millis(round * 3));
        }
        let _ = child.kill();
        child.wait().unwrap();
        verify(store);
    }
    killed_mid_write
}

#[test]
fn a_writer_killed_at_any_point_leaves_a_store_that_verifies_and_a_rerun_completes() {
    let root = tempfile::tempdir().unwrap();
    let (tree, store) = (root.path().join("tree"), root.path().join("store"));
    make_tree(&tree, 24, 1);
    let expected = &json_lines(&["tar", s(&tree), "--compression", "gzip"])[0];

    let killed = kill_repeatedly(&store, &|| spawn_put(&tree, &store));
    assert!(killed > 0, "no kill landed while a blob was written");
    // Only whole blobs ever appeared, under their digests.
    for blob in fs::read_dir(store.join("blobs/sha256")).unwrap() {
        let name = blob.unwrap().file_name().into_string().unwrap();
        assert!(
            [&expected["diff_id"], &expected["digest"]]
                .iter()
                .any(|d| d.as_str() == Some(&format!("sha256:{name}"))),
            "unexpected blob {name}"
        );
    }

    let done = spawn_put(&tree, &store).wait_with_output().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let put: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(put["digest"], expected["digest"]);
    assert_eq!(put["diff_id"], expected["diff_id"]);
    let summary = verify(&store);
    assert_eq!(summary["blobs"], 2);
}

#[test]
fn a_commit_killed_at_any_point_leaves_a_store_that_verifies_and_a_rerun_commits() {
    let root = tempfile::tempdir().unwrap();
    let (layers, store) = (root.path().join("layers"), root.path().join("store"));
    for (layer, seed) in [("jdk", 5), ("tools", 6)] {
        make_tree(&layers.join("example_bp").join(layer), 12, seed);
        fs::write(
            layers.join(format!("example_bp/{layer}.toml")),
            "[types]\nbuild = true\nlaunch = true\n",
        )
        .unwrap();
    }
    let args = [
        "commit",
        "--layers",
        s(&layers),
        "--buildpack",
        "example/bp",
        "--store",
        s(&store),
    ];
    assert!(
        kill_repeatedly(&store, &|| spawn(&args)) > 0,
        "no kill landed mid-write"
    );
    run_layerize(&args, 0);
    assert_eq!(verify(&store)["records"], 2);
}

#[test]
fn a_cache_save_killed_at_any_point_leaves_a_store_that_verifies_and_a_rerun_saves() {
    let root = tempfile::tempdir().unwrap();
    let (layers, cache) = (root.path().join("layers"), root.path().join("cache"));
    make_tree(&layers.join("example_bp/deps"), 16, 7);
    fs::write(
        layers.join("example_bp/deps.toml"),
        "[types]\ncache = true\nbuild = true\n",
    )
    .unwrap();
    let store = layers.join(".layerize");
    let args = [
        "cache",
        "save",
        "--layers",
        s(&layers),
        "--cache-dir",
        s(&cache),
    ];
    assert!(
        kill_repeatedly(&store, &|| spawn(&args)) > 0,
        "no kill landed mid-write"
    );
    run_layerize(&args, 0);
    assert_eq!(verify(&store)["records"], 1);
    let restored = root.path().join("restored");
    fs::create_dir(&restored).unwrap();
    run_layerize(
        &[
            "cache",
            "restore",
            "--layers",
            s(&restored),
            "--cache-dir",
            s(&cache),
        ],
        0,
    );
    assert_eq!(
        fs::read(restored.join("example_bp/deps/f000")).unwrap(),
        fs::read(layers.join("example_bp/deps/f000")).unwrap()
    );
}

#[test]
fn a_second_writer_waits_for_the_lock_and_two_at_once_both_land() {
    let root = tempfile::tempdir().unwrap();
    let store = root.path().join("store");
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    make_tree(&a, 4, 2);
    make_tree(&b, 4, 3);
    run_layerize(&["verify", "--store", s(&store)], 4);
    fs::create_dir_all(&store).unwrap();

    // Hold the lock as another process would; the writer must wait and write nothing.
    let lock = File::create(store.join("lock")).unwrap();
    lock.lock().unwrap();
    let mut waiting = spawn_put(&a, &store);
    let mut stderr = BufReader::new(waiting.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("waiting for the lock of store"), "{line}");
    assert!(waiting.try_wait().unwrap().is_none());
    assert_eq!(entries(&store.join("blobs/sha256")), 0);
    drop(lock);
    assert!(waiting.wait().unwrap().success());
    assert_eq!(entries(&store.join("blobs/sha256")), 2);

    // Two writers at once: both complete and the store is whole.
    let (first, second) = (spawn_put(&b, &store), spawn_put(&a, &store));
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(verify(&store)["blobs"], 4);
}

#[test]
fn verify_names_a_corrupt_blob_and_a_record_whose_blob_is_missing() {
    let root = tempfile::tempdir().unwrap();
    let (tree, store) = (root.path().join("tree"), root.path().join("store"));
    make_tree(&tree, 2, 4);
    let put = &json_lines(&[
        "tar",
        s(&tree),
        "--store",
        s(&store),
        "--compression",
        "gzip",
    ])[0];
    let hex = put["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let blob = store.join("blobs/sha256").join(hex);
    let mut bytes = fs::read(&blob).unwrap();
    bytes[1000] ^= 1;
    fs::write(&blob, bytes).unwrap();
    let out = run_layerize(&["verify", "--store", s(&store)], 4);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(s(&blob)) && stderr.contains("does not match its digest"),
        "{stderr}"
    );

    // A record naming a blob the store does not have.
    fs::remove_file(&blob).unwrap();
    let record = store.join("records/example_bp/layer.json");
    fs::create_dir_all(record.parent().unwrap()).unwrap();
    let record_json = serde_json::json!({
        "owner": "example/bp", "layer": "layer",
        "types": {"build": true, "launch": false, "cache": false},
        "metadata": {}, "diff_id": put["diff_id"], "size": 1, "files": 2,
        "blobs": [{"compression": "none", "digest": put["diff_id"], "size": 1,
                   "media_type": "application/vnd.oci.image.layer.v1.tar"}]
    });
    fs::write(&record, record_json.to_string()).unwrap();
    let out = run_layerize(&["verify", "--store", s(&store), "--json"], 4);
    let problems: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(problems[0]["problem"], "bad-reference", "{problems:?}");
    assert_eq!(problems[0]["path"], s(&record));
    assert!(String::from_utf8_lossy(&out.stderr).contains("recorded size 1"));
}
