//! The committed blobs of a layer of the layers dir, as export and cache need them: the tar
//! spec lifecycle's exporter would use for it, its store record with the plain tar blob, and a
//! compressed blob added to the record lazily.
//!
//! The in-image name of a layer is `/layers/<escaped-id>/<layer>`, after directory entries for
//! `/layers` and `/layers/<escaped-id>` that keep the real mode and owner of those directories;
//! the layer's own entries get the build user. A compressed blob that the record lacks is made
//! from the stored plain tar in one streaming pass (read verified, so a damaged store blob is
//! never compressed into a new one) instead of walking the layer again.

use std::path::Path;

use crate::archive::{Ancestor, TarSpec};
use crate::blob_file;
use crate::compress::Compression;
use crate::error::{Error, Result};
use crate::layers_dir::{Layer, LayersDir};
use crate::normalize::{self, DEFAULT_LAYERS_ROOT, Owner};
use crate::pipeline::BlobInfo;
use crate::store::{LayerRecord, Store};

/// The tar spec lifecycle's exporter uses for `layer`: `/layers/<escaped-id>/<layer>`.
///
/// # Errors
/// [`Error::Read`] when the layers dir or the buildpack dir cannot be stat'ed.
pub fn layer_spec(layers: &LayersDir, layer: &Layer, owner: Owner) -> Result<TarSpec> {
    let bp_dir = layers.buildpack_dir(&layer.buildpack);
    let root = format!("{DEFAULT_LAYERS_ROOT}/{}", layer.buildpack.escaped());
    let ancestor = |path: &Path, name: &str| -> Result<Ancestor> {
        let meta = std::fs::metadata(path).map_err(Error::read(path))?;
        Ok(Ancestor {
            name: name.as_bytes().to_vec(),
            mode: normalize::mode(&meta),
            owner: Owner::of(&meta),
        })
    };
    Ok(TarSpec {
        dir: layer.dir.clone(),
        name: Some(format!("{root}/{}", layer.name).into_bytes()),
        ancestors: vec![
            ancestor(layers.root(), DEFAULT_LAYERS_ROOT)?,
            ancestor(&bp_dir, &root)?,
        ],
        owner,
        hash_files: false,
    })
}

/// A layer's record after commit, and whether the layer is unchanged since its last record.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The record, current for the layer as it is on disk.
    pub record: LayerRecord,
    /// True when the diffID equals the one of the layer's previous record.
    pub unchanged: bool,
}

/// Writes the layer's tar into the store (with `compressions` in the same pass) and records it.
///
/// # Errors
/// As [`Store::put_layer`] and [`Store::put_record`].
pub fn commit_layer(
    store: &Store,
    layers: &LayersDir,
    layer: &Layer,
    owner: Owner,
    compressions: &[Compression],
) -> Result<Committed> {
    let previous = store.record(&layer.buildpack, &layer.name)?;
    let spec = layer_spec(layers, layer, owner)?;
    let blobs = store.put_layer(&spec, compressions, &mut |_| {})?;
    let unchanged = previous.is_some_and(|p| p.diff_id == blobs.diff_id);
    let record = LayerRecord {
        owner: layer.buildpack.clone(),
        layer: layer.name.clone(),
        types: layer.toml.types,
        metadata: layer.toml.metadata_json(),
        diff_id: blobs.diff_id,
        size: blobs.tar_size,
        files: blobs.summary.entries,
        blobs: blobs.blobs,
    };
    store.put_record(&record)?;
    Ok(Committed { record, unchanged })
}

/// The record's blob in `compression`, made from the stored plain tar and added to the record
/// when missing.
///
/// # Errors
/// [`Error::Read`] when the stored tar is missing or does not match its diffID (nothing is
/// written then), [`Error::Write`].
pub fn ensure_blob(
    store: &Store,
    record: &mut LayerRecord,
    compression: Compression,
) -> Result<BlobInfo> {
    if let Some(blob) = record.blob(compression)
        && store.has_blob(&blob.digest)
    {
        return Ok(blob.clone());
    }
    let src = store.blob_path(&record.diff_id);
    let mut reader = store.open_blob(&record.diff_id)?;
    let mut encoder = compression
        .encoder(store.new_blob()?)
        .map_err(Error::write(store.root()))?;
    blob_file::copy(&mut reader, &mut encoder, &src, store.root())?;
    let (digest, size) = encoder
        .finish()
        .map_err(Error::write(store.root()))?
        .commit()?;
    let blob = BlobInfo {
        compression,
        digest,
        size,
        media_type: compression.media_type().to_owned(),
    };
    record.blobs.retain(|b| b.compression != compression);
    record.blobs.push(blob.clone());
    store.put_record(record)?;
    Ok(blob)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fixture() -> (tempfile::TempDir, LayersDir, Layer, Store) {
        let dir = tempfile::tempdir().unwrap();
        let bp = dir.path().join("example_bp");
        fs::create_dir_all(bp.join("rt/bin")).unwrap();
        fs::write(bp.join("rt/bin/tool"), b"#!/bin/sh\n").unwrap();
        fs::write(bp.join("rt.toml"), "[types]\nlaunch = true\n").unwrap();
        let layers = LayersDir::open(dir.path()).unwrap();
        let layer = layers.layers().unwrap().remove(0);
        let store = Store::open(dir.path().join(".layerize")).unwrap();
        (dir, layers, layer, store)
    }

    #[test]
    fn the_spec_names_the_layer_under_slash_layers_with_both_ancestors() {
        let (_dir, layers, layer, _) = fixture();
        let spec = layer_spec(&layers, &layer, Owner { uid: 7, gid: 8 }).unwrap();
        assert_eq!(spec.name.as_deref(), Some(&b"/layers/example_bp/rt"[..]));
        let names: Vec<_> = spec.ancestors.iter().map(|a| a.name.clone()).collect();
        assert_eq!(names, [b"/layers".to_vec(), b"/layers/example_bp".to_vec()]);
    }

    #[test]
    fn a_missing_gzip_blob_is_made_from_the_stored_tar_and_recorded() {
        let (_dir, layers, layer, store) = fixture();
        let owner = Owner::default();
        let mut first = commit_layer(&store, &layers, &layer, owner, &[]).unwrap();
        assert!(!first.unchanged);
        assert!(first.record.blob(Compression::Gzip).is_none());
        let lazy = ensure_blob(&store, &mut first.record, Compression::Gzip).unwrap();
        let stored = store
            .record(&layer.buildpack, &layer.name)
            .unwrap()
            .unwrap();
        assert_eq!(stored.blob(Compression::Gzip), Some(&lazy));

        let mut tar = Vec::new();
        let (mut reader, found) =
            crate::compress::decompress(store.open_blob(&lazy.digest).unwrap()).unwrap();
        assert_eq!(found, Compression::Gzip);
        std::io::Read::read_to_end(&mut reader, &mut tar).unwrap();
        assert_eq!(crate::Digest::of_bytes(&tar), first.record.diff_id);

        let again = ensure_blob(&store, &mut first.record, Compression::Gzip).unwrap();
        assert_eq!(again, lazy, "made once, then reused");

        let in_pass = commit_layer(&store, &layers, &layer, owner, &[Compression::Gzip]).unwrap();
        assert!(in_pass.unchanged);
        assert_eq!(
            in_pass.record.blob(Compression::Gzip),
            Some(&lazy),
            "the same gzip bytes whether made in the tar pass or later from the stored tar"
        );
    }

    #[test]
    fn a_damaged_stored_tar_is_never_compressed() {
        let (_dir, layers, layer, store) = fixture();
        let mut c = commit_layer(&store, &layers, &layer, Owner::default(), &[]).unwrap();
        let path = store.blob_path(&c.record.diff_id);
        let mut bytes = fs::read(&path).unwrap();
        bytes[600] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(ensure_blob(&store, &mut c.record, Compression::Gzip).is_err());
        assert!(c.record.blob(Compression::Gzip).is_none());
    }
}
