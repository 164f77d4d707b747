//! Whole-store verification: every blob hashes to its name, every record parses, sits where
//! its owner and layer say, and names blobs that are present with the recorded sizes (its
//! uncompressed blob being its diffID, its stat snapshot present too); every adoption record
//! names a snapshot that is present.
//!
//! This is the check that a crash (or a kill at any point) left the store consistent: writes
//! go through a temp file in `tmp/` and a rename (see [`crate::store`]), so a half-written blob
//! can only ever be a stray temp file, which is counted but is not a problem. Verification
//! holds the store lock, so it never sees another process's write half done.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::compress::Compression;
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};
use crate::store::{Adoption, LayerRecord, Store};

/// Something wrong in a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum Problem {
    /// A blob whose bytes do not hash to its name.
    CorruptBlob {
        /// The blob file.
        path: PathBuf,
        /// The digest its name says.
        expected: Digest,
        /// The digest of its bytes.
        found: Digest,
    },
    /// A file under `blobs/sha256/` that is not named by a digest, or not a regular file.
    StrayBlob {
        /// The file.
        path: PathBuf,
    },
    /// A record that does not parse or is not where its owner and layer put it.
    BadRecord {
        /// The record file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A record naming a blob that is missing or of another size.
    BadReference {
        /// The record file.
        path: PathBuf,
        /// The blob it names.
        digest: Digest,
        /// What is wrong.
        reason: String,
    },
}

impl Problem {
    /// The error this problem is, naming the file.
    pub fn to_error(&self) -> Error {
        match self {
            Problem::CorruptBlob {
                path,
                expected,
                found,
            } => Error::DigestMismatch {
                path: path.clone(),
                expected: expected.clone(),
                found: found.clone(),
            },
            Problem::StrayBlob { path } => {
                Error::invalid(path, "not a blob: the name is not a sha256 digest")
            }
            Problem::BadRecord { path, reason } => Error::invalid(path, reason.clone()),
            Problem::BadReference {
                path,
                digest,
                reason,
            } => Error::invalid(path, format!("blob {digest}: {reason}")),
        }
    }
}

/// What a verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Blobs hashed.
    pub blobs: u64,
    /// Bytes hashed.
    pub bytes: u64,
    /// Records checked.
    pub records: u64,
    /// Files left in `tmp/` by an interrupted write (invisible to readers; not a problem).
    pub temp_files: u64,
    /// Everything wrong, blobs first.
    pub problems: Vec<Problem>,
}

/// Verifies the store at `root`, holding its lock.
///
/// # Errors
/// [`Error::Read`] when `root` is missing or unreadable, [`Error::Invalid`] when it is not a
/// store. Problems in the store are not errors: they are in the report.
pub fn verify(root: &Path) -> Result<VerifyReport> {
    for dir in ["blobs/sha256", "records"] {
        let path = root.join(dir);
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::invalid(
                    &path,
                    "not a directory: not a layerize store",
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && fs::metadata(root).is_ok() => {
                return Err(Error::invalid(
                    root,
                    format!("not a layerize store: no {dir}/"),
                ));
            }
            Err(e) => return Err(Error::Read { path, source: e }),
        }
    }
    let store = Store::open(root)?;
    let _lock = store.lock()?;
    let mut report = VerifyReport {
        temp_files: count_entries(&root.join("tmp"))?,
        ..VerifyReport::default()
    };
    verify_blobs(&store, &mut report)?;
    verify_records(&store, &mut report)?;
    Ok(report)
}

fn count_entries(dir: &Path) -> Result<u64> {
    Ok(sorted_entries(dir)?.len() as u64)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::read(dir))? {
        paths.push(entry.map_err(Error::read(dir))?.path());
    }
    paths.sort();
    Ok(paths)
}

fn verify_blobs(store: &Store, report: &mut VerifyReport) -> Result<()> {
    for path in sorted_entries(&store.root().join("blobs/sha256"))? {
        let expected = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok());
        let is_file = fs::symlink_metadata(&path)
            .map_err(Error::read(&path))?
            .is_file();
        let Some(expected) = expected.filter(|_| is_file) else {
            report.problems.push(Problem::StrayBlob { path });
            continue;
        };
        let mut file = File::open(&path).map_err(Error::read(&path))?;
        let mut hasher = HashingWriter::new(io::sink());
        io::copy(&mut file, &mut hasher).map_err(Error::read(&path))?;
        let (_, found, size) = hasher.finish();
        report.blobs += 1;
        report.bytes += size;
        if found != expected {
            report.problems.push(Problem::CorruptBlob {
                path,
                expected,
                found,
            });
        }
    }
    Ok(())
}

fn verify_records(store: &Store, report: &mut VerifyReport) -> Result<()> {
    for path in json_files(&store.root().join("records"), &mut report.problems)? {
        report.records += 1;
        match read_record(&path) {
            Ok(record) => check_references(store, &path, &record, &mut report.problems),
            Err(reason) => report.problems.push(Problem::BadRecord { path, reason }),
        }
    }
    for path in json_files(&store.root().join("adopted"), &mut report.problems)? {
        report.records += 1;
        let adoption = fs::read(&path)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|b| {
                serde_json::from_slice::<Adoption>(&b)
                    .map_err(|e| format!("malformed adoption record: {e}"))
            });
        match adoption {
            Ok(adoption) => {
                check_present(store, &path, &adoption.snapshot, None, &mut report.problems)
            }
            Err(reason) => report.problems.push(Problem::BadRecord { path, reason }),
        }
    }
    Ok(())
}

/// The `<dir>/<escaped-id>/*.json` files, sorted; a missing `dir` has none. Anything but a
/// directory directly in `dir` is a problem.
fn json_files(dir: &Path, problems: &mut Vec<Problem>) -> Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for owner_dir in sorted_entries(dir)? {
        if !owner_dir.is_dir() {
            problems.push(Problem::BadRecord {
                path: owner_dir,
                reason: "not a buildpack directory of records".into(),
            });
            continue;
        }
        files.extend(
            sorted_entries(&owner_dir)?
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "json")),
        );
    }
    Ok(files)
}

/// Parses the record at `path` and checks it is where its owner and layer put it.
fn read_record(path: &Path) -> std::result::Result<LayerRecord, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let record: LayerRecord =
        serde_json::from_slice(&bytes).map_err(|e| format!("malformed layer record: {e}"))?;
    let expected = Path::new(&record.owner.escaped()).join(format!("{}.json", record.layer));
    let actual = path.iter().rev().take(2).collect::<Vec<_>>();
    if actual.len() != 2 || Path::new(actual[1]).join(actual[0]) != expected {
        return Err(format!(
            "record of {}:{} is not at records/{}",
            record.owner,
            record.layer,
            expected.display()
        ));
    }
    Ok(record)
}

fn check_references(store: &Store, path: &Path, record: &LayerRecord, out: &mut Vec<Problem>) {
    let reason = match record.blob(Compression::None) {
        Some(tar) if tar.digest != record.diff_id || tar.size != record.size => Some(format!(
            "the uncompressed blob is not the diffID {} ({} bytes)",
            record.diff_id, record.size
        )),
        Some(_) => None,
        None => Some("no uncompressed blob recorded".into()),
    };
    if let Some(reason) = reason {
        out.push(Problem::BadReference {
            path: path.to_path_buf(),
            digest: record.diff_id.clone(),
            reason,
        });
    }
    for blob in &record.blobs {
        check_present(store, path, &blob.digest, Some(blob.size), out);
    }
    if let Some(snapshot) = &record.snapshot {
        check_present(store, path, snapshot, None, out);
    }
}

/// Records a problem unless the blob `digest` named by the record at `path` is in the store
/// (with `size` bytes, when given).
fn check_present(
    store: &Store,
    path: &Path,
    digest: &Digest,
    size: Option<u64>,
    out: &mut Vec<Problem>,
) {
    let reason = match fs::metadata(store.blob_path(digest)) {
        Ok(m) if size.is_none_or(|size| m.len() == size) => return,
        Ok(m) => format!(
            "recorded size {} but stored size {}",
            size.unwrap_or_default(),
            m.len()
        ),
        Err(e) => format!("missing from the store: {e}"),
    };
    out.push(Problem::BadReference {
        path: path.to_path_buf(),
        digest: digest.clone(),
        reason,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::BlobInfo;
    use std::io::Write;

    fn put_blob(store: &Store, bytes: &[u8]) -> BlobInfo {
        let mut w = store.new_blob().unwrap();
        w.write_all(bytes).unwrap();
        let (digest, size) = w.commit().unwrap();
        BlobInfo {
            compression: Compression::None,
            digest,
            size,
            media_type: Compression::None.media_type().into(),
        }
    }

    fn record(blob: &BlobInfo) -> LayerRecord {
        LayerRecord {
            owner: "example/bp".parse().unwrap(),
            layer: "layer".into(),
            types: Default::default(),
            metadata: serde_json::json!({}),
            diff_id: blob.digest.clone(),
            size: blob.size,
            files: 1,
            blobs: vec![blob.clone()],
            toml_digest: None,
            snapshot: None,
            image_path: None,
            spec_digest: None,
            delta_of: None,
        }
    }

    #[test]
    fn a_consistent_store_has_no_problems_and_counts_stray_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let blob = put_blob(&store, b"tar bytes");
        store.put_record(&record(&blob)).unwrap();
        fs::write(dir.path().join("tmp/blob-interrupted"), b"half").unwrap();
        let report = verify(dir.path()).unwrap();
        assert_eq!(report.problems, []);
        assert_eq!((report.blobs, report.records, report.temp_files), (1, 1, 1));
        assert_eq!(report.bytes, 9);
    }

    #[test]
    fn misplaced_records_wrong_diff_ids_and_stray_blobs_are_problems() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let blob = put_blob(&store, b"tar bytes");
        let mut wrong = record(&blob);
        wrong.diff_id = Digest::of_bytes(b"another tar");
        store.put_record(&wrong).unwrap();
        let misplaced = dir.path().join("records/example_bp/other.json");
        fs::write(&misplaced, serde_json::to_vec(&record(&blob)).unwrap()).unwrap();
        let stray = dir.path().join("blobs/sha256/not-a-digest");
        fs::write(&stray, b"x").unwrap();
        let problems = verify(dir.path()).unwrap().problems;
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert_eq!(problems[0], Problem::StrayBlob { path: stray });
        assert!(
            matches!(&problems[1], Problem::BadReference { reason, .. } if reason.contains("not the diffID"))
        );
        assert!(
            matches!(&problems[2], Problem::BadRecord { path, reason } if *path == misplaced && reason.contains("is not at records/example_bp/layer.json"))
        );
    }

    #[test]
    fn a_missing_directory_is_not_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let err = verify(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a layerize store"), "{err}");
        assert!(matches!(
            verify(&dir.path().join("nope")),
            Err(Error::Read { .. })
        ));
    }
}
