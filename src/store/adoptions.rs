//! Adoptions: layers restored from cache, snapshotted but not committed
//! (`adopted/<escaped-id>/<layer>.json`), with the cached tar their owner's commit may take.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Store, read_json, read_json_tree, remove_if_present};
use crate::digest::Digest;
use crate::error::Result;
use crate::layers_dir::BuildpackId;

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
    /// Digest of the tar parameters ([`super::LayerRecord::spec_digest`]) the tar was written with:
    /// the commit takes the tar only when its own parameters give the same digest.
    pub spec_digest: Digest,
}

impl Store {
    fn adoption_path(&self, owner: &BuildpackId, layer: &str) -> PathBuf {
        self.root
            .join("adopted")
            .join(owner.escaped())
            .join(format!("{layer}.json"))
    }

    /// Records (atomically) a layer restored from cache.
    ///
    /// # Errors
    /// [`Error::Write`](crate::Error::Write).
    pub fn put_adoption(&self, adoption: &Adoption) -> Result<()> {
        self.write_json(
            &self.adoption_path(&adoption.owner, &adoption.layer),
            adoption,
        )
    }

    /// Forgets the adoption of a layer (its owner committed it).
    ///
    /// # Errors
    /// [`Error::Write`](crate::Error::Write).
    pub fn remove_adoption(&self, owner: &BuildpackId, layer: &str) -> Result<()> {
        remove_if_present(&self.adoption_path(owner, layer))
    }

    /// The adoption of a layer, if there is one.
    ///
    /// # Errors
    /// [`Error::Read`](crate::Error::Read), or
    /// [`Error::Invalid`](crate::Error::Invalid) for an adoption that does not parse.
    pub fn adoption(&self, owner: &BuildpackId, layer: &str) -> Result<Option<Adoption>> {
        read_json(&self.adoption_path(owner, layer), "adoption")
    }

    /// Every adopted (restored, not yet committed) layer, by owner then layer.
    ///
    /// # Errors
    /// [`Error::Read`](crate::Error::Read) or [`Error::Invalid`](crate::Error::Invalid).
    pub fn adoptions(&self) -> Result<Vec<Adoption>> {
        let mut all: Vec<Adoption> = read_json_tree(&self.root.join("adopted"))?;
        all.sort_by(|a, b| (&a.owner, &a.layer).cmp(&(&b.owner, &b.layer)));
        Ok(all)
    }
}
