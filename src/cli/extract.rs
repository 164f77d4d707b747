//! `layerize extract`: safe extraction of a layer blob into a directory.

use std::fs::File;
use std::path::PathBuf;

use clap::Args;
use layerize::error::{Error, Result};
use layerize::{ExtractOptions, extract};
use serde_json::json;

use super::output::{self, OutputArgs};

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

pub fn run(args: ExtractArgs) -> Result<()> {
    let file = File::open(&args.file).map_err(Error::read(&args.file))?;
    let options = ExtractOptions {
        whiteouts: args.whiteouts,
        max_bytes: args.max_bytes,
    };
    let summary = extract(&args.file, file, &args.dir, options)?;
    if args.out.json {
        output::json_line(&json!({
            "file": args.file,
            "dir": args.dir,
            "entries": summary.entries,
            "bytes": summary.bytes,
            "whiteouts": summary.whiteouts,
            "compression": summary.compression,
        }));
    } else {
        println!(
            "extracted {} entries ({} bytes, {}) into {}{}",
            summary.entries,
            summary.bytes,
            summary.compression,
            args.dir.display(),
            if summary.whiteouts > 0 {
                format!(", {} whiteouts applied", summary.whiteouts)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}
