//! Joinable raw deflate blocks: libdeflate compresses each block of the stream on its own, and
//! this module turns every block's output but the last into a prefix that the next block's
//! output can follow, so that the pieces concatenate into one valid deflate stream (the way
//! zlib's `examples/gzjoin.c` joins gzip members).
//!
//! libdeflate ends its output with a final block (BFINAL = 1) padded with zero bits to a byte,
//! and has neither a preset dictionary nor a sync flush. To continue the stream after it:
//! 1. find, exactly, the bit where that final block's header starts and the bit where its
//!    end-of-block code ends, with a decode-only scan of the output ([`super::deflate_scan`]):
//!    it parses every block and decodes every symbol but writes no bytes, checking the
//!    structure and that the stream decodes to as many bytes as the input, not the bytes
//!    themselves (the tests compare the scan with a full zlib-rs inflate, and the joined
//!    stream with the input);
//! 2. clear that BFINAL bit (RFC 1951 packs bits from the least significant bit of each byte);
//! 3. append an empty stored block with BFINAL = 0 (3 zero header bits, zero padding to a
//!    byte, LEN 0000, NLEN FFFF), which leaves the stream byte-aligned for the next block. With
//!    `k` padding bits after the end-of-block code, `k >= 3` means the 3 header bits fit in that
//!    padding: append `00 00 FF FF`; otherwise they spill into one more byte: `00 00 00 FF FF`.
//!
//! Each block starts with an empty window, so the bytes depend only on the block's data.

use std::io;

use super::deflate_scan::{FinalBlock, final_block};

/// Compresses `data` with libdeflate into a raw deflate stream; unless `last`, the stream is
/// left open (see the module doc) so the next block's stream can follow it.
///
/// # Errors
/// libdeflate failing, or its output not scanning as a stream of `data.len()` bytes (a bug,
/// never expected).
pub(super) fn deflate_block(
    compressor: &mut libdeflater::Compressor,
    data: &[u8],
    last: bool,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    // 5 bytes more: room for the empty stored block without growing the buffer.
    out.resize(compressor.deflate_compress_bound(data.len()) + 5, 0);
    let len = compressor
        .deflate_compress(data, out)
        .map_err(|e| io::Error::other(format!("libdeflate failed: {e}")))?;
    out.truncate(len);
    if !last {
        let block = final_block(out, data)?;
        leave_open(out, block);
    }
    Ok(())
}

/// Clears the final block's BFINAL bit and appends an empty, non-final stored block.
pub(super) fn leave_open(deflated: &mut Vec<u8>, block: FinalBlock) {
    deflated[block.header / 8] &= !(1 << (block.header % 8));
    let used = block.end % 8;
    if used != 0 {
        *deflated.last_mut().expect("a final block has bytes") &= (1 << used) - 1;
    }
    let padding = (8 - used) % 8;
    if padding < 3 {
        deflated.push(0);
    }
    deflated.extend_from_slice(&[0, 0, 0xff, 0xff]);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::io::Read;

    use super::*;
    use crate::compress::inflate_oracle::inflate_stream;
    use crate::compress::test_data::{random, text};

    fn raw_inflate(stream: &[u8]) -> Vec<u8> {
        let mut decoder = flate2::read::DeflateDecoder::new(stream);
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).unwrap();
        assert_eq!(
            decoder.total_in(),
            stream.len() as u64,
            "bytes after the end"
        );
        out
    }

    fn bit(bytes: &[u8], at: usize) -> u8 {
        (bytes[at / 8] >> (at % 8)) & 1
    }

    #[test]
    fn leave_open_for_every_padding_width() {
        // A final fixed-Huffman block of n literals 0x90 (9-bit code 110010000, sent from its
        // most significant bit): header 3 bits + 9n + end-of-block 7 bits, so n = 0..8 ends on
        // every bit of a byte.
        for n in 0..8usize {
            let mut bits = vec![1, 1, 0];
            for _ in 0..n {
                bits.extend([1, 1, 0, 0, 1, 0, 0, 0, 0]);
            }
            bits.extend([0; 7]);
            let mut stream = vec![0u8; bits.len().div_ceil(8)];
            for (i, b) in bits.iter().enumerate() {
                stream[i / 8] |= b << (i % 8);
            }
            let data = vec![0x90; n];
            let block = final_block(&stream, &data).unwrap();
            assert_eq!(inflate_stream(&stream, n).unwrap(), (block, data.clone()));
            assert_eq!(
                block,
                FinalBlock {
                    header: 0,
                    end: 10 + 9 * n
                }
            );
            let mut open = stream.clone();
            leave_open(&mut open, block);
            assert_eq!(bit(&open, 0), 0, "BFINAL cleared");
            let padding = (8 - block.end % 8) % 8;
            let stored: &[u8] = if padding < 3 {
                &[0, 0, 0, 0xff, 0xff]
            } else {
                &[0, 0, 0xff, 0xff]
            };
            assert_eq!(open[stream.len()..], *stored, "n = {n}");
            open.extend_from_slice(&[0x03, 0x00]);
            assert_eq!(raw_inflate(&open), data, "n = {n}");
        }
    }

    #[test]
    fn joined_libdeflate_blocks_inflate_as_one_stream() {
        let mut paddings = BTreeSet::new();
        let mut types = BTreeSet::new();
        let mut compressor =
            libdeflater::Compressor::new(libdeflater::CompressionLvl::new(6).unwrap());
        for len in (0..300).chain([1000, 5000, 70_000, 200_000]) {
            for (kind, piece) in [
                ("random", random(len, 0x9e37_79b9 ^ len as u32)),
                ("text", text(len, 7 + len as u32)),
                ("zeros", vec![0; len]),
            ] {
                let pieces = [piece.clone(), text(len / 2 + 1, len as u32), piece];
                let mut joined = Vec::new();
                for (i, data) in pieces.iter().enumerate() {
                    let last = i == pieces.len() - 1;
                    let mut deflated = Vec::new();
                    deflate_block(&mut compressor, data, last, &mut deflated).unwrap();
                    if !last {
                        let alone = {
                            let mut out = vec![0; compressor.deflate_compress_bound(data.len())];
                            let n = compressor.deflate_compress(data, &mut out).unwrap();
                            out.truncate(n);
                            out
                        };
                        let block = final_block(&alone, data).unwrap();
                        let oracle = inflate_stream(&alone, data.len()).unwrap();
                        assert!(oracle == (block, data.clone()), "{kind} {len}");
                        paddings.insert((8 - block.end % 8) % 8);
                        types.insert(
                            bit(&alone, block.header + 1) | bit(&alone, block.header + 2) << 1,
                        );
                        assert_eq!(bit(&deflated, block.header), 0, "{kind} {len}");
                    }
                    joined.extend_from_slice(&deflated);
                }
                assert!(raw_inflate(&joined) == pieces.concat(), "{kind} {len}");
            }
        }
        assert_eq!(paddings, (0..8).collect(), "padding widths seen");
        assert_eq!(
            types,
            BTreeSet::from([0, 1, 2]),
            "stored, fixed and dynamic final blocks"
        );
    }
}
