//! Running one buildpack's `bin/build` the way the buildpack spec says for its API, and
//! streaming its output line by line.
//!
//! - cwd = the app dir; env = the build env (see [`super::env`]) with the platform's `env/`
//!   unless `clear-env`, plus `CNB_BUILDPACK_DIR`.
//! - API 0.8 and later: `CNB_LAYERS_DIR` (`<layers>/<escaped-id>`), `CNB_PLATFORM_DIR`,
//!   `CNB_BP_PLAN_PATH`, and no arguments, as the spec defines the interface. (Lifecycle also
//!   passes the positional arguments to these APIs; a buildpack that still reads `$1` there
//!   relies on something its API does not promise, and fails here visibly.)
//! - API 0.10 and later also get `CNB_TARGET_OS` / `CNB_TARGET_ARCH` of this machine.
//! - Older APIs: positional `<layers>/<escaped-id> <platform> <plan>`.
//!
//! stdout and stderr are read by two threads and handed to the caller as whole lines (a line
//! longer than [`MAX_LINE`] is passed on in pieces), so a chatty buildpack never blocks on a full
//! pipe and output order within each stream is kept.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;

use super::env::BuildEnv;
use super::group::{Buildpack, BuildpackApi};
use crate::error::{Error, Result};

/// Longest piece of output passed on at once.
pub const MAX_LINE: usize = 64 * 1024;

const API_ENV: BuildpackApi = BuildpackApi { major: 0, minor: 8 };
const API_TARGET: BuildpackApi = BuildpackApi {
    major: 0,
    minor: 10,
};

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The buildpack's stdout.
    Stdout,
    /// The buildpack's stderr.
    Stderr,
}

/// Everything `bin/build` is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `<buildpack>/bin/build`.
    pub program: PathBuf,
    /// Positional arguments (older APIs only).
    pub args: Vec<OsString>,
    /// The complete environment.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory: the app dir.
    pub cwd: PathBuf,
}

/// Where a buildpack runs: absolute directories and its plan file.
#[derive(Debug, Clone, Copy)]
pub struct Dirs<'a> {
    /// The app dir (cwd).
    pub app: &'a Path,
    /// `<layers>/<escaped-id>`.
    pub bp_layers: &'a Path,
    /// The platform dir.
    pub platform: &'a Path,
    /// The buildpack plan toml.
    pub plan: &'a Path,
}

/// The invocation of `bp` in `dirs` with the build environment `env`.
///
/// # Errors
/// [`Error::Read`] for an unreadable platform `env/` directory.
pub fn invocation(bp: &Buildpack, dirs: Dirs<'_>, env: &BuildEnv) -> Result<Invocation> {
    let mut env = if bp.clear_env {
        env.clone()
    } else {
        env.with_platform(dirs.platform)?
    };
    env.set("CNB_BUILDPACK_DIR", &bp.dir);
    let mut args = Vec::new();
    if bp.api.at_least(API_ENV) {
        env.set("CNB_LAYERS_DIR", dirs.bp_layers);
        env.set("CNB_PLATFORM_DIR", dirs.platform);
        env.set("CNB_BP_PLAN_PATH", dirs.plan);
    } else {
        args = vec![
            dirs.bp_layers.into(),
            dirs.platform.into(),
            dirs.plan.into(),
        ];
    }
    if bp.api.at_least(API_TARGET) {
        env.set("CNB_TARGET_OS", std::env::consts::OS);
        env.set("CNB_TARGET_ARCH", oci_arch(std::env::consts::ARCH));
    }
    Ok(Invocation {
        program: bp.build_executable(),
        args,
        env: env
            .vars()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        cwd: dirs.app.to_path_buf(),
    })
}

/// The OCI architecture name of a Rust target architecture.
fn oci_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Runs `inv` for `bp`, passing each line of its output to `on_line`, and waits for it.
///
/// # Errors
/// [`Error::NoBuildExecutable`] when `bin/build` is missing or cannot be executed;
/// [`Error::BuildpackFailed`] when it exits non-zero or is killed.
pub fn run(bp: &Buildpack, inv: &Invocation, on_line: &mut dyn FnMut(Stream, &[u8])) -> Result<()> {
    let missing = |reason: String| Error::NoBuildExecutable {
        id: bp.id.to_string(),
        version: bp.version.clone(),
        path: inv.program.clone(),
        reason,
    };
    match std::fs::metadata(&inv.program) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(missing("not a file".into())),
        Err(e) => return Err(missing(e.to_string())),
    }
    let mut child = Command::new(&inv.program)
        .args(&inv.args)
        .env_clear()
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&inv.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| missing(format!("cannot be executed: {e}")))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let out_tx = tx.clone();
        scope.spawn(move || read_lines(stdout, |l| out_tx.send((Stream::Stdout, l)).is_ok()));
        scope.spawn(move || read_lines(stderr, |l| tx.send((Stream::Stderr, l)).is_ok()));
        for (stream, line) in rx {
            on_line(stream, &line);
        }
    });
    let status = child
        .wait()
        .map_err(|e| missing(format!("cannot be waited for: {e}")))?;
    if status.success() {
        return Ok(());
    }
    Err(Error::BuildpackFailed {
        id: bp.id.to_string(),
        version: bp.version.clone(),
        status: describe(status),
    })
}

/// Splits `reader` into lines (without the newline), pieces of at most [`MAX_LINE`] bytes;
/// stops when `send` returns false or the stream ends or fails.
fn read_lines(reader: impl Read, mut send: impl FnMut(Vec<u8>) -> bool) {
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    loop {
        let (done, used) = match reader.fill_buf() {
            Ok([]) | Err(_) => break,
            Ok(buf) => {
                let room = MAX_LINE - line.len();
                let window = &buf[..buf.len().min(room)];
                match window.iter().position(|&b| b == b'\n') {
                    Some(nl) => {
                        line.extend_from_slice(&window[..nl]);
                        (true, nl + 1)
                    }
                    None => {
                        line.extend_from_slice(window);
                        (line.len() == MAX_LINE, window.len())
                    }
                }
            }
        };
        reader.consume(used);
        if done && !send(std::mem::take(&mut line)) {
            return;
        }
    }
    if !line.is_empty() {
        send(line);
    }
}

/// "exited with code N" or "was killed by signal N".
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        (None, None) => format!("ended with status {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        read_lines(input, |l| {
            out.push(l);
            true
        });
        out
    }

    #[test]
    fn output_is_split_into_lines_and_long_lines_into_pieces() {
        assert_eq!(
            lines(b"a\nb\n\nc"),
            vec![b"a".to_vec(), b"b".to_vec(), vec![], b"c".to_vec()]
        );
        let long = vec![b'x'; MAX_LINE + 10];
        let got = lines(&[&long[..], b"\n"].concat());
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len(), MAX_LINE);
        assert_eq!(got[1].len(), 10);
    }

    fn bp(api: &str) -> Buildpack {
        Buildpack {
            id: crate::BuildpackId::new("org/bp").unwrap(),
            version: "1".into(),
            api: BuildpackApi::parse(api).unwrap(),
            dir: "/bps/org_bp/1".into(),
            clear_env: false,
        }
    }

    fn dirs() -> Dirs<'static> {
        Dirs {
            app: Path::new("/app"),
            bp_layers: Path::new("/layers/org_bp"),
            platform: Path::new("/nonexistent-platform"),
            plan: Path::new("/tmp/plan.toml"),
        }
    }

    fn env_of(inv: &Invocation, name: &str) -> Option<String> {
        inv.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn new_apis_get_env_and_no_args_old_ones_positional_args() {
        let new = invocation(&bp("0.10"), dirs(), &BuildEnv::default()).unwrap();
        assert!(new.args.is_empty());
        assert_eq!(
            env_of(&new, "CNB_LAYERS_DIR").as_deref(),
            Some("/layers/org_bp")
        );
        assert_eq!(
            env_of(&new, "CNB_BP_PLAN_PATH").as_deref(),
            Some("/tmp/plan.toml")
        );
        assert_eq!(env_of(&new, "CNB_TARGET_OS").as_deref(), Some("linux"));
        let old = invocation(&bp("0.7"), dirs(), &BuildEnv::default()).unwrap();
        assert_eq!(
            old.args,
            ["/layers/org_bp", "/nonexistent-platform", "/tmp/plan.toml"]
        );
        assert_eq!(env_of(&old, "CNB_LAYERS_DIR"), None);
        assert_eq!(
            env_of(&old, "CNB_BUILDPACK_DIR").as_deref(),
            Some("/bps/org_bp/1")
        );
        assert_eq!(old.cwd, Path::new("/app"));
    }
}
