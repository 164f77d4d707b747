//! Stat snapshots of a layer directory and their diff: the fast tier of change detection.
//!
//! A snapshot lists every entry of a layer dir in the tar writer's order (pre-order, siblings
//! sorted by name bytes; the dir itself first, as the empty path) with what `lstat` says of it —
//! type, mode, owner, size, mtime and ctime with nanoseconds, inode, device — plus the symlink
//! target and, for files hashed while they were tarred, the content sha256. Entries the tar
//! leaves out (sockets, fifos, devices) are left out here too.
//!
//! Why ctime and inode: a process can set mtime back (`touch -d`) but not ctime, and replacing a
//! file (write to temp + rename, `rm` + recreate) gives it a new inode. Only a clock set back
//! escapes both; the content digests are the truth for that (`--verify-content`).
//!
//! Stored form (a store blob, verified by digest on read): a `layerize-snapshot 1` line, then one
//! line per entry of space-separated fields
//! `kind mode uid gid size mtime mtime_ns ctime ctime_ns ino dev content link path`, where
//! `content` is 64 hex digits or `-`, and `link`/`path` are percent-escaped raw bytes (`%`,
//! space, control bytes and every byte >= 0x7f become `%XX`), so non-UTF-8 names round-trip;
//! `link` is `-` for non-symlinks and `path` is `.` for the dir itself. It is compact and parses
//! without allocation per field: loading a 30k-entry snapshot must stay cheaper than the walk.

pub mod diff;

use std::fs::{self, Metadata};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::store::Store;

pub use diff::{Changes, Modified, What, diff, identical};

const MAGIC: &str = "layerize-snapshot 1";

/// Type of a snapshot entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link.
    Symlink,
}

/// A second and nanosecond pair (mtime or ctime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Time {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Nanoseconds.
    pub nanos: i64,
}

/// One entry of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryStat {
    /// Path relative to the layer dir, raw bytes; empty for the dir itself.
    pub path: Vec<u8>,
    /// Type.
    pub kind: EntryKind,
    /// Permission bits with setuid/setgid/sticky.
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Size in bytes (files and symlinks).
    pub size: u64,
    /// Modification time.
    pub mtime: Time,
    /// Status change time.
    pub ctime: Time,
    /// Inode number.
    pub ino: u64,
    /// Device.
    pub dev: u64,
    /// Symlink target, empty for other types.
    pub link_target: Vec<u8>,
    /// sha256 of a file's content, when it was hashed.
    pub content: Option<Digest>,
}

impl EntryStat {
    /// The entry for `metadata`, or `None` for a type layers leave out.
    pub fn new(
        path: &[u8],
        metadata: &Metadata,
        link_target: &[u8],
        content: Option<Digest>,
    ) -> Option<Self> {
        let file_type = metadata.file_type();
        let kind = if file_type.is_dir() {
            EntryKind::Dir
        } else if file_type.is_file() {
            EntryKind::File
        } else if file_type.is_symlink() {
            EntryKind::Symlink
        } else {
            return None;
        };
        Some(Self {
            path: path.to_vec(),
            kind,
            mode: metadata.mode() & 0o7777,
            uid: metadata.uid(),
            gid: metadata.gid(),
            size: if kind == EntryKind::Dir {
                0
            } else {
                metadata.len()
            },
            mtime: Time {
                secs: metadata.mtime(),
                nanos: metadata.mtime_nsec(),
            },
            ctime: Time {
                secs: metadata.ctime(),
                nanos: metadata.ctime_nsec(),
            },
            ino: metadata.ino(),
            dev: metadata.dev(),
            link_target: link_target.to_vec(),
            content,
        })
    }

    /// True when every `lstat` field and the link target are equal (content not compared).
    pub fn same_stat(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.mode == other.mode
            && self.uid == other.uid
            && self.gid == other.gid
            && self.size == other.size
            && self.mtime == other.mtime
            && self.ctime == other.ctime
            && self.ino == other.ino
            && self.dev == other.dev
            && self.link_target == other.link_target
    }

    /// The path as text for reports (lossy for non-UTF-8 names).
    pub fn display_path(&self) -> String {
        display_path(&self.path)
    }
}

/// A relative path as text for reports: `.` for the dir itself, lossy for non-UTF-8 names.
pub fn display_path(path: &[u8]) -> String {
    if path.is_empty() {
        ".".to_owned()
    } else {
        String::from_utf8_lossy(path).into_owned()
    }
}

/// The entries of a layer dir, in walk order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Entries, the dir itself first.
    pub entries: Vec<EntryStat>,
}

impl Snapshot {
    /// Takes a fresh snapshot of `dir` by `lstat` alone (no content is read); `None` when `dir`
    /// does not exist.
    ///
    /// # Errors
    /// [`Error::Read`] naming the entry that could not be listed or stat'ed.
    pub fn walk(dir: &Path) -> Result<Option<Self>> {
        let metadata = match fs::symlink_metadata(dir) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::read(dir)(e)),
        };
        let mut entries = Vec::new();
        entries.extend(EntryStat::new(b"", &metadata, b"", None));
        if metadata.is_dir() {
            walk_children(dir, &mut Vec::new(), &mut entries)?;
        }
        Ok(Some(Self { entries }))
    }

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

/// Appends the entries below `dir` (relative prefix `rel`) in walk order.
fn walk_children(dir: &Path, rel: &mut Vec<u8>, out: &mut Vec<EntryStat>) -> Result<()> {
    let mut children = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::read(dir))? {
        let entry = entry.map_err(Error::read(dir))?;
        // DirEntry::metadata is an fstatat relative to the open directory: no path lookup.
        let metadata = entry.metadata().map_err(Error::read(entry.path()))?;
        children.push((entry.file_name().into_vec(), metadata));
    }
    children.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for (name, metadata) in children {
        let len = rel.len();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(&name);
        let path = dir.join(std::ffi::OsStr::from_bytes(&name));
        let link = if metadata.file_type().is_symlink() {
            fs::read_link(&path)
                .map_err(Error::read(&path))?
                .into_os_string()
                .into_vec()
        } else {
            Vec::new()
        };
        if let Some(stat) = EntryStat::new(rel, &metadata, &link, None) {
            out.push(stat);
            if metadata.is_dir() {
                walk_children(&path, rel, out)?;
            }
        }
        rel.truncate(len);
    }
    Ok(())
}

/// `dir` joined with a raw relative path.
pub fn join(dir: &Path, relative: &[u8]) -> PathBuf {
    if relative.is_empty() {
        dir.to_path_buf()
    } else {
        dir.join(std::ffi::OsStr::from_bytes(relative))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_form_round_trips_odd_names_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir(d.join("sub dir")).unwrap();
        fs::write(d.join("sub dir/na\u{ef}ve%.txt"), "x").unwrap();
        let latin1 = std::ffi::OsStr::from_bytes(b"caf\xe9\n");
        fs::write(d.join(latin1), "y").unwrap();
        std::os::unix::fs::symlink("-", d.join("-")).unwrap();
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(b"t\xff a"), d.join("l")).unwrap();
        let mut snap = Snapshot::walk(d).unwrap().unwrap();
        snap.entries[1].content = Some(Digest::of_bytes(b"x"));
        let back = Snapshot::decode(Path::new("s"), &snap.encode()).unwrap();
        assert_eq!(back, snap);
        let names: Vec<&[u8]> = snap.entries.iter().map(|e| &e.path[..]).collect();
        assert_eq!(
            names,
            [
                &b""[..],
                b"-",
                b"caf\xe9\n",
                b"l",
                b"sub dir",
                "sub dir/na\u{ef}ve%.txt".as_bytes()
            ]
        );
        assert_eq!(snap.entries[3].link_target, b"t\xff a");
    }

    #[test]
    fn walk_of_a_missing_dir_is_none_and_garbage_does_not_decode() {
        assert!(
            Snapshot::walk(Path::new("/nonexistent/layer"))
                .unwrap()
                .is_none()
        );
        assert!(Snapshot::decode(Path::new("s"), b"hello\n").is_err());
        let bad = format!("{MAGIC}\nf 644 0 0 1 2 3 4 5 6 7 - - %zz\n");
        assert!(Snapshot::decode(Path::new("s"), bad.as_bytes()).is_err());
    }
}
