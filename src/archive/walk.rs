//! lifecycle's walk order over a directory tree, yielding each entry with what the tar writer
//! needs: metadata for directories and symlinks, the parent directory's descriptor for regular
//! files (read later, by the read-ahead), the kind of fifos and devices to skip.
//!
//! Order: the root, then a pre-order walk whose siblings are sorted by name bytes (Go's
//! `filepath.Walk`: `a/b` before `a-b`). Symlinks are never followed below the root.

use std::fs::{File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use walkdir::WalkDir;

use super::readahead::FileJob;

use crate::error::{Error, Result};

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

/// The walk of one tree.
pub(crate) struct Walk {
    entries: walkdir::IntoIter,
    root: PathBuf,
    /// Directories open along the walk, by depth: files are opened relative to their parent,
    /// so the kernel resolves one name per file, not the whole path.
    dirs: Vec<Arc<File>>,
}

impl Walk {
    /// The walk of `root`, itself included when `with_root`.
    pub fn new(root: &Path, with_root: bool) -> Result<Self> {
        let entries = WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
            .min_depth(if with_root { 0 } else { 1 })
            .into_iter();
        let mut dirs = Vec::new();
        if !with_root {
            dirs.push(Arc::new(File::open(root).map_err(Error::read(root))?));
        }
        Ok(Self {
            entries,
            root: root.to_path_buf(),
            dirs,
        })
    }

    fn walked(&mut self, entry: walkdir::DirEntry) -> Result<Option<Walked>> {
        let path = entry.path();
        let file_type = entry.file_type();
        let kind = if file_type.is_file() && entry.depth() > 0 {
            return Ok(Some(Walked::File(FileJob {
                dir: Arc::clone(&self.dirs[entry.depth() - 1]),
                name: entry.file_name().to_owned(),
                path: path.to_path_buf(),
            })));
        } else if file_type.is_dir() {
            let dir = File::open(path).map_err(Error::read(path))?;
            let metadata = dir.metadata().map_err(Error::read(path))?;
            self.dirs.truncate(entry.depth());
            self.dirs.push(Arc::new(dir));
            Kind::Dir(metadata)
        } else if file_type.is_symlink() {
            let metadata = std::fs::symlink_metadata(path).map_err(Error::read(path))?;
            let target = std::fs::read_link(path).map_err(Error::read(path))?;
            Kind::Symlink(metadata, target.as_os_str().as_bytes().to_vec())
        } else if file_type.is_fifo() {
            Kind::Skipped("fifo")
        } else if file_type.is_char_device() {
            Kind::Skipped("char-device")
        } else if file_type.is_block_device() {
            Kind::Skipped("block-device")
        } else {
            return Ok(None);
        };
        Ok(Some(Walked::Other(path.to_path_buf(), kind)))
    }
}

impl Iterator for Walk {
    type Item = Result<Walked>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let entry = match self.entries.next()? {
                Ok(entry) => entry,
                Err(e) => {
                    let path = e.path().unwrap_or(&self.root).to_path_buf();
                    return Some(Err(Error::Read {
                        path,
                        source: e.into(),
                    }));
                }
            };
            if let Some(walked) = self.walked(entry).transpose() {
                return Some(walked);
            }
        }
    }
}
