//! Seed derivation: every random draw of training and sampling takes a seed derived from the
//! config's seed and where it happens, so no RNG state needs checkpointing.

/// A seed for one purpose at one place of training (so no RNG state needs checkpointing).
pub(crate) fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    use netshare_core::seed;
    seed::derive_seed(seed, seed::GOLDEN, parts)
}
