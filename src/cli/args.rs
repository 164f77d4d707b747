//! Raw command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use layerize::Compression;

/// Reproducible OCI layers from Cloud Native Buildpacks layer directories.
#[derive(Debug, Parser)]
#[command(name = "layerize", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the reproducible layer tar of any directory and print its digests.
    Tar(TarArgs),
    /// Safely extract a layer blob (plain, gzip or zstd tar) into a directory.
    Extract(ExtractArgs),
    /// List the layers of a CNB layers directory.
    Ls(LsArgs),
}

/// Output options shared by every subcommand.
#[derive(Debug, Args, Clone, Copy)]
pub struct OutputArgs {
    /// Print one JSON object per result on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `layerize tar`.
#[derive(Debug, Args)]
pub struct TarArgs {
    /// Directory to archive.
    pub dir: PathBuf,
    /// In-image path of DIR (e.g. /layers/example_runtime/rt); without it, names are relative
    /// to DIR and DIR itself is not written.
    #[arg(long)]
    pub prefix: Option<PathBuf>,
    /// uid of every entry [default: $CNB_USER_ID, else 0].
    #[arg(long)]
    pub uid: Option<u64>,
    /// gid of every entry [default: $CNB_GROUP_ID, else 0].
    #[arg(long)]
    pub gid: Option<u64>,
    /// Compression of the written blob.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    /// Where to write the blob; without it only digests are computed.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `layerize extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Layer blob to extract.
    pub file: PathBuf,
    /// Target directory (created if missing).
    pub dir: PathBuf,
    /// Apply OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) to what DIR holds.
    #[arg(long)]
    pub whiteouts: bool,
    /// Refuse archives that decompress to more than this many bytes.
    #[arg(long)]
    pub max_bytes: Option<u64>,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// `layerize ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// The CNB layers directory.
    #[arg(long)]
    pub layers: PathBuf,
    #[command(flatten)]
    pub out: OutputArgs,
}
