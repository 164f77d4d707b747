//! Finding the final block of a raw deflate stream (RFC 1951) without inflating it: a
//! decode-only parse that reads every block header and decodes every symbol, but writes no
//! output and copies no match, for [`super::deflate_join`].
//!
//! It walks stored blocks (LEN checked against NLEN, the bytes skipped), fixed-Huffman blocks
//! and dynamic ones (code lengths decoded and the codes checked as zlib checks them, see
//! [`huffman`]), and decodes literal/length and distance symbols by table lookup, consuming
//! their extra bits. Besides where the final block starts and ends, it checks what a full
//! inflate would check of the structure: reserved block types and symbols, every distance
//! within the bytes decoded so far (each stream starts with an empty window), the decoded length
//! equal to the input's, and nothing after the final block but its padding to a byte. It does
//! not compare the decoded bytes with the input; the tests compare it with zlib-rs's inflate.

mod bits;
mod huffman;

use std::io;

use bits::Bits;
use huffman::{Code, Table};

/// The error of a stream that ends early.
const TRUNCATED: &str = "the stream ends before its final block";
/// Code-length symbols are sent in this order (RFC 1951 §3.2.7).
const LENGTHS_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];
/// Primary table widths: most literal/length and distance codes are shorter than this.
const LITERAL_BITS: u32 = 10;
const DISTANCE_BITS: u32 = 8;
/// Code-length codes have at most 7 bits: one table, no subtables.
const LENGTHS_BITS: u32 = 7;

/// Where the final block of a raw deflate stream lies, in bits from the stream's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FinalBlock {
    /// The final block's header: its first bit is BFINAL, the next two are BTYPE.
    pub header: usize,
    /// The bit just after the final block's end-of-block code; padding follows to the byte.
    pub end: usize,
}

/// Finds the final block of `deflated`, which must be one complete raw deflate stream of
/// `len` bytes that ends with that block's padding.
///
/// # Errors
/// `deflated` not being such a stream.
pub(super) fn final_block(deflated: &[u8], len: usize) -> io::Result<FinalBlock> {
    let mut scan = Scan {
        bits: Bits::new(deflated),
        decoded: 0,
        len,
    };
    scan.blocks().map_err(|why| {
        let why = if scan.bits.overrun() { TRUNCATED } else { why };
        io::Error::other(format!("joining deflate blocks: {why}"))
    })
}

/// A literal/length code and a distance code.
#[derive(Default)]
struct Codes {
    literals: Table,
    distances: Table,
}

struct Scan<'a> {
    bits: Bits<'a>,
    /// Bytes the blocks so far decode to.
    decoded: usize,
    /// Bytes the stream must decode to.
    len: usize,
}

impl Scan<'_> {
    /// Walks the blocks up to the final one.
    fn blocks(&mut self) -> Result<FinalBlock, &'static str> {
        let mut fixed = None;
        let mut dynamic = Codes::default();
        let mut lengths = Table::default();
        loop {
            let header = self.bits.position();
            let last = self.bits.read(1) == 1;
            match self.bits.read(2) {
                0 => self.stored()?,
                1 => {
                    let codes = match &mut fixed {
                        Some(codes) => codes,
                        None => fixed.insert(fixed_codes()?),
                    };
                    self.symbols(codes)?;
                }
                2 => {
                    self.code_lengths(&mut lengths, &mut dynamic)?;
                    self.symbols(&dynamic)?;
                }
                _ => return Err("reserved block type 3"),
            }
            if self.bits.overrun() {
                return Err(TRUNCATED);
            }
            if last {
                let end = self.bits.position();
                if self.decoded != self.len {
                    return Err("the stream decodes to fewer bytes than its input");
                }
                if end.div_ceil(8) != self.bits.len() {
                    return Err("bytes follow the final block");
                }
                return Ok(FinalBlock { header, end });
            }
        }
    }

    /// Skips a stored block's bytes.
    fn stored(&mut self) -> Result<(), &'static str> {
        self.bits.align();
        let len = self.bits.read(16);
        if self.bits.read(16) != !len & 0xffff {
            return Err("stored block length does not match its complement");
        }
        self.bits.skip_bytes(len as usize)?;
        self.add(len as usize)
    }

    /// Reads a dynamic block's code lengths and builds its codes.
    fn code_lengths(&mut self, table: &mut Table, codes: &mut Codes) -> Result<(), &'static str> {
        let literals = self.bits.read(5) as usize + 257;
        let distances = self.bits.read(5) as usize + 1;
        let sent = self.bits.read(4) as usize + 4;
        if literals > 286 || distances > 30 {
            return Err("too many literal/length or distance codes");
        }
        let mut lengths = [0u8; 19];
        for &symbol in &LENGTHS_ORDER[..sent] {
            lengths[symbol] = self.bits.read(3) as u8;
        }
        table.build(&lengths, LENGTHS_BITS, Code::Lengths, huffman::code_length)?;
        let mut lens = [0u8; 286 + 30];
        let lens = &mut lens[..literals + distances];
        let mut have = 0;
        while have < lens.len() {
            self.bits.refill();
            let entry = table.lookup(self.bits.peek());
            if huffman::kind(entry) == huffman::INVALID {
                return Err("invalid code-length code");
            }
            self.bits.consume(huffman::code_len(entry));
            let symbol = huffman::value(entry);
            let (len, repeat) = match symbol {
                0..=15 => (symbol as u8, 1),
                16 => match have.checked_sub(1).map(|i| lens[i]) {
                    Some(previous) => (previous, 3 + self.bits.read(2) as usize),
                    None => return Err("a code-length repeat with no previous length"),
                },
                17 => (0, 3 + self.bits.read(3) as usize),
                _ => (0, 11 + self.bits.read(7) as usize),
            };
            let Some(run) = lens.get_mut(have..have + repeat) else {
                return Err("code-length repeat past the last code");
            };
            run.fill(len);
            have += repeat;
        }
        let (literal_lens, distance_lens) = lens.split_at(literals);
        if literal_lens[256] == 0 {
            return Err("no end-of-block code");
        }
        codes.literals.build(
            literal_lens,
            LITERAL_BITS,
            Code::Symbols,
            huffman::literal_length,
        )?;
        codes.distances.build(
            distance_lens,
            DISTANCE_BITS,
            Code::Symbols,
            huffman::distance,
        )
    }

    /// Decodes a Huffman block's symbols up to its end-of-block code.
    fn symbols(&mut self, codes: &Codes) -> Result<(), &'static str> {
        use huffman::{code_len, extra, kind, low, value};
        loop {
            // 56 bits: enough for a length code, its extra bits, a distance code and its extra
            // bits (15 + 5 + 15 + 13).
            self.bits.refill();
            let bits = self.bits.peek();
            let entry = codes.literals.lookup(bits);
            match kind(entry) {
                huffman::LITERAL => {
                    self.bits.consume(code_len(entry));
                    self.add(1)?;
                }
                huffman::LENGTH => {
                    let used = code_len(entry) + extra(entry);
                    let len = value(entry) + low(bits >> code_len(entry), extra(entry));
                    let bits = bits >> used;
                    let entry = codes.distances.lookup(bits);
                    if kind(entry) != huffman::DISTANCE {
                        return Err("invalid distance code");
                    }
                    let distance = value(entry) + low(bits >> code_len(entry), extra(entry));
                    self.bits.consume(used + code_len(entry) + extra(entry));
                    if distance as usize > self.decoded {
                        return Err("a distance reaches before the start of the stream");
                    }
                    self.add(len as usize)?;
                }
                huffman::END => {
                    self.bits.consume(code_len(entry));
                    return Ok(());
                }
                _ => return Err("invalid literal/length code"),
            }
        }
    }

    /// Counts `n` more decoded bytes.
    #[inline(always)]
    fn add(&mut self, n: usize) -> Result<(), &'static str> {
        self.decoded += n;
        if self.decoded > self.len {
            return Err("the stream decodes to more bytes than its input");
        }
        Ok(())
    }
}

/// The codes of fixed-Huffman blocks (RFC 1951 §3.2.6).
fn fixed_codes() -> Result<Codes, &'static str> {
    let mut lens = [8u8; 288];
    lens[144..256].fill(9);
    lens[256..280].fill(7);
    let mut codes = Codes::default();
    codes
        .literals
        .build(&lens, LITERAL_BITS, Code::Symbols, huffman::literal_length)?;
    codes
        .distances
        .build(&[5; 32], DISTANCE_BITS, Code::Symbols, huffman::distance)?;
    Ok(codes)
}

#[cfg(test)]
mod tests;
