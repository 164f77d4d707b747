//! `layerize build`: runs a buildpack group over a layers dir, layerizing between buildpacks,
//! and ends with a summary.
//!
//! Buildpack output is passed on with a `[<id>] ` prefix: stdout to stdout and stderr to
//! stderr, or both to stderr with `--json` (stdout then carries only JSON lines).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use layerize::build::{self, BuildEnv, BuildOptions, BuildReport, Event, Stream};
use layerize::error::{EXIT_FAILURE, EXIT_OK, Result};
use serde_json::json;

use super::output::{self, OutputArgs};

/// `layerize build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The app dir: cwd of every buildpack.
    #[arg(long)]
    pub app: PathBuf,
    /// Buildpacks dir: `<dir>/<escaped-id>/<version>/buildpack.toml`.
    #[arg(long)]
    pub buildpacks: PathBuf,
    /// group.toml: `[[group]] id, version, api`, in order.
    #[arg(long)]
    pub group: PathBuf,
    /// The layers dir (created if missing).
    #[arg(long)]
    pub layers: PathBuf,
    /// The platform dir (its `env/` files reach buildpacks without `clear-env`) [default: an
    /// empty one].
    #[arg(long)]
    pub platform: Option<PathBuf>,
    /// Export the image to an OCI layout: `oci:DIR[:TAG]`.
    #[arg(long)]
    pub output: Option<String>,
    /// Volume cache dir to restore from and save to.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    pub out: OutputArgs,
}

pub fn run(args: BuildArgs) -> Result<i32> {
    if let Some(flag) = [
        args.output.as_ref().map(|_| "--output"),
        args.cache_dir.as_ref().map(|_| "--cache-dir"),
    ]
    .into_iter()
    .flatten()
    .next()
    {
        eprintln!(
            "layerize: error: build {flag} is not available yet (export and cache are not in this build)"
        );
        return Ok(EXIT_FAILURE);
    }
    let opts = BuildOptions {
        app: args.app,
        buildpacks: args.buildpacks,
        group: args.group,
        layers: args.layers,
        platform: args.platform,
        env: BuildEnv::base(std::env::vars_os()),
    };
    let json = args.out.json;
    let tty = !json && std::io::stderr().is_terminal();
    let report = build::build(&opts, &mut |event| render(event, json, tty))?;
    summary(&report, json);
    Ok(EXIT_OK)
}

/// Renders one build event.
fn render(event: Event<'_>, json: bool, tty: bool) {
    match event {
        Event::Started {
            buildpack,
            index,
            total,
        } => {
            if tty {
                eprintln!(
                    "==> [{}/{total}] {buildpack} (API {})",
                    index + 1,
                    buildpack.api
                );
            }
        }
        Event::Output {
            buildpack,
            stream,
            line,
        } => {
            let prefixed = [format!("[{}] ", buildpack.id).as_bytes(), line, b"\n"].concat();
            let _ = match (stream, json) {
                (Stream::Stdout, false) => std::io::stdout().lock().write_all(&prefixed),
                _ => std::io::stderr().lock().write_all(&prefixed),
            };
        }
        Event::Finished { run } => {
            if json {
                output::json_line(&json!({
                    "type": "buildpack",
                    "buildpack": run.buildpack.id,
                    "version": run.buildpack.version,
                    "api": run.buildpack.api.to_string(),
                    "seconds": run.elapsed.as_secs_f64(),
                    "layers": run.layers.iter().map(|l| &l.name).collect::<Vec<_>>(),
                    "ignored": run.ignored,
                }));
            }
        }
    }
}

/// The end-of-build summary.
fn summary(report: &BuildReport, json: bool) {
    if json {
        output::json_line(&json!({
            "type": "summary",
            "buildpacks": report.runs.len(),
            "buildpack_seconds": report.buildpack_time.as_secs_f64(),
        }));
        return;
    }
    println!();
    println!("{:<40} {:>8}  LAYERS", "BUILDPACK", "TIME");
    for run in &report.runs {
        let names: Vec<_> = run.layers.iter().map(|l| l.name.as_str()).collect();
        println!(
            "{:<40} {:>8}  {}",
            run.buildpack.to_string(),
            secs(run.elapsed),
            names.join(", ")
        );
    }
    println!("time in buildpacks: {}", secs(report.buildpack_time));
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}
