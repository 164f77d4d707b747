//! The crate's error type and the exit code each kind of failure maps to.
//!
//! Every variant names the file it is about. Input that is wrong (bad toml, unreadable file,
//! hostile archive, digest mismatch) is distinct from failures of our own writes, so that a
//! caller can tell "fix your input" from "the machine failed" — the CLI turns them into exit
//! codes 4 and 1; a policy violation found by `check` is 3; a buildpack whose `bin/build` fails
//! stops `build` with 5.

use std::io;
use std::path::{Path, PathBuf};

/// Exit code for success.
pub const EXIT_OK: i32 = 0;
/// Exit code for a failure of our own (write error, full disk, ...).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for a command line that does not parse.
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a `check` under policy `fail` that found changed layers.
pub const EXIT_VIOLATION: i32 = 3;
/// Exit code for invalid input: bad toml, unreadable file, hostile archive, digest mismatch.
pub const EXIT_INVALID_INPUT: i32 = 4;
/// Exit code for a build stopped because a buildpack's `bin/build` failed.
pub const EXIT_BUILDPACK_FAILED: i32 = 5;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, each with the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading input failed (a layer file, a toml, a blob).
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// What was read.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// Writing output failed (a blob, a record, an extracted file).
    #[error("{}: cannot write: {source}", path.display())]
    Write {
        /// What was written.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// Input that is malformed or not allowed.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An archive entry that would escape its target, or a type we refuse.
    #[error("{}: entry {entry:?} refused: {reason}", archive.display())]
    Hostile {
        /// The archive.
        archive: PathBuf,
        /// The entry's name as found in the archive.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// Bytes that do not hash to the digest they are stored under.
    #[error("{}: content does not match its digest: expected {expected}, found {found}", path.display())]
    DigestMismatch {
        /// The blob.
        path: PathBuf,
        /// Digest it should have.
        expected: crate::Digest,
        /// Digest it has.
        found: crate::Digest,
    },
    /// A file that changed while it was being archived.
    #[error("{}: changed while it was read ({what}); nothing was recorded", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
        /// What changed.
        what: String,
    },
    /// `check` found committed layers changed and the policy is `fail`.
    #[error("{count} committed layer(s) changed by {by} (policy: fail)")]
    Violation {
        /// How many layers changed.
        count: usize,
        /// The buildpack that changed them.
        by: String,
    },
    /// A buildpack the group names is not under the buildpacks dir.
    #[error("{}: buildpack {id}@{version} named in the group is not there", path.display())]
    UnknownBuildpack {
        /// Buildpack id.
        id: String,
        /// Buildpack version.
        version: String,
        /// The `buildpack.toml` looked for.
        path: PathBuf,
    },
    /// A buildpack's `bin/build` is missing or cannot be executed.
    #[error("{}: buildpack {id}@{version} has no runnable bin/build: {reason}", path.display())]
    NoBuildExecutable {
        /// Buildpack id.
        id: String,
        /// Buildpack version.
        version: String,
        /// The `bin/build` looked for.
        path: PathBuf,
        /// Why it cannot run.
        reason: String,
    },
    /// A buildpack's `bin/build` exited non-zero or was killed: the build stops.
    #[error("buildpack {id}@{version} failed: bin/build {status}")]
    BuildpackFailed {
        /// Buildpack id.
        id: String,
        /// Buildpack version.
        version: String,
        /// How it ended ("exited with code 7", "was killed by signal 9").
        status: String,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Write { .. } => EXIT_FAILURE,
            Error::Violation { .. } => EXIT_VIOLATION,
            Error::BuildpackFailed { .. } => EXIT_BUILDPACK_FAILED,
            Error::Read { source, .. } if is_digest_mismatch(source) => EXIT_INVALID_INPUT,
            Error::Read { .. }
            | Error::Invalid { .. }
            | Error::Hostile { .. }
            | Error::DigestMismatch { .. }
            | Error::Changed { .. }
            | Error::UnknownBuildpack { .. }
            | Error::NoBuildExecutable { .. } => EXIT_INVALID_INPUT,
        }
    }

    /// A read error on `path`.
    pub fn read(path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> Error {
        let path = path.as_ref().to_path_buf();
        move |source| Error::Read { path, source }
    }

    /// A write error on `path`.
    pub fn write(path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> Error {
        let path = path.as_ref().to_path_buf();
        move |source| Error::Write { path, source }
    }

    /// Invalid input at `path`.
    pub fn invalid(path: impl AsRef<Path>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }
}

fn is_digest_mismatch(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<crate::digest::DigestMismatch>())
}
