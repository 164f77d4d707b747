//! `check`: every committed layer against its snapshot, after a buildpack ran.
//!
//! The fast tier is one `lstat` walk per layer (no content read) compared to the snapshot;
//! `verify_content` re-hashes every file and compares it to the snapshot's content digest,
//! for the change even ctime misses (a clock set back). Layers are examined in parallel.

use std::collections::HashMap;
use std::fs::File;

use rayon::prelude::*;
use serde::Serialize;

use super::{GuardPaths, delta, latest_record, restore, snapshot_digest};
use crate::digest::{Digest, digest_reader};
use crate::error::{Error, Result};
use crate::layers_dir::{BuildpackId, LayersDir};
use crate::snapshot::{self, Changes, EntryKind, Modified, Snapshot, What, display_path};
use crate::store::{LayerRecord, Store};

/// What to do about a changed layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Report and succeed.
    #[default]
    Warn,
    /// Report and fail (exit code 3).
    Fail,
    /// Say nothing.
    Ignore,
    /// Record the change as a delta layer owned by the modifying buildpack.
    Capture,
}

/// Options of [`check`].
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Store, in-image layers root and tar owner (for captured deltas).
    pub paths: GuardPaths,
    /// What to do about a change.
    pub policy: Policy,
    /// Also re-hash every file and compare it to its committed digest.
    pub verify_content: bool,
    /// Put changed layers back to their committed state afterwards.
    pub restore: bool,
}

/// A committed (or adopted) layer that changed.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerChange {
    /// Owner of the layer.
    pub owner: BuildpackId,
    /// Layer name.
    pub layer: String,
    /// The buildpack that changed it (the one that just ran).
    pub by: BuildpackId,
    /// True for a layer restored from cache and not yet committed by its owner.
    pub adopted: bool,
    /// The changes, against the layer's expected state.
    pub changes: Changes,
    /// diffID of the delta layer recorded under policy `capture`.
    pub delta: Option<Digest>,
}

impl LayerChange {
    /// Added paths as text.
    pub fn added_paths(&self) -> Vec<String> {
        self.changes.added.iter().map(|p| display_path(p)).collect()
    }

    /// Removed paths as text.
    pub fn removed_paths(&self) -> Vec<String> {
        self.changes
            .removed
            .iter()
            .map(|p| display_path(p))
            .collect()
    }

    /// Modified paths as text.
    pub fn modified_paths(&self) -> Vec<String> {
        self.changes
            .modified
            .iter()
            .map(|m| display_path(&m.path))
            .collect()
    }
}

/// What [`check`] found and did.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// The buildpack the changes are attributed to.
    pub by: BuildpackId,
    /// The policy applied.
    pub policy: Policy,
    /// Layers examined.
    pub checked: usize,
    /// Layers that changed.
    pub changed: Vec<LayerChange>,
    /// Layers put back (with `restore`).
    pub restored: Vec<restore::RestoredLayer>,
}

impl CheckReport {
    /// True when the policy is `fail` and a layer changed: the CLI exits 3.
    pub fn violation(&self) -> bool {
        self.policy == Policy::Fail && !self.changed.is_empty()
    }
}

/// A layer to examine.
struct Target {
    owner: BuildpackId,
    layer: String,
    adopted: bool,
    /// Digest of the snapshot of the expected state.
    snapshot: Digest,
    /// The layer's own record and the one the expected state belongs to (itself or its last
    /// delta); `None` if adopted.
    records: Option<(LayerRecord, LayerRecord)>,
}

/// Compares every committed layer, and every adopted layer not owned by `by`, to its expected
/// state, attributes the changes to `by` and applies the policy.
///
/// # Errors
/// [`Error::Read`] for a layer that cannot be walked or a corrupt stored snapshot,
/// [`Error::Write`] when capturing or restoring fails. A change is not an error: see
/// [`CheckReport::violation`].
pub fn check(layers: &LayersDir, by: &BuildpackId, options: &CheckOptions) -> Result<CheckReport> {
    let store = options.paths.open_store(layers)?;
    let _lock = store.lock()?;
    let all = store.records()?;
    let mut targets = Vec::new();
    for record in all.iter().filter(|r| r.delta_of.is_none()) {
        let latest = latest_record(&all, record);
        targets.push(Target {
            owner: record.owner.clone(),
            layer: record.layer.clone(),
            adopted: false,
            snapshot: snapshot_digest(&store, latest)?.clone(),
            records: Some((record.clone(), latest.clone())),
        });
    }
    for adoption in store.adoptions()? {
        if &adoption.owner != by {
            targets.push(Target {
                snapshot: adoption.snapshot,
                owner: adoption.owner,
                layer: adoption.layer,
                adopted: true,
                records: None,
            });
        }
    }
    let examined: Vec<Examined> = targets
        .par_iter()
        .map(|t| examine(&store, layers, t, options.verify_content))
        .collect::<Result<_>>()?;

    let mut report = CheckReport {
        by: by.clone(),
        policy: options.policy,
        checked: targets.len(),
        changed: Vec::new(),
        restored: Vec::new(),
    };
    for (
        target,
        Examined {
            expected,
            changes,
            fresh,
        },
    ) in targets.iter().zip(examined)
    {
        if changes.is_empty() {
            continue;
        }
        let mut change = LayerChange {
            owner: target.owner.clone(),
            layer: target.layer.clone(),
            by: by.clone(),
            adopted: target.adopted,
            changes,
            delta: None,
        };
        if let (Policy::Capture, Some((_, latest)), Some(fresh)) =
            (options.policy, &target.records, &fresh)
        {
            let dir = layers.buildpack_dir(&target.owner).join(&target.layer);
            let record = delta::capture(
                &store,
                layers,
                &options.paths,
                latest,
                by,
                &dir,
                &expected,
                fresh,
                &change.changes,
            )?;
            change.delta = Some(record.diff_id);
        } else if let (true, Some((original, _))) = (options.restore, &target.records) {
            report
                .restored
                .push(restore::restore_layer(&store, layers, original, &expected)?);
        }
        report.changed.push(change);
    }
    Ok(report)
}

/// One examined layer: its expected state, the changes, the fresh snapshot (`None` when the
/// directory is gone).
struct Examined {
    expected: Snapshot,
    changes: Changes,
    fresh: Option<Snapshot>,
}

fn examine(store: &Store, layers: &LayersDir, target: &Target, verify: bool) -> Result<Examined> {
    let expected = Snapshot::load(store, &target.snapshot)?;
    let dir = layers.buildpack_dir(&target.owner).join(&target.layer);
    let fresh = Snapshot::walk(&dir)?;
    let mut changes = snapshot::diff(&expected, fresh.as_ref().unwrap_or(&Snapshot::default()));
    if verify && let Some(fresh) = &fresh {
        verify_content(&dir, &expected, fresh, &mut changes)?;
    }
    Ok(Examined {
        expected,
        changes,
        fresh,
    })
}

/// Re-hashes every file present in both snapshots: a digest that differs is a content change
/// even when stat saw none; a stat change with the same digest is only [`What::Times`].
fn verify_content(
    dir: &std::path::Path,
    expected: &Snapshot,
    fresh: &Snapshot,
    changes: &mut Changes,
) -> Result<()> {
    let now: HashMap<&[u8], EntryKind> = fresh
        .entries
        .iter()
        .map(|e| (e.path.as_slice(), e.kind))
        .collect();
    let files: Vec<(&[u8], &Digest)> = expected
        .entries
        .iter()
        .filter(|e| {
            e.kind == EntryKind::File && now.get(e.path.as_slice()) == Some(&EntryKind::File)
        })
        .filter_map(|e| Some((e.path.as_slice(), e.content.as_ref()?)))
        .collect();
    let differs: Vec<(&[u8], bool)> = files
        .par_iter()
        .map(|&(path, digest)| {
            let full = snapshot::join(dir, path);
            let file = File::open(&full).map_err(Error::read(&full))?;
            let (found, _) = digest_reader(file).map_err(Error::read(&full))?;
            Ok((path, &found != digest))
        })
        .collect::<Result<_>>()?;
    for (path, content_differs) in differs {
        match changes.modified.iter_mut().find(|m| m.path == path) {
            Some(m) if !content_differs => {
                for what in &mut m.what {
                    if *what == What::Content {
                        *what = What::Times;
                    }
                }
            }
            None if content_differs => changes.modified.push(Modified {
                path: path.to_vec(),
                what: vec![What::Content],
            }),
            _ => {}
        }
    }
    let order: HashMap<&[u8], usize> = fresh
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.path.as_slice(), i))
        .collect();
    changes
        .modified
        .sort_by_key(|m| order.get(m.path.as_slice()).copied());
    Ok(())
}
