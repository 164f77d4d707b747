//! Safe extraction of a layer blob (plain, gzip or zstd tar) into a directory.
//!
//! # Security
//! The archive is untrusted. Every name is taken relative to the target (a leading `/` is
//! dropped: lifecycle layers use absolute names), a `..` component refuses the archive, and no
//! entry is ever written through a symlink: each parent of an entry must be a real directory
//! (created here when missing), and the final component is replaced, never followed. Symlink
//! targets are data and are stored as they are. Hard links must point at a regular file inside
//! the target, named relatively. Devices and fifos are refused, as lifecycle's extractor does;
//! so is a second entry for the same path. With `max_bytes`, decompressed output beyond it stops
//! the extraction. Modes (with setuid/setgid/sticky) and mtimes are restored; owners are not.
//!
//! With `whiteouts`, OCI whiteouts are applied: `.wh.<name>` deletes `<name>` from what the
//! target held before, `.wh..wh..opq` empties its directory of what it held before.

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use tar::EntryType;

use crate::compress::{self, Compression};
use crate::error::{Error, Result};

/// Prefix of an OCI whiteout file name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of an OCI opaque-directory whiteout.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// How to extract.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractOptions {
    /// Apply OCI whiteouts instead of extracting them as files.
    pub whiteouts: bool,
    /// Refuse archives whose decompressed size exceeds this many bytes.
    pub max_bytes: Option<u64>,
}

/// What an extraction did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExtractSummary {
    /// Entries written (directories, files, symlinks, hard links).
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Whiteouts applied.
    pub whiteouts: u64,
    /// Compression of the blob.
    pub compression: Compression,
}

/// Extracts the layer blob read from `blob` into `target` (created if missing).
/// `archive` names the blob in errors.
///
/// # Errors
/// [`Error::Hostile`] for an entry that is refused, [`Error::Invalid`] for a corrupt or
/// truncated archive, [`Error::Write`] when the target cannot be written.
pub fn extract(
    archive: &Path,
    blob: impl Read,
    target: &Path,
    options: ExtractOptions,
) -> Result<ExtractSummary> {
    let corrupt = |e: io::Error| corrupt_archive(archive, e);
    let (reader, compression) = compress::decompress(blob).map_err(corrupt)?;
    let mut counted = CountingReader {
        inner: reader,
        bytes: 0,
        limit: options.max_bytes,
    };
    fs::create_dir_all(target).map_err(Error::write(target))?;
    let mut state = Extraction {
        archive,
        target,
        options,
        seen: HashSet::new(),
        safe_dirs: HashSet::new(),
        dirs: Vec::new(),
        summary: ExtractSummary {
            entries: 0,
            bytes: 0,
            whiteouts: 0,
            compression,
        },
    };
    {
        let mut tar = tar::Archive::new(&mut counted);
        for entry in tar.entries().map_err(corrupt)? {
            let entry = entry.map_err(corrupt)?;
            state.entry(entry)?;
        }
    }
    if counted.bytes == 0 {
        return Err(Error::invalid(archive, "empty file: not a tar archive"));
    }
    state.finish_dirs()?;
    Ok(state.summary)
}

fn corrupt_archive(archive: &Path, e: io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<TooLarge>()) {
        return Error::invalid(archive, e.to_string());
    }
    Error::invalid(archive, format!("corrupt or truncated archive: {e}"))
}

#[derive(Debug, thiserror::Error)]
#[error("decompressed size exceeds the limit of {0} bytes")]
struct TooLarge(u64);

struct CountingReader<R> {
    inner: R,
    bytes: u64,
    limit: Option<u64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        if let Some(limit) = self.limit.filter(|&limit| self.bytes > limit) {
            return Err(io::Error::other(TooLarge(limit)));
        }
        Ok(n)
    }
}

struct Extraction<'a> {
    archive: &'a Path,
    target: &'a Path,
    options: ExtractOptions,
    /// Relative paths written by this archive.
    seen: HashSet<PathBuf>,
    /// Relative directories known to be real directories (not symlinks).
    safe_dirs: HashSet<PathBuf>,
    /// Directories to give their mode and mtime once their contents are written.
    dirs: Vec<(PathBuf, u32, FileTime)>,
    summary: ExtractSummary,
}

impl Extraction<'_> {
    fn hostile(&self, entry: &[u8], reason: impl Into<String>) -> Error {
        Error::Hostile {
            archive: self.archive.to_path_buf(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }

    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let raw_name = entry.path_bytes().into_owned();
        let header = entry.header();
        let kind = header.entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            return Ok(());
        }
        let relative = self.relative_path(&raw_name)?;
        let Some(relative) = relative else {
            // The target itself ("/" or "."): nothing to create.
            return Ok(());
        };
        let mode = header
            .mode()
            .map_err(|e| corrupt_archive(self.archive, e))?
            & 0o7777;
        let mtime = FileTime::from_unix_time(header.mtime().unwrap_or(0) as i64, 0);

        if self.options.whiteouts && self.apply_whiteout(&raw_name, &relative)? {
            return Ok(());
        }
        if !self.seen.insert(relative.clone()) {
            return Err(self.hostile(&raw_name, "duplicate entry for the same path"));
        }
        self.ensure_parents(&raw_name, &relative)?;
        let path = self.target.join(&relative);
        match kind {
            EntryType::Directory => {
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove_path(&path)?;
                        fs::create_dir(&path).map_err(Error::write(&path))?;
                    }
                    Err(_) => fs::create_dir(&path).map_err(Error::write(&path))?,
                }
                self.safe_dirs.insert(relative.clone());
                self.dirs.push((path, mode, mtime));
            }
            EntryType::Regular | EntryType::Continuous => {
                remove_path(&path)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(Error::write(&path))?;
                let copied = io::copy(&mut entry, &mut file).map_err(|e| {
                    if e.kind() == io::ErrorKind::UnexpectedEof || e.get_ref().is_some() {
                        corrupt_archive(self.archive, e)
                    } else {
                        Error::Write {
                            path: path.clone(),
                            source: e,
                        }
                    }
                })?;
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(Error::write(&path))?;
                filetime::set_file_handle_times(&file, None, Some(mtime))
                    .map_err(Error::write(&path))?;
                self.summary.bytes += copied;
            }
            EntryType::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.hostile(&raw_name, "symlink without a target"))?
                    .into_owned();
                remove_path(&path)?;
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&link), &path)
                    .map_err(Error::write(&path))?;
                filetime::set_symlink_file_times(&path, mtime, mtime)
                    .map_err(Error::write(&path))?;
            }
            EntryType::Link => {
                let link = entry
                    .link_name_bytes()
                    .ok_or_else(|| self.hostile(&raw_name, "hard link without a target"))?
                    .into_owned();
                if link.first() == Some(&b'/') {
                    return Err(self.hostile(&raw_name, "hard link to an absolute path"));
                }
                let source_rel = self
                    .relative_path(&link)?
                    .ok_or_else(|| self.hostile(&raw_name, "hard link to the target directory"))?;
                self.ensure_parents(&raw_name, &source_rel)?;
                let source = self.target.join(&source_rel);
                match fs::symlink_metadata(&source) {
                    Ok(m) if m.is_file() => {}
                    _ => {
                        return Err(self.hostile(
                            &raw_name,
                            "hard link target is not a regular file inside the target",
                        ));
                    }
                }
                remove_path(&path)?;
                fs::hard_link(&source, &path).map_err(Error::write(&path))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                return Err(self.hostile(
                    &raw_name,
                    "device nodes and fifos are not allowed in layers",
                ));
            }
            other => {
                return Err(self.hostile(&raw_name, format!("unsupported entry type {other:?}")));
            }
        }
        self.summary.entries += 1;
        Ok(())
    }

    /// The entry name relative to the target: `/` and `.` dropped, `..` refused; `None` for
    /// the target itself.
    fn relative_path(&self, raw: &[u8]) -> Result<Option<PathBuf>> {
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

    /// Makes every parent of `relative` a real directory, refusing symlinks and other files.
    fn ensure_parents(&mut self, raw: &[u8], relative: &Path) -> Result<()> {
        let Some(parent) = relative.parent() else {
            return Ok(());
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
                    fs::create_dir(&path).map_err(Error::write(&path))?;
                }
                Err(e) => return Err(Error::Read { path, source: e }),
            }
            self.safe_dirs.insert(current.clone());
        }
        Ok(())
    }

    /// Applies `relative` as a whiteout if it is one; true when it was.
    fn apply_whiteout(&mut self, raw: &[u8], relative: &Path) -> Result<bool> {
        let Some(base) = relative.file_name().map(|n| n.as_bytes()) else {
            return Ok(false);
        };
        if !base.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return Ok(false);
        }
        let parent = relative.parent().unwrap_or(Path::new("")).to_path_buf();
        self.ensure_parents(raw, relative)?;
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
            let hidden = &base[WHITEOUT_PREFIX.len()..];
            if hidden.is_empty() {
                return Err(self.hostile(raw, "whiteout without a name"));
            }
            let victim = parent_path.join(std::ffi::OsStr::from_bytes(hidden));
            if fs::symlink_metadata(&victim).is_ok() {
                remove_path(&victim)?;
            }
        }
        // A removed directory may be recreated as anything: trust nothing cached.
        self.safe_dirs.clear();
        self.summary.whiteouts += 1;
        Ok(true)
    }

    fn finish_dirs(&mut self) -> Result<()> {
        self.dirs
            .sort_by_key(|(path, _, _)| std::cmp::Reverse(path.as_os_str().len()));
        for (path, mode, mtime) in &self.dirs {
            fs::set_permissions(path, fs::Permissions::from_mode(*mode))
                .map_err(Error::write(path))?;
            filetime::set_file_mtime(path, *mtime).map_err(Error::write(path))?;
        }
        Ok(())
    }
}

/// Removes a file, symlink or whole directory at `path`, never following a symlink.
fn remove_path(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(Error::write(path)),
        Ok(_) => fs::remove_file(path).map_err(Error::write(path)),
        Err(_) => Ok(()),
    }
}
