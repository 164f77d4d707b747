//! `commit`: a buildpack's declared layers become stored tars, records and stat snapshots.
//!
//! The snapshot is taken in the same walk that writes the tar (each file is read once, for the
//! tar, its content digest and nothing else). A layer is a cache hit, read by `lstat` alone,
//! when its toml bytes, its tar parameters and its stat snapshot equal the record's. A layer
//! restored from cache is a cache hit the same way against its adoption, when the restorer
//! handed over the cached tar (see [`super::adopt`] for when that tar is the one a re-tar
//! would write): the tar becomes the record's blob and the restore-time snapshot its snapshot.

use std::fs;

use serde::Serialize;

use super::{GuardPaths, spec_digest};
use crate::compress::Compression;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layers_dir::{BuildpackId, Layer, LayersDir};
use crate::pipeline::BlobInfo;
use crate::snapshot::{self, EntryStat, Snapshot};
use crate::store::{Deferred, LayerRecord, Store};

/// Options of [`commit`] and [`finalize`].
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// Store, in-image layers root and tar owner.
    pub paths: GuardPaths,
    /// Compressed blobs to store besides the uncompressed tar.
    pub compressions: Vec<Compression>,
    /// Layers not to commit now but at [`finalize`] (later buildpacks may change them).
    pub defer: Vec<Deferred>,
}

/// What happened to a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommitOutcome {
    /// Tarred, hashed and recorded.
    Committed,
    /// Unchanged since its record: nothing was read but `lstat`.
    CacheHit,
    /// Left for `commit --finalize`.
    Deferred,
    /// The toml has no layer directory: nothing to commit.
    NoDirectory,
}

/// One layer of a commit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommittedLayer {
    /// Owning buildpack.
    pub owner: BuildpackId,
    /// Layer name.
    pub layer: String,
    /// What happened.
    pub outcome: CommitOutcome,
    /// The layer's diffID, when it is committed.
    pub diff_id: Option<Digest>,
    /// Entries in the layer (ancestors not counted).
    pub files: u64,
}

/// What [`commit`] or [`finalize`] did, one entry per layer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CommitReport {
    /// The layers, in layer name order.
    pub layers: Vec<CommittedLayer>,
}

/// Commits every layer buildpack `id` declared (a toml with a type set), right after it ran.
/// Records of its layers that are no longer declared are dropped.
///
/// # Errors
/// [`Error::Read`]/[`Error::Changed`] for a layer that cannot be read or changes while read,
/// [`Error::Invalid`] for a malformed toml, [`Error::Write`] when the store cannot be written.
pub fn commit(
    layers: &LayersDir,
    id: &BuildpackId,
    options: &CommitOptions,
) -> Result<CommitReport> {
    let store = options.paths.open_store(layers)?;
    let _lock = store.lock()?;
    let declared: Vec<Layer> = layers
        .layers_of(id)?
        .into_iter()
        .filter(|l| l.toml.types.any())
        .collect();
    for record in store.records()? {
        if &record.owner == id
            && record.delta_of.is_none()
            && !declared.iter().any(|l| l.name == record.layer)
        {
            drop_record(&store, &record)?;
        }
    }
    let mut deferred = store.deferred()?;
    let mut report = CommitReport::default();
    for layer in &declared {
        let wanted = Deferred {
            owner: id.clone(),
            layer: layer.name.clone(),
        };
        if options.defer.contains(&wanted) {
            // Later buildpacks may change it freely: no record may hold it to an old state.
            if let Some(old) = store.record(id, &layer.name)? {
                drop_record(&store, &old)?;
            }
            deferred.push(wanted);
            report.layers.push(CommittedLayer {
                owner: id.clone(),
                layer: layer.name.clone(),
                outcome: CommitOutcome::Deferred,
                diff_id: None,
                files: 0,
            });
            continue;
        }
        report
            .layers
            .push(commit_layer(&store, layers, layer, options)?);
    }
    store.set_deferred(&deferred)?;
    Ok(report)
}

/// Commits every deferred layer, after all buildpacks ran, and empties the deferred list.
///
/// # Errors
/// As [`commit`].
pub fn finalize(layers: &LayersDir, options: &CommitOptions) -> Result<CommitReport> {
    let store = options.paths.open_store(layers)?;
    let _lock = store.lock()?;
    let mut report = CommitReport::default();
    for wanted in store.deferred()? {
        let found = layers
            .layers_of(&wanted.owner)?
            .into_iter()
            .find(|l| l.name == wanted.layer && l.toml.types.any());
        if let Some(layer) = found {
            report
                .layers
                .push(commit_layer(&store, layers, &layer, options)?);
        }
    }
    store.set_deferred(&[])?;
    Ok(report)
}

fn commit_layer(
    store: &Store,
    layers: &LayersDir,
    layer: &Layer,
    options: &CommitOptions,
) -> Result<CommittedLayer> {
    let mut done = CommittedLayer {
        owner: layer.buildpack.clone(),
        layer: layer.name.clone(),
        outcome: CommitOutcome::NoDirectory,
        diff_id: None,
        files: 0,
    };
    if !fs::symlink_metadata(&layer.dir).is_ok_and(|m| m.is_dir()) {
        return Ok(done);
    }
    let toml_bytes = fs::read(&layer.toml_path).map_err(Error::read(&layer.toml_path))?;
    let toml_digest = Digest::of_bytes(&toml_bytes);
    let spec = options
        .paths
        .tar_spec(layers, &layer.buildpack, &layer.name)?;
    let spec_digest = spec_digest(&spec);

    if let Some(record) = store.record(&layer.buildpack, &layer.name)?
        && is_cache_hit(store, layer, &record, &toml_digest, &spec_digest, options)?
    {
        store.remove_adoption(&layer.buildpack, &layer.name)?;
        done.outcome = CommitOutcome::CacheHit;
        done.diff_id = Some(record.diff_id);
        done.files = record.files;
        return Ok(done);
    }
    if let Some(record) = adopted_hit(store, layer, &toml_digest, &spec_digest, options)? {
        store.put_record(&record)?;
        store.remove_adoption(&layer.buildpack, &layer.name)?;
        done.outcome = CommitOutcome::CacheHit;
        done.diff_id = Some(record.diff_id);
        done.files = record.files;
        return Ok(done);
    }

    let mut entries = Vec::new();
    let blobs = store.put_layer(&spec, &options.compressions, &mut |e| {
        entries.extend(EntryStat::new(
            e.path,
            e.metadata,
            e.link_target,
            e.content.clone(),
        ));
    })?;
    let snapshot = Snapshot { entries }.save(store)?;
    if let Some(old) = store.record(&layer.buildpack, &layer.name)? {
        drop_record(store, &old)?;
    }
    let record = LayerRecord {
        owner: layer.buildpack.clone(),
        layer: layer.name.clone(),
        types: layer.toml.types,
        metadata: layer.toml.metadata_json(),
        diff_id: blobs.diff_id.clone(),
        size: blobs.tar_size,
        files: blobs.summary.entries,
        blobs: blobs.blobs,
        toml_digest: Some(toml_digest),
        snapshot: Some(snapshot),
        image_path: Some(
            String::from_utf8_lossy(spec.name.as_deref().unwrap_or_default()).into_owned(),
        ),
        spec_digest: Some(spec_digest),
        delta_of: None,
    };
    store.put_record(&record)?;
    store.remove_adoption(&layer.buildpack, &layer.name)?;
    done.outcome = CommitOutcome::Committed;
    done.diff_id = Some(blobs.diff_id);
    done.files = blobs.summary.entries;
    Ok(done)
}

/// True when `record` and its captured deltas still describe the layer: same toml bytes and
/// tar parameters, every requested blob and every delta's tar present, and a fresh `lstat` walk
/// equal to the expected state (the last delta's snapshot, else the record's own). A hit keeps
/// the deltas, so an export can ship the original layer and each delta on top of it.
fn is_cache_hit(
    store: &Store,
    layer: &Layer,
    record: &LayerRecord,
    toml_digest: &Digest,
    spec_digest: &Digest,
    options: &CommitOptions,
) -> Result<bool> {
    let deltas = store.deltas_of(&layer.buildpack, &layer.name)?;
    let Some(snapshot) = &deltas.last().unwrap_or(record).snapshot else {
        return Ok(false);
    };
    let same_inputs = record.delta_of.is_none()
        && record.toml_digest.as_ref() == Some(toml_digest)
        && record.spec_digest.as_ref() == Some(spec_digest)
        && options
            .compressions
            .iter()
            .all(|&c| record.blob(c).is_some())
        && record.blobs.iter().all(|b| store.has_blob(&b.digest))
        && deltas.iter().all(|d| store.has_blob(&d.diff_id));
    if !same_inputs {
        return Ok(false);
    }
    let Some(fresh) = Snapshot::walk(&layer.dir)? else {
        return Ok(false);
    };
    Ok(snapshot::identical(
        &Snapshot::load(store, snapshot)?,
        &fresh,
    ))
}

/// The record of a layer adopted with its cached tar, when the tar is the layer's tar: same
/// toml bytes and tar parameters as at restore, only the plain tar wanted, the blob present,
/// and a fresh `lstat` walk equal to the restore-time snapshot.
fn adopted_hit(
    store: &Store,
    layer: &Layer,
    toml_digest: &Digest,
    spec_digest: &Digest,
    options: &CommitOptions,
) -> Result<Option<LayerRecord>> {
    let Some(adoption) = store.adoption(&layer.buildpack, &layer.name)? else {
        return Ok(None);
    };
    let Some(tar) = &adoption.candidate else {
        return Ok(None);
    };
    let usable = &adoption.toml_digest == toml_digest
        && &tar.spec_digest == spec_digest
        && options.compressions.iter().all(|&c| c == Compression::None)
        && store.has_blob(&tar.diff_id);
    if !usable {
        return Ok(None);
    }
    let Some(fresh) = Snapshot::walk(&layer.dir)? else {
        return Ok(None);
    };
    let snapshot = Snapshot::load(store, &adoption.snapshot)?;
    if !snapshot::identical(&snapshot, &fresh) {
        return Ok(None);
    }
    Ok(Some(LayerRecord {
        owner: layer.buildpack.clone(),
        layer: layer.name.clone(),
        types: layer.toml.types,
        metadata: layer.toml.metadata_json(),
        diff_id: tar.diff_id.clone(),
        size: tar.size,
        files: snapshot.entries.len() as u64,
        blobs: vec![BlobInfo {
            compression: Compression::None,
            digest: tar.diff_id.clone(),
            size: tar.size,
            media_type: Compression::None.media_type().to_owned(),
        }],
        toml_digest: Some(toml_digest.clone()),
        snapshot: Some(adoption.snapshot),
        image_path: Some(
            String::from_utf8_lossy(&options.paths.image_path(&layer.buildpack, &layer.name))
                .into_owned(),
        ),
        spec_digest: Some(spec_digest.clone()),
        delta_of: None,
    }))
}

/// Removes a layer's record and the deltas captured for it.
fn drop_record(store: &Store, record: &LayerRecord) -> Result<()> {
    for delta in store.deltas_of(&record.owner, &record.layer)? {
        store.remove_record(&delta.owner, &delta.layer)?;
    }
    store.remove_record(&record.owner, &record.layer)
}
