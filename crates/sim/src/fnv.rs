//! FNV-1a, 64 bits: the simulators' one hash for trace hashes and state digests.
//!
//! Hand-rolled rather than `DefaultHasher` because traces record its values: they must be the
//! same on every Rust release and every machine, so a seed's trace hash never changes unless
//! the run does.

use std::hash::Hasher;

/// FNV-1a's offset basis: the state of a hash that has seen nothing.
const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a's 64-bit prime.
const PRIME: u64 = 0x0100_0000_01b3;

/// An FNV-1a hasher; its state is its output so far, so a running trace hash can be kept as a
/// plain `u64` and resumed with [`Fnv::resume`].
pub(crate) struct Fnv(u64);

impl Fnv {
    /// A hash of nothing yet.
    pub(crate) fn new() -> Fnv {
        Fnv(OFFSET_BASIS)
    }

    /// Goes on from a hash `state` an earlier hasher finished with.
    pub(crate) fn resume(state: u64) -> Fnv {
        Fnv(state)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_fnv1a_test_vectors() {
        // From the FNV reference: "" and "a" under 64-bit FNV-1a.
        assert_eq!(Fnv::new().finish(), 0xcbf2_9ce4_8422_2325);
        let mut h = Fnv::new();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn resuming_from_a_finished_state_is_the_same_as_going_on() {
        let mut whole = Fnv::new();
        whole.write(b"ab");
        let mut first = Fnv::new();
        first.write(b"a");
        let mut rest = Fnv::resume(first.finish());
        rest.write(b"b");
        assert_eq!(rest.finish(), whole.finish());
    }
}
