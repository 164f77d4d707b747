//! What a build does around its buildpacks when asked: restore the volume cache before the
//! first one, and after the final commit export the image and save the cache. Each step is the
//! library's own ([`crate::cache::restore`], [`crate::export::export`],
//! [`crate::cache::save`]); this module only decides when they run and with which options.
//!
//! Export and the volume cache work on the store at `<layers>/.layerize`, so a build that asks
//! for either must use that store.

use std::path::{Path, PathBuf};

use crate::cache::{self, RestoreReport, SaveReport};
use crate::error::{Error, Result};
use crate::export::{self, ExportOptions, ExportReport};
use crate::layers_dir::LayersDir;
use crate::normalize::Owner;
use crate::oci_layout::LayoutRef;

/// Where to export the image a build makes.
#[derive(Debug, Clone)]
pub struct ExportTarget {
    /// The image to write.
    pub output: LayoutRef,
    /// The run image to build on.
    pub run_image: Option<LayoutRef>,
    /// Unix time written as `created`.
    pub created: i64,
}

/// What the build did with the cache and the image.
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    /// The cache restore before the first buildpack.
    pub restored: Option<RestoreReport>,
    /// The export after the final commit.
    pub exported: Option<ExportReport>,
    /// The cache save after the export.
    pub saved: Option<SaveReport>,
}

/// Fails when export or the cache would read a store other than the one the build writes.
pub(super) fn check_store(layers: &Path, store: Option<&Path>, wanted: bool) -> Result<()> {
    let default = layers.join(".layerize");
    match store {
        Some(store) if wanted && std::path::absolute(store).ok() != Some(default.clone()) => {
            Err(Error::invalid(
                store,
                format!(
                    "export and the volume cache use the store {}; a build with --output or \
                     --cache-dir cannot use another",
                    default.display()
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Restores `cache_dir` into `layers` (skipped layers are warnings in the report).
pub(super) fn restore(
    layers: &LayersDir,
    cache_dir: Option<&PathBuf>,
) -> Result<Option<RestoreReport>> {
    cache_dir
        .map(|dir| cache::restore(layers.root(), dir))
        .transpose()
}

/// Exports to `target`, then saves `cache_dir`.
pub(super) fn finish(
    layers: &LayersDir,
    app: &Path,
    group: &Path,
    owner: Owner,
    target: Option<&ExportTarget>,
    cache_dir: Option<&PathBuf>,
    restored: Option<RestoreReport>,
) -> Result<Delivered> {
    let exported = target
        .map(|t| {
            export::export(&ExportOptions {
                layers: layers.root().to_owned(),
                app: app.to_owned(),
                run_image: t.run_image.clone(),
                output: t.output.clone(),
                group: Some(group.to_owned()),
                owner,
                created: t.created,
            })
        })
        .transpose()?;
    let saved = cache_dir
        .map(|dir| cache::save(layers.root(), dir, Some(group), owner))
        .transpose()?;
    Ok(Delivered {
        restored,
        exported,
        saved,
    })
}
