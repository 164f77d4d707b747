//! `adopt`: a layer restored from cache is snapshotted at restore time, not committed.
//!
//! # The cached tar as the owner's commit
//! A restorer may hand over the tar it extracted the layer from, already stored as a blob
//! ([`AdoptedTar`]). The owner's [`commit`](super::commit) then takes that tar as the layer's
//! tar, reading nothing but `lstat`, when all of these hold:
//! - the layer's toml bytes are those written at restore, and a fresh stat walk equals the
//!   snapshot taken here (so the tree is exactly what extraction left: nobody changed it);
//! - the commit's tar parameters (in-image path, ancestors' modes and owners, tar owner) have
//!   the digest the tar was written with (`spec_digest`), and the commit wants no compressed
//!   blob besides the plain tar;
//! - the blob is still in the store.
//!
//! Why this gives the diffID a re-tar would: the restorer only passes a tar that layerize itself
//! wrote from a committed tree under a known `spec_digest` (the volume cache keeps that next to
//! lifecycle's metadata, see [`crate::cache`]), verified by its diffID while extracted.
//! Extraction restores every attribute the tar writer reads from the tree (entry set, types,
//! modes with setuid/setgid/sticky, contents, link targets, hard links); owners and mtimes are
//! not read (the tar owner is a parameter, mtimes are normalized). So the same tree under the
//! same parameters is the same tar: the argument `restore` followed by a cache-hit commit
//! relies on. A tar from any other source (a cache written by lifecycle) is not passed, and
//! the owner's commit re-tars the layer.

use super::GuardPaths;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layers_dir::{BuildpackId, LayersDir};
use crate::snapshot::Snapshot;
use crate::store::{AdoptedTar, Adoption};

/// Records the stat snapshot of layer `layer` of buildpack `owner` that a cache restore just
/// put back, without committing it: until `owner`'s own [`commit`](super::commit), `owner`
/// may change the layer freely, while [`check`](super::check) with any other `by` reports the
/// change. A record left from an earlier commit of the layer is dropped. `candidate` is the
/// tar the layer was extracted from, already in the store (see the module doc): call this
/// after the last change to the layer's files and toml.
///
/// # Errors
/// [`Error::Read`] when the toml or the layer dir cannot be read, [`Error::Invalid`] when the
/// layer dir is missing or `candidate` is not in the store, [`Error::Write`] when the store
/// cannot be written.
pub fn adopt(
    layers: &LayersDir,
    owner: &BuildpackId,
    layer: &str,
    paths: &GuardPaths,
    candidate: Option<AdoptedTar>,
) -> Result<Adoption> {
    let store = paths.open_store(layers)?;
    let _lock = store.lock()?;
    if let Some(tar) = &candidate
        && !store.has_blob(&tar.diff_id)
    {
        return Err(Error::invalid(
            store.blob_path(&tar.diff_id),
            "adopted tar is not in the store",
        ));
    }
    let dir = layers.buildpack_dir(owner).join(layer);
    let toml_path = layers.buildpack_dir(owner).join(format!("{layer}.toml"));
    let toml = std::fs::read(&toml_path).map_err(Error::read(&toml_path))?;
    let snapshot = Snapshot::walk(&dir)?
        .ok_or_else(|| Error::invalid(&dir, "restored layer directory is missing"))?;
    let adoption = Adoption {
        owner: owner.clone(),
        layer: layer.to_owned(),
        toml_digest: Digest::of_bytes(&toml),
        snapshot: snapshot.save(&store)?,
        candidate,
    };
    for delta in store.deltas_of(owner, layer)? {
        store.remove_record(&delta.owner, &delta.layer)?;
    }
    store.remove_record(owner, layer)?;
    store.put_adoption(&adoption)?;
    Ok(adoption)
}
