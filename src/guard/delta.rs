//! Capture: a later buildpack's change to a committed layer, kept as its own delta layer.
//!
//! The delta is an OCI changeset tar: the ancestors and the layer dir (so it applies on an empty
//! root too), every added or changed entry with the parent directories it needs, in the tar
//! writer's order and with its normalized headers, then one `.wh.<name>` whiteout per removed
//! entry (the topmost one of a removed subtree). Applied after the original layer, it gives
//! the modified tree. Its record is owned by the modifying buildpack, named
//! `<layer>@<escaped-owner>.<n>`, and carries the snapshot of the modified tree, which becomes
//! the layer's expected state.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::GuardPaths;
use crate::archive::header::{self, EntryType, Header};
use crate::compress::Compression;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layers_dir::{BuildpackId, LayersDir};
use crate::normalize::NORMALIZED_MTIME;
use crate::pipeline::BlobInfo;
use crate::snapshot::{self, Changes, EntryKind, EntryStat, Snapshot};
use crate::store::{DeltaOf, LayerRecord, Store};

/// Writes the delta of `changes` (from `expected` to `fresh`, the tree in `dir`) for the layer
/// whose latest record is `latest`, and records it as owned by `by`. The caller holds the lock.
#[allow(clippy::too_many_arguments)]
pub(super) fn capture(
    store: &Store,
    layers: &LayersDir,
    paths: &GuardPaths,
    latest: &LayerRecord,
    by: &BuildpackId,
    dir: &Path,
    expected: &Snapshot,
    fresh: &Snapshot,
    changes: &Changes,
) -> Result<LayerRecord> {
    let (owner, layer) = match &latest.delta_of {
        Some(of) => (of.owner.clone(), of.layer.clone()),
        None => (latest.owner.clone(), latest.layer.clone()),
    };
    let seq = store.deltas_of(&owner, &layer)?.len() as u32 + 1;
    let spec = paths.tar_spec(layers, &owner, &layer)?;
    let prefix = spec.name.clone().unwrap_or_default();

    let mut include: HashSet<&[u8]> = HashSet::new();
    let changed = changes
        .added
        .iter()
        .map(Vec::as_slice)
        .chain(changes.modified.iter().map(|m| m.path.as_slice()));
    for path in changed {
        include.insert(path);
        include.extend(parents(path));
    }
    let removed: HashSet<&[u8]> = changes.removed.iter().map(Vec::as_slice).collect();
    let mut whiteouts: Vec<&[u8]> = changes
        .removed
        .iter()
        .map(Vec::as_slice)
        .filter(|p| !parents(p).any(|parent| removed.contains(parent)))
        .collect();
    whiteouts.sort();
    for path in &whiteouts {
        include.extend(parents(path));
    }

    let mut blob = store.new_blob()?;
    let out_err = Error::write(store.root());
    let mut block = Vec::new();
    let mut put = |header: &Header<'_>, blob: &mut dyn Write| {
        block.clear();
        header::encode(header, &mut block);
        blob.write_all(&block)
    };
    for a in &spec.ancestors {
        put(
            &dir_header(&a.name, a.mode, a.owner.uid, a.owner.gid),
            &mut blob,
        )
        .map_err(Error::write(store.root()))?;
    }
    let old: HashMap<&[u8], &EntryStat> = expected
        .entries
        .iter()
        .map(|e| (e.path.as_slice(), e))
        .collect();
    let mut entries = Vec::with_capacity(fresh.entries.len());
    let mut files = 0;
    for e in &fresh.entries {
        let mut e = e.clone();
        e.content = old.get(e.path.as_slice()).and_then(|o| o.content.clone());
        if include.contains(e.path.as_slice()) {
            let name = full_name(&prefix, &e.path);
            let entry_type = match e.kind {
                EntryKind::Dir => EntryType::Dir,
                EntryKind::File => EntryType::File(e.size),
                EntryKind::Symlink => EntryType::Symlink,
            };
            let header = Header {
                name: &name,
                entry_type,
                link_target: &e.link_target,
                mode: e.mode,
                uid: paths.owner.uid,
                gid: paths.owner.gid,
                mtime: NORMALIZED_MTIME,
            };
            put(&header, &mut blob).map_err(Error::write(store.root()))?;
            if e.kind == EntryKind::File {
                e.content = Some(copy_content(&snapshot::join(dir, &e.path), &e, &mut blob)?);
            }
            files += 1;
        }
        entries.push(e);
    }
    for path in whiteouts {
        // Split the full name, so a removed layer dir whites out `<bp-dir>/.wh.<layer>`.
        let full = full_name(&prefix, path);
        let split = full.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
        let mut name = full[..split].to_vec();
        name.extend_from_slice(b".wh.");
        name.extend_from_slice(&full[split..]);
        let header = Header {
            name: &name,
            entry_type: EntryType::File(0),
            link_target: b"",
            mode: 0o644,
            uid: paths.owner.uid,
            gid: paths.owner.gid,
            mtime: NORMALIZED_MTIME,
        };
        put(&header, &mut blob).map_err(Error::write(store.root()))?;
        files += 1;
    }
    blob.write_all(&header::end_of_archive()).map_err(out_err)?;
    let (diff_id, size) = blob.commit()?;
    let record = LayerRecord {
        owner: by.clone(),
        layer: format!("{layer}@{}.{seq}", owner.escaped()),
        types: latest.types,
        metadata: serde_json::Value::Object(Default::default()),
        diff_id: diff_id.clone(),
        size,
        files,
        blobs: vec![BlobInfo {
            compression: Compression::None,
            digest: diff_id,
            size,
            media_type: Compression::None.media_type().to_owned(),
        }],
        toml_digest: None,
        snapshot: Some(Snapshot { entries }.save(store)?),
        image_path: Some(String::from_utf8_lossy(&prefix).into_owned()),
        spec_digest: None,
        delta_of: Some(DeltaOf { owner, layer, seq }),
    };
    store.put_record(&record)?;
    Ok(record)
}

/// The proper parents of a relative path, the layer dir (empty path) included.
fn parents(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::once(&path[..0])
        .chain(
            path.iter()
                .enumerate()
                .filter(|&(_, &b)| b == b'/')
                .map(move |(i, _)| &path[..i]),
        )
        .filter(move |p| p.len() < path.len())
}

fn full_name(prefix: &[u8], rel: &[u8]) -> Vec<u8> {
    let mut name = prefix.to_vec();
    if !rel.is_empty() {
        name.push(b'/');
        name.extend_from_slice(rel);
    }
    name
}

fn dir_header(name: &[u8], mode: u32, uid: u64, gid: u64) -> Header<'_> {
    Header {
        name,
        entry_type: EntryType::Dir,
        link_target: b"",
        mode,
        uid,
        gid,
        mtime: NORMALIZED_MTIME,
    }
}

/// Copies exactly `stat.size` bytes of the file and the padding into `out`, failing if the file
/// is not the one stat'ed or its size changed; returns its content digest.
fn copy_content(path: &Path, stat: &EntryStat, out: &mut dyn Write) -> Result<Digest> {
    let changed = || Error::Changed {
        path: path.to_path_buf(),
        what: "changed while its delta was captured".to_owned(),
    };
    let mut file = File::open(path).map_err(Error::read(path))?;
    let meta = file.metadata().map_err(Error::read(path))?;
    if meta.ino() != stat.ino || meta.len() != stat.size {
        return Err(changed());
    }
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut left = stat.size;
    while left > 0 {
        let want = buffer.len().min(left as usize);
        let n = file.read(&mut buffer[..want]).map_err(Error::read(path))?;
        if n == 0 {
            return Err(changed());
        }
        out.write_all(&buffer[..n]).map_err(Error::write(path))?;
        hasher.update(&buffer[..n]);
        left -= n as u64;
    }
    out.write_all(&[0u8; header::BLOCK][..header::padding(stat.size)])
        .map_err(Error::write(path))?;
    Ok(Digest::from_hasher(hasher))
}
