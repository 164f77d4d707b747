//! Safe extraction of a layer blob (plain, gzip or zstd tar) into a directory.
//!
//! # Security
//! The archive is untrusted (a cache blob, a run-image layer, a layer an earlier build wrote).
//! Every name is taken relative to the target (a leading `/` is dropped: lifecycle layers use
//! absolute names), a `..` component or a NUL byte refuses the archive, and no entry is ever
//! written through a symlink: each parent of an entry must be a real directory (checked with
//! `lstat`, created here when missing; a parent replaced by a later entry is checked again),
//! and the final component is removed, then created with `O_CREAT|O_EXCL|O_NOFOLLOW`.
//! Symlink targets are data and are stored as they are, even when they point outside. Hard
//! links must name, relatively, a regular file inside the target (other than themselves).
//! Devices and fifos are refused, as lifecycle's extractor does; so is a second entry for the
//! same path. A truncated archive (an entry shorter than its size field, no end-of-archive
//! marker, a compressed stream cut short or failing its checksum) is refused. With
//! `max_bytes`, decompressed output beyond it stops the extraction. Modes (with
//! setuid/setgid/sticky) and mtimes are restored, directories' only after their contents are
//! written (so a read-only directory entry does not block its children), through a handle
//! opened with `O_NOFOLLOW`; owners are not restored.
//!
//! Races with another process changing the target during extraction are out of scope: the
//! target must not be writable by anyone less trusted than the caller.
//!
//! With `whiteouts`, OCI whiteouts are applied: `.wh.<name>` deletes `<name>` from what the
//! target held before, `.wh..wh..opq` empties its directory of what it held before; a whiteout
//! of an entry of the same archive is refused (whiteouts apply to lower layers only).

mod paths;
mod whiteout;

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use tar::EntryType;

use crate::compress::{self, Compression};
use crate::error::{Error, Result};

pub use whiteout::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX};

use paths::Parents;
pub(crate) use paths::{remove_path, replace_with_file};

/// Size of a tar block.
const BLOCK: u64 = 512;

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
/// [`Error::Hostile`] for an entry that is refused, [`Error::Invalid`] for a corrupt, truncated
/// or too large archive, [`Error::Write`] when the target cannot be written. Entries extracted
/// before the failure stay in the target; nothing is ever written outside it.
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
    // Where the data of the last entry ends; the end-of-archive marker must follow it.
    let mut end = 0;
    {
        let mut tar = tar::Archive::new(&mut counted);
        for entry in tar.entries().map_err(corrupt)? {
            let entry = entry.map_err(corrupt)?;
            let padded = entry.size().div_ceil(BLOCK).saturating_mul(BLOCK);
            end = entry.raw_file_position().saturating_add(padded);
            state.entry(entry)?;
        }
    }
    if counted.bytes == 0 {
        return Err(Error::invalid(archive, "empty file: not a tar archive"));
    }
    if counted.bytes < end.saturating_add(BLOCK) {
        return Err(Error::invalid(
            archive,
            "truncated archive: no end-of-archive marker after the last entry",
        ));
    }
    // Read the rest so that a compressed stream's checksum and the size limit are checked.
    io::copy(&mut counted, &mut io::sink()).map_err(corrupt)?;
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
        let Some(relative) = self.relative_path(&raw_name)? else {
            // The target itself ("/" or "."): nothing to create.
            return Ok(());
        };
        self.check_whiteout_name(&raw_name, &relative)?;
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
        self.parents(&raw_name, &relative, Parents::Create)?;
        let path = self.target.join(&relative);
        if kind != EntryType::Directory {
            // Whatever stood here (a directory this archive wrote into, say) is replaced:
            // nothing below it may be trusted as a directory any more.
            self.forget_dirs_under(&relative);
        }
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
                let size = entry.size();
                let mut file = replace_with_file(&path)?;
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
                if copied != size {
                    return Err(Error::invalid(
                        self.archive,
                        format!(
                            "truncated archive: entry {:?} holds {copied} of its {size} bytes",
                            String::from_utf8_lossy(&raw_name)
                        ),
                    ));
                }
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(Error::write(&path))?;
                filetime::set_file_handle_times(&file, None, Some(mtime))
                    .map_err(Error::write(&path))?;
                self.summary.bytes += copied;
            }
            EntryType::Symlink => {
                let link = self.link_name(&entry, &raw_name, "symlink")?;
                remove_path(&path)?;
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&link), &path)
                    .map_err(Error::write(&path))?;
                filetime::set_symlink_file_times(&path, mtime, mtime)
                    .map_err(Error::write(&path))?;
            }
            EntryType::Link => {
                let link = self.link_name(&entry, &raw_name, "hard link")?;
                let source = self.hard_link_source(&raw_name, &relative, &link)?;
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

    /// The link target of a symlink or hard link entry: present, not empty, no NUL byte.
    fn link_name<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        raw_name: &[u8],
        what: &str,
    ) -> Result<Vec<u8>> {
        let link = entry
            .link_name_bytes()
            .map(|l| l.into_owned())
            .unwrap_or_default();
        if link.is_empty() {
            return Err(self.hostile(raw_name, format!("{what} without a target")));
        }
        if link.contains(&0) {
            return Err(self.hostile(raw_name, format!("{what} target contains a NUL byte")));
        }
        Ok(link)
    }

    /// Where a hard link entry at `relative` may link from: a regular file inside the target,
    /// named relatively, reached through real directories only, and not the entry itself.
    fn hard_link_source(&mut self, raw: &[u8], relative: &Path, link: &[u8]) -> Result<PathBuf> {
        if link.first() == Some(&b'/') {
            return Err(self.hostile(raw, "hard link to an absolute path"));
        }
        let source_rel = self
            .relative_path(link)?
            .ok_or_else(|| self.hostile(raw, "hard link to the target directory"))?;
        if source_rel == relative {
            return Err(self.hostile(raw, "hard link to itself"));
        }
        let not_a_file = |s: &Self| {
            s.hostile(
                raw,
                "hard link target is not a regular file inside the target",
            )
        };
        if !self.parents(raw, &source_rel, Parents::Check)? {
            return Err(not_a_file(self));
        }
        let source = self.target.join(&source_rel);
        match fs::symlink_metadata(&source) {
            Ok(m) if m.is_file() => Ok(source),
            _ => Err(not_a_file(self)),
        }
    }

    /// Drops `relative` and everything below it from the directories known to be safe.
    fn forget_dirs_under(&mut self, relative: &Path) {
        if self.safe_dirs.remove(relative) {
            self.safe_dirs.retain(|dir| !dir.starts_with(relative));
        }
    }

    /// Gives each directory entry its mode and mtime, deepest first, through a handle that
    /// cannot be a symlink. A directory removed by a later whiteout is skipped.
    fn finish_dirs(&mut self) -> Result<()> {
        self.dirs
            .sort_by_key(|(path, _, _)| std::cmp::Reverse(path.as_os_str().len()));
        for (path, mode, mtime) in &self.dirs {
            let dir = match File::options()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .open(path)
            {
                Ok(dir) => dir,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::Write {
                        path: path.clone(),
                        source: e,
                    });
                }
            };
            dir.set_permissions(fs::Permissions::from_mode(*mode))
                .map_err(Error::write(path))?;
            filetime::set_file_handle_times(&dir, None, Some(*mtime))
                .map_err(Error::write(path))?;
        }
        Ok(())
    }
}
