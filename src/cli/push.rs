//! `layerize push`: an image of an OCI layout to a registry.

use clap::Args;
use layerize::LayoutRef;
use layerize::error::Result;
use layerize::registry::{RegistryRef, push};

use super::output::{self, OutputArgs};

/// `layerize push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image, as oci:DIR[:TAG].
    pub source: LayoutRef,
    /// Where to push it: REGISTRY/REPOSITORY[:TAG].
    pub target: RegistryRef,
    /// Speak plain http (always done for 127.0.0.1 and localhost).
    #[arg(long)]
    pub insecure: bool,
    #[command(flatten)]
    pub out: OutputArgs,
}

pub fn run(args: PushArgs) -> Result<()> {
    let report = push(&args.source, &args.target, args.insecure)?;
    if args.out.json {
        output::json_line(&report);
        return Ok(());
    }
    for blob in &report.pushed {
        println!("pushed   {} ({} bytes)", blob.digest, blob.size);
    }
    for digest in &report.skipped {
        println!("skipped  {digest} (already in the registry)");
    }
    println!("manifest {} -> {}", report.manifest, report.reference);
    Ok(())
}
