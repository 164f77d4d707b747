//! Layer records: one JSON document per committed layer (`records/<escaped-id>/<layer>.json`),
//! the deltas captured on top of a layer (records of the modifying buildpack), and the list of
//! deferred layers (`deferred.json`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Store, read_json, read_json_tree, remove_if_present};
use crate::compress::Compression;
use crate::digest::Digest;
use crate::error::Result;
use crate::layers_dir::{BuildpackId, LayerTypes};
use crate::pipeline::BlobInfo;

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

impl Store {
    fn record_path(&self, owner: &BuildpackId, layer: &str) -> PathBuf {
        self.root
            .join("records")
            .join(owner.escaped())
            .join(format!("{layer}.json"))
    }

    /// The record of a committed layer, if there is one.
    ///
    /// # Errors
    /// [`Error::Read`](crate::Error::Read), or [`Error::Invalid`](crate::Error::Invalid) for a
    /// record that does not parse.
    pub fn record(&self, owner: &BuildpackId, layer: &str) -> Result<Option<LayerRecord>> {
        read_json(&self.record_path(owner, layer), "layer record")
    }

    /// Writes (atomically) the record of a layer.
    ///
    /// # Errors
    /// [`Error::Write`](crate::Error::Write).
    pub fn put_record(&self, record: &LayerRecord) -> Result<()> {
        self.write_json(&self.record_path(&record.owner, &record.layer), record)
    }

    /// Removes the record of a layer (or delta), if present.
    ///
    /// # Errors
    /// [`Error::Write`](crate::Error::Write).
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

    /// The layers waiting for `commit --finalize`, sorted.
    ///
    /// # Errors
    /// [`Error::Read`](crate::Error::Read) or [`Error::Invalid`](crate::Error::Invalid).
    pub fn deferred(&self) -> Result<Vec<Deferred>> {
        let list = read_json(&self.root.join("deferred.json"), "deferred list")?;
        Ok(list.unwrap_or_default())
    }

    /// Replaces (atomically) the list of deferred layers.
    ///
    /// # Errors
    /// [`Error::Write`](crate::Error::Write).
    pub fn set_deferred(&self, deferred: &[Deferred]) -> Result<()> {
        let mut list = deferred.to_vec();
        list.sort();
        list.dedup();
        self.write_json(&self.root.join("deferred.json"), &list)
    }

    /// Every record in the store (layers and deltas), by owner then layer.
    ///
    /// # Errors
    /// [`Error::Read`](crate::Error::Read) or [`Error::Invalid`](crate::Error::Invalid) for an
    /// unreadable or malformed record.
    pub fn records(&self) -> Result<Vec<LayerRecord>> {
        let mut records: Vec<LayerRecord> = read_json_tree(&self.root.join("records"))?;
        records.sort_by(|a, b| (&a.owner, &a.layer).cmp(&(&b.owner, &b.layer)));
        Ok(records)
    }
}
