//! Seed derivation: every random draw of training and sampling takes a seed derived from the
//! config's seed and where it happens, so no RNG state needs checkpointing.

/// A seed for one purpose at one place of training (so no RNG state needs checkpointing).
pub(crate) fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    for &p in parts {
        x = x.wrapping_add(p).wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    x
}
