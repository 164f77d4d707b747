//! The stored form of a snapshot (see the module doc of [`crate::snapshot`]): encode, decode,
//! and save to / load from a [`Store`] as a blob verified by its digest.

use std::io::Read;
use std::path::Path;

use super::{EntryKind, EntryStat, Snapshot, Time};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::store::Store;

pub(super) const MAGIC: &str = "layerize-snapshot 1";

impl Snapshot {
    /// The stored form (see the module doc).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.entries.len() * 120);
        out.extend_from_slice(MAGIC.as_bytes());
        out.push(b'\n');
        for e in &self.entries {
            let kind = match e.kind {
                EntryKind::Dir => 'd',
                EntryKind::File => 'f',
                EntryKind::Symlink => 'l',
            };
            let content = e.content.as_ref().map_or("-", |d| d.hex());
            out.extend_from_slice(
                format!(
                    "{kind} {:o} {} {} {} {} {} {} {} {} {} {content} ",
                    e.mode,
                    e.uid,
                    e.gid,
                    e.size,
                    e.mtime.secs,
                    e.mtime.nanos,
                    e.ctime.secs,
                    e.ctime.nanos,
                    e.ino,
                    e.dev
                )
                .as_bytes(),
            );
            if e.kind == EntryKind::Symlink {
                escape(&e.link_target, &mut out);
            } else {
                out.push(b'-');
            }
            out.push(b' ');
            if e.path.is_empty() {
                out.push(b'.');
            } else {
                escape(&e.path, &mut out);
            }
            out.push(b'\n');
        }
        out
    }

    /// Parses the stored form; `source` names it in errors.
    ///
    /// # Errors
    /// [`Error::Invalid`] for anything that is not a snapshot.
    pub fn decode(source: &Path, bytes: &[u8]) -> Result<Self> {
        let bad = |line: usize, why: &str| {
            Error::invalid(
                source,
                format!("malformed snapshot, line {}: {why}", line + 1),
            )
        };
        let mut lines = bytes.split(|&b| b == b'\n');
        if lines.next() != Some(MAGIC.as_bytes()) {
            return Err(bad(0, "not a layerize snapshot"));
        }
        let mut entries = Vec::new();
        for (i, line) in lines.enumerate().map(|(i, l)| (i + 1, l)) {
            if line.is_empty() {
                continue;
            }
            let f: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            if f.len() != 14 {
                return Err(bad(i, "expected 14 fields"));
            }
            let num = |k: usize| -> Result<i64> {
                std::str::from_utf8(f[k])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad(i, "bad number"))
            };
            let unsigned = |k: usize| -> Result<u64> {
                std::str::from_utf8(f[k])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad(i, "bad number"))
            };
            let kind = match f[0] {
                b"d" => EntryKind::Dir,
                b"f" => EntryKind::File,
                b"l" => EntryKind::Symlink,
                _ => return Err(bad(i, "bad entry type")),
            };
            let mode = std::str::from_utf8(f[1])
                .ok()
                .and_then(|s| u32::from_str_radix(s, 8).ok())
                .ok_or_else(|| bad(i, "bad mode"))?;
            let content = match f[11] {
                b"-" => None,
                hex => Some(
                    format!("sha256:{}", String::from_utf8_lossy(hex))
                        .parse()
                        .map_err(|_| bad(i, "bad content digest"))?,
                ),
            };
            let link_target = match (kind, f[12]) {
                (EntryKind::Symlink, raw) => unescape(raw).ok_or_else(|| bad(i, "bad escape"))?,
                (_, b"-") => Vec::new(),
                _ => return Err(bad(i, "link target on a non-symlink")),
            };
            let path = match f[13] {
                b"." => Vec::new(),
                raw => unescape(raw).ok_or_else(|| bad(i, "bad escape"))?,
            };
            entries.push(EntryStat {
                path,
                kind,
                mode,
                uid: u32::try_from(unsigned(2)?).map_err(|_| bad(i, "bad uid"))?,
                gid: u32::try_from(unsigned(3)?).map_err(|_| bad(i, "bad gid"))?,
                size: unsigned(4)?,
                mtime: Time {
                    secs: num(5)?,
                    nanos: num(6)?,
                },
                ctime: Time {
                    secs: num(7)?,
                    nanos: num(8)?,
                },
                ino: unsigned(9)?,
                dev: unsigned(10)?,
                link_target,
                content,
            });
        }
        Ok(Self { entries })
    }

    /// Writes the snapshot as a blob of `store`; returns its digest.
    ///
    /// # Errors
    /// [`Error::Write`].
    pub fn save(&self, store: &Store) -> Result<Digest> {
        use std::io::Write;
        let mut blob = store.new_blob()?;
        blob.write_all(&self.encode())
            .map_err(Error::write(store.root()))?;
        Ok(blob.commit()?.0)
    }

    /// Reads the snapshot blob `digest` from `store`, verifying its digest.
    ///
    /// # Errors
    /// [`Error::Read`] for a missing or corrupt blob, [`Error::Invalid`] for a malformed one.
    pub fn load(store: &Store, digest: &Digest) -> Result<Self> {
        let path = store.blob_path(digest);
        let mut bytes = Vec::new();
        store
            .open_blob(digest)?
            .read_to_end(&mut bytes)
            .map_err(Error::read(&path))?;
        Self::decode(&path, &bytes)
    }
}

fn escape(raw: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in raw {
        if b == b'%' || b <= b' ' || b >= 0x7f || (raw == b"-" || raw == b".") {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            out.push(b);
        }
    }
}

fn unescape(raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = std::str::from_utf8(raw.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Some(out)
}
