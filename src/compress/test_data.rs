//! Test inputs shared by the compressors' tests.

/// xorshift bytes from `seed`: incompressible, so compressors store them.
pub fn random(len: usize, mut seed: u32) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as u8
        })
        .collect()
}

/// Words from a small vocabulary: libdeflate picks fixed or dynamic Huffman codes.
pub fn text(len: usize, seed: u32) -> Vec<u8> {
    const WORDS: [&str; 8] = ["tar ", "layer ", "gzip ", "a", "zz", "\n", "blob ", "ok "];
    let picks = random(len, seed);
    let mut out: Vec<u8> = picks
        .iter()
        .flat_map(|p| WORDS[usize::from(p % 8)].bytes())
        .collect();
    out.truncate(len);
    out
}
