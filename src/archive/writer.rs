//! Streaming, reproducible tar of a directory tree, with lifecycle's walk and entry rules.
//!
//! Order: one directory entry per ancestor (root first), then the directory itself, then a
//! pre-order walk whose siblings are sorted by name bytes (Go's `filepath.Walk`; note `a/b`
//! sorts before `a-b` because siblings, not whole paths, are compared). Symlinks are stored,
//! never followed; hard links are stored as full files; sockets are skipped silently and fifos
//! and devices with a warning. A file whose size, mtime or inode changes while it is read fails
//! the whole layer ([`Error::Changed`]) instead of recording a wrong digest. Content streams
//! through a fixed buffer: memory does not grow with the layer.

use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use walkdir::WalkDir;

use super::header::{self, EntryType, Header};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::normalize::{self, NORMALIZED_MTIME, Owner};

/// A directory entry written before the tree: an ancestor of the layer's in-image path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ancestor {
    /// Absolute in-image name, e.g. `/layers`.
    pub name: Vec<u8>,
    /// Mode bits.
    pub mode: u32,
    /// Owner.
    pub owner: Owner,
}

/// What to archive and under which names.
#[derive(Debug, Clone)]
pub struct TarSpec {
    /// The directory on disk.
    pub dir: PathBuf,
    /// The in-archive name of `dir` itself (`/layers/<id>/<layer>`); `None` writes only its
    /// contents, with names relative to it.
    pub name: Option<Vec<u8>>,
    /// Directory entries written first, in order.
    pub ancestors: Vec<Ancestor>,
    /// Owner written for `dir` and everything below it.
    pub owner: Owner,
    /// Also hash each file's content on its own (reported to the observer as
    /// [`WalkedEntry::content`]); the file is still read once.
    pub hash_files: bool,
}

impl TarSpec {
    /// Contents of `dir` with names relative to it, owned by `owner`.
    pub fn relative(dir: impl Into<PathBuf>, owner: Owner) -> Self {
        Self {
            dir: dir.into(),
            name: None,
            ancestors: Vec::new(),
            owner,
            hash_files: false,
        }
    }

    /// `dir` written as the absolute `prefix`, after entries for each ancestor of `prefix`
    /// (mode 0755, owner 0:0), as `layerize tar --prefix` does.
    pub fn prefixed(dir: impl Into<PathBuf>, prefix: &[u8], owner: Owner) -> Self {
        let name = normalize_prefix(prefix);
        let ancestors = ancestor_names(&name)
            .into_iter()
            .map(|name| Ancestor {
                name,
                mode: 0o755,
                owner: Owner::default(),
            })
            .collect();
        Self {
            dir: dir.into(),
            name: Some(name),
            ancestors,
            owner,
            hash_files: false,
        }
    }
}

/// `/a/b/c` for `a/b/c`, `/a/b/c/`, `//a//b/c`.
pub fn normalize_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut name = Vec::with_capacity(prefix.len() + 1);
    for part in prefix
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty() && *p != b".")
    {
        name.push(b'/');
        name.extend_from_slice(part);
    }
    name
}

/// The proper ancestors of an absolute name, root first, `/` excluded.
pub fn ancestor_names(name: &[u8]) -> Vec<Vec<u8>> {
    name.iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'/' && i > 0)
        .map(|(i, _)| name[..i].to_vec())
        .collect()
}

/// One entry of the tree as the walk wrote it, reported to the observer of
/// [`write_tar_observed`] (for stat snapshots).
#[derive(Debug)]
pub struct WalkedEntry<'a> {
    /// Path relative to [`TarSpec::dir`], raw bytes; empty for the directory itself.
    pub path: &'a [u8],
    /// `lstat` of the entry, taken before its content was read.
    pub metadata: &'a Metadata,
    /// Symlink target, empty for other types.
    pub link_target: &'a [u8],
    /// sha256 of a regular file's content, when [`TarSpec::hash_files`] is set.
    pub content: Option<Digest>,
}

/// An entry the walk left out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// Path on disk.
    pub path: PathBuf,
    /// `fifo`, `char-device` or `block-device` (sockets are skipped without a note).
    pub kind: &'static str,
}

/// What a tar run wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TarSummary {
    /// Entries of the tree written (ancestors not counted).
    pub entries: u64,
    /// Bytes of file content written.
    pub content_bytes: u64,
    /// Fifos and devices left out.
    pub skipped: Vec<Skipped>,
}

const COPY_BUFFER: usize = 256 * 1024;

/// Writes the reproducible tar of `spec` to `out` and returns what it wrote.
///
/// # Errors
/// [`Error::Read`] naming the file that could not be read, [`Error::Changed`] for a file that
/// changed while read, [`Error::Write`] when `out` fails (named as `<output>`).
pub fn write_tar<W: Write>(spec: &TarSpec, out: W) -> Result<TarSummary> {
    write_tar_observed(spec, out, &mut |_| {})
}

/// [`write_tar`], reporting every written entry of the tree (not the ancestors) to `observer`
/// after its content has been written.
///
/// # Errors
/// As [`write_tar`].
pub fn write_tar_observed<W: Write>(
    spec: &TarSpec,
    mut out: W,
    observer: &mut dyn FnMut(&WalkedEntry<'_>),
) -> Result<TarSummary> {
    let out_err = |e: io::Error| Error::Write {
        path: PathBuf::from("<output>"),
        source: e,
    };
    let mut summary = TarSummary::default();
    let mut block = Vec::with_capacity(3 * header::BLOCK);
    let mut buffer = vec![0u8; COPY_BUFFER];

    for ancestor in &spec.ancestors {
        block.clear();
        header::encode(
            &Header {
                name: &ancestor.name,
                entry_type: EntryType::Dir,
                link_target: b"",
                mode: ancestor.mode,
                uid: ancestor.owner.uid,
                gid: ancestor.owner.gid,
                mtime: NORMALIZED_MTIME,
            },
            &mut block,
        );
        out.write_all(&block).map_err(out_err)?;
    }

    let walk = WalkDir::new(&spec.dir)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(if spec.name.is_some() { 0 } else { 1 });
    let mut name = Vec::new();
    // Directories open along the walk, by depth: files are opened relative to their parent,
    // so the kernel resolves one name per file, not the whole path.
    let mut dirs: Vec<File> = Vec::new();
    if spec.name.is_none() {
        dirs.push(File::open(&spec.dir).map_err(Error::read(&spec.dir))?);
    }
    for entry in walk {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(&spec.dir).to_path_buf();
            Error::Read {
                path,
                source: e.into(),
            }
        })?;
        let path = entry.path();
        // A regular file is stat'ed through the descriptor it is read from: what is recorded
        // is what is read.
        let (metadata, file) = if entry.file_type().is_file() && entry.depth() > 0 {
            let parent = &dirs[entry.depth() - 1];
            let file = open_in(parent, entry.file_name(), path)?;
            (file.metadata().map_err(Error::read(path))?, Some(file))
        } else {
            let metadata = entry.metadata().map_err(|e| Error::Read {
                path: path.to_path_buf(),
                source: e.into(),
            })?;
            (metadata, None)
        };
        entry_name(spec, path, &mut name);
        let file_type = metadata.file_type();
        let mut link_target = Vec::new();
        let entry_type = if file_type.is_dir() {
            dirs.truncate(entry.depth());
            dirs.push(File::open(path).map_err(Error::read(path))?);
            EntryType::Dir
        } else if file_type.is_file() {
            EntryType::File(metadata.len())
        } else if file.is_some() {
            return Err(Error::Changed {
                path: path.to_path_buf(),
                what: "replaced by another file".to_owned(),
            });
        } else if file_type.is_symlink() {
            link_target = std::fs::read_link(path)
                .map_err(Error::read(path))?
                .as_os_str()
                .as_bytes()
                .to_vec();
            EntryType::Symlink
        } else {
            if let Some(kind) = skipped_kind(&file_type) {
                summary.skipped.push(Skipped {
                    path: path.to_path_buf(),
                    kind,
                });
            }
            continue;
        };
        block.clear();
        header::encode(
            &Header {
                name: &name,
                entry_type,
                link_target: &link_target,
                mode: normalize::mode(&metadata),
                uid: spec.owner.uid,
                gid: spec.owner.gid,
                mtime: NORMALIZED_MTIME,
            },
            &mut block,
        );
        out.write_all(&block).map_err(out_err)?;
        let mut content = None;
        if let EntryType::File(size) = entry_type {
            let file = match file {
                Some(file) => file,
                None => open_same(path, &metadata)?,
            };
            content = copy_file(
                file,
                path,
                &metadata,
                size,
                &mut out,
                &mut buffer,
                spec.hash_files,
            )?;
            summary.content_bytes += size;
        }
        summary.entries += 1;
        let relative = path
            .strip_prefix(&spec.dir)
            .unwrap_or(path)
            .as_os_str()
            .as_bytes();
        observer(&WalkedEntry {
            path: relative,
            metadata: &metadata,
            link_target: &link_target,
            content,
        });
    }
    out.write_all(&header::end_of_archive()).map_err(out_err)?;
    out.flush().map_err(out_err)?;
    Ok(summary)
}

fn skipped_kind(file_type: &std::fs::FileType) -> Option<&'static str> {
    if file_type.is_fifo() {
        Some("fifo")
    } else if file_type.is_char_device() {
        Some("char-device")
    } else if file_type.is_block_device() {
        Some("block-device")
    } else {
        None
    }
}

/// The in-archive name of `path`, a path at or below `spec.dir`.
fn entry_name(spec: &TarSpec, path: &Path, name: &mut Vec<u8>) {
    name.clear();
    let relative = path
        .strip_prefix(&spec.dir)
        .unwrap_or(path)
        .as_os_str()
        .as_bytes();
    if let Some(base) = &spec.name {
        name.extend_from_slice(base);
        if !relative.is_empty() {
            name.push(b'/');
        }
    }
    name.extend_from_slice(relative);
}

/// Opens the regular file `name` of the directory `dir` for reading, without following a
/// symlink and without blocking should it have become a fifo; `path` names it in errors.
fn open_in(dir: &File, name: &std::ffi::OsStr, path: &Path) -> Result<File> {
    use rustix::fs::{Mode, OFlags, openat};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    openat(dir, name, flags, Mode::empty())
        .map(File::from)
        .map_err(|e| Error::Read {
            path: path.to_path_buf(),
            source: e.into(),
        })
}

/// Opens `path`, failing unless it is still the file stat'ed as `before`.
fn open_same(path: &Path, before: &Metadata) -> Result<File> {
    let file = File::open(path).map_err(Error::read(path))?;
    let opened = file.metadata().map_err(Error::read(path))?;
    if opened.ino() != before.ino() || opened.dev() != before.dev() {
        return Err(Error::Changed {
            path: path.to_path_buf(),
            what: "replaced by another file".to_owned(),
        });
    }
    Ok(file)
}

/// Copies exactly `size` bytes of `file` (at `path`, stat'ed as `before`) and the block
/// padding, failing if it changes while read; returns the content digest when `hash` is set.
/// A file that grows is caught by the size check after the copy, so no read past `size`.
fn copy_file<W: Write>(
    mut file: File,
    path: &Path,
    before: &Metadata,
    size: u64,
    out: &mut W,
    buffer: &mut [u8],
    hash: bool,
) -> Result<Option<Digest>> {
    let changed = |what: &str| Error::Changed {
        path: path.to_path_buf(),
        what: what.to_owned(),
    };
    let out_err = |e: io::Error| Error::Write {
        path: PathBuf::from("<output>"),
        source: e,
    };
    let mut hasher = hash.then(Sha256::new);
    let mut left = size;
    while left > 0 {
        let want = buffer.len().min(left as usize);
        let n = file.read(&mut buffer[..want]).map_err(Error::read(path))?;
        if n == 0 {
            return Err(changed("became shorter"));
        }
        out.write_all(&buffer[..n]).map_err(out_err)?;
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&buffer[..n]);
        }
        left -= n as u64;
    }
    let after = file.metadata().map_err(Error::read(path))?;
    if after.len() > size {
        return Err(changed("grew"));
    }
    if after.len() != size
        || after.mtime() != before.mtime()
        || after.mtime_nsec() != before.mtime_nsec()
    {
        return Err(changed("modified"));
    }
    let padding = header::padding(size);
    out.write_all(&[0u8; header::BLOCK][..padding])
        .map_err(out_err)?;
    Ok(hasher.map(Digest::from_hasher))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_exclude_root_and_self() {
        assert_eq!(
            ancestor_names(b"/layers/x/rt"),
            vec![b"/layers".to_vec(), b"/layers/x".to_vec()]
        );
        assert!(ancestor_names(b"/top").is_empty());
    }

    #[test]
    fn prefix_is_normalized_to_one_absolute_form() {
        assert_eq!(normalize_prefix(b"a/b/c/"), b"/a/b/c");
        assert_eq!(normalize_prefix(b"//a//./b"), b"/a/b");
    }

    #[test]
    fn siblings_sort_by_name_so_a_slash_b_precedes_a_dash_b() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/b"), "1").unwrap();
        std::fs::write(dir.path().join("a-b"), "2").unwrap();
        let mut tar = Vec::new();
        write_tar(&TarSpec::relative(dir.path(), Owner::default()), &mut tar).unwrap();
        let names: Vec<String> = tar::Archive::new(&tar[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a", "a/b", "a-b"]);
        assert_eq!(tar.len() % 512, 0);
        assert!(tar.ends_with(&[0u8; 1024]));
    }
}
