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

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::archive::{TarSpec, WalkedEntry};
use crate::blob_file::sync_dir;
use crate::compress::Compression;
use crate::digest::{Digest, HashingWriter, VerifyingReader};
use crate::error::{Error, Result};
use crate::layers_dir::{BuildpackId, LayerTypes};
use crate::pipeline::{BlobInfo, LayerBlobs, layerize_observed};

/// The record of a committed layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Owning buildpack (from the layer's path).
    pub owner: BuildpackId,
    /// Layer name.
    pub layer: String,
    /// `[types]` at commit time.
    pub types: LayerTypes,
    /// `[metadata]` at commit time.
    pub metadata: serde_json::Value,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub size: u64,
    /// Entries in the layer (ancestors not counted).
    pub files: u64,
    /// Stored blobs of the layer, the uncompressed tar first.
    pub blobs: Vec<BlobInfo>,
    /// sha256 of the layer toml's bytes at commit time (`None` for a delta).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toml_digest: Option<Digest>,
    /// Digest of the stat snapshot blob ([`crate::snapshot::Snapshot`]) of the layer dir as
    /// committed (for a delta: as captured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Digest>,
    /// In-image path of the layer dir (`/layers/<escaped-id>/<layer>`), the prefix of every
    /// entry name in its tar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_path: Option<String>,
    /// Digest of the tar parameters other than the tree (name, ancestors, owner); a commit is
    /// a cache hit only when they are unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_digest: Option<Digest>,
    /// For a delta captured by `check --policy capture`: the layer it changes. The record's
    /// `owner` is then the buildpack that made the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_of: Option<DeltaOf>,
}

/// The layer a captured delta applies to, and its place among that layer's deltas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaOf {
    /// Owner of the original layer.
    pub owner: BuildpackId,
    /// Name of the original layer.
    pub layer: String,
    /// 1 for the first delta of that layer, then 2, ...: deltas apply in this order, after the
    /// original.
    pub seq: u32,
}

/// A layer restored from cache, snapshotted at restore time but not committed: its owner may
/// change it until its own commit; any other buildpack's change is a violation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adoption {
    /// Owning buildpack (from the layer's path).
    pub owner: BuildpackId,
    /// Layer name.
    pub layer: String,
    /// sha256 of the layer toml's bytes when it was restored.
    pub toml_digest: Digest,
    /// Digest of the stat snapshot blob taken after the restore.
    pub snapshot: Digest,
    /// The cached tar the layer was extracted from, stored as a blob, when the owner's commit
    /// may take it as the layer's tar without re-tarring (see [`crate::guard::adopt`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<AdoptedTar>,
}

/// A cached tar kept in the store for the owner's commit of a layer restored from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptedTar {
    /// diffID of the tar, also its blob's name in the store.
    pub diff_id: Digest,
    /// Size of the tar.
    pub size: u64,
    /// Digest of the tar parameters ([`LayerRecord::spec_digest`]) the tar was written with:
    /// the commit takes the tar only when its own parameters give the same digest.
    pub spec_digest: Digest,
}

/// A layer whose commit waits for `commit --finalize`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Deferred {
    /// Owning buildpack.
    pub owner: BuildpackId,
    /// Layer name.
    pub layer: String,
}

impl LayerRecord {
    /// The stored blob in `compression`, if any.
    pub fn blob(&self, compression: Compression) -> Option<&BlobInfo> {
        self.blobs.iter().find(|b| b.compression == compression)
    }
}

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
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::write(&path))?;
        file.lock().map_err(Error::write(&path))?;
        Ok(StoreLock { _file: file })
    }

    /// Takes the store's lock if no other process holds it; `None` when one does.
    ///
    /// # Errors
    /// [`Error::Write`] when the lock file cannot be opened or locked.
    pub fn try_lock(&self) -> Result<Option<StoreLock>> {
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::write(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(StoreLock { _file: file })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(Error::Write { path, source: e }),
        }
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

    fn record_path(&self, owner: &BuildpackId, layer: &str) -> PathBuf {
        self.root
            .join("records")
            .join(owner.escaped())
            .join(format!("{layer}.json"))
    }

    /// The record of a committed layer, if there is one.
    ///
    /// # Errors
    /// [`Error::Read`], or [`Error::Invalid`] for a record that does not parse.
    pub fn record(&self, owner: &BuildpackId, layer: &str) -> Result<Option<LayerRecord>> {
        let path = self.record_path(owner, layer);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::invalid(&path, format!("malformed layer record: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Read { path, source: e }),
        }
    }

    /// Writes (atomically) the record of a layer.
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn put_record(&self, record: &LayerRecord) -> Result<()> {
        let path = self.record_path(&record.owner, &record.layer);
        let json = serde_json::to_vec_pretty(record).expect("records serialize");
        self.write_atomic(&path, &json)
    }

    /// Removes the record of a layer (or delta), if present.
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn remove_record(&self, owner: &BuildpackId, layer: &str) -> Result<()> {
        remove_if_present(&self.record_path(owner, layer))
    }

    /// The deltas captured for a layer, in the order they apply.
    ///
    /// # Errors
    /// As [`Store::records`].
    pub fn deltas_of(&self, owner: &BuildpackId, layer: &str) -> Result<Vec<LayerRecord>> {
        let mut deltas: Vec<LayerRecord> = self
            .records()?
            .into_iter()
            .filter(|r| {
                r.delta_of
                    .as_ref()
                    .is_some_and(|d| &d.owner == owner && d.layer == layer)
            })
            .collect();
        deltas.sort_by_key(|r| r.delta_of.as_ref().map(|d| d.seq));
        Ok(deltas)
    }

    fn adoption_path(&self, owner: &BuildpackId, layer: &str) -> PathBuf {
        self.root
            .join("adopted")
            .join(owner.escaped())
            .join(format!("{layer}.json"))
    }

    /// Records (atomically) a layer restored from cache.
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn put_adoption(&self, adoption: &Adoption) -> Result<()> {
        let path = self.adoption_path(&adoption.owner, &adoption.layer);
        let json = serde_json::to_vec_pretty(adoption).expect("adoptions serialize");
        self.write_atomic(&path, &json)
    }

    /// Forgets the adoption of a layer (its owner committed it).
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn remove_adoption(&self, owner: &BuildpackId, layer: &str) -> Result<()> {
        remove_if_present(&self.adoption_path(owner, layer))
    }

    /// The adoption of a layer, if there is one.
    ///
    /// # Errors
    /// [`Error::Read`], or [`Error::Invalid`] for an adoption that does not parse.
    pub fn adoption(&self, owner: &BuildpackId, layer: &str) -> Result<Option<Adoption>> {
        let path = self.adoption_path(owner, layer);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::invalid(&path, format!("malformed adoption: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::read(&path)(e)),
        }
    }

    /// Every adopted (restored, not yet committed) layer, by owner then layer.
    ///
    /// # Errors
    /// [`Error::Read`] or [`Error::Invalid`].
    pub fn adoptions(&self) -> Result<Vec<Adoption>> {
        let mut all: Vec<Adoption> = read_json_tree(&self.root.join("adopted"))?;
        all.sort_by(|a, b| (&a.owner, &a.layer).cmp(&(&b.owner, &b.layer)));
        Ok(all)
    }

    /// The layers waiting for `commit --finalize`, sorted.
    ///
    /// # Errors
    /// [`Error::Read`] or [`Error::Invalid`].
    pub fn deferred(&self) -> Result<Vec<Deferred>> {
        let path = self.root.join("deferred.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::invalid(&path, format!("malformed deferred list: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::Read { path, source: e }),
        }
    }

    /// Replaces (atomically) the list of deferred layers.
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn set_deferred(&self, deferred: &[Deferred]) -> Result<()> {
        let mut list = deferred.to_vec();
        list.sort();
        list.dedup();
        let json = serde_json::to_vec_pretty(&list).expect("lists serialize");
        self.write_atomic(&self.root.join("deferred.json"), &json)
    }

    /// Every record in the store (layers and deltas), by owner then layer.
    ///
    /// # Errors
    /// [`Error::Read`] or [`Error::Invalid`] for an unreadable or malformed record.
    pub fn records(&self) -> Result<Vec<LayerRecord>> {
        let mut records: Vec<LayerRecord> = read_json_tree(&self.root.join("records"))?;
        records.sort_by(|a, b| (&a.owner, &a.layer).cmp(&(&b.owner, &b.layer)));
        Ok(records)
    }

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
