//! `layerize commit`: a buildpack's layers become stored tars with snapshots.

use std::path::PathBuf;

use clap::Args;
use layerize::error::{Error, Result};
use layerize::guard::{self, CommitOptions, GuardPaths};
use layerize::normalize::DEFAULT_LAYERS_ROOT;
use layerize::{BuildpackId, Compression, Deferred, LayersDir};

use super::output::{self, OutputArgs};
use super::owner::OwnerArgs;

/// The layers dir, the store and the in-image names, shared by commit, check and restore.
#[derive(Debug, Args)]
pub struct GuardArgs {
    /// The CNB layers directory.
    #[arg(long)]
    pub layers: PathBuf,
    /// Store directory [default: <layers>/.layerize].
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// In-image path of the layers directory.
    #[arg(long, default_value = DEFAULT_LAYERS_ROOT)]
    pub layers_root: String,
    #[command(flatten)]
    pub owner: OwnerArgs,
}

impl GuardArgs {
    /// The opened layers dir and the library's paths.
    pub fn resolve(&self) -> Result<(LayersDir, GuardPaths)> {
        let layers = LayersDir::open(&self.layers)?;
        let paths = GuardPaths {
            store: self.store.clone(),
            layers_root: self.layers_root.clone(),
            owner: self.owner.owner()?,
        };
        Ok((layers, paths))
    }
}

/// `layerize commit`.
#[derive(Debug, Args)]
pub struct CommitArgs {
    #[command(flatten)]
    pub guard: GuardArgs,
    /// The buildpack that just ran; its declared layers are committed.
    #[arg(
        long,
        required_unless_present = "finalize",
        conflicts_with = "finalize"
    )]
    pub buildpack: Option<BuildpackId>,
    /// Commit the deferred layers (after all buildpacks ran).
    #[arg(long)]
    pub finalize: bool,
    /// A layer (ID:LAYER) left uncommitted until `--finalize`; repeatable.
    #[arg(long, value_parser = parse_deferred)]
    pub defer: Vec<Deferred>,
    /// Also store a compressed blob of each layer; repeatable.
    #[arg(long, value_enum)]
    pub compression: Vec<Compression>,
    #[command(flatten)]
    pub out: OutputArgs,
}

pub(super) fn parse_deferred(text: &str) -> std::result::Result<Deferred, String> {
    let (id, layer) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?} is not ID:LAYER"))?;
    if layer.is_empty() || layer.contains('/') {
        return Err(format!("{text:?}: bad layer name {layer:?}"));
    }
    Ok(Deferred {
        owner: BuildpackId::new(id)?,
        layer: layer.to_owned(),
    })
}

pub fn run(args: CommitArgs) -> Result<()> {
    let (layers, paths) = args.guard.resolve()?;
    let options = CommitOptions {
        paths,
        compressions: args.compression,
        defer: args.defer,
    };
    let report = match &args.buildpack {
        Some(id) => guard::commit(&layers, id, &options)?,
        None if args.finalize => guard::finalize(&layers, &options)?,
        None => {
            return Err(Error::invalid(
                "<arguments>",
                "--buildpack or --finalize is required",
            ));
        }
    };
    if args.out.json {
        report.layers.iter().for_each(output::json_line);
        return Ok(());
    }
    println!(
        "{:<32} {:<20} {:<12} {:>7}  DIFF_ID",
        "BUILDPACK", "LAYER", "OUTCOME", "FILES"
    );
    for l in &report.layers {
        let outcome = serde_json::to_value(l.outcome).expect("outcomes serialize");
        println!(
            "{:<32} {:<20} {:<12} {:>7}  {}",
            l.owner.as_str(),
            l.layer,
            outcome.as_str().unwrap_or_default(),
            l.files,
            l.diff_id.as_ref().map_or("-", |d| d.as_str())
        );
    }
    Ok(())
}
