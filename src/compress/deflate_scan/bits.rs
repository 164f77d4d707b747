//! The bit reader of the deflate scan: a 64-bit buffer refilled several bytes at a time, bits
//! taken from the least significant end (RFC 1951 packs them from each byte's least
//! significant bit), and the exact position of the next unread bit.
//!
//! Past the end of the input it reads zero bytes, so decoding never has to ask whether the
//! bits it peeks are there; [`Bits::overrun`] tells afterwards whether it used any of them.

/// A reader of the bits of `input`.
#[derive(Clone, Copy)]
pub(super) struct Bits<'a> {
    input: &'a [u8],
    /// The next byte to load; beyond the input, zero bytes are loaded.
    next: usize,
    /// Loaded bits, the next unread one least significant. Bits above `count` are bits of the
    /// bytes from `next` on (or zero), so loading those bytes again ORs in the same values.
    buf: u64,
    /// How many bits of `buf` are loaded and unread.
    count: u32,
}

impl<'a> Bits<'a> {
    pub(super) fn new(input: &'a [u8]) -> Self {
        Self {
            input,
            next: 0,
            buf: 0,
            count: 0,
        }
    }

    /// Loads bytes until at least 56 bits are unread.
    #[inline(always)]
    pub(super) fn refill(&mut self) {
        let word = self.input.get(self.next..).and_then(<[u8]>::first_chunk);
        if let Some(word) = word {
            self.buf |= u64::from_le_bytes(*word) << self.count;
            self.next += (63 - self.count as usize) >> 3;
            self.count |= 56;
        } else {
            self.refill_near_end();
        }
    }

    /// [`Bits::refill`] within the last 8 bytes of the input, or past it.
    #[cold]
    fn refill_near_end(&mut self) {
        while self.count < 56 {
            let byte = self.input.get(self.next).copied().unwrap_or(0);
            self.buf |= u64::from(byte) << self.count;
            self.next += 1;
            self.count += 8;
        }
    }

    /// How many bits are loaded and unread.
    #[inline(always)]
    pub(super) fn available(&self) -> u32 {
        self.count
    }

    /// The unread bits, at least 56 of them after [`Bits::refill`].
    #[inline(always)]
    pub(super) fn peek(&self) -> u64 {
        self.buf
    }

    /// Drops `n` bits, at most the unread ones.
    #[inline(always)]
    pub(super) fn consume(&mut self, n: u32) {
        self.buf >>= n;
        self.count -= n;
    }

    /// Drops the bits of a table entry's symbol: the entry's bits 0..5 count them and bit 5 is
    /// zero, so the entry is the shift (which takes its low 6 bits).
    #[inline(always)]
    pub(super) fn consume_symbol(&mut self, entry: u32) {
        self.buf = self.buf.wrapping_shr(entry);
        self.count -= entry & 0x1f;
    }

    /// Reads an `n`-bit number (n <= 32), first bit least significant.
    pub(super) fn read(&mut self, n: u32) -> u32 {
        if self.count < n {
            self.refill();
        }
        let value = (self.buf & ((1 << n) - 1)) as u32;
        self.consume(n);
        value
    }

    /// The input's length in bytes.
    pub(super) fn len(&self) -> usize {
        self.input.len()
    }

    /// The position of the next unread bit, from the start of the input.
    pub(super) fn position(&self) -> usize {
        8 * self.next - self.count as usize
    }

    /// Whether bits past the end of the input were read.
    pub(super) fn overrun(&self) -> bool {
        self.position() > 8 * self.input.len()
    }

    /// Drops the bits up to the next byte boundary.
    pub(super) fn align(&mut self) {
        self.consume(self.count % 8);
    }

    /// Skips `n` bytes from a byte boundary.
    ///
    /// # Errors
    /// Fewer than `n` bytes are left.
    pub(super) fn skip_bytes(&mut self, n: usize) -> Result<(), &'static str> {
        let to = self.position() / 8 + n;
        if to > self.input.len() {
            return Err(super::TRUNCATED);
        }
        self.next = to;
        self.buf = 0;
        self.count = 0;
        Ok(())
    }
}
