//! `layerize cache save|restore`: lifecycle's volume cache.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use layerize::error::Result;
use layerize::{Digest, cache};

use super::output::{self, OutputArgs};
use super::owner::OwnerArgs;

/// `layerize cache`.
#[derive(Debug, Args)]
pub struct CacheArgs {
    #[command(subcommand)]
    pub action: CacheAction,
}

/// What to do with the cache.
#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Save every cache = true layer into the cache dir.
    Save(SaveArgs),
    /// Put the cached layers back into the layers dir (bad blobs are skipped with a warning).
    Restore(RestoreArgs),
}

/// `layerize cache save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// The CNB layers directory.
    #[arg(long)]
    pub layers: PathBuf,
    /// The volume cache directory.
    #[arg(long)]
    pub cache_dir: PathBuf,
    /// group.toml giving buildpack order and versions.
    #[arg(long)]
    pub group: Option<PathBuf>,
    #[command(flatten)]
    pub owner: OwnerArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `layerize cache restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The CNB layers directory.
    #[arg(long)]
    pub layers: PathBuf,
    /// The volume cache directory.
    #[arg(long)]
    pub cache_dir: PathBuf,
    #[command(flatten)]
    pub out: OutputArgs,
}

pub fn run(args: CacheArgs) -> Result<()> {
    match args.action {
        CacheAction::Save(args) => {
            let owner = args.owner.owner()?;
            let report = cache::save(&args.layers, &args.cache_dir, args.group.as_deref(), owner)?;
            if args.out.json {
                output::json_line(&report);
                return Ok(());
            }
            for layer in &report.layers {
                let id = or_dash(layer.diff_id.as_ref());
                println!("{:<40} {id} ({})", layer.name, layer.action);
            }
            if report.unchanged {
                println!("cache unchanged: nothing written");
            }
        }
        CacheAction::Restore(args) => {
            let report = cache::restore(&args.layers, &args.cache_dir)?;
            for warning in &report.warnings {
                output::warn(warning);
            }
            if args.out.json {
                output::json_line(&report);
                return Ok(());
            }
            for layer in &report.layers {
                let id = or_dash(layer.diff_id.as_ref());
                println!("{:<40} {id} ({} entries)", layer.name, layer.entries);
            }
        }
    }
    Ok(())
}

/// A layer's diffID, or `-` for a layer with no contents.
fn or_dash(diff_id: Option<&Digest>) -> String {
    diff_id.map_or("-".to_owned(), Digest::to_string)
}
