//! Layer compression: none, gzip and zstd, deterministic output, and detection on read.
//!
//! Compressed bytes must not depend on the run, the machine or the core count, or digests of
//! the same layer would differ: gzip is written with no file name, mtime 0 and OS byte 255
//! ("unknown", as Go writes it), at libdeflate level 5 (1 for blocks that look already
//! compressed), in fixed-size blocks compressed in parallel and joined into one deflate stream
//! ([`gzip`]); zstd at level 3 as one frame per fixed-size block, also in parallel ([`zstd`]).
//! Both run on [`blocks`], one worker per core; tests pin that the bytes are the same for 1, 2
//! and 4.

use std::io::{self, BufRead, BufReader, Read, Write};

use serde::{Deserialize, Serialize};

pub mod blocks;
pub mod chunk;
mod deflate_join;
mod deflate_scan;
pub mod gzip;
#[cfg(test)]
mod inflate_oracle;
#[cfg(test)]
mod test_data;
pub mod zstd;

/// gzip compression level (libdeflate's scale, 0-12). Level 5 rather than 6: measured here,
/// ~30 % less CPU on a tree of small text files (node) and ~5 % on a JDK, while still smaller
/// than `pigz -6` on both (0.9989x and 0.9968x). Blocks that look already compressed are
/// deflated at level 1 whatever this is ([`gzip`]).
pub const GZIP_LEVEL: u32 = 5;
/// zstd compression level.
pub const ZSTD_LEVEL: i32 = 3;

/// How a layer blob is compressed.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// The plain tar; its digest is the diffID.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// Zstandard.
    Zstd,
}

impl Compression {
    /// The OCI media type of a layer blob in this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    /// The name used on the command line and in records.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// Uncompressed bytes per block the compressor's workers take at a time, if it has any.
    pub fn block_size(self) -> Option<usize> {
        match self {
            Compression::None => None,
            Compression::Gzip => Some(gzip::BLOCK),
            Compression::Zstd => Some(zstd::BLOCK),
        }
    }

    /// Identifies the compression of a blob from its first bytes.
    pub fn detect(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// Wraps `inner` in a compressor.
    ///
    /// # Errors
    /// libzstd refusing its parameters.
    pub fn encoder<W: Write>(self, inner: W) -> io::Result<Encoder<W>> {
        self.encoder_with_threads(inner, workers())
    }

    /// [`Compression::encoder`] with `threads` (at least one) compression workers; the bytes
    /// written are the same whatever `threads` is.
    ///
    /// # Errors
    /// libzstd refusing its parameters, or a worker thread failing to start.
    pub fn encoder_with_threads<W: Write>(
        self,
        inner: W,
        threads: usize,
    ) -> io::Result<Encoder<W>> {
        let threads = threads.max(1);
        Ok(match self {
            Compression::None => Encoder::None(inner),
            Compression::Gzip => Encoder::Gzip(gzip::GzEncoder::new(inner, GZIP_LEVEL, threads)?),
            Compression::Zstd => Encoder::Zstd(zstd::encoder(inner, ZSTD_LEVEL, threads)?),
        })
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Compression worker threads: the cores there are, at least one, at most 16.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(16))
}

/// A compressing writer; [`Encoder::finish`] writes the trailer and returns the inner writer.
pub enum Encoder<W: Write> {
    /// Pass-through.
    None(W),
    /// gzip.
    Gzip(gzip::GzEncoder<W>),
    /// zstd.
    Zstd(blocks::BlockWriter<W>),
}

impl<W: Write> Encoder<W> {
    /// Writes a shared chunk; compressors read its whole blocks in place ([`blocks`]), with
    /// the same output as writing its bytes.
    ///
    /// # Errors
    /// As [`Write::write`].
    pub fn write_chunk(&mut self, chunk: &std::sync::Arc<chunk::Chunk>) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.write_all(chunk),
            Encoder::Gzip(w) => w.write_chunk(chunk),
            Encoder::Zstd(w) => w.write_chunk(chunk),
        }
    }

    /// Finishes the stream.
    ///
    /// # Errors
    /// Any write error of the trailer.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::None(w) => Ok(w),
            Encoder::Gzip(w) => w.finish(),
            Encoder::Zstd(w) => w.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::None(w) => w.write(buf),
            Encoder::Gzip(w) => w.write(buf),
            Encoder::Zstd(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::None(w) => w.flush(),
            Encoder::Gzip(w) => w.flush(),
            Encoder::Zstd(w) => w.flush(),
        }
    }
}

/// Returns a reader of the uncompressed bytes of `blob`, whatever its compression, and the
/// compression found. A multi-member gzip stream (as parallel compressors write) is read whole.
///
/// # Errors
/// A read error on the first bytes, or libzstd failing to start.
pub fn decompress<'a, R: Read + 'a>(blob: R) -> io::Result<(Box<dyn Read + 'a>, Compression)> {
    let mut reader = BufReader::with_capacity(256 * 1024, blob);
    let compression = Compression::detect(reader.fill_buf()?);
    let inner: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(::zstd::Decoder::with_buffer(reader)?),
    };
    Ok((inner, compression))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compress(c: Compression, data: &[u8]) -> Vec<u8> {
        let mut e = c.encoder(Vec::new()).unwrap();
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn every_compression_round_trips_and_is_detected() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let blob = compress(c, &data);
            let (mut r, found) = decompress(&blob[..]).unwrap();
            assert_eq!(found, c);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, data);
        }
    }

    #[test]
    fn gzip_header_has_no_name_no_mtime_and_os_255() {
        let blob = compress(Compression::Gzip, b"abc");
        assert_eq!(&blob[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&blob[4..8], &[0, 0, 0, 0]);
        assert_eq!(blob[9], 255);
    }

    #[test]
    fn compressed_bytes_are_the_same_every_run() {
        let data = vec![7u8; 3 << 20];
        for c in [Compression::Gzip, Compression::Zstd] {
            assert_eq!(compress(c, &data), compress(c, &data));
        }
    }

    #[test]
    fn zstd_bytes_do_not_depend_on_the_thread_count() {
        // Several of libzstd's jobs, so that workers really split the work.
        let data: Vec<u8> = (0..24u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 27) as u8 ^ (i >> 12) as u8)
            .collect();
        let with = |threads| {
            let mut e = Compression::Zstd
                .encoder_with_threads(Vec::new(), threads)
                .unwrap();
            for piece in data.chunks(1 << 20) {
                e.write_all(piece).unwrap();
            }
            e.finish().unwrap()
        };
        let one = with(1);
        assert!(with(2) == one, "2 threads differ from 1");
        assert!(with(4) == one, "4 threads differ from 1");
    }

    #[test]
    fn gzip_digest_is_pinned() {
        // Guards the gzip bytes against a change of backend (libdeflate's version), block size
        // or level, or of how blocks are joined: any of them changes layer digests. Three blocks,
        // two of them joined.
        // Text-like lines: simpler data (a counter) deflates the same at levels 5 and 6.
        let data: Vec<u8> = (0..400_000u32)
            .flat_map(|i| {
                format!("{} {}\n", i % 1009, i.wrapping_mul(2_654_435_761) >> 28).into_bytes()
            })
            .collect();
        assert!(data.len() > 2 * gzip::BLOCK, "{}", data.len());
        let blob = compress(Compression::Gzip, &data);
        assert_eq!(
            crate::digest::Digest::of_bytes(&blob).as_str(),
            "sha256:80112800b2b3703173491152c4a979e117278dc983a23104e28ae8f956d81866"
        );
    }
}
