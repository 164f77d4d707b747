//! The committed blobs of a layer, as export and cache need them: the layer committed through
//! [`guard::commit`] (a cache hit when its stat snapshot is unchanged: nothing is read but
//! `lstat`), its store record with the plain tar blob, and a compressed blob added to the record
//! lazily.
//!
//! A compressed blob that the record lacks is made from the stored plain tar in one streaming
//! pass (read verified, so a damaged store blob is never compressed into a new one) instead of
//! walking the layer again. The compressor writes the same bytes as the tar pass would, so an
//! image's digest does not depend on which of the two made the blob.

use std::collections::HashMap;

use crate::blob_file;
use crate::compress::Compression;
use crate::error::{Error, Result};
use crate::guard::{self, CommitOptions, CommitOutcome, GuardPaths};
use crate::layers_dir::{BuildpackId, LayersDir};
use crate::normalize::Owner;
use crate::pipeline::BlobInfo;
use crate::store::{LayerRecord, Store};

/// A committed layer's record, the deltas captured on top of it, and whether the commit was a
/// cache hit.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The layer's own record: its state when its buildpack committed it.
    pub record: LayerRecord,
    /// Changes later buildpacks made to it, captured as delta layers, in order; the layer on
    /// disk is the record's tar with these applied. Empty unless the commit was a hit.
    pub deltas: Vec<LayerRecord>,
    /// True when the commit found the layer as expected and read nothing.
    pub hit: bool,
}

/// Commits deferred layers ([`guard::finalize`]), then every declared layer of each buildpack
/// of `ids` ([`guard::commit`]; both take the store lock: do not hold it when calling), and
/// returns the records of the layers with contents, by owner and layer name.
///
/// # Errors
/// As [`guard::commit`], or [`Error::Invalid`] when a committed layer has no record.
pub fn commit_buildpacks<'a>(
    layers: &LayersDir,
    ids: impl IntoIterator<Item = &'a BuildpackId>,
    owner: Owner,
) -> Result<HashMap<(BuildpackId, String), Committed>> {
    let options = CommitOptions {
        paths: GuardPaths {
            owner,
            ..GuardPaths::default()
        },
        ..CommitOptions::default()
    };
    let store = options.paths.open_store(layers)?;
    guard::finalize(layers, &options)?;
    let mut committed = HashMap::new();
    for id in ids {
        for layer in guard::commit(layers, id, &options)?.layers {
            let hit = match layer.outcome {
                CommitOutcome::CacheHit => true,
                CommitOutcome::Committed => false,
                CommitOutcome::Deferred | CommitOutcome::NoDirectory => continue,
            };
            let record = store.record(&layer.owner, &layer.layer)?.ok_or_else(|| {
                Error::invalid(
                    store.root(),
                    format!(
                        "{}:{} was committed but has no record",
                        layer.owner, layer.layer
                    ),
                )
            })?;
            let deltas = store.deltas_of(&layer.owner, &layer.layer)?;
            committed.insert(
                (layer.owner, layer.layer),
                Committed {
                    record,
                    deltas,
                    hit,
                },
            );
        }
    }
    Ok(committed)
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

    fn fixture() -> (tempfile::TempDir, LayersDir, BuildpackId, Store) {
        let dir = tempfile::tempdir().unwrap();
        let bp = dir.path().join("example_bp");
        fs::create_dir_all(bp.join("rt/bin")).unwrap();
        fs::write(bp.join("rt/bin/tool"), b"#!/bin/sh\n").unwrap();
        fs::write(bp.join("rt.toml"), "[types]\nlaunch = true\n").unwrap();
        fs::write(bp.join("empty.toml"), "[types]\nlaunch = true\n").unwrap();
        let layers = LayersDir::open(dir.path()).unwrap();
        let store = Store::open(dir.path().join(".layerize")).unwrap();
        (dir, layers, BuildpackId::new("example/bp").unwrap(), store)
    }

    fn commit_one(layers: &LayersDir, id: &BuildpackId) -> Committed {
        let mut all = commit_buildpacks(layers, [id], Owner::default()).unwrap();
        all.remove(&(id.clone(), "rt".to_owned())).unwrap()
    }

    #[test]
    fn a_second_commit_of_an_unchanged_layer_is_a_hit_and_layers_without_contents_are_left_out() {
        let (_dir, layers, id, _) = fixture();
        let key = (id.clone(), "rt".to_owned());
        let first = commit_buildpacks(&layers, [&id], Owner::default()).unwrap();
        assert_eq!(first.len(), 1, "the layer without contents is left out");
        assert!(!first[&key].hit);
        let again = commit_buildpacks(&layers, [&id], Owner::default()).unwrap();
        assert!(again[&key].hit);
        assert_eq!(again[&key].record.diff_id, first[&key].record.diff_id);
    }

    #[test]
    fn a_deferred_layer_is_finalized_first() {
        let (_dir, layers, id, store) = fixture();
        let defer = crate::store::Deferred {
            owner: id.clone(),
            layer: "rt".to_owned(),
        };
        let options = CommitOptions {
            defer: vec![defer],
            ..CommitOptions::default()
        };
        guard::commit(&layers, &id, &options).unwrap();
        assert_eq!(store.deferred().unwrap().len(), 1);
        let all = commit_buildpacks(&layers, [&id], Owner::default()).unwrap();
        assert!(
            all[&(id.clone(), "rt".to_owned())].hit,
            "finalize committed it"
        );
        assert!(store.deferred().unwrap().is_empty());
    }

    #[test]
    fn a_missing_gzip_blob_is_made_from_the_stored_tar_and_recorded() {
        let (_dir, layers, id, store) = fixture();
        let mut first = commit_one(&layers, &id);
        assert!(first.record.blob(Compression::Gzip).is_none());
        let lazy = ensure_blob(&store, &mut first.record, Compression::Gzip).unwrap();
        let stored = store.record(&id, "rt").unwrap().unwrap();
        assert_eq!(stored.blob(Compression::Gzip), Some(&lazy));

        let mut tar = Vec::new();
        let (mut reader, found) =
            crate::compress::decompress(store.open_blob(&lazy.digest).unwrap()).unwrap();
        assert_eq!(found, Compression::Gzip);
        std::io::Read::read_to_end(&mut reader, &mut tar).unwrap();
        assert_eq!(crate::Digest::of_bytes(&tar), first.record.diff_id);
        assert_eq!(
            ensure_blob(&store, &mut first.record, Compression::Gzip).unwrap(),
            lazy
        );

        let hit = commit_one(&layers, &id);
        assert!(
            hit.hit,
            "adding a blob to the record keeps the next commit a hit"
        );

        let spec = GuardPaths::default().tar_spec(&layers, &id, "rt").unwrap();
        let in_pass = store
            .put_layer(&spec, &[Compression::Gzip], &mut |_| {})
            .unwrap();
        assert_eq!(
            in_pass.blobs[1].digest, lazy.digest,
            "the same gzip bytes whether made in the tar pass or later from the stored tar"
        );
    }

    #[test]
    fn a_damaged_stored_tar_is_never_compressed() {
        let (_dir, layers, id, store) = fixture();
        let mut c = commit_one(&layers, &id);
        let path = store.blob_path(&c.record.diff_id);
        let mut bytes = fs::read(&path).unwrap();
        bytes[600] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert!(ensure_blob(&store, &mut c.record, Compression::Gzip).is_err());
        assert!(c.record.blob(Compression::Gzip).is_none());
    }
}
