//! Streaming, reproducible tar of a directory tree, with lifecycle's walk and entry rules.
//!
//! Order: one directory entry per ancestor (root first), then the directory itself, then a
//! pre-order walk whose siblings are sorted by name bytes (Go's `filepath.Walk`; note `a/b`
//! sorts before `a-b` because siblings, not whole paths, are compared). Symlinks are stored,
//! never followed; hard links are stored as full files; sockets are skipped silently and fifos
//! and devices with a warning. A file whose size, mtime or inode changes while it is read fails
//! the whole layer ([`Error::Changed`]) instead of recording a wrong digest.
//!
//! The walk (`walk.rs`) runs ahead of the writing by a few hundred entries; regular files are
//! read by a pool of threads (`readahead.rs`) and written strictly in walk order, so the
//! bytes, the observer's calls and the first error reported never depend on timing. Memory is
//! bounded whatever the layer: at most ~19 MiB of small files read ahead, larger files stream
//! through a fixed buffer.

use std::collections::VecDeque;
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::checked_read::check_unchanged;
use super::header::{self, EntryType, Header};
use super::readahead::{Content, FileRead, Limits, ReadAhead, with_read_ahead};
use super::walk::{Kind, Walk, Walked};
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

/// How far the read-ahead runs: files up to 1 MiB are read whole by the readers, which hold at
/// most 16 MiB of content ahead of the assembler.
const LIMITS: Limits = Limits {
    small: 1 << 20,
    bytes: 16 << 20,
};
/// Entries walked ahead of the assembler: the walk refills up to `AHEAD` once fewer than
/// `AHEAD / 2` remain, handing files to the readers `BATCH` at a time. 256 and 32 rather than
/// 128 and 16: on the node-like tree of `bench/run`, 0.370 -> 0.330 s (8 runs alternated);
/// 512 bought nothing more. Each file handed ahead keeps its directory open, so this bounds
/// the directories a layer holds open besides the walk's stack (see
/// [`crate::archive::raise_open_file_limit`]).
const AHEAD: usize = 256;
const BATCH: usize = 32;

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
/// Regular files are read ahead by one thread per core, at most four (see `readahead.rs`); the
/// archive, the observer's calls and the first error reported follow the walk order.
///
/// # Errors
/// As [`write_tar`].
pub fn write_tar_observed<W: Write>(
    spec: &TarSpec,
    out: W,
    observer: &mut dyn FnMut(&WalkedEntry<'_>),
) -> Result<TarSummary> {
    write_tar_read_by(spec, out, observer, reader_threads(false))
}

/// Threads reading files ahead of the assembler. One per core when the tar is only hashed: the
/// assembler then sets the pace and should read as few files itself as it can (node-like tree
/// of `bench/run`, two cores: 0.288 -> 0.263 s, 15 runs alternated). One fewer when
/// compressors' workers want the cores (zstd on that tree: 0.860 s with one reader, 0.885 s
/// with two, 12 runs). At most [`MAX_READERS`] whatever the cores.
pub(crate) fn reader_threads(compressing: bool) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let readers = if compressing { cores - 1 } else { cores };
    readers.clamp(1, MAX_READERS)
}

/// Readers per layer, at most: one reader reads small files at ~1 GB/s and the layer's one
/// sha256 stream takes ~1.2 GB/s, so more readers could not make a layer faster, and layers
/// are written side by side, one per core.
const MAX_READERS: usize = 4;

/// [`write_tar_observed`] with `readers` read-ahead threads (at least one).
pub(crate) fn write_tar_read_by<W: Write>(
    spec: &TarSpec,
    mut out: W,
    observer: &mut dyn FnMut(&WalkedEntry<'_>),
    readers: usize,
) -> Result<TarSummary> {
    let mut block = Vec::with_capacity(3 * header::BLOCK);
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
        out.write_all(&block).map_err(out_error)?;
    }
    let walk = Walk::new(&spec.dir, spec.name.is_some())?;
    let summary = with_read_ahead(readers, LIMITS, spec.hash_files, |ahead| {
        Assembler {
            spec,
            out: &mut out,
            observer,
            block,
            buffer: Vec::new(),
            name: Vec::new(),
            summary: TarSummary::default(),
        }
        .run(walk, ahead)
    })?;
    out.write_all(&header::end_of_archive())
        .map_err(out_error)?;
    out.flush().map_err(out_error)?;
    Ok(summary)
}

/// Writes the walked entries in order, taking file contents from the read-ahead.
struct Assembler<'a, W> {
    spec: &'a TarSpec,
    out: W,
    observer: &'a mut dyn FnMut(&WalkedEntry<'_>),
    block: Vec<u8>,
    /// Copy buffer for large files, allocated on first use.
    buffer: Vec<u8>,
    name: Vec<u8>,
    summary: TarSummary,
}

impl<W: Write> Assembler<'_, W> {
    fn run(mut self, mut walk: Walk, ahead: &mut ReadAhead<'_>) -> Result<TarSummary> {
        // Walked entries not yet written; a walk error is written in its place, so the first
        // error in walk order is the one reported.
        let mut pending: VecDeque<Result<Queued>> = VecDeque::with_capacity(AHEAD);
        let mut batch = Vec::with_capacity(BATCH);
        let mut walking = true;
        loop {
            if walking && pending.len() < AHEAD / 2 {
                while walking && pending.len() < AHEAD {
                    let Some(next) = walk.next() else {
                        walking = false;
                        break;
                    };
                    walking = next.is_ok();
                    pending.push_back(next.map(|walked| match walked {
                        Walked::File(job) => {
                            batch.push(job);
                            Queued::File
                        }
                        Walked::Other(path, kind) => Queued::Other(path, Box::new(kind)),
                    }));
                    if batch.len() == BATCH {
                        ahead.submit(batch.drain(..));
                    }
                }
                ahead.submit(batch.drain(..));
            }
            let Some(queued) = pending.pop_front() else {
                return Ok(self.summary);
            };
            match queued? {
                Queued::File => {
                    let read = ahead.next()?;
                    self.write_file(read)?;
                }
                Queued::Other(path, kind) => self.write_other(path, *kind)?,
            }
        }
    }

    fn write_other(&mut self, path: PathBuf, kind: Kind) -> Result<()> {
        let (entry_type, metadata, link_target) = match kind {
            Kind::Dir(metadata) => (EntryType::Dir, metadata, Vec::new()),
            Kind::Symlink(metadata, target) => (EntryType::Symlink, metadata, target),
            Kind::Skipped(kind) => {
                self.summary.skipped.push(Skipped { path, kind });
                return Ok(());
            }
        };
        self.write_header(&path, entry_type, &metadata, &link_target)?;
        self.observe(&path, &metadata, &link_target, None);
        Ok(())
    }

    fn write_file(&mut self, read: FileRead) -> Result<()> {
        let FileRead {
            path,
            metadata,
            content,
        } = read;
        let path = &path;
        let size = metadata.len();
        self.write_header(path, EntryType::File(size), &metadata, b"")?;
        let digest = match content {
            Content::Whole(bytes, digest) => {
                self.out.write_all(&bytes).map_err(out_error)?;
                digest
            }
            Content::Open(file) => {
                if self.buffer.is_empty() {
                    self.buffer = vec![0u8; COPY_BUFFER];
                }
                copy_file(
                    file,
                    path,
                    &metadata,
                    &mut self.out,
                    &mut self.buffer,
                    self.spec.hash_files,
                )?
            }
        };
        let padding = header::padding(size);
        self.out
            .write_all(&[0u8; header::BLOCK][..padding])
            .map_err(out_error)?;
        self.summary.content_bytes += size;
        self.observe(path, &metadata, b"", digest);
        Ok(())
    }

    fn write_header(
        &mut self,
        path: &Path,
        entry_type: EntryType,
        metadata: &Metadata,
        link_target: &[u8],
    ) -> Result<()> {
        entry_name(self.spec, path, &mut self.name);
        self.block.clear();
        header::encode(
            &Header {
                name: &self.name,
                entry_type,
                link_target,
                mode: normalize::mode(metadata),
                uid: self.spec.owner.uid,
                gid: self.spec.owner.gid,
                mtime: NORMALIZED_MTIME,
            },
            &mut self.block,
        );
        self.out.write_all(&self.block).map_err(out_error)
    }

    fn observe(
        &mut self,
        path: &Path,
        metadata: &Metadata,
        link_target: &[u8],
        content: Option<Digest>,
    ) {
        self.summary.entries += 1;
        let relative = relative(&self.spec.dir, path);
        (self.observer)(&WalkedEntry {
            path: relative,
            metadata,
            link_target,
            content,
        });
    }
}

/// An entry walked and not yet written.
enum Queued {
    /// A regular file, handed to the read-ahead (which gives its path back).
    File,
    /// Anything else (boxed: a directory's metadata is large and files are the many).
    Other(PathBuf, Box<Kind>),
}

fn out_error(e: io::Error) -> Error {
    Error::Write {
        path: PathBuf::from("<output>"),
        source: e,
    }
}

/// `path` relative to `dir`, raw bytes: the walk builds every path by joining names to `dir`,
/// so slicing is exact (and much cheaper than comparing components).
fn relative<'p>(dir: &Path, path: &'p Path) -> &'p [u8] {
    let (dir, path) = (dir.as_os_str().as_bytes(), path.as_os_str().as_bytes());
    debug_assert!(path.starts_with(dir), "{path:?} is not below {dir:?}");
    let rest = &path[dir.len()..];
    rest.strip_prefix(b"/").unwrap_or(rest)
}

/// The in-archive name of `path`, a path at or below `spec.dir`.
fn entry_name(spec: &TarSpec, path: &Path, name: &mut Vec<u8>) {
    name.clear();
    let relative = relative(&spec.dir, path);
    if let Some(base) = &spec.name {
        name.extend_from_slice(base);
        if !relative.is_empty() {
            name.push(b'/');
        }
    }
    name.extend_from_slice(relative);
}

/// Streams exactly `before.len()` bytes of the open `file` (at `path`) to `out`, failing if it
/// changes while read; returns the content digest when `hash` is set. A file that grows is
/// caught by the size check after the copy, so no read past the size.
fn copy_file<W: Write>(
    mut file: File,
    path: &Path,
    before: &Metadata,
    out: &mut W,
    buffer: &mut [u8],
    hash: bool,
) -> Result<Option<Digest>> {
    let mut hasher = hash.then(Sha256::new);
    let mut left = before.len();
    while left > 0 {
        let want = buffer.len().min(left as usize);
        let n = file.read(&mut buffer[..want]).map_err(Error::read(path))?;
        if n == 0 {
            return Err(Error::Changed {
                path: path.to_path_buf(),
                what: "became shorter".to_owned(),
            });
        }
        out.write_all(&buffer[..n]).map_err(out_error)?;
        if let Some(hasher) = hasher.as_mut() {
            hasher.update(&buffer[..n]);
        }
        left -= n as u64;
    }
    let after = file.metadata().map_err(Error::read(path))?;
    check_unchanged(path, before, &after)?;
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

    #[test]
    fn names_do_not_depend_on_a_trailing_slash_of_the_dir() {
        assert_eq!(relative(Path::new("a/b"), Path::new("a/b/c/d")), b"c/d");
        assert_eq!(relative(Path::new("a/b/"), Path::new("a/b/c")), b"c");
        assert_eq!(relative(Path::new("/"), Path::new("/c")), b"c");
        assert_eq!(relative(Path::new("a"), Path::new("a")), b"");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/f"), "1").unwrap();
        let tar = |dir: PathBuf| {
            let mut tar = Vec::new();
            write_tar(&TarSpec::prefixed(dir, b"/p", Owner::default()), &mut tar).unwrap();
            tar
        };
        let slashed = PathBuf::from(format!("{}/", dir.path().display()));
        assert_eq!(tar(dir.path().to_path_buf()), tar(slashed));
    }
}
