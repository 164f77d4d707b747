//! The bundled example group (examples/): a runtime, a dependency installer that uses it, and
//! a pip-like buildpack that writes bytecode into the runtime's layer. Under every policy the
//! runtime layer keeps the diffID it was committed with when its buildpack finished; the
//! change is reported (warn), stops the build (fail), or becomes a delta layer owned by the
//! misbehaving buildpack (capture).

mod common;

use std::path::{Path, PathBuf};

use common::{json_lines, layerize, repo, run_layerize, s, sh};
use serde_json::Value;

const RUNTIME: &str = "example/runtime";
const PIP: &str = "example/pip";

fn example_args(layers: &Path, policy: &str) -> Vec<String> {
    let ex = repo().join("examples");
    [
        "build",
        "--app",
        s(&ex.join("app")),
        "--buildpacks",
        s(&ex.join("buildpacks")),
        "--group",
        s(&ex.join("group.toml")),
        "--layers",
        s(layers),
        "--policy",
        policy,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs the example build with `policy` and `--json`; returns the layers dir and the lines.
fn build(policy: &str) -> (tempfile::TempDir, PathBuf, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let layers = dir.path().join("layers");
    let args = example_args(&layers, policy);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let lines = json_lines(&args);
    (dir, layers, lines)
}

fn of_type<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == kind).collect()
}

/// The diffID recorded for the runtime's layer when the runtime buildpack finished.
fn runtime_diff_id_at_commit(lines: &[Value]) -> String {
    let bp = of_type(lines, "buildpack")
        .into_iter()
        .find(|l| l["buildpack"] == RUNTIME)
        .expect("a line for the runtime buildpack");
    let layer = &bp["layers"][0];
    assert_eq!(layer["layer"], "rt");
    assert_eq!(layer["outcome"], "committed");
    layer["diff_id"].as_str().unwrap().to_owned()
}

/// The diffID of the runtime layer's record in the store now.
fn recorded_runtime_diff_id(layers: &Path) -> String {
    let record = std::fs::read(layers.join(".layerize/records/example_runtime/rt.json")).unwrap();
    let record: Value = serde_json::from_slice(&record).unwrap();
    record["diff_id"].as_str().unwrap().to_owned()
}

fn assert_pip_changed_runtime(change: &Value) {
    assert_eq!(change["owner"], RUNTIME);
    assert_eq!(change["layer"], "rt");
    assert_eq!(change["by"], PIP);
    let added: Vec<&str> = change["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(added.contains(&"lib/__pycache__/stdlib.rtc"), "{change}");
}

#[test]
fn warn_reports_the_change_and_restores_the_runtime_layer() {
    let (_dir, layers, lines) = build("warn");
    let committed = runtime_diff_id_at_commit(&lines);
    let changes = of_type(&lines, "change");
    assert_eq!(changes.len(), 1, "{lines:?}");
    assert_pip_changed_runtime(changes[0]);

    let summary = of_type(&lines, "summary")[0];
    let final_rt = summary["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["owner"] == RUNTIME && l["layer"] == "rt")
        .unwrap();
    assert_eq!(final_rt["diff_id"], committed.as_str());
    assert!(!layers.join("example_runtime/rt/lib/__pycache__").exists());

    // The tree itself is back: committing the runtime again is a cache hit with that diffID.
    let again = json_lines(&["commit", "--layers", s(&layers), "--buildpack", RUNTIME]);
    assert_eq!(again[0]["outcome"], "cache-hit", "{again:?}");
    assert_eq!(again[0]["diff_id"], committed.as_str());
}

#[test]
fn fail_stops_the_build_with_exit_3_naming_the_buildpack() {
    let dir = tempfile::tempdir().unwrap();
    let layers = dir.path().join("layers");
    let mut args = example_args(&layers, "fail");
    args.push("--json".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_layerize(&args, 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("changed by example/pip (policy: fail)"),
        "{stderr}"
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_pip_changed_runtime(of_type(&lines, "change")[0]);
    assert!(
        of_type(&lines, "summary").is_empty(),
        "a failed build has no summary"
    );
    assert_eq!(
        recorded_runtime_diff_id(&layers),
        runtime_diff_id_at_commit(&lines)
    );
    // Left as found, for the author to inspect.
    assert!(
        layers
            .join("example_runtime/rt/lib/__pycache__/stdlib.rtc")
            .is_file()
    );
}

#[test]
fn capture_records_a_delta_layer_owned_by_the_misbehaving_buildpack() {
    let (_dir, layers, lines) = build("capture");
    let committed = runtime_diff_id_at_commit(&lines);
    let change = of_type(&lines, "change")[0];
    assert_pip_changed_runtime(change);
    let delta_id = change["delta"]
        .as_str()
        .expect("a captured delta")
        .to_owned();

    let summary = of_type(&lines, "summary")[0];
    let records = summary["layers"].as_array().unwrap();
    let delta = records
        .iter()
        .find(|l| l["delta_of"] == "example/runtime:rt")
        .expect("a delta record");
    assert_eq!(delta["owner"], PIP);
    assert_eq!(delta["diff_id"], delta_id.as_str());
    // The runtime's own record is untouched: the delta carries the change.
    assert_eq!(recorded_runtime_diff_id(&layers), committed);

    let hex = delta_id.strip_prefix("sha256:").unwrap();
    let blob = layers.join(".layerize/blobs/sha256").join(hex);
    let names = sh(&format!("tar -tf {}", s(&blob)));
    assert!(
        names
            .lines()
            .any(|n| n == "/layers/example_runtime/rt/lib/__pycache__/stdlib.rtc"),
        "{names}"
    );
}

#[test]
fn ignore_says_nothing_and_still_restores() {
    let (_dir, layers, lines) = build("ignore");
    assert!(of_type(&lines, "change").is_empty(), "{lines:?}");
    assert_eq!(
        recorded_runtime_diff_id(&layers),
        runtime_diff_id_at_commit(&lines)
    );
    assert!(!layers.join("example_runtime/rt/lib/__pycache__").exists());
}

#[test]
fn the_human_summary_shows_layers_changes_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let args = example_args(&dir.path().join("layers"), "warn");
    let out = layerize().args(&args).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "[example/runtime] installing rt 1.0.0",
        "example/runtime              rt               committed  sha256:",
        "changes: example/pip changed example/runtime:rt (restored)",
        "in buildpacks,",
        "in layerization (",
    ] {
        assert!(stdout.contains(needle), "{needle:?} not in:\n{stdout}");
    }
}

#[test]
fn a_deferred_runtime_layer_may_be_changed_and_is_committed_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let layers = dir.path().join("layers");
    let mut args = example_args(&layers, "fail");
    args.extend(["--defer".into(), "example/runtime:rt".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let lines = json_lines(&args);
    assert!(of_type(&lines, "change").is_empty(), "{lines:?}");
    let runtime = of_type(&lines, "buildpack")
        .into_iter()
        .find(|l| l["buildpack"] == RUNTIME)
        .unwrap();
    assert_eq!(runtime["layers"][0]["outcome"], "deferred");
    let finalized = &of_type(&lines, "summary")[0]["finalized"][0];
    assert_eq!(finalized["layer"], "rt");
    assert_eq!(finalized["outcome"], "committed");
    // The finalized layer is the tree as the last buildpack left it, bytecode included.
    let again = json_lines(&["commit", "--layers", s(&layers), "--buildpack", RUNTIME]);
    assert_eq!(again[0]["outcome"], "cache-hit");
    assert_eq!(again[0]["diff_id"], finalized["diff_id"]);
    assert!(
        layers
            .join("example_runtime/rt/lib/__pycache__/stdlib.rtc")
            .is_file()
    );
}
