//! `layerize export`: committed layers, a run image and the app dir to an OCI image layout.

use std::path::PathBuf;

use clap::Args;
use layerize::LayoutRef;
use layerize::error::{Error, Result};
use layerize::export::{ExportOptions, created_from_env, export};

use super::output::{self, OutputArgs};
use super::owner::OwnerArgs;

/// `layerize export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The CNB layers directory.
    #[arg(long)]
    pub layers: PathBuf,
    /// The app directory (becomes /workspace).
    #[arg(long)]
    pub app: PathBuf,
    /// Run image to build on, as oci:DIR[:TAG].
    #[arg(long)]
    pub run_image: Option<LayoutRef>,
    /// Where to write the image, as oci:DIR[:TAG].
    #[arg(long)]
    pub output: LayoutRef,
    /// group.toml: buildpack order and versions [default: buildpack dirs sorted by id].
    #[arg(long)]
    pub group: Option<PathBuf>,
    #[command(flatten)]
    pub owner: OwnerArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

pub fn run(args: ExportArgs) -> Result<()> {
    let created = created_from_env(std::env::var("SOURCE_DATE_EPOCH").ok().as_deref())
        .map_err(|reason| Error::invalid("<environment>", reason))?;
    let options = ExportOptions {
        layers: args.layers,
        app: args.app,
        run_image: args.run_image,
        output: args.output,
        group: args.group,
        owner: args.owner.owner()?,
        created,
    };
    let report = export(&options)?;
    for warning in &report.warnings {
        output::warn(warning);
    }
    if args.out.json {
        output::json_line(&report);
        return Ok(());
    }
    for layer in &report.layers {
        let how = match layer.placed {
            None => "written".to_owned(),
            Some(placed) if layer.cache_hit => format!("reused, {}", placed.as_str()),
            Some(placed) => format!("tarred, {}", placed.as_str()),
        };
        println!(
            "{:<7} {:<40} {} ({how})",
            layer.source.as_str(),
            layer.name,
            layer.diff_id
        );
    }
    println!("image     {}", report.image);
    println!("manifest  {}", report.manifest);
    println!("config    {}", report.config);
    Ok(())
}
