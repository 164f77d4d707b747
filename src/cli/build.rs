//! `layerize build`: runs a buildpack group over a layers dir, layerizing between buildpacks,
//! and ends with a summary: layers per buildpack (diffIDs, sizes), who changed whose layer,
//! time in buildpacks vs in layerization.
//!
//! Buildpack output is passed on with a `[<id>] ` prefix: stdout to stdout and stderr to
//! stderr, or both to stderr with `--json` (stdout then carries only JSON lines: one
//! `"type": "buildpack"` object per buildpack, one `"type": "change"` object per changed layer,
//! a final `"type": "summary"`). On a terminal, a header per buildpack and a spinner while its
//! layers are layerized go to stderr.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use layerize::LayoutRef;
use layerize::build::ExportTarget;
use layerize::build::{self, BuildEnv, BuildOptions, BuildReport, Event, LayerizeOptions, Stream};
use layerize::build::{BuildpackRun, LayerSummary};
use layerize::error::{EXIT_OK, Error, Result};
use layerize::export::created_from_env;
use layerize::guard::{GuardPaths, Policy};
use layerize::normalize::DEFAULT_LAYERS_ROOT;
use layerize::{Deferred, LayerRecord};
use serde_json::json;

use super::check::{change_json, print_table};
use super::commit::parse_deferred;
use super::output::{self, OutputArgs};
use super::owner::OwnerArgs;

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
    /// What to do when a buildpack changed an earlier buildpack's layer: warn (report and
    /// restore it), fail (exit 3), ignore (restore silently), capture (keep the change as a
    /// delta layer owned by the buildpack that made it).
    #[arg(long, value_enum, default_value_t = Policy::Warn)]
    pub policy: Policy,
    /// A layer (ID:LAYER) committed only after the last buildpack; repeatable.
    #[arg(long, value_parser = parse_deferred)]
    pub defer: Vec<Deferred>,
    /// Store directory [default: <layers>/.layerize].
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Export the image after the final commit to an OCI layout: `oci:DIR[:TAG]`.
    #[arg(long)]
    pub output: Option<LayoutRef>,
    /// Run image to export on, as oci:DIR[:TAG].
    #[arg(long, requires = "output")]
    pub run_image: Option<LayoutRef>,
    /// Volume cache dir: restored before the first buildpack, saved at the end.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    pub out: OutputArgs,
}

pub fn run(args: BuildArgs) -> Result<i32> {
    let export = match args.output {
        Some(output) => Some(ExportTarget {
            output,
            run_image: args.run_image,
            created: created_from_env(std::env::var("SOURCE_DATE_EPOCH").ok().as_deref())
                .map_err(|reason| Error::invalid("<environment>", reason))?,
        }),
        None => None,
    };
    let opts = BuildOptions {
        app: args.app,
        buildpacks: args.buildpacks,
        group: args.group,
        layers: args.layers,
        platform: args.platform,
        env: BuildEnv::base(std::env::vars_os()),
        layerize: LayerizeOptions {
            paths: GuardPaths {
                store: args.store,
                layers_root: DEFAULT_LAYERS_ROOT.to_owned(),
                owner: OwnerArgs::default().owner()?,
            },
            policy: args.policy,
            defer: args.defer,
        },
        cache_dir: args.cache_dir,
        export,
    };
    let mut renderer = Renderer {
        json: args.out.json,
        tty: !args.out.json && std::io::stderr().is_terminal(),
        spinner: None,
    };
    let report = build::build(&opts, &mut |event| renderer.render(event))?;
    let warnings = report.delivered.restored.iter().flat_map(|r| &r.warnings);
    for warning in warnings.chain(report.delivered.exported.iter().flat_map(|r| &r.warnings)) {
        output::warn(warning);
    }
    if args.out.json {
        summary_json(&report);
    } else {
        summary_text(&report, args.policy);
    }
    Ok(EXIT_OK)
}

/// Renders build events as they come.
struct Renderer {
    json: bool,
    tty: bool,
    spinner: Option<ProgressBar>,
}

impl Renderer {
    fn render(&mut self, event: Event<'_>) {
        match event {
            Event::Started {
                buildpack,
                index,
                total,
            } if self.tty => {
                eprintln!(
                    "==> [{}/{total}] {buildpack} (API {})",
                    index + 1,
                    buildpack.api
                );
            }
            Event::Started { .. } => {}
            Event::Output {
                buildpack,
                stream,
                line,
            } => {
                let prefixed = [format!("[{}] ", buildpack.id).as_bytes(), line, b"\n"].concat();
                let _ = match (stream, self.json) {
                    (Stream::Stdout, false) => std::io::stdout().lock().write_all(&prefixed),
                    _ => std::io::stderr().lock().write_all(&prefixed),
                };
            }
            Event::Layerizing { buildpack } if self.tty => {
                let bar = ProgressBar::new_spinner()
                    .with_message(format!("layerizing the layers of {}", buildpack.id));
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .expect("valid template"),
                );
                bar.enable_steady_tick(Duration::from_millis(120));
                self.spinner = Some(bar);
            }
            Event::Layerizing { .. } => {}
            Event::Finished { run } => {
                if let Some(bar) = self.spinner.take() {
                    bar.finish_and_clear();
                }
                if self.json {
                    run_json(run);
                } else if run.layerized.check.policy != Policy::Ignore
                    && !run.layerized.check.changed.is_empty()
                {
                    println!(
                        "layerize: {} changed {} committed layer(s):",
                        run.buildpack.id,
                        run.layerized.check.changed.len()
                    );
                    print_table(&run.layerized.check.changed, run.layerized.check.checked);
                }
            }
        }
    }
}

fn layer_json(l: &LayerSummary) -> serde_json::Value {
    json!({
        "owner": l.owner,
        "layer": l.layer,
        "outcome": l.outcome,
        "diff_id": l.diff_id,
        "size": l.size,
        "files": l.files,
    })
}

/// One `buildpack` line, then one `change` line per layer it changed.
fn run_json(run: &BuildpackRun) {
    output::json_line(&json!({
        "type": "buildpack",
        "buildpack": run.buildpack.id,
        "version": run.buildpack.version,
        "api": run.buildpack.api.to_string(),
        "seconds": run.elapsed.as_secs_f64(),
        "layerize_seconds": run.layerized.elapsed.as_secs_f64(),
        "layers": run.layerized.layers.iter().map(layer_json).collect::<Vec<_>>(),
        "ignored": run.ignored,
    }));
    if run.layerized.check.policy == Policy::Ignore {
        return;
    }
    for change in &run.layerized.check.changed {
        let mut value = change_json(change);
        value["type"] = json!("change");
        output::json_line(&value);
    }
}

fn record_json(r: &LayerRecord) -> serde_json::Value {
    json!({
        "owner": r.owner,
        "layer": r.layer,
        "diff_id": r.diff_id,
        "size": r.size,
        "delta_of": r.delta_of.as_ref().map(|d| format!("{}:{}", d.owner, d.layer)),
    })
}

fn summary_json(report: &BuildReport) {
    output::json_line(&json!({
        "type": "summary",
        "buildpacks": report.runs.len(),
        "buildpack_seconds": report.buildpack_time.as_secs_f64(),
        "layerize_seconds": report.layerize_time.as_secs_f64(),
        "finalized": report.finished.finalized.iter().map(layer_json).collect::<Vec<_>>(),
        "layers": report.finished.records.iter().map(record_json).collect::<Vec<_>>(),
        "deliver_seconds": report.deliver_time.as_secs_f64(),
        "cache_restored": report.delivered.restored,
        "exported": report.delivered.exported,
        "cache_saved": report.delivered.saved,
    }));
}

fn summary_text(report: &BuildReport, policy: Policy) {
    println!();
    println!(
        "{:<28} {:<16} {:<10} {:<19} {:>10} {:>7}",
        "BUILDPACK", "LAYER", "OUTCOME", "DIFF ID", "SIZE", "FILES"
    );
    let rows = report
        .runs
        .iter()
        .flat_map(|r| &r.layerized.layers)
        .chain(&report.finished.finalized);
    for l in rows {
        let outcome = serde_json::to_value(l.outcome).expect("serializes");
        println!(
            "{:<28} {:<16} {:<10} {:<19} {:>10} {:>7}",
            l.owner.as_str(),
            l.layer,
            outcome.as_str().unwrap_or_default(),
            l.diff_id.as_ref().map_or("-".into(), short),
            l.size.map_or("-".into(), human_size),
            l.files
        );
    }
    for delta in report
        .finished
        .records
        .iter()
        .filter(|r| r.delta_of.is_some())
    {
        let of = delta.delta_of.as_ref().expect("filtered");
        println!(
            "{:<28} {:<16} {:<10} {:<19} {:>10} {:>7}",
            delta.owner.as_str(),
            format!("Δ {}", of.layer),
            "delta",
            short(&delta.diff_id),
            human_size(delta.size),
            delta.files
        );
    }
    println!();
    let changes: Vec<String> = report
        .runs
        .iter()
        .flat_map(|r| &r.layerized.check.changed)
        .map(|c| format!("{} changed {}:{}", c.by, c.owner, c.layer))
        .collect();
    match (policy, changes.is_empty()) {
        (_, true) => println!("changes: no buildpack changed another's committed layer"),
        (Policy::Ignore, false) => println!("changes: {} (ignored, restored)", changes.len()),
        (Policy::Capture, false) => {
            println!("changes: {} (captured as deltas)", changes.join("; "))
        }
        (_, false) => println!("changes: {} (restored)", changes.join("; ")),
    }
    delivered_text(report);
    let total = report.buildpack_time + report.layerize_time;
    println!(
        "time: {} in buildpacks, {} in layerization ({:.1}% of {})",
        secs(report.buildpack_time),
        secs(report.layerize_time),
        100.0 * report.layerize_time.as_secs_f64() / total.as_secs_f64().max(f64::EPSILON),
        secs(total)
    );
}

/// One line each for the cache restore, the export and the cache save, those that ran.
fn delivered_text(report: &BuildReport) {
    let d = &report.delivered;
    if let Some(r) = &d.restored {
        let names: Vec<&str> = r.layers.iter().map(|l| l.name.as_str()).collect();
        println!(
            "cache: restored {} layer(s){}{}",
            names.len(),
            if names.is_empty() { "" } else { ": " },
            names.join(", ")
        );
    }
    if let Some(e) = &d.exported {
        println!(
            "image: {} ({} layers, manifest {})",
            e.image,
            e.layers.len(),
            short(&e.manifest)
        );
    }
    if let Some(s) = &d.saved {
        match s.unchanged {
            true => println!("cache: saved to {} (unchanged)", s.cache_dir.display()),
            false => println!(
                "cache: saved {} layer(s) to {}",
                s.layers.len(),
                s.cache_dir.display()
            ),
        }
    }
    if d.restored.is_some() || d.exported.is_some() || d.saved.is_some() {
        println!("time: {} in cache and export", secs(report.deliver_time));
    }
}

/// `sha256:` and the first 12 hex digits.
fn short(d: &layerize::Digest) -> String {
    let text = d.to_string();
    text.chars().take("sha256:".len() + 12).collect()
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} B"),
    }
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}
