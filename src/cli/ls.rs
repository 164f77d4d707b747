//! `layerize ls`: the layers of a CNB layers directory.

use std::path::PathBuf;

use clap::Args;
use layerize::LayersDir;
use layerize::error::Result;
use serde_json::json;

use super::output::{self, OutputArgs};

/// `layerize ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// The CNB layers directory.
    #[arg(long)]
    pub layers: PathBuf,
    #[command(flatten)]
    pub out: OutputArgs,
}

pub fn run(args: LsArgs) -> Result<()> {
    let layers = LayersDir::open(&args.layers)?.layers()?;
    if args.out.json {
        for layer in &layers {
            output::json_line(&json!({
                "buildpack": layer.buildpack,
                "layer": layer.name,
                "build": layer.toml.types.build,
                "launch": layer.toml.types.launch,
                "cache": layer.toml.types.cache,
                "path": layer.dir,
            }));
        }
        return Ok(());
    }
    if layers.is_empty() {
        println!("no layers in {}", args.layers.display());
        return Ok(());
    }
    let width = layers
        .iter()
        .map(|l| l.key().len())
        .max()
        .unwrap_or(0)
        .max(5);
    println!(
        "{:<width$}  {:<5} {:<6} {:<5}  PATH",
        "LAYER", "BUILD", "LAUNCH", "CACHE"
    );
    let flag = |b: bool| if b { "yes" } else { "-" };
    for layer in &layers {
        let t = layer.toml.types;
        println!(
            "{:<width$}  {:<5} {:<6} {:<5}  {}",
            layer.key(),
            flag(t.build),
            flag(t.launch),
            flag(t.cache),
            layer.dir.display()
        );
    }
    Ok(())
}
