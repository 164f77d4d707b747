//! The content-addressed store: verified blobs, one JSON record per committed layer, a lock.
//!
//! Layout under the store dir (default `<layers>/.layerize`):
//! ```text
//! blobs/sha256/<hex>             blob bytes, named by their digest
//! records/<escaped-id>/<layer>.json   the layer's record (owner, types, metadata, diffID, blobs,
//!                                     toml digest, snapshot blob); a captured delta is a record
//!                                     of the modifying buildpack named `<layer>@<owner>.<n>`
//! adopted/<escaped-id>/<layer>.json   a layer restored from cache: snapshot only, not committed
//! deferred.json                  layers named with `--defer`, committed by `--finalize`
//! tmp/                           blobs and records being written
//! lock                           advisory lock held by a process that changes the store
//! ```
//! Writes are atomic: bytes go to a temp file in `tmp/`, are fsynced, renamed to their final
//! name and the directory is fsynced, so a crash never leaves a partial blob under a final name.
//! Reads verify: [`Store::open_blob`] fails at end of stream when the bytes do not match the name.
//!
//! This module owns the directory, the lock, blobs and atomic writes; `records.rs` the layer
//! records, deltas and the deferred list; `adoptions.rs` the layers restored from cache.

mod adoptions;
mod records;

pub use adoptions::{AdoptedTar, Adoption};
pub use records::{Deferred, DeltaOf, LayerRecord};

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive::{TarSpec, WalkedEntry};
use crate::blob_file::sync_dir;
use crate::compress::Compression;
use crate::digest::{Digest, HashingWriter, VerifyingReader};
use crate::error::{Error, Result};
use crate::pipeline::{LayerBlobs, layerize_observed};

/// A store directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Held while a process changes the store; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    ///
    /// # Errors
    /// [`Error::Write`] when its directories cannot be created.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for dir in ["blobs/sha256", "records", "adopted", "tmp"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(Error::write(&path))?;
        }
        Ok(Self { root })
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the store's exclusive advisory lock, waiting for another process to release it.
    ///
    /// # Errors
    /// [`Error::Write`] when the lock file cannot be opened or locked.
    pub fn lock(&self) -> Result<StoreLock> {
        let (path, file) = self.lock_file()?;
        file.lock().map_err(Error::write(&path))?;
        Ok(StoreLock { _file: file })
    }

    /// Takes the store's lock if no other process holds it; `None` when one does.
    ///
    /// # Errors
    /// [`Error::Write`] when the lock file cannot be opened or locked.
    pub fn try_lock(&self) -> Result<Option<StoreLock>> {
        let (path, file) = self.lock_file()?;
        match file.try_lock() {
            Ok(()) => Ok(Some(StoreLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(Error::Write { path, source: e }),
        }
    }

    fn lock_file(&self) -> Result<(PathBuf, File)> {
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::write(&path))?;
        Ok((path, file))
    }

    /// Where the blob with `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// True when the blob is present (not verified).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens a blob for reading; the reader fails at end of stream if the bytes do not match.
    ///
    /// # Errors
    /// [`Error::Read`] when the blob is missing or unreadable.
    pub fn open_blob(&self, digest: &Digest) -> Result<VerifyingReader<File>> {
        let path = self.blob_path(digest);
        let file = File::open(&path).map_err(Error::read(&path))?;
        Ok(VerifyingReader::new(file, digest.clone()))
    }

    /// A writer for a new blob; [`BlobWriter::commit`] names it by its digest.
    ///
    /// # Errors
    /// [`Error::Write`] when the temp file cannot be created.
    pub fn new_blob(&self) -> Result<BlobWriter> {
        let tmp = self.root.join("tmp");
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp)
            .map_err(Error::write(&tmp))?;
        Ok(BlobWriter {
            inner: HashingWriter::new(BufWriter::with_capacity(1 << 20, file)),
            blobs_dir: self.root.join("blobs/sha256"),
        })
    }

    /// Writes the tar of `spec` once into a blob per compression (`none` is always included,
    /// first), reporting each entry to `observer`, and returns the pass's result.
    ///
    /// # Errors
    /// As [`layerize_observed`] and [`BlobWriter::commit`].
    pub fn put_layer(
        &self,
        spec: &TarSpec,
        compressions: &[Compression],
        observer: &mut dyn FnMut(&WalkedEntry<'_>),
    ) -> Result<LayerBlobs> {
        let mut wanted = vec![Compression::None];
        wanted.extend(
            compressions
                .iter()
                .copied()
                .filter(|&c| c != Compression::None),
        );
        wanted.dedup();
        let mut outputs = Vec::new();
        for compression in wanted {
            outputs.push((compression, self.new_blob()?));
        }
        let (blobs, writers) = layerize_observed(spec, outputs, observer)?;
        for writer in writers {
            writer.commit()?;
        }
        Ok(blobs)
    }
}

impl Store {
    /// Writes `bytes` to `path` atomically: temp file in `tmp/`, fsync, rename, fsync dir.
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let dir = path.parent().expect("store paths have a parent");
        fs::create_dir_all(dir).map_err(Error::write(dir))?;
        let tmp = self.root.join("tmp");
        let mut file = tempfile::Builder::new()
            .prefix("record-")
            .tempfile_in(&tmp)
            .map_err(Error::write(&tmp))?;
        file.write_all(bytes).map_err(Error::write(path))?;
        file.as_file().sync_all().map_err(Error::write(path))?;
        file.persist(path).map_err(|e| Error::Write {
            path: path.to_path_buf(),
            source: e.error,
        })?;
        sync_dir(dir)
    }

    /// Writes `value` as pretty JSON to `path`, atomically.
    fn write_json<T: Serialize + ?Sized>(&self, path: &Path, value: &T) -> Result<()> {
        let json = serde_json::to_vec_pretty(value).expect("store documents serialize");
        self.write_atomic(path, &json)
    }
}

/// The JSON document at `path` (a `what`, for errors), `None` when there is none.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::invalid(path, format!("malformed {what}: {e}"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::read(path)(e)),
    }
}

/// A blob being written; dropped without [`BlobWriter::commit`], its temp file is removed.
pub struct BlobWriter {
    inner: HashingWriter<BufWriter<tempfile::NamedTempFile>>,
    blobs_dir: PathBuf,
}

impl BlobWriter {
    /// Flushes, fsyncs and renames the blob to `blobs/sha256/<hex>`; returns digest and size.
    /// A blob already present under that digest is kept and the new copy discarded.
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn commit(self) -> Result<(Digest, u64)> {
        let (buffered, digest, size) = self.inner.finish();
        let file = buffered.into_inner().map_err(|e| Error::Write {
            path: self.blobs_dir.clone(),
            source: e.into_error(),
        })?;
        let final_path = self.blobs_dir.join(digest.hex());
        if final_path.is_file() {
            return Ok((digest, size));
        }
        file.as_file()
            .sync_all()
            .map_err(Error::write(file.path()))?;
        file.persist(&final_path).map_err(|e| Error::Write {
            path: final_path.clone(),
            source: e.error,
        })?;
        sync_dir(&self.blobs_dir)?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Parses every `<dir>/<owner>/*.json`.
fn read_json_tree<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<Vec<T>> {
    let mut all = Vec::new();
    let owners = match fs::read_dir(dir) {
        Ok(owners) => owners,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(all),
        Err(e) => return Err(Error::read(dir)(e)),
    };
    for owner in owners {
        let owner = owner.map_err(Error::read(dir))?.path();
        if !owner.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&owner).map_err(Error::read(&owner))? {
            let path = entry.map_err(Error::read(&owner))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let bytes = fs::read(&path).map_err(Error::read(&path))?;
                all.push(
                    serde_json::from_slice(&bytes)
                        .map_err(|e| Error::invalid(&path, format!("malformed record: {e}")))?,
                );
            }
        }
    }
    Ok(all)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::write(path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn blobs_are_named_by_digest_and_verified_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut w = store.new_blob().unwrap();
        w.write_all(b"layer bytes").unwrap();
        let (digest, size) = w.commit().unwrap();
        assert_eq!(digest, Digest::of_bytes(b"layer bytes"));
        assert_eq!(size, 11);
        let mut back = Vec::new();
        store
            .open_blob(&digest)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, b"layer bytes");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);

        fs::write(store.blob_path(&digest), b"layer bytez").unwrap();
        assert!(
            store
                .open_blob(&digest)
                .unwrap()
                .read_to_end(&mut Vec::new())
                .is_err()
        );
    }

    #[test]
    fn an_abandoned_blob_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut w = store.new_blob().unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(
            fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
    }
}
