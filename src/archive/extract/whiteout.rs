//! OCI whiteouts: `.wh.<name>` deletes `<name>` from what the target held before the archive,
//! `.wh..wh..opq` empties its directory of what it held before.
//!
//! A whiteout applies to lower layers only (OCI image spec, "Whiteouts"): one that would
//! delete an entry of the same archive, or anything it wrote into, is refused. Its name must
//! hide a real name: `.wh.`, `.wh..` and `.wh...` are refused in every mode, since they would
//! name the directory itself or its parent. Its parents are checked as any entry's are, so a
//! whiteout never deletes through a symlink; the victim itself is removed, not followed.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::Extraction;
use super::paths::{Parents, remove_path};
use crate::error::{Error, Result};

/// Prefix of an OCI whiteout file name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of an OCI opaque-directory whiteout.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// The name a whiteout file hides, if `base` is a whiteout name.
fn hidden_name(base: &[u8]) -> Option<&[u8]> {
    base.strip_prefix(WHITEOUT_PREFIX.as_bytes())
}

impl Extraction<'_> {
    /// Refuses a whiteout name that hides nothing, the directory itself or its parent.
    pub(super) fn check_whiteout_name(&self, raw: &[u8], relative: &Path) -> Result<()> {
        let base = relative.file_name().map_or(&b""[..], |n| n.as_bytes());
        match hidden_name(base) {
            Some(b"" | b"." | b"..") => Err(self.hostile(
                raw,
                "whiteout name does not hide a file (`.wh.`, `.wh..`, `.wh...`)",
            )),
            _ => Ok(()),
        }
    }

    /// Applies `relative` as a whiteout if it is one; true when it was.
    pub(super) fn apply_whiteout(&mut self, raw: &[u8], relative: &Path) -> Result<bool> {
        let Some(base) = relative.file_name().map(|n| n.as_bytes()) else {
            return Ok(false);
        };
        let Some(hidden) = hidden_name(base) else {
            return Ok(false);
        };
        self.summary.whiteouts += 1;
        let parent = relative.parent().unwrap_or(Path::new("")).to_path_buf();
        if !self.parents(raw, relative, Parents::Check)? {
            // The directory is not there: nothing to hide.
            return Ok(true);
        }
        let parent_path = self.target.join(&parent);
        if base == OPAQUE_WHITEOUT.as_bytes() {
            let entries = fs::read_dir(&parent_path).map_err(Error::read(&parent_path))?;
            for child in entries {
                let child = child.map_err(Error::read(&parent_path))?;
                if !self.seen.contains(&parent.join(child.file_name())) {
                    remove_path(&child.path())?;
                }
            }
        } else {
            let victim = parent.join(std::ffi::OsStr::from_bytes(hidden));
            if self.seen.iter().any(|p| p.starts_with(&victim)) {
                return Err(self.hostile(
                    raw,
                    "whiteout hides an entry of the same archive (whiteouts apply to lower layers)",
                ));
            }
            remove_path(&self.target.join(&victim))?;
        }
        // A removed directory may be recreated as anything: trust nothing cached.
        self.safe_dirs.clear();
        Ok(true)
    }
}
