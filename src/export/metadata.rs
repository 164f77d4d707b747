//! The records lifecycle keeps about layers, in the JSON shape lifecycle writes them: the image
//! label `io.buildpacks.lifecycle.metadata` and the cache's `io.buildpacks.lifecycle.cache.metadata`.
//!
//! Per buildpack (`key` = id, `version`) a map of layer name to `{sha, data, build, launch,
//! cache}`, where `sha` is the diffID and `data` the layer toml's `[metadata]`. Maps are
//! `BTreeMap`s so the label's bytes, and with them the config digest, do not vary run to run.
//! Fields Go writes without `omitempty` are always written (empty when we produce no such layer).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::layers_dir::{LayerToml, LayerTypes};

/// Image label holding [`LifecycleMetadata`].
pub const LIFECYCLE_METADATA_LABEL: &str = "io.buildpacks.lifecycle.metadata";
/// File name of [`CacheMetadata`] in a volume cache.
pub const CACHE_METADATA_FILE: &str = "io.buildpacks.lifecycle.cache.metadata";

/// One layer of a buildpack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerMetadata {
    /// diffID of the layer tar; empty for a layer with no contents.
    pub sha: String,
    /// The layer toml's `[metadata]`.
    #[serde(default)]
    pub data: serde_json::Value,
    /// `[types] build`.
    #[serde(default)]
    pub build: bool,
    /// `[types] launch`.
    #[serde(default)]
    pub launch: bool,
    /// `[types] cache`.
    #[serde(default)]
    pub cache: bool,
}

impl LayerMetadata {
    /// A layer's entry from its toml, with no diffID yet.
    pub fn for_toml(toml: &LayerToml) -> Self {
        Self {
            sha: String::new(),
            data: toml.metadata_json(),
            build: toml.types.build,
            launch: toml.types.launch,
            cache: toml.types.cache,
        }
    }

    /// The layer's types.
    pub fn types(&self) -> LayerTypes {
        LayerTypes {
            build: self.build,
            launch: self.launch,
            cache: self.cache,
        }
    }
}

/// `store.toml`'s `[metadata]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreMetadata {
    /// The table, as JSON.
    pub metadata: serde_json::Value,
}

/// The layers of one buildpack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildpackLayers {
    /// The buildpack id.
    pub key: String,
    /// The buildpack version (from the group; empty without one).
    pub version: String,
    /// Layer name to its record.
    pub layers: BTreeMap<String, LayerMetadata>,
    /// `store.toml`'s metadata, when the buildpack wrote one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreMetadata>,
}

/// `{sha}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sha {
    /// A diffID, or empty.
    pub sha: String,
}

/// `runImage`: what a rebase needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunImage {
    /// diffID of the run image's last layer.
    pub top_layer: String,
    /// The run image's manifest digest.
    pub reference: String,
}

/// The `io.buildpacks.lifecycle.metadata` label.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LifecycleMetadata {
    /// The app layer(s).
    pub app: Vec<Sha>,
    /// Launch layers by buildpack, in group order.
    pub buildpacks: Vec<BuildpackLayers>,
    /// The config layer (not produced by layerize).
    pub config: Sha,
    /// The launcher layer (not produced by layerize).
    pub launcher: Sha,
    /// The process-types layer (not produced by layerize).
    #[serde(rename = "process-types")]
    pub process_types: Sha,
    /// The run image.
    #[serde(rename = "runImage")]
    pub run_image: RunImage,
}

/// The volume cache's metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheMetadata {
    /// Cache layers by buildpack.
    pub buildpacks: Vec<BuildpackLayers>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_has_lifecycles_field_names() {
        let mut layers = BTreeMap::new();
        layers.insert(
            "rt".to_owned(),
            LayerMetadata {
                sha: "sha256:ab".into(),
                data: serde_json::json!({"v": "1"}),
                build: false,
                launch: true,
                cache: true,
            },
        );
        let label = LifecycleMetadata {
            app: vec![Sha {
                sha: "sha256:cd".into(),
            }],
            buildpacks: vec![BuildpackLayers {
                key: "example/bp".into(),
                version: "1.0".into(),
                layers,
                store: None,
            }],
            run_image: RunImage {
                top_layer: "sha256:ef".into(),
                reference: "sha256:01".into(),
            },
            ..Default::default()
        };
        let json = serde_json::to_value(&label).unwrap();
        assert_eq!(json["buildpacks"][0]["layers"]["rt"]["data"]["v"], "1");
        assert_eq!(json["buildpacks"][0]["layers"]["rt"]["launch"], true);
        assert_eq!(json["runImage"]["topLayer"], "sha256:ef");
        assert_eq!(json["process-types"]["sha"], "");
        assert!(json["buildpacks"][0].get("store").is_none());
        let back: LifecycleMetadata = serde_json::from_value(json).unwrap();
        assert_eq!(back, label);
    }
}
