//! lifecycle's volume cache (`-cache-dir`): save every `cache = true` layer, restore them.
//!
//! Format, as lifecycle reads and writes it:
//! ```text
//! <dir>/committed/sha256:<hex>.tar                      uncompressed layer tar, named by diffID
//! <dir>/committed/io.buildpacks.lifecycle.cache.metadata  {"buildpacks":[{key, version, layers}]}
//! <dir>/committed/io.layerize.cache.specs                 layerize's own: how each tar was written
//! <dir>/staging/                                         the next cache, being written
//! ```
//! A save first commits each buildpack (a cache hit for an unchanged layer, see
//! [`crate::guard`]), then writes into `staging/` (wiped first): a layer whose tar is already committed is
//! hard-linked from `committed/`, a new one is copied, verified, from the store (never linked:
//! the cache is handed to other tools, and the store's blobs must not share their inodes), and
//! a layer with captured deltas (whose stored tar is its state before them) is tarred afresh,
//! since lifecycle's cache holds one tar per layer. Then
//! `committed` → `committed-backup`, `staging` → `committed`, the backup is removed; a crash in
//! between leaves the backup, which the next open puts back. When nothing changed (same
//! metadata bytes, every tar already committed) staging is dropped and nothing is written.
//! Failures to read a cache never fail a build: [`restore`] reports them as warnings.

mod restore;
mod specs;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::archive::TarSpec;
use crate::blob_file;
use crate::build::group::group_order;
use crate::compress::Compression;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::export::metadata::{BuildpackLayers, CACHE_METADATA_FILE, CacheMetadata, LayerMetadata};
use crate::guard::GuardPaths;
use crate::layer_blob::commit_buildpacks;
use crate::layers_dir::LayersDir;
use crate::normalize::Owner;
use crate::oci_layout::canonical_json;
use crate::pipeline;
use crate::store::Store;

pub use restore::{RestoreReport, RestoredLayer, restore};
pub use specs::{CacheSpecs, CachedSpec, SPECS_FILE};

/// A volume cache directory.
#[derive(Debug, Clone)]
pub struct VolumeCache {
    root: PathBuf,
}

impl VolumeCache {
    /// Opens the cache at `root` (created if missing), putting back a backup a crashed save
    /// left, and wiping `staging/`.
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let cache = Self { root: root.into() };
        fs::create_dir_all(&cache.root).map_err(Error::write(&cache.root))?;
        let backup = cache.root.join("committed-backup");
        if backup.is_dir() {
            if cache.committed().is_dir() {
                fs::remove_dir_all(&backup).map_err(Error::write(&backup))?;
            } else {
                fs::rename(&backup, cache.committed()).map_err(Error::write(&backup))?;
            }
        }
        let staging = cache.staging();
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(Error::write(&staging))?;
        }
        Ok(cache)
    }

    /// `<dir>/committed`.
    pub fn committed(&self) -> PathBuf {
        self.root.join("committed")
    }

    fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }

    /// `<dir>/committed/sha256:<hex>.tar`.
    pub fn committed_tar(&self, diff_id: &Digest) -> PathBuf {
        self.committed().join(format!("{diff_id}.tar"))
    }

    /// The committed metadata; empty when there is no cache yet.
    ///
    /// # Errors
    /// [`Error::Read`], or [`Error::Invalid`] for metadata that does not parse.
    pub fn metadata(&self) -> Result<CacheMetadata> {
        let path = self.committed().join(CACHE_METADATA_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::invalid(&path, format!("malformed cache metadata: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CacheMetadata::default()),
            Err(e) => Err(Error::read(&path)(e)),
        }
    }
}

/// One layer a save put in the cache.
#[derive(Debug, Clone, Serialize)]
pub struct SavedLayer {
    /// `<buildpack>:<layer>`.
    pub name: String,
    /// diffID (the tar's name); `None` for a layer with no contents (metadata only).
    pub diff_id: Option<Digest>,
    /// `reused` (already committed), `copied` from the store, `written` (tarred afresh: a
    /// layer with captured deltas), or `metadata` (no contents).
    pub action: &'static str,
}

/// What a save did.
#[derive(Debug, Clone, Serialize)]
pub struct SaveReport {
    /// The cache dir.
    pub cache_dir: PathBuf,
    /// Cached layers.
    pub layers: Vec<SavedLayer>,
    /// True when the cache already held exactly this and nothing was written.
    pub unchanged: bool,
}

/// Saves every `cache = true` layer of the layers dir into the volume cache at `cache_dir`.
///
/// # Errors
/// [`Error::Invalid`] for a bad layers dir or group file, [`Error::Read`] / [`Error::Write`].
pub fn save(
    layers: &Path,
    cache_dir: &Path,
    group: Option<&Path>,
    owner: Owner,
) -> Result<SaveReport> {
    let layers = LayersDir::open(layers)?;
    let order = group_order(&layers, group)?;
    let mut commits = commit_buildpacks(&layers, order.iter().map(|e| &e.id), owner)?;
    let store = Store::open(layers.root().join(".layerize"))?;
    let _lock = store.lock()?;
    let cache = VolumeCache::open(cache_dir)?;
    let staging = cache.staging();
    fs::create_dir_all(&staging).map_err(Error::write(&staging))?;
    let mut metadata = CacheMetadata::default();
    let mut specs = CacheSpecs::default();
    let mut saved = Vec::new();
    let mut all_reused = true;
    for entry in order {
        let mut bp = BuildpackLayers {
            key: entry.id.to_string(),
            version: entry.version,
            layers: BTreeMap::new(),
            store: None,
        };
        for layer in layers.layers_of(&entry.id)? {
            let types = layer.toml.types;
            if !types.cache {
                continue;
            }
            let mut meta = LayerMetadata::for_toml(&layer.toml);
            let mut diff_id = None;
            let mut action = "metadata";
            if let Some(committed) = commits.remove(&(entry.id.clone(), layer.name.clone())) {
                let id = if committed.deltas.is_empty() {
                    committed.record.diff_id
                } else {
                    // The stored tar lacks the captured changes: cache the layer as it is.
                    let paths = GuardPaths {
                        owner,
                        ..GuardPaths::default()
                    };
                    let spec = paths.tar_spec(&layers, &entry.id, &layer.name)?;
                    tar_into(&spec, &staging)?
                };
                let name = format!("{id}.tar");
                let (previous, dest) = (cache.committed().join(&name), staging.join(&name));
                action = if dest.is_file() {
                    // Tarred afresh above: the same bytes as a committed tar of that name?
                    all_reused &= previous.is_file();
                    if previous.is_file() {
                        "reused"
                    } else {
                        "written"
                    }
                } else if previous.is_file() {
                    fs::hard_link(&previous, &dest).map_err(Error::write(&dest))?;
                    "reused"
                } else {
                    all_reused = false;
                    let src = store.blob_path(&id);
                    blob_file::copy_verified(&src, store.open_blob(&id)?, &dest)?;
                    "copied"
                };
                if let Some(spec_digest) = committed.record.spec_digest {
                    let spec = CachedSpec {
                        diff_id: id.clone(),
                        spec_digest,
                    };
                    specs.layers.insert(layer.key(), spec);
                }
                meta.sha = id.to_string();
                diff_id = Some(id);
            }
            bp.layers.insert(layer.name.clone(), meta);
            saved.push(SavedLayer {
                name: layer.key(),
                diff_id,
                action,
            });
        }
        if !bp.layers.is_empty() {
            metadata.buildpacks.push(bp);
        }
    }
    let bytes = canonical_json(&metadata);
    let spec_bytes = canonical_json(&specs);
    let same = |name: &str, bytes: &[u8]| {
        fs::read(cache.committed().join(name)).is_ok_and(|old| old == bytes)
    };
    let unchanged = all_reused
        && same(CACHE_METADATA_FILE, &bytes)
        && same(SPECS_FILE, &spec_bytes)
        && committed_entries(&cache)? == saved.iter().filter(|l| l.diff_id.is_some()).count() + 2;
    if unchanged {
        fs::remove_dir_all(&staging).map_err(Error::write(&staging))?;
    } else {
        write_file(&staging.join(CACHE_METADATA_FILE), &bytes)?;
        write_file(&staging.join(SPECS_FILE), &spec_bytes)?;
        commit(&cache)?;
    }
    Ok(SaveReport {
        cache_dir: cache.root,
        layers: saved,
        unchanged,
    })
}

/// Writes the tar of `spec` into `dir` as `<diffID>.tar` unless a file of that name is
/// there, and returns the diffID.
fn tar_into(spec: &TarSpec, dir: &Path) -> Result<Digest> {
    let temp = tempfile::NamedTempFile::new_in(dir).map_err(Error::write(dir))?;
    let (blobs, mut files) = pipeline::layerize(spec, vec![(Compression::None, temp)])?;
    let temp = files.pop().expect("one output");
    let dest = dir.join(format!("{}.tar", blobs.diff_id));
    temp.as_file()
        .sync_all()
        .map_err(Error::write(temp.path()))?;
    if !dest.exists() {
        temp.persist(&dest)
            .map_err(|e| Error::write(&dest)(e.error))?;
    }
    Ok(blobs.diff_id)
}

fn committed_entries(cache: &VolumeCache) -> Result<usize> {
    let dir = cache.committed();
    Ok(fs::read_dir(&dir).map_err(Error::read(&dir))?.count())
}

/// `committed` → `committed-backup`, `staging` → `committed`, backup removed.
fn commit(cache: &VolumeCache) -> Result<()> {
    let (committed, backup) = (cache.committed(), cache.root.join("committed-backup"));
    blob_file::sync_dir(&cache.staging())?;
    if committed.exists() {
        fs::rename(&committed, &backup).map_err(Error::write(&committed))?;
    }
    fs::rename(cache.staging(), &committed).map_err(Error::write(&committed))?;
    blob_file::sync_dir(&cache.root)?;
    if backup.exists() {
        fs::remove_dir_all(&backup).map_err(Error::write(&backup))?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(Error::write(path))?;
    fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(Error::write(path))
}
