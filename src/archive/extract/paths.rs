//! Entry names made relative to the target, and the checks that keep every write inside it:
//! parents that are real directories, and removal that never follows a symlink.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::Extraction;
use crate::error::{Error, Result};

/// What [`Extraction::parents`] does with a missing parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Parents {
    /// Create it.
    Create,
    /// Report it (the call returns false).
    Check,
}

impl Extraction<'_> {
    /// The entry name relative to the target: `/` and `.` dropped, `..` and NUL refused;
    /// `None` for the target itself.
    pub(super) fn relative_path(&self, raw: &[u8]) -> Result<Option<PathBuf>> {
        if raw.contains(&0) {
            return Err(self.hostile(raw, "name contains a NUL byte"));
        }
        let mut relative = PathBuf::new();
        for part in raw.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => return Err(self.hostile(raw, "path leaves the target directory (..)")),
                _ => relative.push(std::ffi::OsStr::from_bytes(part)),
            }
        }
        Ok((!relative.as_os_str().is_empty()).then_some(relative))
    }

    /// Makes sure every parent of `relative` is a real directory, refusing symlinks and other
    /// files. A missing parent is created ([`Parents::Create`]) or makes the call return false
    /// ([`Parents::Check`]).
    pub(super) fn parents(
        &mut self,
        raw: &[u8],
        relative: &Path,
        missing: Parents,
    ) -> Result<bool> {
        let Some(parent) = relative.parent() else {
            return Ok(true);
        };
        let mut current = PathBuf::new();
        for component in parent.components() {
            current.push(component);
            if self.safe_dirs.contains(&current) {
                continue;
            }
            let path = self.target.join(&current);
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(self.hostile(
                        raw,
                        format!(
                            "{} is a symlink: refusing to write through it",
                            current.display()
                        ),
                    ));
                }
                Ok(_) => {
                    return Err(
                        self.hostile(raw, format!("{} is not a directory", current.display()))
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if missing == Parents::Check {
                        return Ok(false);
                    }
                    fs::create_dir(&path).map_err(Error::write(&path))?;
                }
                Err(e) => return Err(Error::Read { path, source: e }),
            }
            self.safe_dirs.insert(current.clone());
        }
        Ok(true)
    }
}

/// Removes a file, symlink or whole directory at `path`, never following a symlink; absent is
/// fine.
pub(crate) fn remove_path(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(Error::write(path)),
        Ok(_) => fs::remove_file(path).map_err(Error::write(path)),
        Err(_) => Ok(()),
    }
}

/// Replaces whatever is at `path` with a new, empty, owner-only file, never writing through a
/// symlink (its mode is set once its content is in).
pub(crate) fn replace_with_file(path: &Path) -> Result<File> {
    remove_path(path)?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(Error::write(path))
}
