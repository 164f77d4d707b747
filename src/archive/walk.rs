//! lifecycle's walk order over a directory tree, yielding each entry with what the tar writer
//! needs: metadata for directories and symlinks, the parent directory's descriptor for regular
//! files (read later, by the read-ahead), the kind of fifos and devices to skip.
//!
//! Order: the root, then a pre-order walk whose siblings are sorted by name bytes (Go's
//! `filepath.Walk`: `a/b` before `a-b`). Symlinks are never followed below the root.
//!
//! Every directory is opened relative to its parent's descriptor (`O_DIRECTORY|O_NOFOLLOW`),
//! stat'ed through that descriptor and listed with `getdents64` into one reused buffer, so the
//! kernel resolves one name per entry, never a whole path, and a directory costs an open, a
//! stat, two `getdents64` and a close. (walkdir, used before, opened each directory by its
//! full path and we opened and `lstat`'ed it again: three more calls, three path walks.)
//! Linux only (`getdents64`), like the layers dirs this crate serves.

use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};

use super::readahead::FileJob;
use crate::error::{Error, Result};

/// Raises this process's soft limit on open files to its hard limit, as Go's runtime does when
/// a program starts (lifecycle gets it that way). The tar writer keeps a file's directory open
/// until the file is read, for up to a few hundred files walked ahead, and layers are written
/// side by side, one per core: the usual soft limit of 1024 could run out on a many-core
/// machine. Best effort: a limit that cannot be raised stays as it is.
pub fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        let raised = Rlimit {
            current: Some(maximum),
            maximum: Some(maximum),
        };
        let _ = setrlimit(Resource::Nofile, raised);
    }
}

/// One entry of the tree.
#[derive(Debug)]
pub(crate) enum Walked {
    /// A regular file, to be read.
    File(FileJob),
    /// Anything else, at this path.
    Other(PathBuf, Kind),
}

/// What the writer needs of an entry that is not a regular file.
#[derive(Debug)]
pub(crate) enum Kind {
    /// A directory, `fstat` of its descriptor.
    Dir(Metadata),
    /// A symlink, its `lstat` and target.
    Symlink(Metadata, Vec<u8>),
    /// A fifo or device: `fifo`, `char-device` or `block-device`.
    Skipped(&'static str),
}

/// A directory being walked: its descriptor and its entries, sorted, not yet yielded.
struct Frame {
    dir: Arc<File>,
    path: PathBuf,
    /// Names and types, sorted by name bytes in reverse: the next entry is the last.
    entries: Vec<(OsString, FileType)>,
}

/// The walk of one tree.
pub(crate) struct Walk {
    stack: Vec<Frame>,
    /// The root's own entry, yielded first when asked for.
    root: Option<Walked>,
    /// `getdents64` buffer.
    buffer: Vec<u8>,
}

const DIRENTS_BUFFER: usize = 64 * 1024;

impl Walk {
    /// The walk of the directory `root` (a symlink to a directory is followed), itself
    /// included when `with_root`.
    ///
    /// # Errors
    /// [`Error::Read`] if `root` cannot be opened as a directory or listed.
    pub fn new(root: &Path, with_root: bool) -> Result<Self> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = rustix::fs::open(root, flags, Mode::empty())
            .map(File::from)
            .map_err(|e| read_error(root, e))?;
        let mut walk = Self {
            stack: Vec::new(),
            root: None,
            buffer: Vec::with_capacity(DIRENTS_BUFFER),
        };
        let metadata = dir.metadata().map_err(Error::read(root))?;
        walk.push(dir, root.to_path_buf())?;
        if with_root {
            walk.root = Some(Walked::Other(root.to_path_buf(), Kind::Dir(metadata)));
        }
        Ok(walk)
    }

    /// Lists `dir` and makes it the directory walked next.
    fn push(&mut self, dir: File, path: PathBuf) -> Result<()> {
        let mut entries = Vec::new();
        let mut listing = RawDir::new(&dir, self.buffer.spare_capacity_mut());
        while let Some(entry) = listing.next() {
            let entry = entry.map_err(|e| read_error(&path, e))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                entries.push((OsString::from_vec(name.to_vec()), entry.file_type()));
            }
        }
        entries.sort_unstable_by(|a, b| b.0.as_bytes().cmp(a.0.as_bytes()));
        self.stack.push(Frame {
            dir: Arc::new(dir),
            path,
            entries,
        });
        Ok(())
    }

    /// The walked form of `name` (of type `file_type` as listed) in the top directory.
    fn walked(&mut self, name: OsString, file_type: FileType) -> Result<Option<Walked>> {
        let frame = self.stack.last().expect("a directory is being walked");
        let path = frame.path.join(&name);
        let kind = match file_type {
            FileType::RegularFile => {
                return Ok(Some(Walked::File(FileJob {
                    dir: Arc::clone(&frame.dir),
                    path,
                })));
            }
            FileType::Directory => {
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let dir = rustix::fs::openat(&*frame.dir, &name, flags, Mode::empty())
                    .map(File::from)
                    .map_err(|e| read_error(&path, e))?;
                let metadata = dir.metadata().map_err(Error::read(&path))?;
                self.push(dir, path.clone())?;
                Kind::Dir(metadata)
            }
            FileType::Symlink => {
                let metadata = std::fs::symlink_metadata(&path).map_err(Error::read(&path))?;
                if !metadata.file_type().is_symlink() {
                    return Err(Error::Changed {
                        path,
                        what: "replaced by another file".to_owned(),
                    });
                }
                let target = rustix::fs::readlinkat(&*frame.dir, &name, Vec::new())
                    .map_err(|e| read_error(&path, e))?;
                Kind::Symlink(metadata, target.into_bytes())
            }
            FileType::Fifo => Kind::Skipped("fifo"),
            FileType::CharacterDevice => Kind::Skipped("char-device"),
            FileType::BlockDevice => Kind::Skipped("block-device"),
            FileType::Socket => return Ok(None),
            FileType::Unknown => {
                // File systems without d_type: ask the inode.
                let stat = rustix::fs::statat(&*frame.dir, &name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| read_error(&path, e))?;
                let file_type = FileType::from_raw_mode(stat.st_mode);
                if file_type == FileType::Unknown {
                    return Ok(None);
                }
                return self.walked(name, file_type);
            }
        };
        Ok(Some(Walked::Other(path, kind)))
    }
}

impl Iterator for Walk {
    type Item = Result<Walked>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(root) = self.root.take() {
            return Some(Ok(root));
        }
        loop {
            let frame = self.stack.last_mut()?;
            let Some((name, file_type)) = frame.entries.pop() else {
                self.stack.pop();
                continue;
            };
            match self.walked(name, file_type) {
                Ok(Some(walked)) => return Some(Ok(walked)),
                Ok(None) => {}
                Err(e) => {
                    // Nothing follows an error: the writer stops at it.
                    self.stack.clear();
                    return Some(Err(e));
                }
            }
        }
    }
}

fn read_error(path: &Path, e: rustix::io::Errno) -> Error {
    Error::Read {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

#[cfg(test)]
mod tests {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

    #[test]
    fn the_open_file_limit_is_raised_to_the_hard_limit() {
        let before = getrlimit(Resource::Nofile);
        let maximum = before.maximum.expect("a finite hard limit on open files");
        // Start below the hard limit (512 is plenty for the tests running meanwhile).
        let lowered = Rlimit {
            current: Some(maximum.min(512)),
            maximum: Some(maximum),
        };
        setrlimit(Resource::Nofile, lowered).unwrap();
        super::raise_open_file_limit();
        assert_eq!(getrlimit(Resource::Nofile).current, Some(maximum));
    }
}
