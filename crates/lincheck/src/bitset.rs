//! The set of already-linearized operations, and its memoization key.

/// Mutable set of operation ids, updated in place as the search descends
/// and backtracks.
#[derive(Clone, Debug)]
pub(crate) struct Bitset {
    words: Vec<u64>,
    /// Number of leading all-ones words, kept exact so that taking a key
    /// costs the size of the ragged window, not of the whole set.
    full: usize,
    /// One past the last non-zero word (0 when empty), kept exact likewise.
    end: usize,
}

impl Bitset {
    pub(crate) fn new(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)],
            full: 0,
            end: 0,
        }
    }

    pub(crate) fn insert(&mut self, id: usize) {
        let word = id / 64;
        self.words[word] |= 1 << (id % 64);
        self.end = self.end.max(word + 1);
        while self.words.get(self.full) == Some(&u64::MAX) {
            self.full += 1;
        }
    }

    pub(crate) fn remove(&mut self, id: usize) {
        let word = id / 64;
        self.words[word] &= !(1 << (id % 64));
        self.full = self.full.min(word);
        while self.end > 0 && self.words[self.end - 1] == 0 {
            self.end -= 1;
        }
    }

    /// A canonical, compact snapshot for the memo table.
    ///
    /// Operations are numbered in invocation order and the search keeps
    /// linearizing the oldest pending ones, so a set is almost always a run
    /// of full words followed by a short ragged window and then zeros.
    /// Storing only the window keeps each memo entry a few words long
    /// instead of `len / 64` words, which is what bounds memory on long
    /// partitions.
    pub(crate) fn key(&self) -> SetKey {
        SetKey {
            full_words: self.full,
            window: self.words[self.full..self.end.max(self.full)].into(),
        }
    }
}

/// Snapshot of a [`Bitset`]: `full_words` all-ones words, then `window`,
/// then zeros. The representation is canonical (the window never starts
/// with an all-ones word nor ends with a zero word), so equal sets give
/// equal keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SetKey {
    full_words: usize,
    window: Box<[u64]>,
}

impl SetKey {
    fn word(&self, index: usize) -> u64 {
        match index.checked_sub(self.full_words) {
            None => u64::MAX,
            Some(offset) => self.window.get(offset).copied().unwrap_or(0),
        }
    }

    /// Whether every member of `self` is a member of `other`; both must
    /// come from bitsets of the same length.
    pub(crate) fn is_subset(&self, other: &SetKey) -> bool {
        (0..self.full_words + self.window.len()).all(|i| self.word(i) & !other.word(i) == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_sets_built_in_different_orders_have_equal_keys() {
        let mut a = Bitset::new(300);
        let mut b = Bitset::new(300);
        for id in 0..130 {
            a.insert(id);
        }
        a.insert(200);
        b.insert(200);
        for id in (0..130).rev() {
            b.insert(id);
        }
        b.insert(250);
        b.remove(250);
        assert_eq!(a.key(), b.key());
    }

    #[test]
    fn different_sets_have_different_keys() {
        let mut a = Bitset::new(200);
        let mut b = Bitset::new(200);
        for id in 0..64 {
            a.insert(id);
            b.insert(id);
        }
        a.insert(70);
        b.insert(71);
        assert_ne!(a.key(), b.key());
        b.remove(71);
        assert_ne!(a.key(), b.key());
        let empty = Bitset::new(200);
        assert_ne!(empty.key(), b.key());
    }

    #[test]
    fn subset_follows_membership() {
        let mut small = Bitset::new(200);
        let mut big = Bitset::new(200);
        for id in [0, 5, 64, 130] {
            small.insert(id);
            big.insert(id);
        }
        for id in 0..64 {
            big.insert(id);
        }
        big.insert(199);
        assert!(small.key().is_subset(&big.key()));
        assert!(!big.key().is_subset(&small.key()));
        assert!(big.key().is_subset(&big.key()));
        assert!(Bitset::new(200).key().is_subset(&small.key()));
        small.insert(100);
        assert!(!small.key().is_subset(&big.key()));
    }

    #[test]
    fn key_stores_only_the_ragged_window() {
        let mut set = Bitset::new(64 * 10);
        for id in 0..(64 * 4 + 3) {
            set.insert(id);
        }
        set.insert(64 * 6);
        let key = set.key();
        assert_eq!(key.full_words, 4);
        assert_eq!(key.window.len(), 3);
    }
}
