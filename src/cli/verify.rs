//! `layerize verify`: checks a store's blobs against their digests and its records' references.

use std::path::PathBuf;

use clap::Args;
use layerize::error::Result;
use layerize::verify::verify;
use serde_json::json;

use super::output::{self, OutputArgs};

/// `layerize verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The store directory.
    #[arg(long)]
    pub store: PathBuf,
    #[command(flatten)]
    pub out: OutputArgs,
}

pub fn run(args: VerifyArgs) -> Result<()> {
    let report = verify(&args.store)?;
    if args.out.json {
        for problem in &report.problems {
            output::json_line(problem);
        }
        output::json_line(&json!({
            "store": args.store,
            "blobs": report.blobs,
            "bytes": report.bytes,
            "records": report.records,
            "temp_files": report.temp_files,
            "problems": report.problems.len(),
        }));
    } else {
        for problem in &report.problems {
            println!("{}", problem.to_error());
        }
        println!(
            "{}: {} blobs ({} bytes), {} records, {} problems{}",
            args.store.display(),
            report.blobs,
            report.bytes,
            report.records,
            report.problems.len(),
            if report.temp_files > 0 {
                format!(
                    "; {} temp files of interrupted writes in tmp/",
                    report.temp_files
                )
            } else {
                String::new()
            }
        );
    }
    match report.problems.first() {
        Some(problem) => Err(problem.to_error()),
        None => Ok(()),
    }
}
