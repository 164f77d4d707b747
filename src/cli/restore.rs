//! `layerize restore`: committed layers back to their committed state.

use clap::Args;
use layerize::Result;
use layerize::guard::{self, RestoreOptions, RestoreReport};

use super::commit::GuardArgs;
use super::output::{self, OutputArgs};

/// `layerize restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub guard: GuardArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

pub fn run(args: RestoreArgs) -> Result<()> {
    let (layers, paths) = args.guard.resolve()?;
    let report = guard::restore(&layers, &RestoreOptions { paths })?;
    print(&report, args.out.json);
    Ok(())
}

/// Prints restored layers: one JSON object each, or a table.
pub fn print(report: &RestoreReport, json: bool) {
    if json {
        report.layers.iter().for_each(output::json_line);
        return;
    }
    if report.layers.is_empty() {
        println!("every committed layer is in its committed state");
        return;
    }
    println!(
        "{:<32} {:<20} {:>9} {:>7} {:>5}  DIFF_ID",
        "OWNER", "LAYER", "REWRITTEN", "DELETED", "FIXED"
    );
    for l in &report.layers {
        println!(
            "{:<32} {:<20} {:>9} {:>7} {:>5}  {}",
            l.owner.as_str(),
            l.layer,
            l.rewritten,
            l.deleted,
            l.fixed,
            l.diff_id
        );
    }
}
