//! Restore: each cached layer back under its owner's path with its toml, then adopted
//! ([`guard::adopt`]): its stat snapshot is taken right after the restore, so a change by any
//! buildpack but its owner is caught by `check` (ownership is counted after restore).
//!
//! When layerize's specs file ([`CacheSpecs`]) says how the tar was written, the tar's bytes
//! also go into the store as a blob in the same pass that extracts and verifies them (the tar is
//! read once), and the adoption carries it: the owner's commit of the unchanged layer is then a
//! cache hit, not a re-tar (see [`guard::adopt`] for why the diffID is the same).
//!
//! # Security
//! The cache is input. Each tar is extracted with [`crate::extract`] (no escapes, no writes
//! through symlinks) into a fresh temp dir inside the layers dir, while its bytes are hashed;
//! only when the whole file matched its diffID is `<tmp>/layers/<escaped-id>/<layer>` renamed
//! into place, so a corrupted or truncated tar leaves nothing behind. Names from the metadata
//! are checked (valid buildpack id, a plain layer name) before any path is built from them.
//! Every failure of one layer is a warning and that layer is skipped: a cache never fails a
//! build.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde::Serialize;

use super::{CacheSpecs, VolumeCache};
use crate::archive::{ExtractOptions, extract};
use crate::digest::{Digest, VerifyingReader};
use crate::error::{Error, Result};
use crate::export::metadata::LayerMetadata;
use crate::guard::{self, GuardPaths};
use crate::layers_dir::{BuildpackId, LayersDir};
use crate::normalize::DEFAULT_LAYERS_ROOT;
use crate::store::{AdoptedTar, BlobWriter};

/// One layer put back.
#[derive(Debug, Clone, Serialize)]
pub struct RestoredLayer {
    /// `<buildpack>:<layer>`.
    pub name: String,
    /// Its diffID; `None` for a metadata-only layer.
    pub diff_id: Option<Digest>,
    /// Entries extracted.
    pub entries: u64,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// Layers put back.
    pub layers: Vec<RestoredLayer>,
    /// Layers skipped, and why.
    pub warnings: Vec<String>,
}

/// Restores every cached layer of the volume cache at `cache_dir` into `layers`.
///
/// # Errors
/// Only for the layers dir or its store ([`Error::Write`]); everything wrong with the cache is
/// a warning in the report.
pub fn restore(layers: &Path, cache_dir: &Path) -> Result<RestoreReport> {
    fs::create_dir_all(layers).map_err(Error::write(layers))?;
    let layers = LayersDir::open(layers)?;
    let mut report = RestoreReport {
        layers: Vec::new(),
        warnings: Vec::new(),
    };
    let cache = VolumeCache::open(cache_dir)?;
    let metadata = match cache.metadata() {
        Ok(metadata) => metadata,
        Err(e) => {
            report.warnings.push(e.to_string());
            return Ok(report);
        }
    };
    let specs = CacheSpecs::load(&cache).unwrap_or_else(|e| {
        report
            .warnings
            .push(format!("{e} (cached layers will be re-tarred)"));
        CacheSpecs::default()
    });
    for bp in &metadata.buildpacks {
        for (name, meta) in &bp.layers {
            if !meta.cache {
                continue;
            }
            match restore_layer(&layers, &cache, &specs, &bp.key, name, meta) {
                Ok(restored) => report.layers.push(restored),
                Err(e) => report
                    .warnings
                    .push(format!("{}:{name}: not restored: {e}", bp.key)),
            }
        }
    }
    Ok(report)
}

fn restore_layer(
    layers: &LayersDir,
    cache: &VolumeCache,
    specs: &CacheSpecs,
    key: &str,
    name: &str,
    meta: &LayerMetadata,
) -> Result<RestoredLayer> {
    let meta_path = cache.committed().join(super::CACHE_METADATA_FILE);
    let id = BuildpackId::new(key).map_err(|reason| Error::invalid(&meta_path, reason))?;
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(Error::invalid(
            &meta_path,
            format!("bad layer name {name:?}"),
        ));
    }
    let bp_dir = layers.buildpack_dir(&id);
    fs::create_dir_all(&bp_dir).map_err(Error::write(&bp_dir))?;
    let mut restored = RestoredLayer {
        name: format!("{id}:{name}"),
        diff_id: None,
        entries: 0,
    };
    let mut candidate = None;
    if !meta.sha.is_empty() {
        let diff_id: Digest = meta
            .sha
            .parse()
            .map_err(|reason: String| Error::invalid(&meta_path, reason))?;
        let tar = cache.committed_tar(&diff_id);
        let temp = tempfile::Builder::new()
            .prefix(".layerize-restore-")
            .tempdir_in(layers.root())
            .map_err(Error::write(layers.root()))?;
        let spec_digest = specs.spec_of(&restored.name, &diff_id).cloned();
        let paths = GuardPaths::default();
        let mut blob = match spec_digest {
            Some(_) => Some(paths.open_store(layers)?.new_blob()?),
            None => None,
        };
        let mut reader = VerifyingReader::new(
            Tee {
                inner: File::open(&tar).map_err(Error::read(&tar))?,
                copy: blob.as_mut(),
            },
            diff_id.clone(),
        );
        let summary = extract(&tar, &mut reader, temp.path(), ExtractOptions::default())?;
        io::copy(&mut reader, &mut io::sink()).map_err(Error::read(&tar))?;
        drop(reader);
        if let (Some(blob), Some(spec_digest)) = (blob, spec_digest) {
            // Verified: the blob's bytes are the tar's, whose digest is `diff_id`.
            let (_, size) = blob.commit()?;
            candidate = Some(AdoptedTar {
                diff_id: diff_id.clone(),
                size,
                spec_digest,
            });
        }
        let in_image = format!("{DEFAULT_LAYERS_ROOT}/{}/{name}", id.escaped());
        let extracted = temp.path().join(in_image.trim_start_matches('/'));
        if !fs::symlink_metadata(&extracted).is_ok_and(|m| m.is_dir()) {
            return Err(Error::invalid(
                &tar,
                format!("holds no directory {in_image}"),
            ));
        }
        let dest = bp_dir.join(name);
        if fs::symlink_metadata(&dest).is_ok() {
            fs::remove_dir_all(&dest).map_err(Error::write(&dest))?;
        }
        fs::rename(&extracted, &dest).map_err(Error::write(&dest))?;
        restored.diff_id = Some(diff_id);
        restored.entries = summary.entries;
    }
    write_toml(&bp_dir.join(format!("{name}.toml")), meta)?;
    if restored.diff_id.is_some() {
        // Ownership counted from here: only `id` may change the layer until its own commit.
        guard::adopt(layers, &id, name, &GuardPaths::default(), candidate)?;
    }
    Ok(restored)
}

/// A reader that copies what it reads into a store blob, when there is one.
struct Tee<'a> {
    inner: File,
    copy: Option<&'a mut BlobWriter>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(copy) = self.copy.as_mut() {
            copy.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

/// `<layer>.toml` with `[types]` and `[metadata]` from the cache metadata, atomically.
fn write_toml(path: &Path, meta: &LayerMetadata) -> Result<()> {
    let data = match &meta.data {
        serde_json::Value::Null => toml::Table::new(),
        value => toml::Table::try_from(value)
            .map_err(|e| Error::invalid(path, format!("metadata is not a TOML table: {e}")))?,
    };
    let mut table = toml::Table::new();
    table.insert(
        "types".into(),
        toml::Value::try_from(meta.types()).expect("types serialize"),
    );
    table.insert("metadata".into(), toml::Value::Table(data));
    let dir = path.parent().expect("toml paths have a parent");
    let temp = tempfile::Builder::new()
        .prefix(".layerize-")
        .tempfile_in(dir)
        .map_err(Error::write(dir))?;
    fs::write(temp.path(), table.to_string()).map_err(Error::write(path))?;
    // A toml a buildpack writes is 0644 under the usual umask, not the temp file's 0600.
    fs::set_permissions(temp.path(), fs::Permissions::from_mode(0o644))
        .map_err(Error::write(path))?;
    temp.persist(path).map_err(|e| Error::Write {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}
