//! `layerize push`: an image of an OCI layout to a registry.

use clap::Args;
use layerize::LayoutRef;
use layerize::error::Result;
use layerize::registry::{CredentialSource, Credentials, RegistryRef, push};

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
    /// Registry credentials; without them, those `docker login` saved in the docker config
    /// file ($DOCKER_CONFIG/config.json, else ~/.docker/config.json) are used, if any.
    #[arg(
        long,
        value_name = "USER:PASSWORD",
        env = "LAYERIZE_REGISTRY_CREDS",
        hide_env_values = true
    )]
    pub creds: Option<Credentials>,
    #[command(flatten)]
    pub out: OutputArgs,
}

pub fn run(args: PushArgs) -> Result<()> {
    let credentials = match args.creds {
        Some(creds) => CredentialSource::Given(creds),
        None => CredentialSource::DockerConfig,
    };
    let report = push(&args.source, &args.target, args.insecure, &credentials)?;
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
