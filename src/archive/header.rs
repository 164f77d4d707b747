//! Tar header encoding, byte for byte as Go's `archive/tar` writes it when no format is chosen.
//!
//! Lifecycle writes layers with Go's `tar.Writer`; our diffIDs equal lifecycle's only if every
//! header byte does. The rules reproduced here (Go 1.19 `writer.go`, `format.go`, `strconv.go`):
//!
//! - plain USTAR when every field fits: names over 100 bytes are split into prefix (≤ 155) and
//!   name (≤ 100) at a `/`;
//! - otherwise PAX: an extended header entry named `<dir>/PaxHeaders.0/<base>` (ASCII only, cut
//!   at 100 bytes, mode/uid/gid/mtime 0) with records sorted by key, then a main header whose
//!   strings are reduced to ASCII and truncated, numbers that do not fit written as zero;
//! - a `path` (or `linkpath`) record is due whenever the string is not ASCII or longer than its
//!   field, even when USTAR could split it — it is written only if USTAR is ruled out;
//! - octal numbers are zero-padded and NUL-terminated; the checksum is six octal digits, NUL and
//!   a space; devmajor/devminor are written as zero octal in main headers (not in PAX headers);
//!   magic `ustar\0`, version `00`.
//!
//! Nothing else in the crate decides a header byte.

/// Size of a tar block.
pub const BLOCK: usize = 512;

const NAME: std::ops::Range<usize> = 0..100;
const MODE: std::ops::Range<usize> = 100..108;
const UID: std::ops::Range<usize> = 108..116;
const GID: std::ops::Range<usize> = 116..124;
const SIZE: std::ops::Range<usize> = 124..136;
const MTIME: std::ops::Range<usize> = 136..148;
const CHKSUM: std::ops::Range<usize> = 148..156;
const TYPEFLAG: usize = 156;
const LINKNAME: std::ops::Range<usize> = 157..257;
const MAGIC: std::ops::Range<usize> = 257..263;
const VERSION: std::ops::Range<usize> = 263..265;
const DEVMAJOR: std::ops::Range<usize> = 329..337;
const DEVMINOR: std::ops::Range<usize> = 337..345;
const PREFIX: std::ops::Range<usize> = 345..500;

const NAME_SIZE: usize = 100;
const PREFIX_SIZE: usize = 155;

/// What an entry is, as far as the header is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    /// A regular file with this many bytes of content.
    File(u64),
    /// A directory.
    Dir,
    /// A symbolic link (target given in [`Header::link_target`]).
    Symlink,
}

impl EntryType {
    fn flag(self) -> u8 {
        match self {
            EntryType::File(_) => b'0',
            EntryType::Symlink => b'2',
            EntryType::Dir => b'5',
        }
    }

    fn size(self) -> u64 {
        match self {
            EntryType::File(size) => size,
            _ => 0,
        }
    }
}

/// The fields of one entry after normalization.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    /// Full entry name as raw bytes (`/layers/x/y`), no trailing slash for directories.
    pub name: &'a [u8],
    /// Entry type (and size for files).
    pub entry_type: EntryType,
    /// Symlink target, empty for other types.
    pub link_target: &'a [u8],
    /// Permission bits plus setuid/setgid/sticky.
    pub mode: u32,
    /// Owner uid.
    pub uid: u64,
    /// Owner gid.
    pub gid: u64,
    /// Modification time, Unix seconds.
    pub mtime: i64,
}

/// Appends the header block(s) for `header` to `out`: a PAX extended header entry when USTAR
/// cannot hold the entry, then the main header. The caller writes the content and its padding.
pub fn encode(header: &Header<'_>, out: &mut Vec<u8>) {
    let size = header.entry_type.size();
    let mut pax: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut ustar = true;

    // verifyString for path and linkpath: a record is due when not ASCII or too long.
    for (key, value) in [("path", header.name), ("linkpath", header.link_target)] {
        if !value.is_ascii() || value.len() > NAME_SIZE {
            let splittable = key == "path" && split_ustar_path(value).is_some();
            if !splittable {
                ustar = false;
            }
            pax.push((key, value.to_vec()));
        }
    }
    // verifyNumeric for uid, gid, size: a record is due when the octal field is too small.
    for (key, value, width) in [
        ("uid", header.uid, UID.len()),
        ("gid", header.gid, GID.len()),
        ("size", size, SIZE.len()),
    ] {
        if !fits_in_octal(width, value) {
            ustar = false;
            pax.push((key, value.to_string().into_bytes()));
        }
    }

    if ustar {
        let mut block = template(header, format_string);
        let name = match split_ustar_path(header.name) {
            Some((prefix, name)) => {
                format_string(&mut block[PREFIX], prefix);
                name
            }
            None => header.name,
        };
        format_string(&mut block[NAME], name);
        finish(&mut block);
        out.extend_from_slice(&block);
        return;
    }

    pax.sort_by(|a, b| a.0.cmp(b.0));
    let mut records = Vec::new();
    for (key, value) in &pax {
        push_pax_record(&mut records, key, value);
    }
    write_pax_header(header.name, &records, out);

    let mut block = template(header, |field, value| {
        format_string(field, &to_ascii(value))
    });
    format_string(&mut block[NAME], &to_ascii(header.name));
    finish(&mut block);
    out.extend_from_slice(&block);
}

/// The tar end: two zero blocks (Go pads to no record size).
pub fn end_of_archive() -> [u8; 2 * BLOCK] {
    [0; 2 * BLOCK]
}

/// Zero bytes needed after `size` bytes of content to reach a block boundary.
pub fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// Go's `templateV7Plus`: every field but the name (and prefix).
fn template(header: &Header<'_>, mut fmt_str: impl FnMut(&mut [u8], &[u8])) -> [u8; BLOCK] {
    let mut block = [0u8; BLOCK];
    block[TYPEFLAG] = header.entry_type.flag();
    fmt_str(&mut block[LINKNAME], header.link_target);
    format_octal(&mut block[MODE], u64::from(header.mode));
    format_octal(&mut block[UID], header.uid);
    format_octal(&mut block[GID], header.gid);
    format_octal(&mut block[SIZE], header.entry_type.size());
    format_octal(&mut block[MTIME], header.mtime.max(0) as u64);
    format_octal(&mut block[DEVMAJOR], 0);
    format_octal(&mut block[DEVMINOR], 0);
    block
}

/// Go's `writeRawFile` for a PAX extended header and its records.
fn write_pax_header(real_name: &[u8], records: &[u8], out: &mut Vec<u8>) {
    let mut name = to_ascii(&pax_header_name(real_name));
    name.truncate(NAME_SIZE);
    while name.last() == Some(&b'/') {
        name.pop();
    }
    let mut block = [0u8; BLOCK];
    block[TYPEFLAG] = b'x';
    format_string(&mut block[NAME], &name);
    format_octal(&mut block[MODE], 0);
    format_octal(&mut block[UID], 0);
    format_octal(&mut block[GID], 0);
    format_octal(&mut block[SIZE], records.len() as u64);
    format_octal(&mut block[MTIME], 0);
    finish(&mut block);
    out.extend_from_slice(&block);
    out.extend_from_slice(records);
    out.resize(out.len() + padding(records.len() as u64), 0);
}

/// `path.Join(path.Split(name) with "PaxHeaders.0" between)`, cleaned as Go's `path.Clean` does.
fn pax_header_name(real_name: &[u8]) -> Vec<u8> {
    let split = real_name
        .iter()
        .rposition(|&b| b == b'/')
        .map_or(0, |i| i + 1);
    let (dir, file) = real_name.split_at(split);
    let mut joined = dir.to_vec();
    if !joined.is_empty() {
        joined.push(b'/');
    }
    joined.extend_from_slice(b"PaxHeaders.0/");
    joined.extend_from_slice(file);
    clean_path(&joined)
}

/// Go's `path.Clean` on bytes.
fn clean_path(path: &[u8]) -> Vec<u8> {
    let rooted = path.first() == Some(&b'/');
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.last().is_some_and(|p| *p != b"..") {
                    parts.pop();
                } else if !rooted {
                    parts.push(part);
                }
            }
            _ => parts.push(part),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    if rooted {
        out.push(b'/');
    }
    out.extend_from_slice(&parts.join(&b'/'));
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// Go's `splitUSTARPath`: prefix and name for an ASCII name longer than 100 bytes.
fn split_ustar_path(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length = name.len();
    if length <= NAME_SIZE || !name.is_ascii() {
        return None;
    } else if length > PREFIX_SIZE + 1 {
        length = PREFIX_SIZE + 1;
    } else if name[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].iter().rposition(|&b| b == b'/')?;
    let name_len = name.len() - i - 1;
    if i == 0 || name_len > NAME_SIZE || name_len == 0 || i > PREFIX_SIZE {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// Go's `fitsInOctal`.
fn fits_in_octal(width: usize, value: u64) -> bool {
    let bits = (width as u32 - 1) * 3;
    width >= 22 || value < (1u64 << bits)
}

/// Go's `formatOctal`: zero-padded, NUL-terminated; zero when the value does not fit.
fn format_octal(field: &mut [u8], value: u64) {
    let mut value = if fits_in_octal(field.len(), value) {
        value
    } else {
        0
    };
    // A value that fits has at most `len - 1` octal digits: zero-padded digits, then the NUL.
    let (digits, nul) = field.split_at_mut(field.len() - 1);
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (value & 7) as u8;
        value >>= 3;
    }
    nul[0] = 0;
}

/// Go's `formatString`: copy, NUL-terminate when shorter, and drop a trailing slash that a
/// truncation left in the field.
fn format_string(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
    if value.len() < field.len() {
        field[value.len()] = 0;
    }
    if value.len() > field.len() && field[field.len() - 1] == b'/' {
        let kept = value[..field.len()]
            .iter()
            .rposition(|&b| b != b'/')
            .map_or(0, |i| i + 1);
        field[kept] = 0;
    }
}

/// Go's `toASCII`: drops every byte that is not 7-bit ASCII, and NUL.
fn to_ascii(value: &[u8]) -> Vec<u8> {
    value
        .iter()
        .copied()
        .filter(|&b| b != 0 && b < 0x80)
        .collect()
}

/// Go's `formatPAXRecord`: `"<len> <key>=<value>\n"` where len counts itself.
fn push_pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let base = key.len() + value.len() + 3;
    let mut size = base + base.to_string().len();
    if (base + size.to_string().len()) != size {
        size = base + size.to_string().len();
    }
    out.extend_from_slice(size.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Sets magic and version (USTAR and PAX alike), then the checksum.
fn finish(block: &mut [u8; BLOCK]) {
    block[MAGIC].copy_from_slice(b"ustar\0");
    block[VERSION].copy_from_slice(b"00");
    block[CHKSUM].fill(b' ');
    let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
    format_octal(&mut block[CHKSUM][..7], sum);
    block[CHKSUM.end - 1] = b' ';
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &[u8]) -> Header<'_> {
        Header {
            name,
            entry_type: EntryType::File(5),
            link_target: b"",
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 315_532_801,
        }
    }

    #[test]
    fn short_ascii_name_is_one_ustar_block() {
        let mut out = Vec::new();
        encode(&file(b"/layers/a/b"), &mut out);
        assert_eq!(out.len(), BLOCK);
        assert_eq!(&out[..11], b"/layers/a/b");
        assert_eq!(&out[MODE], b"0000644\0");
        assert_eq!(&out[SIZE], b"00000000005\0");
        assert_eq!(&out[MTIME], b"02263523001\0");
        assert_eq!(&out[DEVMAJOR], b"0000000\0");
        assert_eq!(&out[MAGIC], b"ustar\0");
        assert_eq!(&out[VERSION], b"00");
        assert_eq!(out[CHKSUM.end - 2], 0);
        assert_eq!(out[CHKSUM.end - 1], b' ');
    }

    #[test]
    fn long_ascii_name_splits_into_prefix() {
        let name = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let mut out = Vec::new();
        encode(&file(name.as_bytes()), &mut out);
        assert_eq!(out.len(), BLOCK);
        assert_eq!(&out[PREFIX][..120], "d".repeat(120).as_bytes());
        assert_eq!(&out[NAME][..90], "f".repeat(90).as_bytes());
    }

    #[test]
    fn non_ascii_name_gets_pax_path_record() {
        let name = b"/l/caf\xc3\xa9.txt";
        let mut out = Vec::new();
        encode(&file(name), &mut out);
        assert_eq!(out.len(), 3 * BLOCK);
        assert_eq!(&out[..21], b"/l/PaxHeaders.0/caf.t");
        assert_eq!(out[TYPEFLAG], b'x');
        assert_eq!(&out[BLOCK..BLOCK + 21], b"21 path=/l/caf\xc3\xa9.txt\n");
        assert_eq!(&out[2 * BLOCK..2 * BLOCK + 11], b"/l/caf.txt\0");
    }

    #[test]
    fn pax_record_length_counts_itself() {
        let mut out = Vec::new();
        push_pax_record(&mut out, "path", &[b'a'; 3]);
        assert_eq!(out, b"12 path=aaa\n");
        // 98 bytes before the length: "100" would make it 101 long, so Go writes 101.
        let mut out = Vec::new();
        push_pax_record(&mut out, "path", &[b'a'; 91]);
        assert_eq!(out.len(), 101);
        assert!(out.starts_with(b"101 "));
    }

    #[test]
    fn large_uid_moves_to_pax() {
        let mut header = file(b"x");
        header.uid = 1 << 21;
        let mut out = Vec::new();
        encode(&header, &mut out);
        assert_eq!(&out[..15], b"PaxHeaders.0/x\0");
        assert_eq!(&out[BLOCK..BLOCK + 16], b"15 uid=2097152\n\0");
        assert_eq!(
            &out[2 * BLOCK + UID.start..2 * BLOCK + UID.end],
            b"0000000\0"
        );
    }

    #[test]
    fn split_rules_match_go() {
        assert_eq!(split_ustar_path(&[b'a'; 100]), None);
        let no_slash = [b'a'; 101];
        assert_eq!(split_ustar_path(&no_slash), None);
        let name = format!("{}/{}", "p".repeat(155), "n".repeat(100));
        assert!(split_ustar_path(name.as_bytes()).is_some());
        let name = format!("{}/{}", "p".repeat(156), "n".repeat(10));
        assert_eq!(split_ustar_path(name.as_bytes()), None);
    }

    #[test]
    fn clean_path_matches_go() {
        assert_eq!(clean_path(b"/a/b//PaxHeaders.0/c"), b"/a/b/PaxHeaders.0/c");
        assert_eq!(clean_path(b"PaxHeaders.0/c"), b"PaxHeaders.0/c");
        assert_eq!(clean_path(b"a/../../b"), b"../b");
    }
}
