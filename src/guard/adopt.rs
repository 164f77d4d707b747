//! `adopt`: a layer restored from cache is snapshotted at restore time, not committed.

use super::GuardPaths;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layers_dir::{BuildpackId, LayersDir};
use crate::snapshot::Snapshot;
use crate::store::Adoption;

/// Records the stat snapshot of layer `layer` of buildpack `owner` that a cache restore just
/// put back, without committing it: until `owner`'s own [`commit`](super::commit), `owner`
/// may change the layer freely, while [`check`](super::check) with any other `by` reports the
/// change. A record left from an earlier commit of the layer is dropped.
///
/// # Errors
/// [`Error::Read`] when the toml or the layer dir cannot be read, [`Error::Invalid`] when the
/// layer dir is missing, [`Error::Write`] when the store cannot be written.
pub fn adopt(
    layers: &LayersDir,
    owner: &BuildpackId,
    layer: &str,
    paths: &GuardPaths,
) -> Result<Adoption> {
    let store = paths.open_store(layers)?;
    let _lock = store.lock()?;
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
    };
    for delta in store.deltas_of(owner, layer)? {
        store.remove_record(&delta.owner, &delta.layer)?;
    }
    store.remove_record(owner, layer)?;
    store.put_adoption(&adoption)?;
    Ok(adoption)
}
