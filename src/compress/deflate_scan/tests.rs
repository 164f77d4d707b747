//! The scan against zlib-rs's inflate ([`crate::compress::inflate_oracle`]): on libdeflate's
//! output at every level, on hand-made streams, and on broken ones.

use std::collections::BTreeSet;

use super::*;
use crate::compress::inflate_oracle::inflate_stream;
use crate::compress::test_data::{random, text};

fn deflate(data: &[u8], level: i32) -> Vec<u8> {
    deflate_with(&mut compressor(level), data)
}

fn compressor(level: i32) -> libdeflater::Compressor {
    libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap())
}

fn deflate_with(compressor: &mut libdeflater::Compressor, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0; compressor.deflate_compress_bound(data.len())];
    let n = compressor.deflate_compress(data, &mut out).unwrap();
    out.truncate(n);
    out
}

fn bit(bytes: &[u8], at: usize) -> u8 {
    (bytes[at / 8] >> (at % 8)) & 1
}

/// Random, text, zeros and the three after each other (blocks of different types).
fn inputs(len: usize) -> [(&'static str, Vec<u8>); 4] {
    let seed = 0x9e37_79b9 ^ len as u32;
    let mixed = [
        random(len / 3, seed),
        vec![0; len / 3],
        text(len - 2 * (len / 3), seed),
    ];
    [
        ("random", random(len, seed)),
        ("text", text(len, seed)),
        ("zeros", vec![0; len]),
        ("mixed", mixed.concat()),
    ]
}

/// The scan and the oracle agree on `deflated` as a stream of `data.len()` bytes: both accept
/// it, with the same final block, or both reject it. Returns the scan's answer.
fn agree(deflated: &[u8], data: &[u8], what: &str) -> Option<FinalBlock> {
    let scanned = final_block(deflated, data);
    let inflated = inflate_stream(deflated, data.len()).ok();
    let oracle = inflated.filter(|(_, bytes)| bytes.len() == data.len());
    match (&scanned, &oracle) {
        (Ok(block), Some((expected, _))) => assert_eq!(block, expected, "{what}"),
        (Err(_), None) => {}
        _ => panic!(
            "{what}: scan {scanned:?}, oracle {:?}",
            oracle.map(|(b, _)| b)
        ),
    }
    scanned.ok()
}

#[test]
fn finds_the_final_block_of_hand_made_streams() {
    // An empty fixed-Huffman final block: BFINAL 1, BTYPE 01, end-of-block 0000000.
    let fixed = [0x03, 0x00];
    assert_eq!(
        agree(&fixed, b"", "fixed"),
        Some(FinalBlock { header: 0, end: 10 })
    );
    // An empty non-final stored block before it: the final block starts at byte 5.
    let two = [0x00, 0x00, 0x00, 0xff, 0xff, 0x03, 0x00];
    let block = FinalBlock {
        header: 40,
        end: 50,
    };
    assert_eq!(agree(&two, b"", "two"), Some(block));
    // A final stored block of "abc" ends on its last byte.
    let stored = [0x01, 0x03, 0x00, 0xfc, 0xff, b'a', b'b', b'c'];
    assert_eq!(
        agree(&stored, b"abc", "stored"),
        Some(FinalBlock { header: 0, end: 64 })
    );
}

#[test]
fn rejects_what_is_not_one_complete_stream_of_the_length() {
    let fixed = [0x03, 0x00];
    assert!(final_block(&fixed, b"x").is_err(), "wrong length");
    assert!(
        final_block(&[0x03, 0x00, 0x00], b"").is_err(),
        "trailing byte"
    );
    assert!(
        final_block(&[0x00, 0x00, 0x00, 0xff], b"").is_err(),
        "truncated"
    );
    let error = final_block(&[0x07, 0x00], b"").unwrap_err();
    assert_eq!(
        error.to_string(),
        "joining deflate blocks: reserved block type 3"
    );
    // Stored "abc" with NLEN not the complement of LEN.
    let stored = [0x01, 0x03, 0x00, 0xfc, 0xfe, b'a', b'b', b'c'];
    assert!(final_block(&stored, b"abc").is_err(), "LEN/NLEN");
    // Fixed: literal 'a' (code 00110000 + 0x61), length 3 (code 0000001), distance 1 (00000)
    // or 2 (00001), end-of-block: distance 2 reaches before the start.
    assert_eq!(
        agree(
            &[0x4b, 0x04, 0x02, 0x00],
            b"aaaa",
            "distance 1 after 1 byte"
        ),
        Some(FinalBlock { header: 0, end: 30 })
    );
    assert!(
        agree(
            &[0x4b, 0x04, 0x42, 0x00],
            b"aaaa",
            "distance 2 after 1 byte"
        )
        .is_none()
    );
    // Dynamic headers with 288 literal/length codes (HLIT 31) or 31 distance codes (HDIST 30).
    for (hlit, hdist) in [(31, 0), (0, 30)] {
        let mut w = Writer::default();
        w.number(1, 1).number(2, 2).number(hlit, 5).number(hdist, 5);
        w.number(0, 32).number(0, 32);
        let what = format!("HLIT {hlit}, HDIST {hdist}");
        assert!(agree(&w.bytes(), b"", &what).is_none());
        let error = final_block(&w.bytes(), b"").unwrap_err().to_string();
        assert!(error.contains("too many"), "{what}: {error}");
    }
}

#[test]
fn a_wrong_length_is_an_error() {
    for (kind, data) in inputs(5000) {
        let deflated = deflate(&data, 6);
        assert!(final_block(&deflated, &data).is_ok(), "{kind}");
        let n = data.len();
        let longer = [&data[..], b"x"].concat();
        let twice = [&data[..], &data[..]].concat();
        for wrong in [&data[..0], &data[..n - 1], &longer, &twice] {
            let len = wrong.len();
            assert!(
                final_block(&deflated, wrong).is_err(),
                "{kind} as {len} bytes"
            );
        }
    }
}

#[test]
fn matches_the_oracle_on_libdeflate_streams_at_every_level() {
    let mut paddings = BTreeSet::new();
    let mut types = BTreeSet::new();
    let mut compressors: Vec<_> = (0..=12).map(compressor).collect();
    // Up to 5000 bytes at every level, more at a few (the slow levels take long, and the
    // scan is not optimized in tests), a whole 1 MiB block at the level gzip uses.
    let longest = |level: usize| match level {
        _ if level as u32 == crate::compress::GZIP_LEVEL => 1 << 20,
        0 | 1 | 9 => 300_000,
        _ => 5000,
    };
    for len in (0..300).chain([1000, 5000, 70_000, 300_000, 1 << 20]) {
        for (kind, data) in inputs(len) {
            for (level, compressor) in compressors.iter_mut().enumerate() {
                if len > longest(level) {
                    continue;
                }
                let deflated = deflate_with(compressor, &data);
                let what = format!("level {level}, {kind}, {len} bytes");
                let block = final_block(&deflated, &data).expect(&what);
                let (expected, inflated) = inflate_stream(&deflated, data.len()).expect(&what);
                assert_eq!(block, expected, "{what}");
                assert!(inflated == data, "{what}: the oracle inflates other bytes");
                // The scan decodes literals faster when they are the input's, but finds the
                // same with other bytes of the same length.
                let other: Vec<u8> = data.iter().map(|b| b.wrapping_add(1)).collect();
                assert_eq!(final_block(&deflated, &other).ok(), Some(block), "{what}");
                paddings.insert((8 - block.end % 8) % 8);
                types.insert(
                    bit(&deflated, block.header + 1) | bit(&deflated, block.header + 2) << 1,
                );
            }
        }
    }
    assert_eq!(paddings, (0..8).collect(), "padding widths seen");
    assert_eq!(
        types,
        BTreeSet::from([0, 1, 2]),
        "stored, fixed and dynamic final blocks"
    );
}

/// A few valid streams: stored, fixed, dynamic and several blocks of each.
fn samples() -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for (level, len) in [(0, 700), (1, 40), (6, 3000), (12, 2000), (6, 150_000)] {
        for (kind, data) in inputs(len) {
            let deflated = deflate(&data, level);
            out.push((
                format!("level {level}, {kind}, {len} bytes"),
                deflated,
                data,
            ));
        }
    }
    out
}

#[test]
fn truncated_streams_are_errors() {
    for (what, deflated, data) in samples().into_iter().filter(|(_, d, _)| d.len() < 5000) {
        for cut in 0..deflated.len() {
            let what = format!("{what}, cut to {cut} bytes");
            assert!(agree(&deflated[..cut], &data, &what).is_none(), "{what}");
        }
    }
}

#[test]
fn flipped_bits_agree_with_the_oracle() {
    let mut seed = 0x2545_f491_u32;
    let (mut accepted, mut rejected) = (0, 0);
    for (what, deflated, data) in samples() {
        for _ in 0..200 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let at = seed as usize % (8 * deflated.len());
            let mut flipped = deflated.clone();
            flipped[at / 8] ^= 1 << (at % 8);
            match agree(&flipped, &data, &format!("{what}, bit {at} flipped")) {
                Some(_) => accepted += 1,
                None => rejected += 1,
            }
        }
    }
    assert!(
        accepted > 100 && rejected > 100,
        "{accepted} accepted, {rejected} rejected"
    );
}

/// Bits of a hand-made stream: numbers from their least significant bit, Huffman codes from
/// their most significant one (RFC 1951 §3.1.1).
#[derive(Default)]
struct Writer {
    bits: Vec<u8>,
}

impl Writer {
    fn number(&mut self, value: u32, n: u32) -> &mut Self {
        self.bits.extend((0..n).map(|i| (value >> i & 1) as u8));
        self
    }

    fn code(&mut self, code: &str) -> &mut Self {
        self.bits.extend(code.bytes().map(|b| b - b'0'));
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.bits.len().div_ceil(8)];
        for (i, b) in self.bits.iter().enumerate() {
            out[i / 8] |= b << (i % 8);
        }
        out
    }
}

/// A final dynamic block with `literals` literal/length codes and one distance code:
/// code-length code lengths `clens` (for symbols 16, 17, 18, 0, 8, ... in the sent order), the
/// code lengths written by `lengths`, then the symbols by `symbols`.
fn dynamic(
    literals: u32,
    clens: &[u32],
    lengths: impl Fn(&mut Writer),
    symbols: impl Fn(&mut Writer),
) -> Vec<u8> {
    let mut w = Writer::default();
    // BFINAL 1, BTYPE 2; HLIT, HDIST 1, HCLEN.
    w.number(1, 1)
        .number(2, 2)
        .number(literals - 257, 5)
        .number(0, 5);
    w.number(clens.len() as u32 - 4, 4);
    for &len in clens {
        w.number(len, 3);
    }
    lengths(&mut w);
    symbols(&mut w);
    w.bytes()
}

#[test]
fn single_codes_are_allowed_where_zlib_allows_them() {
    // Code-length code: 18 -> 0, 1 -> 10, 2 -> 11 (18 at position 2, 2 at 15, 1 at 17).
    let clens = [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2];
    // 'a' (97) -> 0, end-of-block -> 10, length 3 (257) -> 11; one distance code, 1 bit:
    // incomplete, as zlib allows for a single code.
    let lengths = |distance: &'static str| {
        move |w: &mut Writer| {
            w.code("0").number(97 - 11, 7).code("10");
            w.code("0").number(127, 7).code("0").number(20 - 11, 7);
            w.code("11").code("11").code(distance);
        }
    };
    let aaaa = |w: &mut Writer| {
        w.code("0").code("11").code("0").code("10");
    };
    let single = dynamic(258, &clens, lengths("10"), aaaa);
    let block = agree(&single, b"aaaa", "one distance code of 1 bit").expect("accepted");
    assert_eq!(block.header, 0);
    assert_eq!(inflate_stream(&single, 4).unwrap().1, b"aaaa");
    // One distance code of 2 bits: incomplete beyond what zlib allows.
    let longer = dynamic(258, &clens, lengths("11"), |w| {
        w.code("0").code("11").code("00").code("10");
    });
    assert!(agree(&longer, b"aaaa", "one distance code of 2 bits").is_none());
    assert!(
        final_block(&longer, b"aaaa")
            .unwrap_err()
            .to_string()
            .contains("incomplete")
    );
}

#[test]
fn a_block_of_only_an_end_code_and_no_distance_codes_is_allowed() {
    // Code-length code: 18 -> 0, 0 -> 10, 1 -> 11 (0 at position 3, 1 at 17).
    let clens = [0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    // 256 zero lengths, end-of-block 1 bit (a single code), no distance code.
    let empty = dynamic(
        257,
        &clens,
        |w| {
            w.code("0").number(127, 7).code("0").number(118 - 11, 7);
            w.code("11").code("10");
        },
        |w| {
            w.code("0");
        },
    );
    assert!(agree(&empty, b"", "end-of-block only").is_some());
}
