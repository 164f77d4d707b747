//! `layerize check`: did the buildpack that just ran change a committed layer?

use clap::Args;
use layerize::BuildpackId;
use layerize::error::{Error, Result};
use layerize::guard::{self, CheckOptions, LayerChange, Policy, RestoreReport};
use layerize::snapshot::display_path;
use serde_json::json;

use super::commit::GuardArgs;
use super::output::{self, OutputArgs};

/// `layerize check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub guard: GuardArgs,
    /// The buildpack that just ran: changes are attributed to it.
    #[arg(long)]
    pub by: BuildpackId,
    /// What to do about a changed layer.
    #[arg(long, value_enum, default_value_t = Policy::Warn)]
    pub policy: Policy,
    /// Also re-hash every file (catches a change made with the clock set back).
    #[arg(long)]
    pub verify_content: bool,
    /// Put changed layers back to their committed state.
    #[arg(long)]
    pub restore: bool,
    #[command(flatten)]
    pub out: OutputArgs,
}

pub fn run(args: CheckArgs) -> Result<()> {
    let (layers, paths) = args.guard.resolve()?;
    let options = CheckOptions {
        paths,
        policy: args.policy,
        verify_content: args.verify_content,
        restore: args.restore,
    };
    let report = guard::check(&layers, &args.by, &options)?;
    if report.policy != Policy::Ignore {
        if args.out.json {
            report
                .changed
                .iter()
                .map(change_json)
                .for_each(|v| output::json_line(&v));
        } else {
            print_table(&report.changed, report.checked);
        }
        if args.restore && !args.out.json {
            super::restore::print(
                &RestoreReport {
                    layers: report.restored.clone(),
                },
                false,
            );
        }
    }
    if report.violation() {
        return Err(Error::Violation {
            count: report.changed.len(),
            by: args.by.to_string(),
        });
    }
    Ok(())
}

fn change_json(c: &LayerChange) -> serde_json::Value {
    let details: Vec<_> = c
        .changes
        .modified
        .iter()
        .map(|m| json!({"path": display_path(&m.path), "what": m.what}))
        .collect();
    json!({
        "owner": c.owner,
        "layer": c.layer,
        "by": c.by,
        "added": c.added_paths(),
        "removed": c.removed_paths(),
        "modified": c.modified_paths(),
        "details": details,
        "adopted": c.adopted,
        "delta": c.delta,
    })
}

fn print_table(changed: &[LayerChange], checked: usize) {
    if changed.is_empty() {
        println!("{checked} layer(s) checked: none changed");
        return;
    }
    println!(
        "{:<32} {:<20} {:<32} {:>5} {:>7} {:>8}",
        "OWNER", "LAYER", "CHANGED BY", "ADDED", "REMOVED", "MODIFIED"
    );
    for c in changed {
        println!(
            "{:<32} {:<20} {:<32} {:>5} {:>7} {:>8}",
            c.owner.as_str(),
            c.layer,
            c.by.as_str(),
            c.changes.added.len(),
            c.changes.removed.len(),
            c.changes.modified.len()
        );
    }
    for c in changed {
        println!("\n{}:{}", c.owner, c.layer);
        for p in c.added_paths() {
            println!("  + {p}");
        }
        for p in c.removed_paths() {
            println!("  - {p}");
        }
        for m in &c.changes.modified {
            let what: Vec<String> = m
                .what
                .iter()
                .map(|w| {
                    serde_json::to_value(w)
                        .expect("serializes")
                        .as_str()
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
            println!("  ~ {} ({})", display_path(&m.path), what.join(", "));
        }
        if let Some(delta) = &c.delta {
            println!("  captured as delta {delta}");
        }
    }
}
