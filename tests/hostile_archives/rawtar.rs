//! A tar writer for crafted archives: raw USTAR headers, PAX records and GNU long-name
//! entries written byte by byte, so that names with `..`, wrong sizes and bad checksums can be
//! expressed (the `tar` crate's builder refuses them).

/// Entry type flags.
pub const FILE: u8 = b'0';
pub const HARDLINK: u8 = b'1';
pub const SYMLINK: u8 = b'2';
pub const CHAR: u8 = b'3';
pub const BLOCK_DEV: u8 = b'4';
pub const DIR: u8 = b'5';
pub const FIFO: u8 = b'6';
pub const PAX: u8 = b'x';
pub const GNU_LONGNAME: u8 = b'L';
pub const GNU_LONGLINK: u8 = b'K';
pub const GNU_SPARSE: u8 = b'S';

const BLOCK: usize = 512;

/// One header's fields.
#[derive(Clone)]
pub struct Header<'a> {
    pub name: &'a [u8],
    pub kind: u8,
    pub size: u64,
    pub link: &'a [u8],
    pub mode: u32,
    /// GNU magic (`ustar  `) instead of POSIX (`ustar\000`).
    pub gnu: bool,
}

impl<'a> Header<'a> {
    pub fn new(kind: u8, name: &'a [u8]) -> Self {
        Self {
            name,
            kind,
            size: 0,
            link: b"",
            mode: if kind == DIR { 0o755 } else { 0o644 },
            gnu: false,
        }
    }

    /// The 512 header bytes with a correct checksum.
    pub fn bytes(&self) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        let name = &self.name[..self.name.len().min(100)];
        h[..name.len()].copy_from_slice(name);
        octal(&mut h[100..108], self.mode as u64);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], self.size);
        octal(&mut h[136..148], 315_532_801);
        h[156] = self.kind;
        let link = &self.link[..self.link.len().min(100)];
        h[157..157 + link.len()].copy_from_slice(link);
        if self.gnu {
            h[257..265].copy_from_slice(b"ustar  \0");
            octal(&mut h[483..495], self.size); // real size of a sparse file
        } else {
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
        }
        h[148..156].copy_from_slice(b"        ");
        let sum: u64 = h.iter().map(|&b| b as u64).sum();
        octal(&mut h[148..155], sum);
        h
    }
}

/// Writes `value` as zero-padded octal filling `field` but its last byte (a NUL).
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&text.as_bytes()[text.len() - digits..]);
    field[digits] = 0;
}

/// An archive being built.
#[derive(Default, Clone)]
pub struct RawTar {
    pub bytes: Vec<u8>,
}

impl RawTar {
    pub fn new() -> Self {
        Self::default()
    }

    /// A header followed by `data`, padded to a block.
    pub fn entry(mut self, header: Header<'_>, data: &[u8]) -> Self {
        self.bytes.extend_from_slice(&header.bytes());
        self.data(data)
    }

    /// Raw data, padded to a block.
    pub fn data(mut self, data: &[u8]) -> Self {
        self.bytes.extend_from_slice(data);
        self.bytes
            .resize(self.bytes.len().div_ceil(BLOCK) * BLOCK, 0);
        self
    }

    pub fn file(self, name: &[u8], data: &[u8]) -> Self {
        let mut h = Header::new(FILE, name);
        h.size = data.len() as u64;
        self.entry(h, data)
    }

    pub fn dir(self, name: &[u8], mode: u32) -> Self {
        let mut h = Header::new(DIR, name);
        h.mode = mode;
        self.entry(h, b"")
    }

    pub fn link(self, kind: u8, name: &[u8], target: &[u8]) -> Self {
        let mut h = Header::new(kind, name);
        h.link = target;
        self.entry(h, b"")
    }

    /// A PAX extended header holding `records` (key, value), for the next entry.
    pub fn pax(self, records: &[(&str, &[u8])]) -> Self {
        let mut body = Vec::new();
        for (key, value) in records {
            // "<len> <key>=<value>\n", where len counts itself.
            let rest = key.len() + value.len() + 3;
            let mut len = rest + 1;
            while len.to_string().len() + rest != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len} {key}=").as_bytes());
            body.extend_from_slice(value);
            body.push(b'\n');
        }
        let mut h = Header::new(PAX, b"PaxHeaders/x");
        h.size = body.len() as u64;
        self.entry(h, &body)
    }

    /// A GNU long-name (`L`) or long-link (`K`) entry naming the next entry's name or target.
    pub fn gnu_long(self, kind: u8, value: &[u8]) -> Self {
        let mut data = value.to_vec();
        data.push(0);
        let mut h = Header::new(kind, b"././@LongLink");
        h.size = data.len() as u64;
        self.entry(h, &data)
    }

    /// The end-of-archive marker: two zero blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(&[0u8; 2 * BLOCK]);
        self.bytes
    }
}

/// Deterministic pseudo-random bytes (a linear congruential generator).
pub fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as u8
        })
        .collect()
}
