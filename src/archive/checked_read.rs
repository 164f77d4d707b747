//! Reading one regular file so that what is recorded is what was read: opened relative to its
//! directory without following a symlink or blocking on a fifo, stat'ed through the descriptor
//! before and after the read, and refused ([`Error::Changed`]) if it grew, shrank or was
//! modified meanwhile.

use std::fs::{File, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::error::{Error, Result};

/// Reads exactly the `before.len()` bytes of `file` and checks it did not change meanwhile.
pub(super) fn read_whole(
    file: &File,
    path: &Path,
    before: &Metadata,
    hash: bool,
) -> Result<(Vec<u8>, Option<Digest>)> {
    let size = before.len() as usize;
    let mut bytes = Vec::with_capacity(size);
    while bytes.len() < size {
        let n = rustix::io::read(file, rustix::buffer::spare_capacity(&mut bytes))
            .map_err(|e| read_error(path, e.into()))?;
        if n == 0 {
            return Err(changed(path, "became shorter"));
        }
    }
    // The spare capacity may exceed `size` by a few bytes.
    if bytes.len() > size {
        return Err(changed(path, "grew"));
    }
    let after = file.metadata().map_err(|e| read_error(path, e))?;
    check_unchanged(path, before, &after)?;
    let digest = hash.then(|| Digest::from_hasher(Sha256::new_with_prefix(&bytes)));
    Ok((bytes, digest))
}

/// Fails unless `after` (stat'ed once the content was read) has the size and mtime of
/// `before`.
pub(super) fn check_unchanged(path: &Path, before: &Metadata, after: &Metadata) -> Result<()> {
    if after.len() > before.len() {
        return Err(changed(path, "grew"));
    }
    if after.len() != before.len()
        || after.mtime() != before.mtime()
        || after.mtime_nsec() != before.mtime_nsec()
    {
        return Err(changed(path, "modified"));
    }
    Ok(())
}

/// Opens the regular file `name` of the directory `dir` for reading, without following a
/// symlink and without blocking should it have become a fifo; `path` names it in errors.
pub(super) fn open_in(dir: &File, name: &std::ffi::OsStr, path: &Path) -> Result<File> {
    use rustix::fs::{Mode, OFlags, openat};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    openat(dir, name, flags, Mode::empty())
        .map(File::from)
        .map_err(|e| read_error(path, e.into()))
}

pub(super) fn read_error(path: &Path, source: std::io::Error) -> Error {
    Error::Read {
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn changed(path: &Path, what: &str) -> Error {
    Error::Changed {
        path: path.to_path_buf(),
        what: what.to_owned(),
    }
}
