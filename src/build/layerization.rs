//! Layerization between buildpacks: the calls into [`crate::guard`] a build makes, and their
//! results in build terms.
//!
//! After each buildpack: [`guard::commit`] of its layers (cache hits cost an `lstat` walk),
//! then [`guard::check`] of every committed layer, the changes attributed to that buildpack;
//! under `warn` and `ignore` the changed layers are restored, so the next buildpack and the
//! image see the committed state; under `capture` they stay changed and the delta layer
//! (owned by the buildpack that changed them) carries the change; under `fail` they are left
//! as found, for inspection, and the build stops. After the last buildpack, deferred layers are
//! committed ([`guard::finalize`]).
//!
//! This module only orchestrates; every layer byte and every comparison is the guard's.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::digest::Digest;
use crate::error::Result;
use crate::guard::{
    self, CheckOptions, CheckReport, CommitOptions, CommitOutcome, CommitReport, GuardPaths, Policy,
};
use crate::layers_dir::{BuildpackId, LayersDir};
use crate::store::{Deferred, LayerRecord, Store};

/// How layers are layerized between buildpacks.
#[derive(Debug, Clone, Default)]
pub struct LayerizeOptions {
    /// Store, in-image layers root and tar owner.
    pub paths: GuardPaths,
    /// What to do about a buildpack that changed an earlier buildpack's layer.
    pub policy: Policy,
    /// Layers committed only after the last buildpack.
    pub defer: Vec<Deferred>,
}

/// One layer a buildpack's commit produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerSummary {
    /// Owning buildpack.
    pub owner: BuildpackId,
    /// Layer name.
    pub layer: String,
    /// Committed, cache hit, deferred, or no directory.
    pub outcome: CommitOutcome,
    /// diffID, once committed.
    pub diff_id: Option<Digest>,
    /// Size of the uncompressed tar, once committed.
    pub size: Option<u64>,
    /// Entries in the layer.
    pub files: u64,
}

/// What layerization did after one buildpack.
#[derive(Debug, Clone)]
pub struct AfterBuildpack {
    /// Its layers, as committed.
    pub layers: Vec<LayerSummary>,
    /// The check of all committed layers, changes attributed to it.
    pub check: CheckReport,
    /// Wall time of commit and check.
    pub elapsed: Duration,
}

/// What layerization did after the last buildpack.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The deferred layers, now committed.
    pub finalized: Vec<LayerSummary>,
    /// Every record in the store: committed layers and captured deltas, by owner and name.
    pub records: Vec<LayerRecord>,
    /// Wall time of the finalize.
    pub elapsed: Duration,
}

/// Commits `id`'s layers, then checks every committed layer against its record, attributing
/// changes to `id`.
///
/// # Errors
/// As [`guard::commit`] and [`guard::check`]. A change is not an error here: see
/// [`CheckReport::violation`].
pub fn after_buildpack(
    layers: &LayersDir,
    id: &BuildpackId,
    opts: &LayerizeOptions,
) -> Result<AfterBuildpack> {
    let started = Instant::now();
    let commit_opts = CommitOptions {
        paths: opts.paths.clone(),
        defer: opts.defer.clone(),
        ..CommitOptions::default()
    };
    let committed = guard::commit(layers, id, &commit_opts)?;
    let check = guard::check(
        layers,
        id,
        &CheckOptions {
            paths: opts.paths.clone(),
            policy: opts.policy,
            verify_content: false,
            restore: matches!(opts.policy, Policy::Warn | Policy::Ignore),
        },
    )?;
    let store = opts.paths.open_store(layers)?;
    Ok(AfterBuildpack {
        layers: summarize(&store, committed)?,
        check,
        elapsed: started.elapsed(),
    })
}

/// Commits the deferred layers and lists what the store holds at the end of the build.
///
/// # Errors
/// As [`guard::finalize`] and [`Store::records`].
pub fn finish(layers: &LayersDir, opts: &LayerizeOptions) -> Result<Finished> {
    let started = Instant::now();
    let commit_opts = CommitOptions {
        paths: opts.paths.clone(),
        ..CommitOptions::default()
    };
    let finalized = guard::finalize(layers, &commit_opts)?;
    let store = opts.paths.open_store(layers)?;
    Ok(Finished {
        finalized: summarize(&store, finalized)?,
        records: store.records()?,
        elapsed: started.elapsed(),
    })
}

/// Commit results with the tar sizes from their records.
fn summarize(store: &Store, report: CommitReport) -> Result<Vec<LayerSummary>> {
    report
        .layers
        .into_iter()
        .map(|l| {
            let size = match l.diff_id {
                Some(_) => store.record(&l.owner, &l.layer)?.map(|r| r.size),
                None => None,
            };
            Ok(LayerSummary {
                owner: l.owner,
                layer: l.layer,
                outcome: l.outcome,
                diff_id: l.diff_id,
                size,
                files: l.files,
            })
        })
        .collect()
}
