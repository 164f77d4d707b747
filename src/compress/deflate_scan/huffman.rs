//! Huffman decoding tables of the deflate scan: canonical codes (RFC 1951 §3.2.2) built from
//! code lengths into a primary table indexed by the next bits of the stream, with subtables for
//! codes longer than the primary index, so one or two lookups decode a symbol.
//!
//! A code is checked the way zlib's `inflate_table` checks it: over-subscribed is an error;
//! incomplete is an error except for a literal/length or distance code whose longest code has
//! one bit (a single code, as a block that uses one distance sends); no codes at all is
//! accepted, and decoding with such a table is an error.
//!
//! An entry is a `u32`: the bits the symbol takes (its code and the extra bits after it, at
//! most 15 + 13) in bits 0..5, with bit 5 zero so that the entry itself is the shift that drops
//! them ([`u64::wrapping_shr`] takes the low 6 bits); the number of extra bits in bits 8..12;
//! the kind in bits 12..16; the value (base length, base distance or code-length symbol; for a
//! subtable link, its offset) in bits 16..32. A literal's byte is not kept: the scan does not
//! need it. The entry 0 decodes nothing: codes that are not assigned (incomplete codes) and
//! symbols the format reserves (literal/length 286 and 287, distances 30 and 31) map to it.

/// The entry of no symbol: an invalid code.
pub(super) const INVALID: u32 = 0;
/// A literal byte, or a code-length symbol.
pub(super) const LITERAL: u32 = 1;
/// A match length: the value is the base length.
pub(super) const LENGTH: u32 = 2;
/// The end-of-block symbol (256).
pub(super) const END: u32 = 3;
/// A distance: the value is the base distance.
pub(super) const DISTANCE: u32 = 4;
/// A link to a subtable: the value is its offset, the extra bits its index width.
const SUBTABLE: u32 = 5;

/// Base match lengths of literal/length symbols 257..=285, and their extra bits.
const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Base distances of distance symbols 0..=29, and their extra bits.
const DISTANCE_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DISTANCE_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// The bits the symbol takes: its code and the extra bits after it.
pub(super) fn used(entry: u32) -> u32 {
    entry & 0x1f
}

/// The code's length in bits.
pub(super) fn code_len(entry: u32) -> u32 {
    used(entry) - extra(entry)
}

/// How many extra bits follow the code.
pub(super) fn extra(entry: u32) -> u32 {
    (entry >> 8) & 0xf
}

/// The entry's kind: [`INVALID`], [`LITERAL`], [`LENGTH`], [`END`] or [`DISTANCE`].
pub(super) fn kind(entry: u32) -> u32 {
    (entry >> 12) & 0xf
}

/// The literal, base length, base distance or code-length symbol.
pub(super) fn value(entry: u32) -> u32 {
    entry >> 16
}

/// The low `n` bits of `bits`.
pub(super) fn low(bits: u64, n: u32) -> u32 {
    (bits & ((1 << n) - 1)) as u32
}

/// An entry without its code length (which [`Table::build`] adds to the bits used).
fn entry(kind: u32, extra: u8, value: u16) -> u32 {
    (u32::from(value) << 16) | (kind << 12) | (u32::from(extra) << 8) | u32::from(extra)
}

/// The entry of literal/length symbol `symbol` (without its code length).
pub(super) fn literal_length(symbol: usize) -> u32 {
    match symbol {
        0..=255 => entry(LITERAL, 0, 0),
        256 => entry(END, 0, 0),
        _ => match (
            LENGTH_BASE.get(symbol - 257),
            LENGTH_EXTRA.get(symbol - 257),
        ) {
            (Some(&base), Some(&extra)) => entry(LENGTH, extra, base),
            _ => INVALID,
        },
    }
}

/// The entry of distance symbol `symbol`.
pub(super) fn distance(symbol: usize) -> u32 {
    match (DISTANCE_BASE.get(symbol), DISTANCE_EXTRA.get(symbol)) {
        (Some(&base), Some(&extra)) => entry(DISTANCE, extra, base),
        _ => INVALID,
    }
}

/// The entry of code-length symbol `symbol` (0..=18): 16, 17 and 18 repeat, with 2, 3 and 7
/// extra bits.
pub(super) fn code_length(symbol: usize) -> u32 {
    let extra = match symbol {
        16 => 2,
        17 => 3,
        18 => 7,
        _ => 0,
    };
    entry(LITERAL, extra, symbol as u16)
}

/// Whether a code may be incomplete when its longest code has one bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Code {
    /// The code-length code: never incomplete.
    Lengths,
    /// A literal/length or distance code.
    Symbols,
}

/// A decoding table: a primary table of `SIZE` (a power of two) entries indexed by the next
/// bits of the stream, and subtables for longer codes.
#[derive(Debug)]
pub(super) struct Table<const SIZE: usize> {
    primary: [u32; SIZE],
    subtables: Vec<u32>,
}

impl<const SIZE: usize> Default for Table<SIZE> {
    fn default() -> Self {
        Self {
            primary: [INVALID; SIZE],
            subtables: Vec::new(),
        }
    }
}

impl<const SIZE: usize> Table<SIZE> {
    /// Bits of the stream the primary table is indexed by.
    const BITS: u32 = SIZE.trailing_zeros();

    /// Builds the table of the canonical code with code lengths `lens` (each at most 15);
    /// `entry(symbol)` gives a symbol's entry without its code length.
    ///
    /// # Errors
    /// An over-subscribed code, or an incomplete one that `code` does not allow.
    pub(super) fn build(
        &mut self,
        lens: &[u8],
        code: Code,
        entry: impl Fn(usize) -> u32,
    ) -> Result<(), &'static str> {
        let count = count_lengths(lens);
        let mut left = 1i64;
        for &n in &count[1..] {
            left = 2 * left - i64::from(n);
            if left < 0 {
                return Err("over-subscribed Huffman code");
            }
        }
        let longest = (1..16).rev().find(|&l| count[l] != 0).unwrap_or(0) as u32;
        if left > 0 && longest > 0 && (code == Code::Lengths || longest != 1) {
            return Err("incomplete Huffman code");
        }
        let sub_bits = longest.saturating_sub(Self::BITS);
        self.primary.fill(INVALID);
        self.subtables.clear();
        for (symbol, len, reversed) in canonical_codes(lens) {
            let reversed = reversed as usize;
            let found = match entry(symbol) {
                INVALID => INVALID,
                e => e + len,
            };
            if len <= Self::BITS {
                fill(&mut self.primary, reversed, len, found);
                continue;
            }
            let link = &mut self.primary[reversed & (SIZE - 1)];
            if kind(*link) != SUBTABLE {
                let offset = self.subtables.len();
                self.subtables.resize(offset + (1 << sub_bits), INVALID);
                *link = (offset as u32) << 16 | SUBTABLE << 12 | sub_bits << 8;
            }
            let offset = value(*link) as usize;
            let sub = &mut self.subtables[offset..offset + (1 << sub_bits)];
            fill(sub, reversed >> Self::BITS, len - Self::BITS, found);
        }
        Ok(())
    }

    /// The entry of the code at the start of `bits` (the next bits of the stream, least
    /// significant first); [`INVALID`] if no code matches.
    #[inline(always)]
    pub(super) fn lookup(&self, bits: u64) -> u32 {
        let found = self.primary[bits as usize & (SIZE - 1)];
        if kind(found) != SUBTABLE {
            return found;
        }
        let index = value(found) as usize + low(bits >> Self::BITS, extra(found)) as usize;
        self.subtables.get(index).copied().unwrap_or(INVALID)
    }
}

/// How many codes of each length (0..16) `lens` has.
fn count_lengths(lens: &[u8]) -> [u32; 16] {
    let mut count = [0u32; 16];
    for &len in lens {
        count[usize::from(len & 15)] += 1;
    }
    count
}

/// The coded symbols of the canonical code with code lengths `lens` (RFC 1951 §3.2.2):
/// `(symbol, length, code)`, the code reversed, since codes are sent from their most
/// significant bit and the stream is read from the least.
fn canonical_codes(lens: &[u8]) -> impl Iterator<Item = (usize, u32, u32)> {
    let mut count = count_lengths(lens);
    count[0] = 0;
    let mut next = [0u32; 16];
    for len in 1..16 {
        next[len] = (next[len - 1] + count[len - 1]) << 1;
    }
    lens.iter().enumerate().filter_map(move |(symbol, &len)| {
        let len = u32::from(len & 15);
        (len != 0).then(|| {
            let code = next[len as usize];
            next[len as usize] += 1;
            (symbol, len, code.reverse_bits() >> (32 - len))
        })
    })
}

/// A literal byte with no code, in [`literal_codes`]: its length 0 matches no bits.
pub(super) const NO_CODE: u32 = 0xffff;

/// The code of each literal byte of the literal/length code with code lengths `lens` (a
/// built, so valid, code): the code reversed (in stream order) in bits 0..16 and its length
/// in bits 16..20; [`NO_CODE`] for a byte with no code.
pub(super) fn literal_codes(lens: &[u8], codes: &mut [u32; 256]) {
    codes.fill(NO_CODE);
    for (symbol, len, reversed) in canonical_codes(lens) {
        if let Some(slot) = codes.get_mut(symbol) {
            *slot = reversed | len << 16;
        }
    }
}

/// Stores `value` at every index of `table` whose low `len` bits are `reversed`.
fn fill(table: &mut [u32], reversed: usize, len: u32, value: u32) {
    for slot in table.iter_mut().skip(reversed).step_by(1 << len) {
        *slot = value;
    }
}
