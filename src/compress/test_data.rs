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
