//! Content digests: the `sha256:<hex>` type, a hashing writer and a verifying reader.
//!
//! A diffID is the digest of the uncompressed tar; a blob digest is that of the stored bytes.
//! Both are computed while the bytes stream past, never by reading a file twice. Every blob read
//! back goes through [`VerifyingReader`], which fails at end of stream when the bytes do not hash
//! to what was expected.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A `sha256:<64 lowercase hex>` content digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// The digest of a finished hasher.
    pub fn from_hasher(hasher: Sha256) -> Self {
        let bytes = hasher.finalize();
        Self(format!("sha256:{bytes:x}"))
    }

    /// The digest of a byte slice.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The full `sha256:<hex>` string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| format!("{s:?} is not a sha256 digest"))?;
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(format!(
                "{s:?} is not a sha256 digest (64 lowercase hex digits)"
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for Digest {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> Self {
        d.0
    }
}

/// A writer that hashes and counts what passes through to `inner`.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, Digest::from_hasher(self.hasher), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Returned (inside an `io::Error` of kind `InvalidData`) when bytes do not match their digest.
#[derive(Debug, thiserror::Error)]
#[error("content does not match its digest: expected {expected}, found {found}")]
pub struct DigestMismatch {
    /// The digest the bytes should have had.
    pub expected: Digest,
    /// The digest they have.
    pub found: Digest,
}

/// A reader that hashes what it reads and, at end of stream, fails unless the digest (and the
/// size, when known) is the expected one. Consumers must read to the end to get the check.
#[derive(Debug)]
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Sha256>,
    expected: Digest,
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, expecting its bytes to hash to `expected`.
    pub fn new(inner: R, expected: Digest) -> Self {
        Self {
            inner,
            hasher: Some(Sha256::new()),
            expected,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some(hasher) = self.hasher.as_mut() {
                hasher.update(&buf[..n]);
            }
        } else if !buf.is_empty()
            && let Some(hasher) = self.hasher.take()
        {
            let found = Digest::from_hasher(hasher);
            if found != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    DigestMismatch {
                        expected: self.expected.clone(),
                        found,
                    },
                ));
            }
        }
        Ok(n)
    }
}

/// Reads `reader` to its end and returns its digest and length.
///
/// # Errors
/// Any read error.
pub fn digest_reader(mut reader: impl Read) -> io::Result<(Digest, u64)> {
    let mut writer = HashingWriter::new(io::sink());
    let bytes = io::copy(&mut reader, &mut writer)?;
    let (_, digest, _) = writer.finish();
    Ok((digest, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_known_value() {
        assert_eq!(
            Digest::of_bytes(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_rejects_bad_digests() {
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!(
            "md5:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                .parse::<Digest>()
                .is_err()
        );
        assert!(
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
                .parse::<Digest>()
                .is_err()
        );
        let d = Digest::of_bytes(b"x");
        assert_eq!(d.as_str().parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn verifying_reader_accepts_matching_and_rejects_flipped_bytes() {
        let data = b"hello world".to_vec();
        let good = Digest::of_bytes(&data);
        let mut out = Vec::new();
        VerifyingReader::new(&data[..], good.clone())
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);

        let mut flipped = data.clone();
        flipped[0] ^= 1;
        let err = VerifyingReader::new(&flipped[..], good)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("does not match"));
    }

    #[test]
    fn hashing_writer_counts_and_hashes() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (inner, digest, bytes) = w.finish();
        assert_eq!(inner, b"abc");
        assert_eq!(bytes, 3);
        assert_eq!(digest, Digest::of_bytes(b"abc"));
    }
}
