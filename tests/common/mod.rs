//! Test harness shared by the integration tests: runs the real `layerize` binary, builds
//! fixture trees, and requires peer tools (a missing tool fails the test: `scripts/test`
//! installs them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `Command` for the built `layerize` binary.
pub fn layerize() -> Command {
    Command::new(env!("CARGO_BIN_EXE_layerize"))
}

/// Runs `layerize ARGS`, asserting exit code `code`; returns the output.
pub fn run_layerize(args: &[&str], code: i32) -> Output {
    let out = layerize().args(args).output().expect("layerize runs");
    assert_eq!(
        out.status.code(),
        Some(code),
        "layerize {args:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `layerize ARGS --json` expecting success and parses each stdout line as JSON.
pub fn json_lines(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all: Vec<&str> = args.to_vec();
    all.push("--json");
    let out = run_layerize(&all, 0);
    String::from_utf8(out.stdout)
        .expect("utf-8 stdout")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// Fails unless `tool` is on PATH (tests never skip for a missing tool).
pub fn require_tool(tool: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is required by this test; scripts/test installs it"
    );
}

/// Runs a shell command, asserting success; returns stdout.
pub fn sh(script: &str) -> String {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{script}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds lifecycle's golden fixture (`golden/lifecycle/make-fixture.sh`) under `root`.
pub fn make_lifecycle_fixture(root: &Path, variant: &str) {
    let script = repo().join("golden/lifecycle/make-fixture.sh");
    sh(&format!(
        "{} {} {variant}",
        script.display(),
        root.display()
    ));
}

/// Path as &str (test paths are UTF-8).
pub fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 test path")
}

pub mod cnb;

/// One line per entry below `root` (sorted by raw path): type, mode bits, and content digest
/// or link target — what must survive a tar round trip. Owners and mtimes are left out.
pub fn tree_manifest(root: &Path) -> Vec<String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let mut lines = Vec::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .escape_ascii()
            .to_string();
        let meta = entry.path().symlink_metadata().unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let what = if meta.file_type().is_symlink() {
            format!(
                "link -> {}",
                std::fs::read_link(entry.path())
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .escape_ascii()
            )
        } else if meta.is_dir() {
            format!("dir {mode:o}")
        } else {
            format!(
                "file {mode:o} {:x}",
                Sha256::digest(std::fs::read(entry.path()).unwrap())
            )
        };
        lines.push(format!("{rel}: {what}"));
    }
    lines
}
