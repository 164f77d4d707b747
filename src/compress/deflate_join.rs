//! Joinable raw deflate blocks: libdeflate compresses each block of the stream on its own, and
//! this module turns every block's output but the last into a prefix that the next block's
//! output can follow, so that the pieces concatenate into one valid deflate stream (the way
//! zlib's `examples/gzjoin.c` joins gzip members).
//!
//! libdeflate ends its output with a final block (BFINAL = 1) padded with zero bits to a byte,
//! and has neither a preset dictionary nor a sync flush. To continue the stream after it:
//! 1. find, exactly, the bit where that final block's header starts and the bit where its
//!    end-of-block code ends, by inflating the output with zlib-rs in `Z_BLOCK` mode, which
//!    stops at every block boundary and reports the unused bits of the input it consumed
//!    (`data_type`); the inflated bytes are also compared with the input;
//! 2. clear that BFINAL bit (RFC 1951 packs bits from the least significant bit of each byte);
//! 3. append an empty stored block with BFINAL = 0 (3 zero header bits, zero padding to a
//!    byte, LEN 0000, NLEN FFFF), which leaves the stream byte-aligned for the next block. With
//!    `k` padding bits after the end-of-block code, `k >= 3` means the 3 header bits fit in that
//!    padding: append `00 00 FF FF`; otherwise they spill into one more byte: `00 00 00 FF FF`.
//!
//! Each block starts with an empty window, so the bytes depend only on the block's data.

use std::ffi::c_int;
use std::io;

use libz_rs_sys::{
    Z_BLOCK, Z_BUF_ERROR, Z_OK, Z_STREAM_END, inflate, inflateEnd, inflateInit2_, z_stream,
    zlibVersion,
};

/// zlib's `data_type`: inflate stopped at a block boundary (after a header or an end-of-block).
const AT_BOUNDARY: c_int = 128;
/// zlib's `data_type`: the block just decoded is the stream's final one.
const IN_LAST: c_int = 64;
/// zlib's `data_type`: bits held but not yet used (zlib-rs keeps up to 63).
const HELD_BITS: c_int = 63;

/// Where the final block of a raw deflate stream lies, in bits from the stream's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FinalBlock {
    /// The final block's header: its first bit is BFINAL, the next two are BTYPE.
    pub header: usize,
    /// The bit just after the final block's end-of-block code; padding follows to the byte.
    pub end: usize,
}

/// Compresses `data` with libdeflate into a raw deflate stream; unless `last`, the stream is
/// left open (see the module doc) so the next block's stream can follow it.
///
/// # Errors
/// libdeflate failing, or its output not inflating back to `data` (a bug, never expected).
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

/// Finds the final block of `deflated`, a complete raw deflate stream of `data` that ends with
/// that block's padding, and checks that it inflates to `data`.
///
/// # Errors
/// `deflated` not being such a stream.
pub(super) fn final_block(deflated: &[u8], data: &[u8]) -> io::Result<FinalBlock> {
    let bad = |why: &str| io::Error::other(format!("joining deflate blocks: {why}"));
    let mut inflater = Inflater::new().ok_or_else(|| bad("zlib-rs inflateInit failed"))?;
    let mut out = vec![0u8; data.len()];
    let stream = &mut inflater.stream;
    stream.next_in = deflated.as_ptr();
    stream.avail_in = u32::try_from(deflated.len()).map_err(|_| bad("block too large"))?;
    stream.next_out = out.as_mut_ptr();
    stream.avail_out = u32::try_from(out.len()).map_err(|_| bad("block too large"))?;
    let mut header = 0;
    loop {
        // SAFETY: the stream was initialised by inflateInit2_ and not moved since (it is
        // boxed); next_in/avail_in and next_out/avail_out describe live slices (`deflated`,
        // `out`) that inflate advances within their bounds.
        let ret = unsafe { inflate(&mut **stream, Z_BLOCK) };
        if ret != Z_OK && ret != Z_STREAM_END && ret != Z_BUF_ERROR {
            return Err(bad(&format!("zlib-rs inflate returned {ret}")));
        }
        let consumed = deflated.len() - stream.avail_in as usize;
        let bit = 8 * consumed - (stream.data_type & HELD_BITS) as usize;
        if stream.data_type & AT_BOUNDARY != 0 {
            if stream.data_type & IN_LAST != 0 {
                let written = data.len() - stream.avail_out as usize;
                if written != data.len() || out != data {
                    return Err(bad("libdeflate's block does not inflate to its input"));
                }
                if bit.div_ceil(8) != deflated.len() {
                    return Err(bad("bytes follow the final block"));
                }
                return Ok(FinalBlock { header, end: bit });
            }
            header = bit;
        } else if ret != Z_OK {
            return Err(bad("the stream ends before its final block"));
        }
    }
}

/// A zlib-rs raw inflate stream, ended on drop.
struct Inflater {
    /// Boxed: zlib's state points back at its stream, which must not move.
    stream: Box<z_stream>,
}

impl Inflater {
    fn new() -> Option<Self> {
        let mut stream = Box::new(z_stream::default());
        let size = c_int::try_from(std::mem::size_of::<z_stream>()).ok()?;
        // SAFETY: `stream` is a default z_stream (no custom allocator); -15 asks for raw deflate
        // with a 32 KiB window; the version string is the library's own.
        let ret = unsafe { inflateInit2_(&mut *stream, -15, zlibVersion(), size) };
        (ret == Z_OK).then_some(Self { stream })
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised by inflateInit2_ in `new`.
        unsafe { inflateEnd(&mut *self.stream) };
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::io::Read;

    use super::*;
    use crate::compress::test_data::random;

    /// Words from a small vocabulary: libdeflate picks fixed or dynamic Huffman codes.
    fn text(len: usize, seed: u32) -> Vec<u8> {
        const WORDS: [&str; 8] = ["tar ", "layer ", "gzip ", "a", "zz", "\n", "blob ", "ok "];
        let picks = random(len, seed);
        let mut out: Vec<u8> = picks
            .iter()
            .flat_map(|p| WORDS[usize::from(p % 8)].bytes())
            .collect();
        out.truncate(len);
        out
    }

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
    fn finds_the_final_block_of_hand_made_streams() {
        // An empty fixed-Huffman final block: BFINAL 1, BTYPE 01, end-of-block 0000000.
        let fixed = [0x03, 0x00];
        assert_eq!(
            final_block(&fixed, b"").unwrap(),
            FinalBlock { header: 0, end: 10 }
        );
        // An empty non-final stored block before it: the final block starts at byte 5.
        let two = [0x00, 0x00, 0x00, 0xff, 0xff, 0x03, 0x00];
        assert_eq!(
            final_block(&two, b"").unwrap(),
            FinalBlock {
                header: 40,
                end: 50
            }
        );
        // A final stored block of "abc" ends on its last byte.
        let stored = [0x01, 0x03, 0x00, 0xfc, 0xff, b'a', b'b', b'c'];
        assert_eq!(
            final_block(&stored, b"abc").unwrap(),
            FinalBlock { header: 0, end: 64 }
        );
    }

    #[test]
    fn rejects_what_is_not_one_complete_stream_of_the_data() {
        let fixed = [0x03, 0x00];
        assert!(final_block(&fixed, b"x").is_err(), "wrong data");
        assert!(
            final_block(&[0x03, 0x00, 0x00], b"").is_err(),
            "trailing byte"
        );
        assert!(
            final_block(&[0x00, 0x00, 0x00, 0xff], b"").is_err(),
            "truncated"
        );
        assert!(
            final_block(&[0x07, 0x00], b"").is_err(),
            "reserved block type"
        );
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
