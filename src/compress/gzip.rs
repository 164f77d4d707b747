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
//! A block that looks already compressed (a jar, a jmod, an image: bytes spread evenly over all
//! 256 values, see [`looks_compressed`]) is deflated at level 1 rather than the level asked
//! for: deflate finds little to gain in such data whatever its effort. Measured on a JDK tree,
//! where 77 of 259 blocks are such data: 11 % less compression CPU for 0.1 % more bytes; a tree
//! of source files has none, and its bytes do not change.
//!
//! The bytes depend only on the input: block boundaries are fixed offsets of the stream (not of
//! `write` calls, and `flush` never ends a block), and each block's output (level included)
//! depends only on its data, so 1, 2 or 16 workers write the same blob.

use std::io::{self, Write};
use std::sync::Arc;

use super::blocks::BlockWriter;
use super::chunk::Chunk;
use super::deflate_join::deflate_block;

/// Uncompressed bytes per block.
pub const BLOCK: usize = 1 << 20;
/// The level of blocks that look already compressed.
pub const COMPRESSED_DATA_LEVEL: i32 = 1;
/// Order-0 entropy, in bits per byte, from which a block looks already compressed. Deflated,
/// zstd'd or encrypted data is at 7.9-8.0; machine code, class files and text at 4-6.5
/// (measured on a JDK's and node_modules' blocks); 7.5 leaves room on both sides.
const COMPRESSED_ENTROPY: f64 = 7.5;
/// Every 17th byte of a block is sampled for its entropy: 61 681 samples of 1 MiB estimate
/// 8 bits within 0.01, at 2 % of the cost of counting every byte. Odd, so that records of a
/// power-of-two size do not make the sample see one field only.
const ENTROPY_STRIDE: usize = 17;
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
        let invalid = || {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("gzip level {level} is not in 0..=12"),
            )
        };
        let level = i32::try_from(level).map_err(|_| invalid())?;
        let lvl = |level| libdeflater::CompressionLvl::new(level).map_err(|_| invalid());
        let (level, compressed_data_level) = (lvl(level)?, lvl(COMPRESSED_DATA_LEVEL.min(level))?);
        inner.write_all(&HEADER)?;
        let blocks = BlockWriter::new(inner, BLOCK, threads, "gzip", move || {
            // libdeflate keeps no state from one call to the next: reuse does not change bytes.
            let mut compressor = libdeflater::Compressor::new(level);
            let mut fast = libdeflater::Compressor::new(compressed_data_level);
            Ok(Box::new(move |data, last, out| {
                let compressor = if looks_compressed(data) {
                    &mut fast
                } else {
                    &mut compressor
                };
                deflate_block(compressor, data, last, out)
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

/// Whether `block` looks like data that is already compressed: its sampled order-0 entropy is
/// at least 7.5 bits per byte. Such a block is deflated at level 1 (see the module doc).
pub fn looks_compressed(block: &[u8]) -> bool {
    let mut counts = [0u32; 256];
    let mut samples = 0u32;
    for &byte in block.iter().step_by(ENTROPY_STRIDE) {
        counts[usize::from(byte)] += 1;
        samples += 1;
    }
    let samples = f64::from(samples);
    let entropy: f64 = counts
        .iter()
        .filter(|&&count| count > 0)
        .map(|&count| {
            let p = f64::from(count) / samples;
            -p * p.log2()
        })
        .sum();
    entropy >= COMPRESSED_ENTROPY
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
    fn compressed_data_is_told_from_code_and_text() {
        let text = sample(BLOCK);
        let mut deflated = Vec::new();
        let mut encoder =
            flate2::write::DeflateEncoder::new(&mut deflated, flate2::Compression::best());
        encoder
            .write_all(&[text.clone(), random(BLOCK, 7)].concat())
            .unwrap();
        encoder.finish().unwrap();
        assert!(looks_compressed(&deflated), "deflated text and noise");
        assert!(
            looks_compressed(&random(BLOCK, 0x9e37_79b9)),
            "random bytes"
        );
        assert!(!looks_compressed(&text), "text");
        assert!(!looks_compressed(&vec![0; BLOCK]), "zeros");
        // Machine code: this test binary's own first MiB.
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(
            !looks_compressed(&exe[..BLOCK.min(exe.len())]),
            "machine code"
        );
        assert!(!looks_compressed(b""), "nothing");
    }

    #[test]
    fn a_block_of_compressed_data_is_deflated_at_level_1_and_others_at_the_level_asked() {
        let raw_deflate = |data: &[u8], level| {
            let mut compressor =
                libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap());
            let mut out = vec![0; compressor.deflate_compress_bound(data.len())];
            let len = compressor.deflate_compress(data, &mut out).unwrap();
            out.truncate(len);
            out
        };
        // Bytes spread evenly, yet with repeats for deflate to find (random 256-byte pieces
        // drawn from 2 000): levels 1 and 5 write different streams of it.
        let pieces = random(2000 * 256, 3);
        // Less than a block, so that it is the last and only one.
        let len = BLOCK / 2;
        let picks = random(len / 256, 5);
        let repeats: Vec<u8> = (0..len / 256)
            .flat_map(|i| {
                let piece = (usize::from(picks[i]) * 7 + i) % 2000 * 256;
                pieces[piece..piece + 256].to_vec()
            })
            .collect();
        assert!(raw_deflate(&repeats, 1) != raw_deflate(&repeats, 5));
        // The stream between header and trailer is libdeflate's own.
        for (data, level) in [(repeats, 1), (sample(len), 5)] {
            let blob = gzip(&data, 1);
            assert!(
                blob[10..blob.len() - 8] == raw_deflate(&data, level),
                "level {level}"
            );
        }
    }

    #[test]
    fn empty_input_is_a_valid_gzip_of_nothing() {
        let blob = gzip(b"", 2);
        assert_eq!(blob[..10], HEADER);
        assert!(gunzip(&blob).is_empty());
        assert_eq!(blob[blob.len() - 8..], [0u8; 8]);
    }
}
