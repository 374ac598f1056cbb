//! Small helpers over the one seeded generator. Everything random in a run comes from it.

use rand_chacha::rand_core::RngCore;
use rand_chacha::ChaCha8Rng;

/// A uniform draw in `lo..=hi` (modulo bias is irrelevant at these ranges).
pub(crate) fn range(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> u64 {
    if hi <= lo {
        return lo;
    }
    lo + rng.next_u64() % (hi - lo + 1)
}

/// A uniform draw in `0..n` (0 when `n` is 0).
pub(crate) fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        rng.next_u64() % n
    }
}

/// True with probability `permille / 1000`.
pub(crate) fn chance_permille(rng: &mut ChaCha8Rng, permille: u32) -> bool {
    permille > 0 && (rng.next_u32() % 1000) < permille
}

/// Fisher–Yates, driven by the seeded generator.
pub(crate) fn shuffle<T>(rng: &mut ChaCha8Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let j = below(rng, i as u64 + 1) as usize;
        items.swap(i, j);
    }
}
