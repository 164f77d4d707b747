//! `restore`: a changed layer back to its committed state, touching only what changed.
//!
//! Added entries are deleted; removed, retyped, rewritten and re-linked ones are re-extracted
//! from the stored tars (the original, then its captured deltas in order, whiteouts applied),
//! streamed through [`Store::open_blob`] so the bytes are verified; mode, owner and the
//! original mtime (from the snapshot, not the tar's normalized one) are set back. A layer dir
//! that is gone is re-extracted whole. Then the snapshot is refreshed with the new ctimes and
//! inodes, so the next `commit` of the layer is a cache hit with the same diffID.
//!
//! # Security
//! Only paths listed in the snapshot (names our own walk produced: relative, no `..`) are
//! written, each parent must be a real directory inside the layer dir (a symlink there is
//! refused, never followed), and files are created with `O_NOFOLLOW` after the old entry is
//! removed.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use filetime::FileTime;
use serde::Serialize;

use super::{GuardPaths, latest_record, snapshot_digest};
use crate::archive::extract::{remove_path, replace_with_file};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layers_dir::{BuildpackId, LayersDir};
use crate::snapshot::{self, EntryKind, EntryStat, Snapshot, What};
use crate::store::{LayerRecord, Store};

/// Options of [`restore`].
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Store and in-image layers root.
    pub paths: GuardPaths,
}

/// A layer that was put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoredLayer {
    /// Owner of the layer.
    pub owner: BuildpackId,
    /// Layer name.
    pub layer: String,
    /// Entries re-extracted from the stored tars.
    pub rewritten: u64,
    /// Entries deleted (added since the commit).
    pub deleted: u64,
    /// Entries whose mode, owner or mtime alone were set back.
    pub fixed: u64,
    /// The layer's diffID (a re-commit gives it again).
    pub diff_id: Digest,
}

/// What [`restore`] did: the layers that needed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RestoreReport {
    /// Layers put back.
    pub layers: Vec<RestoredLayer>,
}

/// Puts every committed layer that differs from its expected state back into it.
///
/// # Errors
/// [`Error::Read`] for a missing or corrupt stored tar, [`Error::Hostile`] when a symlink
/// stands where a directory of the layer should be, [`Error::Write`] when writing fails,
/// [`Error::Changed`] when the tree does not reach the committed state.
pub fn restore(layers: &LayersDir, options: &RestoreOptions) -> Result<RestoreReport> {
    let store = options.paths.open_store(layers)?;
    let _lock = store.lock()?;
    let mut report = RestoreReport::default();
    let all = store.records()?;
    for record in all.iter().filter(|r| r.delta_of.is_none()) {
        let latest = latest_record(&all, record);
        let expected = Snapshot::load(&store, snapshot_digest(&store, latest)?)?;
        let dir = layers.buildpack_dir(&record.owner).join(&record.layer);
        let fresh = Snapshot::walk(&dir)?;
        if !fresh.is_some_and(|f| snapshot::identical(&expected, &f)) {
            report
                .layers
                .push(restore_layer(&store, layers, record, &expected)?);
        }
    }
    Ok(report)
}

/// Puts one layer (`original` is its own record, not a delta's) back into `expected`; the
/// caller holds the store lock.
pub(super) fn restore_layer(
    store: &Store,
    layers: &LayersDir,
    original: &LayerRecord,
    expected: &Snapshot,
) -> Result<RestoredLayer> {
    let original = match &original.delta_of {
        Some(of) => store.record(&of.owner, &of.layer)?.ok_or_else(|| {
            Error::invalid(
                store.root(),
                format!("delta {} has no original", original.layer),
            )
        })?,
        None => original.clone(),
    };
    let dir = layers.buildpack_dir(&original.owner).join(&original.layer);
    let fresh = Snapshot::walk(&dir)?.unwrap_or_default();
    let changes = snapshot::diff(expected, &fresh);
    let want: HashMap<&[u8], &EntryStat> = expected
        .entries
        .iter()
        .map(|e| (e.path.as_slice(), e))
        .collect();
    let mut done = RestoredLayer {
        owner: original.owner.clone(),
        layer: original.layer.clone(),
        rewritten: 0,
        deleted: 0,
        fixed: 0,
        diff_id: original.diff_id.clone(),
    };

    for path in changes.added.iter().rev() {
        remove_path(&snapshot::join(&dir, path))?;
        done.deleted += 1;
    }
    let mut needed: HashSet<Vec<u8>> = changes.removed.iter().cloned().collect();
    for m in &changes.modified {
        if m.what
            .iter()
            .any(|w| matches!(w, What::Type | What::Content | What::LinkTarget))
        {
            if m.what.contains(&What::Type) {
                remove_path(&snapshot::join(&dir, &m.path))?;
            }
            needed.insert(m.path.clone());
        }
    }
    if !needed.is_empty() {
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(Error::write(parent))?;
        }
        let mut tars = vec![original.clone()];
        tars.extend(store.deltas_of(&original.owner, &original.layer)?);
        for tar in &tars {
            done.rewritten += extract_needed(store, tar, &dir, &needed)?;
        }
    }
    done.fixed = set_back_attributes(&dir, &want)?;

    let after = Snapshot::walk(&dir)?.unwrap_or_default();
    if let Some(what) = first_difference(expected, &after) {
        return Err(Error::Changed {
            path: dir,
            what: format!("restore did not reach the committed state: {what}"),
        });
    }
    // New ctimes and inodes, same content: the refreshed snapshot makes the next commit a hit.
    let refreshed = Snapshot {
        entries: after
            .entries
            .into_iter()
            .map(|mut e| {
                e.content = want.get(e.path.as_slice()).and_then(|w| w.content.clone());
                e
            })
            .collect(),
    };
    let digest = refreshed.save(store)?;
    let mut latest = store
        .deltas_of(&original.owner, &original.layer)?
        .pop()
        .unwrap_or(original);
    latest.snapshot = Some(digest);
    store.put_record(&latest)?;
    Ok(done)
}

/// Writes the entries of `tar` whose relative path is in `needed`; applies its whiteouts to
/// them. Reads the blob to its end so its digest is verified.
fn extract_needed(
    store: &Store,
    tar: &LayerRecord,
    dir: &Path,
    needed: &HashSet<Vec<u8>>,
) -> Result<u64> {
    let blob_path = store.blob_path(&tar.diff_id);
    let corrupt = |e: io::Error| Error::Read {
        path: blob_path.clone(),
        source: e,
    };
    let prefix = tar.image_path.clone().unwrap_or_default().into_bytes();
    let mut reader = store.open_blob(&tar.diff_id)?;
    let mut written = 0;
    {
        let mut archive = tar::Archive::new(&mut reader);
        for entry in archive.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            let name = entry.path_bytes().into_owned();
            let Some(rel) = relative_to(&name, &prefix) else {
                continue;
            };
            let base_start = rel.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
            if let Some(hidden) = rel[base_start..].strip_prefix(b".wh.") {
                let mut victim = rel[..base_start].to_vec();
                victim.extend_from_slice(hidden);
                if needed.contains(&victim) {
                    remove_path(&snapshot::join(dir, &victim))?;
                }
                continue;
            }
            if needed.contains(rel) {
                write_entry(dir, rel, &mut entry, &blob_path)?;
                written += 1;
            }
        }
    }
    io::copy(&mut reader, &mut io::sink()).map_err(corrupt)?;
    Ok(written)
}

/// `name` relative to `prefix` (empty for the prefix itself), or `None` outside it.
fn relative_to<'a>(name: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let rest = name.strip_prefix(prefix)?;
    match rest {
        [] | [b'/'] => Some(&[]),
        [b'/', rel @ ..] => Some(rel.strip_suffix(b"/").unwrap_or(rel)),
        _ => None,
    }
}

fn write_entry<R: Read>(
    dir: &Path,
    rel: &[u8],
    entry: &mut tar::Entry<'_, R>,
    blob: &Path,
) -> Result<()> {
    ensure_parents(dir, rel)?;
    let path = snapshot::join(dir, rel);
    match entry.header().entry_type() {
        tar::EntryType::Directory => match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => Ok(()),
            _ => {
                remove_path(&path)?;
                fs::create_dir(&path).map_err(Error::write(&path))
            }
        },
        tar::EntryType::Regular => {
            let mut file = replace_with_file(&path)?;
            io::copy(entry, &mut file).map_err(Error::write(&path))?;
            Ok(())
        }
        tar::EntryType::Symlink => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| Error::invalid(blob, "symlink entry without a target"))?
                .into_owned();
            remove_path(&path)?;
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &path)
                .map_err(Error::write(&path))
        }
        other => Err(Error::invalid(
            blob,
            format!("unexpected entry type {other:?} in a stored layer"),
        )),
    }
}

/// Makes every parent of `rel` below `dir` a real directory, refusing symlinks.
fn ensure_parents(dir: &Path, rel: &[u8]) -> Result<()> {
    let mut end = 0;
    while let Some(i) = rel[end..].iter().position(|&b| b == b'/') {
        end += i;
        let path = snapshot::join(dir, &rel[..end]);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::Hostile {
                    archive: dir.to_path_buf(),
                    entry: String::from_utf8_lossy(rel).into_owned(),
                    reason: format!(
                        "{} is not a directory: refusing to write through it",
                        path.display()
                    ),
                });
            }
            Err(_) => fs::create_dir(&path).map_err(Error::write(&path))?,
        }
        end += 1;
    }
    Ok(())
}

/// Sets mode, owner and mtime of every entry back to the snapshot's; returns how many needed it.
fn set_back_attributes(dir: &Path, want: &HashMap<&[u8], &EntryStat>) -> Result<u64> {
    let now = Snapshot::walk(dir)?.unwrap_or_default();
    let mut fixed = 0;
    // Children before parents: nothing below a directory changes after its mtime is set.
    for e in now.entries.iter().rev() {
        let Some(w) = want.get(e.path.as_slice()) else {
            continue;
        };
        let path = snapshot::join(dir, &e.path);
        let mut touched = false;
        if e.kind != EntryKind::Symlink && e.mode != w.mode {
            fs::set_permissions(&path, fs::Permissions::from_mode(w.mode))
                .map_err(Error::write(&path))?;
            touched = true;
        }
        if e.uid != w.uid || e.gid != w.gid {
            std::os::unix::fs::lchown(&path, Some(w.uid), Some(w.gid))
                .map_err(Error::write(&path))?;
            touched = true;
        }
        if e.mtime != w.mtime {
            let mtime = FileTime::from_unix_time(w.mtime.secs, w.mtime.nanos as u32);
            filetime::set_symlink_file_times(&path, mtime, mtime).map_err(Error::write(&path))?;
            touched = true;
        }
        fixed += u64::from(touched);
    }
    Ok(fixed)
}

/// The first way `after` differs from `expected` in anything but ctime, inode and device.
fn first_difference(expected: &Snapshot, after: &Snapshot) -> Option<String> {
    if expected.entries.len() != after.entries.len() {
        return Some(format!(
            "{} entries, expected {}",
            after.entries.len(),
            expected.entries.len()
        ));
    }
    expected
        .entries
        .iter()
        .zip(&after.entries)
        .find_map(|(w, a)| {
            let same = w.path == a.path && w.same_written_stat(a);
            (!same).then(|| format!("{} differs", w.display_path()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_taken_relative_to_the_layer_prefix_only() {
        assert_eq!(
            relative_to(b"/layers/a/rt", b"/layers/a/rt"),
            Some(&b""[..])
        );
        assert_eq!(
            relative_to(b"/layers/a/rt/bin/x", b"/layers/a/rt"),
            Some(&b"bin/x"[..])
        );
        assert_eq!(relative_to(b"/layers/a/rt2/x", b"/layers/a/rt"), None);
        assert_eq!(relative_to(b"/layers/a", b"/layers/a/rt"), None);
    }
}
