//! Parallel gzip: one gzip member whose deflate stream is cut into fixed-size blocks compressed
//! by libdeflate on worker threads, each block's output but the last left open
//! (`deflate_join.rs`) so the blocks concatenate into one valid raw deflate stream. The
//! CRC32 of the stream is computed as it is written, for the trailer.
//!
//! One member, never one per block: readers that stop after the first member (flate2's
//! `GzDecoder`, Go's `gzip.Reader` with multistream off) would silently truncate the layer.
//!
//! Blocks start with an empty window (libdeflate has no preset dictionary), which at 1 MiB a
//! block costs well under 1 % in size, and libdeflate at level 5 or 6 still writes less than
//! `pigz -6`.
//!
//! The bytes depend only on the input: block boundaries are fixed offsets of the stream (not of
//! `write` calls, and `flush` never ends a block), and each block's output depends only on its
//! data, so 1, 2 or 16 workers write the same blob.

use std::io::{self, Write};
use std::sync::Arc;

use super::blocks::BlockWriter;
use super::chunk::Chunk;
use super::deflate_join::deflate_block;

/// Uncompressed bytes per block.
pub const BLOCK: usize = 1 << 20;
/// gzip header: magic, deflate, no flags, mtime 0, no extra flags, OS 255 (unknown, as Go).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// A gzip writer compressing on worker threads ([`super::blocks`]); [`GzEncoder::finish`]
/// ends it.
pub struct GzEncoder<W: Write> {
    blocks: BlockWriter<W>,
    /// CRC32 of the uncompressed stream, for the trailer.
    crc: crc32fast::Hasher,
}

impl<W: Write> GzEncoder<W> {
    /// A gzip writer at libdeflate `level` (0-12) into `inner`, with `threads` (at least one)
    /// workers.
    ///
    /// # Errors
    /// `level` out of range, a write error of the header, or the OS refusing to start a thread.
    pub fn new(mut inner: W, level: u32, threads: usize) -> io::Result<Self> {
        let level = i32::try_from(level)
            .ok()
            .and_then(|l| libdeflater::CompressionLvl::new(l).ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("gzip level {level} is not in 0..=12"),
                )
            })?;
        inner.write_all(&HEADER)?;
        let blocks = BlockWriter::new(inner, BLOCK, threads, "gzip", move || {
            // libdeflate keeps no state from one call to the next: reuse does not change bytes.
            let mut compressor = libdeflater::Compressor::new(level);
            Ok(Box::new(move |data, last, out| {
                deflate_block(&mut compressor, data, last, out)
            }))
        })?;
        Ok(Self {
            blocks,
            crc: crc32fast::Hasher::new(),
        })
    }

    /// Writes a shared chunk, its whole blocks compressed in place ([`BlockWriter::write_chunk`]).
    ///
    /// # Errors
    /// As [`Write::write`].
    pub fn write_chunk(&mut self, chunk: &Arc<Chunk>) -> io::Result<()> {
        self.blocks.write_chunk(chunk)?;
        self.crc.update(chunk);
        Ok(())
    }

    /// Compresses what is left, writes the trailer and returns the inner writer.
    ///
    /// # Errors
    /// A write error of `inner`, or a worker failing.
    pub fn finish(self) -> io::Result<W> {
        let mut inner = self.blocks.finish()?;
        let size = self.crc.total_len() as u32;
        inner.write_all(&self.crc.finalize().to_le_bytes())?;
        inner.write_all(&size.to_le_bytes())?;
        Ok(inner)
    }
}

impl<W: Write> Write for GzEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.blocks.write_all(buf)?;
        self.crc.update(buf);
        Ok(buf.len())
    }

    /// Writes the blocks already compressed and flushes the inner writer; it does not end the
    /// current block, so the output does not depend on when it is called.
    fn flush(&mut self) -> io::Result<()> {
        self.blocks.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::process::{Command, Stdio};

    use super::*;
    use crate::compress::test_data::random;

    /// Compressible but not trivial: text-like lines with varying numbers.
    fn sample(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 64);
        let mut x = 0x2545_f491_u32;
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            out.extend_from_slice(format!("entry {} value {}\n", x % 977, x).as_bytes());
        }
        out.truncate(len);
        out
    }

    fn gzip(data: &[u8], threads: usize) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), super::super::GZIP_LEVEL, threads).unwrap();
        // Odd write sizes: block boundaries must not follow them.
        for piece in data.chunks(100_003) {
            e.write_all(piece).unwrap();
        }
        e.finish().unwrap()
    }

    /// Decodes ONE gzip member and checks it is the whole blob: a reader that stops after the
    /// first member must still get every byte.
    fn gunzip(blob: &[u8]) -> Vec<u8> {
        let mut decoder = flate2::bufread::GzDecoder::new(blob);
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).unwrap();
        assert!(
            decoder.into_inner().is_empty(),
            "bytes after the first member"
        );
        out
    }

    /// Runs `tool args blob` and returns its stdout, checking it succeeded.
    fn tool_output(tool: &str, args: &[&str], blob: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.gz");
        std::fs::write(&path, blob).unwrap();
        let out = Command::new(tool)
            .args(args)
            .arg(&path)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("{tool} (scripts/test installs it): {e}"));
        assert!(out.status.success(), "{tool} {args:?} rejects the stream");
        out.stdout
    }

    #[test]
    fn every_kind_of_block_round_trips_through_one_member_readers() {
        let several = 3 * BLOCK + 4321;
        let cases: [(&str, Vec<u8>); 8] = [
            ("empty", Vec::new()),
            ("1 byte", b"x".to_vec()),
            ("1 MiB", sample(BLOCK)),
            ("1 MiB + 1", sample(BLOCK + 1)),
            ("random", random(several, 0x9e37_79b9)),
            ("zeros", vec![0; several]),
            ("text", sample(several)),
            // Stored, dynamic and (a short last block) fixed-Huffman blocks after each other.
            (
                "mixed",
                [
                    random(BLOCK, 0x9e37_79b9),
                    vec![0; BLOCK],
                    sample(BLOCK),
                    b"end".to_vec(),
                ]
                .concat(),
            ),
        ];
        for (name, data) in cases {
            let blob = gzip(&data, 2);
            assert!(gunzip(&blob) == data, "{name}: GzDecoder");
            assert!(
                tool_output("gzip", &["-dc"], &blob) == data,
                "{name}: gzip -dc"
            );
            assert!(
                tool_output("pigz", &["-dc"], &blob) == data,
                "{name}: pigz -dc"
            );
            tool_output("gzip", &["-t"], &blob);
        }
    }

    #[test]
    fn round_trips_at_and_around_block_boundaries() {
        for len in [
            0,
            1,
            BLOCK - 1,
            BLOCK,
            BLOCK + 1,
            2 * BLOCK - 1,
            2 * BLOCK,
            2 * BLOCK + 1,
        ] {
            let data = sample(len);
            let blob = gzip(&data, 2);
            assert_eq!(gunzip(&blob), data, "length {len}");
            let trailer = &blob[blob.len() - 8..];
            assert_eq!(trailer[..4], crc32fast::hash(&data).to_le_bytes());
            assert_eq!(trailer[4..], (len as u32).to_le_bytes());
        }
    }

    #[test]
    fn bytes_do_not_depend_on_the_thread_count() {
        let data = sample(5 * BLOCK + 12_345);
        let one = gzip(&data, 1);
        assert!(gzip(&data, 2) == one, "2 threads differ from 1");
        assert!(gzip(&data, 4) == one, "4 threads differ from 1");
        assert!(one.len() < data.len() / 2, "compresses: {}", one.len());
    }

    #[test]
    fn empty_input_is_a_valid_gzip_of_nothing() {
        let blob = gzip(b"", 2);
        assert_eq!(blob[..10], HEADER);
        assert!(gunzip(&blob).is_empty());
        assert_eq!(blob[blob.len() - 8..], [0u8; 8]);
    }
}
