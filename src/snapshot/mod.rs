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
mod stored;

use std::fs::{self, Metadata};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{Error, Result};

pub use diff::{Changes, Modified, What, diff, identical};

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
        self.same_written_stat(other)
            && self.ctime == other.ctime
            && self.ino == other.ino
            && self.dev == other.dev
    }

    /// True when what writing the entry can set is equal: type, mode, owner, size, mtime and
    /// link target; not ctime, inode and device, which any rewrite changes.
    pub fn same_written_stat(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.mode == other.mode
            && self.uid == other.uid
            && self.gid == other.gid
            && self.size == other.size
            && self.mtime == other.mtime
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
        let bad = format!("{}\nf 644 0 0 1 2 3 4 5 6 7 - - %zz\n", stored::MAGIC);
        assert!(Snapshot::decode(Path::new("s"), bad.as_bytes()).is_err());
    }
}
