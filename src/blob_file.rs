//! Putting a blob that already exists on disk (a store blob, a run-image layer, a cache tar) at a
//! second path without recompressing it, and always verified against its digest.
//!
//! A hard link is tried first (no bytes copied; the linked bytes are then hashed, and the link
//! removed if they do not match); across file systems, the blob is streamed through a
//! [`VerifyingReader`] into a temp file beside the destination, fsynced and renamed only once
//! the digest has matched. Either way the source is read exactly once, and a destination that
//! already exists is left as it is (blobs under a digest name are immutable and are verified
//! whenever they are read).

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::digest::{Digest, VerifyingReader, digest_reader};
use crate::error::{Error, Result};

/// How a blob got to its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placed {
    /// The destination already held it.
    Present,
    /// Hard-linked to the source.
    Linked,
    /// Copied (another file system).
    Copied,
}

impl Placed {
    /// `present`, `linked` or `copied`.
    pub fn as_str(self) -> &'static str {
        match self {
            Placed::Present => "present",
            Placed::Linked => "linked",
            Placed::Copied => "copied",
        }
    }
}

/// Places the blob `src`, which must hash to `digest`, at `dest`.
///
/// # Errors
/// [`Error::DigestMismatch`] when `src` does not hash to `digest` (nothing is left at `dest`),
/// [`Error::Read`] / [`Error::Write`] for I/O failures.
pub fn place_verified(src: &Path, digest: &Digest, dest: &Path) -> Result<Placed> {
    if fs::symlink_metadata(dest).is_ok() {
        return Ok(Placed::Present);
    }
    let dir = dest.parent().expect("blob destinations have a parent");
    match fs::hard_link(src, dest) {
        Ok(()) => {
            let file = File::open(dest).map_err(Error::read(dest))?;
            let (found, _) = digest_reader(file).map_err(Error::read(src))?;
            if &found != digest {
                let _ = fs::remove_file(dest);
                return Err(Error::DigestMismatch {
                    path: src.to_path_buf(),
                    expected: digest.clone(),
                    found,
                });
            }
            sync_dir(dir)?;
            Ok(Placed::Linked)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Placed::Present),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !src.exists() => Err(Error::Read {
            path: src.to_path_buf(),
            source: e,
        }),
        Err(_) => {
            let file = File::open(src).map_err(Error::read(src))?;
            copy_verified(src, VerifyingReader::new(file, digest.clone()), dest)?;
            Ok(Placed::Copied)
        }
    }
}

/// Streams `reader` (which fails at end of stream on a digest mismatch) into `dest`
/// atomically; `src` names the source in errors.
///
/// # Errors
/// [`Error::Read`] (a mismatch included: see [`Error::exit_code`]) or [`Error::Write`].
pub fn copy_verified(src: &Path, mut reader: impl io::Read, dest: &Path) -> Result<()> {
    let dir = dest.parent().expect("blob destinations have a parent");
    let temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(Error::write(dir))?;
    let mut out = BufWriter::with_capacity(1 << 20, temp);
    copy(&mut reader, &mut out, src, dest)?;
    let temp = out.into_inner().map_err(|e| Error::Write {
        path: dest.to_path_buf(),
        source: e.into_error(),
    })?;
    temp.as_file().sync_all().map_err(Error::write(dest))?;
    temp.persist(dest).map_err(|e| Error::Write {
        path: dest.to_path_buf(),
        source: e.error,
    })?;
    sync_dir(dir)
}

/// `io::copy`, telling a read failure (input's fault, named `src`) from a write failure (ours,
/// named `dest`); flushes `out` at the end.
///
/// # Errors
/// [`Error::Read`] or [`Error::Write`].
pub fn copy(
    reader: &mut impl io::Read,
    out: &mut impl Write,
    src: &Path,
    dest: &Path,
) -> Result<()> {
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => return out.flush().map_err(Error::write(dest)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::read(src)(e)),
        };
        out.write_all(&buffer[..n]).map_err(Error::write(dest))?;
    }
}

/// fsyncs a directory so a rename or link in it survives a crash.
///
/// # Errors
/// [`Error::Write`].
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::write(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matching_blob_is_placed_and_a_mismatching_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::write(&src, b"blob").unwrap();
        let digest = Digest::of_bytes(b"blob");
        let dest = dir.path().join("dest");
        assert_eq!(
            place_verified(&src, &digest, &dest).unwrap(),
            Placed::Linked
        );
        assert_eq!(fs::read(&dest).unwrap(), b"blob");
        assert_eq!(
            place_verified(&src, &digest, &dest).unwrap(),
            Placed::Present
        );

        let other = dir.path().join("other");
        let wrong = Digest::of_bytes(b"blub");
        let err = place_verified(&src, &wrong, &other).unwrap_err();
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
        assert!(!other.exists());
    }

    #[test]
    fn a_verified_copy_is_renamed_into_place_only_when_it_matches() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("dest");
        let good = Digest::of_bytes(b"abc");
        copy_verified(
            Path::new("src"),
            VerifyingReader::new(&b"abd"[..], good.clone()),
            &dest,
        )
        .unwrap_err();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        copy_verified(
            Path::new("src"),
            VerifyingReader::new(&b"abc"[..], good),
            &dest,
        )
        .unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"abc");
    }
}
