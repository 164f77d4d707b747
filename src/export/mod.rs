//! Export: committed layers to an OCI image layout, the way lifecycle's exporter builds an image.
//!
//! Layers, in order: the run image's layers (blobs hard-linked or copied, verified, never
//! recompressed), one layer per launch layer in group order (each buildpack is committed first,
//! a cache hit for an unchanged layer, and the committed tar's gzip blob is reused or made
//! lazily from the stored tar, see [`crate::layer_blob`]) followed by the deltas later
//! buildpacks' changes to it were captured as (policy `capture`), then the app dir as the layer
//! `/workspace` owned by the build user. The config starts from the run image's config and adds
//! `rootfs.diff_ids`, `history`, the launch env ([`env`]), `WorkingDir` and the
//! `io.buildpacks.lifecycle.metadata` label ([`metadata`]). `created` is `SOURCE_DATE_EPOCH` or
//! 1980-01-01T00:00:01Z and every document is canonical JSON, so exporting an unchanged build
//! again gives the same manifest digest. `index.json` is written last.

mod created;
pub mod metadata;

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::image::{
    Config, Descriptor, History, ImageConfiguration, ImageManifest, ImageManifestBuilder,
    MediaType, Os,
};
use serde::Serialize;

use crate::archive::TarSpec;
use crate::blob_file::Placed;
use crate::build::BuildEnv;
use crate::build::group;
use crate::compress::Compression;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer_blob::{commit_buildpacks, ensure_blob};
use crate::layers_dir::{LayerToml, LayersDir};
use crate::normalize::{DEFAULT_LAYERS_ROOT, Owner};
use crate::oci_layout::{ImageLayout, LayoutRef, canonical_json, descriptor, descriptor_digest};
use crate::pipeline;
use crate::store::{LayerRecord, Store};
pub use created::{created_from_env, rfc3339};
use metadata::{BuildpackLayers, LayerMetadata, LifecycleMetadata, RunImage, Sha, StoreMetadata};

/// The app dir's path in the image.
pub const APP_DIR: &str = "/workspace";

/// What to export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// The CNB layers dir (its store is `<layers>/.layerize`).
    pub layers: PathBuf,
    /// The app dir.
    pub app: PathBuf,
    /// The run image to build on.
    pub run_image: Option<LayoutRef>,
    /// Where to write the image.
    pub output: LayoutRef,
    /// `group.toml` giving the buildpack order and versions.
    pub group: Option<PathBuf>,
    /// The build user, owner of layer contents and of the app.
    pub owner: Owner,
    /// Unix time written as `created`.
    pub created: i64,
}

/// Where an image layer comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LayerSource {
    /// A layer of the run image.
    Run,
    /// A launch layer of a buildpack.
    Launch,
    /// A later buildpack's change to the launch layer before it, captured as a delta.
    Delta,
    /// The app dir.
    App,
}

impl LayerSource {
    /// `run`, `launch`, `delta` or `app`.
    pub fn as_str(self) -> &'static str {
        match self {
            LayerSource::Run => "run",
            LayerSource::Launch => "launch",
            LayerSource::Delta => "delta",
            LayerSource::App => "app",
        }
    }
}

/// One layer of the exported image.
#[derive(Debug, Clone, Serialize)]
pub struct ExportedLayer {
    /// Where it comes from.
    pub source: LayerSource,
    /// `<buildpack>:<layer>`, `app`, or the run image layer's index.
    pub name: String,
    /// diffID.
    pub diff_id: Digest,
    /// Blob digest.
    pub digest: Digest,
    /// Blob size.
    pub size: u64,
    /// For a launch layer: its commit was a cache hit (not re-tarred; run layers: always).
    pub cache_hit: bool,
    /// How an existing blob got into the layout; `None` for a blob this export wrote.
    pub placed: Option<Placed>,
}

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ExportReport {
    /// The image written (`oci:DIR[:TAG]`).
    pub image: String,
    /// Manifest digest.
    pub manifest: Digest,
    /// Config digest.
    pub config: Digest,
    /// Layers, bottom first.
    pub layers: Vec<ExportedLayer>,
    /// Launch layers left out (no contents on disk).
    pub warnings: Vec<String>,
}

/// Writes the image and tags it.
///
/// # Errors
/// [`Error::Invalid`] for a bad layers dir, group file or run image, [`Error::Read`] /
/// [`Error::DigestMismatch`] for a blob that does not match its digest, [`Error::Write`].
pub fn export(options: &ExportOptions) -> Result<ExportReport> {
    let layers = LayersDir::open(&options.layers)?;
    let order = group::group_order(&layers, options.group.as_deref())?;
    let mut commits = commit_buildpacks(&layers, order.iter().map(|e| &e.id), options.owner)?;
    let store = Store::open(layers.root().join(".layerize"))?;
    let _lock = store.lock()?;
    let out = ImageLayout::create(&options.output.dir)?;
    let created = rfc3339(options.created);
    let mut report_layers = Vec::new();
    let mut descriptors = Vec::new();
    let (mut config, run_image) = match &options.run_image {
        Some(run) => base_image(run, &out, &mut descriptors, &mut report_layers)?,
        None => (empty_config(), RunImage::default()),
    };
    let mut exec = config.config().clone().unwrap_or_default();
    let mut env = BuildEnv::from_config(exec.env().as_deref().unwrap_or_default());
    let mut history = config.history().clone().unwrap_or_default();
    let mut label = LifecycleMetadata {
        run_image,
        ..Default::default()
    };
    let mut warnings = Vec::new();

    for entry in order {
        let mut bp = BuildpackLayers {
            key: entry.id.to_string(),
            version: entry.version.clone(),
            layers: BTreeMap::new(),
            store: store_metadata(&layers.buildpack_dir(&entry.id).join("store.toml"))?,
        };
        for layer in layers.layers_of(&entry.id)? {
            let types = layer.toml.types;
            if !types.launch {
                continue;
            }
            let mut meta = LayerMetadata::for_toml(&layer.toml);
            let Some(mut committed) = commits.remove(&(entry.id.clone(), layer.name.clone()))
            else {
                warnings.push(format!(
                    "{}: launch layer has no contents: listed in the label, not exported",
                    layer.key()
                ));
                bp.layers.insert(layer.name.clone(), meta);
                continue;
            };
            let (desc, exported) = place_stored(
                &store,
                &out,
                &mut committed.record,
                LayerSource::Launch,
                layer.key(),
                committed.hit,
            )?;
            descriptors.push(desc);
            history.push(history_entry(
                &created,
                format!(
                    "Layer: '{}', Created by buildpack: {}@{}",
                    layer.name, entry.id, entry.version
                ),
            ));
            meta.sha = exported.diff_id.to_string();
            report_layers.push(exported);
            for mut delta in committed.deltas {
                let name = format!("{}:{}", delta.owner, delta.layer);
                let (desc, exported) =
                    place_stored(&store, &out, &mut delta, LayerSource::Delta, name, true)?;
                descriptors.push(desc);
                history.push(history_entry(
                    &created,
                    format!(
                        "Layer: '{}' of {}, changed by buildpack: {} (captured delta)",
                        layer.name, entry.id, delta.owner
                    ),
                ));
                report_layers.push(exported);
            }
            let image_dir = format!(
                "{DEFAULT_LAYERS_ROOT}/{}/{}",
                entry.id.escaped(),
                layer.name
            );
            env.add_launch_layer(&layer.dir, Path::new(&image_dir))?;
            bp.layers.insert(layer.name.clone(), meta);
        }
        label.buildpacks.push(bp);
    }

    let app = app_layer(options, &out)?;
    descriptors.push(descriptor(MediaType::ImageLayerGzip, app.size, &app.digest));
    history.push(history_entry(&created, "Application Layer".to_owned()));
    label.app.push(Sha {
        sha: app.diff_id.to_string(),
    });
    report_layers.push(app);

    env.set("CNB_LAYERS_DIR", DEFAULT_LAYERS_ROOT);
    env.set("CNB_APP_DIR", APP_DIR);
    exec.set_env(Some(env.to_config()));
    exec.set_working_dir(Some(APP_DIR.to_owned()));
    let mut labels = exec.labels().clone().unwrap_or_default();
    labels.insert(
        metadata::LIFECYCLE_METADATA_LABEL.to_owned(),
        String::from_utf8(canonical_json(&label)).expect("JSON is UTF-8"),
    );
    exec.set_labels(Some(labels));
    config.set_config(Some(exec));
    config.set_created(Some(created));
    config.set_history(Some(history));
    config.rootfs_mut().set_diff_ids(
        report_layers
            .iter()
            .map(|l| l.diff_id.to_string())
            .collect(),
    );

    let config_desc = out.put_json(MediaType::ImageConfig, &config)?;
    let manifest: ImageManifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_desc.clone())
        .layers(descriptors)
        .build()
        .expect("manifest fields are set");
    let manifest_desc = out.put_json(MediaType::ImageManifest, &manifest)?;
    out.set_tag(&manifest_desc, options.output.tag.as_deref())?;
    Ok(ExportReport {
        image: options.output.to_string(),
        manifest: descriptor_digest(out.root(), &manifest_desc)?,
        config: descriptor_digest(out.root(), &config_desc)?,
        layers: report_layers,
        warnings,
    })
}

/// A stored layer's gzip blob (made from its stored tar if missing) placed in `out`: its
/// descriptor and its line of the report.
fn place_stored(
    store: &Store,
    out: &ImageLayout,
    record: &mut LayerRecord,
    source: LayerSource,
    name: String,
    cache_hit: bool,
) -> Result<(Descriptor, ExportedLayer)> {
    let blob = ensure_blob(store, record, Compression::Gzip)?;
    let placed = out.import_blob(&store.blob_path(&blob.digest), &blob.digest)?;
    let desc = descriptor(MediaType::ImageLayerGzip, blob.size, &blob.digest);
    let exported = ExportedLayer {
        source,
        name,
        diff_id: record.diff_id.clone(),
        digest: blob.digest,
        size: blob.size,
        cache_hit,
        placed: Some(placed),
    };
    Ok((desc, exported))
}

fn empty_config() -> ImageConfiguration {
    let mut config = ImageConfiguration::default();
    config.set_os(Os::Linux);
    config.set_config(Some(Config::default()));
    config
}

fn history_entry(created: &str, created_by: String) -> History {
    let mut h = History::default();
    h.set_created(Some(created.to_owned()));
    h.set_created_by(Some(created_by));
    h
}

/// The run image's config, with its layers placed in `out`.
fn base_image(
    run: &LayoutRef,
    out: &ImageLayout,
    descriptors: &mut Vec<Descriptor>,
    report: &mut Vec<ExportedLayer>,
) -> Result<(ImageConfiguration, RunImage)> {
    let image = ImageLayout::open(&run.dir)?;
    let manifest_desc = image.resolve(run.tag.as_deref())?;
    let manifest_digest = descriptor_digest(image.root(), &manifest_desc)?;
    let manifest: ImageManifest = image.read_json(&manifest_digest)?;
    let config_digest = descriptor_digest(image.root(), manifest.config())?;
    let config: ImageConfiguration = image.read_json(&config_digest)?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(Error::invalid(
            image.blob_path(&config_digest),
            format!(
                "run image config lists {} diffIDs for {} layers",
                diff_ids.len(),
                manifest.layers().len()
            ),
        ));
    }
    for (i, (layer, diff_id)) in manifest.layers().iter().zip(diff_ids).enumerate() {
        let digest = descriptor_digest(image.root(), layer)?;
        let placed = out.import_blob(&image.blob_path(&digest), &digest)?;
        descriptors.push(layer.clone());
        report.push(ExportedLayer {
            source: LayerSource::Run,
            name: format!("run[{i}]"),
            diff_id: diff_id.parse().map_err(|reason: String| {
                Error::invalid(image.blob_path(&config_digest), reason)
            })?,
            digest,
            size: layer.size(),
            cache_hit: true,
            placed: Some(placed),
        });
    }
    let run_image = RunImage {
        top_layer: diff_ids.last().cloned().unwrap_or_default(),
        reference: manifest_digest.to_string(),
    };
    Ok((config, run_image))
}

/// `store.toml`'s `[metadata]`, when the buildpack wrote one.
fn store_metadata(path: &std::path::Path) -> Result<Option<StoreMetadata>> {
    if !path.is_file() {
        return Ok(None);
    }
    let toml = LayerToml::read(path)?;
    Ok(Some(StoreMetadata {
        metadata: toml.metadata_json(),
    }))
}

/// The app dir as the layer `/workspace`, gzip, written straight into the layout.
fn app_layer(options: &ExportOptions, out: &ImageLayout) -> Result<ExportedLayer> {
    let meta = std::fs::metadata(&options.app).map_err(Error::read(&options.app))?;
    if !meta.is_dir() {
        return Err(Error::invalid(&options.app, "app dir is not a directory"));
    }
    let spec = TarSpec::prefixed(
        &options.app,
        PathBuf::from(APP_DIR).as_os_str().as_bytes(),
        options.owner,
    );
    let (blobs, mut writers) =
        pipeline::layerize(&spec, vec![(Compression::Gzip, out.new_blob()?)])?;
    let (digest, size) = writers.pop().expect("one output").commit()?;
    Ok(ExportedLayer {
        source: LayerSource::App,
        name: "app".to_owned(),
        diff_id: blobs.diff_id,
        digest,
        size,
        cache_hit: false,
        placed: None,
    })
}
