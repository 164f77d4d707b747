//! layerize's own file in a volume cache, beside lifecycle's metadata: for each cached layer,
//! the tar parameters (`spec_digest` of its store record) its tar was written with.
//!
//! ```text
//! <dir>/committed/io.layerize.cache.specs   {"layers":{"<buildpack>:<layer>":{diff_id, spec_digest}}}
//! ```
//! lifecycle reads only its metadata file and the tars that metadata names, so an extra file in
//! `committed/` is left alone (and dropped by lifecycle's next save, which is then a cache
//! written without it). With an entry whose `diff_id` is the layer's sha, a restore hands the
//! verified tar to [`crate::guard::adopt`] so that the owner's commit of the unchanged layer is
//! a cache hit instead of a re-tar; without one (a cache lifecycle wrote), the owner re-tars.

use std::collections::BTreeMap;
use std::fs;

use serde::{Deserialize, Serialize};

use super::VolumeCache;
use crate::digest::Digest;
use crate::error::{Error, Result};

/// File name of the specs, in `committed/` and `staging/`.
pub const SPECS_FILE: &str = "io.layerize.cache.specs";

/// The tar parameters of each cached layer, by `<buildpack>:<layer>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSpecs {
    /// One entry per cached layer with contents that layerize committed.
    pub layers: BTreeMap<String, CachedSpec>,
}

/// How one cached tar was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedSpec {
    /// The tar's diffID (its name in the cache).
    pub diff_id: Digest,
    /// `spec_digest` of the record the tar was committed under.
    pub spec_digest: Digest,
}

impl CacheSpecs {
    /// The committed specs; empty when the cache has none.
    ///
    /// # Errors
    /// [`Error::Read`], or [`Error::Invalid`] when the file does not parse.
    pub fn load(cache: &VolumeCache) -> Result<Self> {
        let path = cache.committed().join(SPECS_FILE);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::invalid(&path, format!("malformed layerize specs: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::read(&path)(e)),
        }
    }

    /// The spec digest of layer `key` when its cached tar is `diff_id`.
    pub fn spec_of(&self, key: &str, diff_id: &Digest) -> Option<&Digest> {
        self.layers
            .get(key)
            .filter(|s| &s.diff_id == diff_id)
            .map(|s| &s.spec_digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_is_found_only_for_its_own_layer_and_tar() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = VolumeCache::open(tmp.path()).unwrap();
        assert_eq!(CacheSpecs::load(&cache).unwrap(), CacheSpecs::default());
        let (tar, other, spec) = (
            Digest::of_bytes(b"tar"),
            Digest::of_bytes(b"other"),
            Digest::of_bytes(b"spec"),
        );
        let mut specs = CacheSpecs::default();
        specs.layers.insert(
            "acme/jdk:jdk".into(),
            CachedSpec {
                diff_id: tar.clone(),
                spec_digest: spec.clone(),
            },
        );
        fs::create_dir_all(cache.committed()).unwrap();
        fs::write(
            cache.committed().join(SPECS_FILE),
            serde_json::to_vec(&specs).unwrap(),
        )
        .unwrap();
        let loaded = CacheSpecs::load(&cache).unwrap();
        assert_eq!(loaded.spec_of("acme/jdk:jdk", &tar), Some(&spec));
        assert_eq!(loaded.spec_of("acme/jdk:jdk", &other), None);
        assert_eq!(loaded.spec_of("acme/jdk:jre", &tar), None);
        fs::write(cache.committed().join(SPECS_FILE), b"{").unwrap();
        assert!(CacheSpecs::load(&cache).is_err());
    }
}
