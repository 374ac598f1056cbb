//! Key ranges as etcd spells them (`key` plus `range_end`), and a containment index over many.

use imbl::OrdMap;
use std::ops::Bound;

/// The keys a `(key, range_end)` pair selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Span<'a> {
    /// `range_end` empty: the one key.
    One(&'a [u8]),
    /// `range_end == [0]`: every key from `key` on (with `key == [0]`, every key, since the
    /// empty key cannot be stored).
    From(&'a [u8]),
    /// `[key, range_end)`; empty when `key >= range_end`.
    Between(&'a [u8], &'a [u8]),
}

impl<'a> Span<'a> {
    pub(crate) fn new(key: &'a [u8], range_end: &'a [u8]) -> Span<'a> {
        match range_end {
            [] => Span::One(key),
            [0] => Span::From(key),
            end => Span::Between(key, end),
        }
    }

    fn start(&self) -> &'a [u8] {
        match *self {
            Span::One(k) | Span::From(k) | Span::Between(k, _) => k,
        }
    }

    fn upper(&self) -> Upper<'a> {
        match *self {
            Span::One(k) => Upper::Incl(k),
            Span::From(_) => Upper::Inf,
            Span::Between(_, e) => Upper::Excl(e),
        }
    }

    /// Whether the span selects `k`.
    pub(crate) fn contains(&self, k: &[u8]) -> bool {
        k >= self.start() && self.upper().admits(k)
    }

    /// The entries of `map` whose keys the span selects, in key order.
    pub(crate) fn iter<'m, T: Clone>(
        &self,
        map: &'m OrdMap<Vec<u8>, T>,
    ) -> Box<dyn Iterator<Item = (&'m Vec<u8>, &'m T)> + 'm> {
        match *self {
            Span::One(k) => Box::new(map.get_key_value(k).into_iter()),
            Span::From(k) => Box::new(map.range::<_, [u8]>((Bound::Included(k), Bound::Unbounded))),
            // An inverted range selects nothing (std's BTreeMap::range panics on one; clients may
            // send one, so never ask a map for it).
            Span::Between(k, e) if k >= e => Box::new(std::iter::empty()),
            Span::Between(k, e) => {
                Box::new(map.range::<_, [u8]>((Bound::Included(k), Bound::Excluded(e))))
            }
        }
    }
}

/// A span's upper bound, ordered so that a larger bound admits every key a smaller one does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upper<'a> {
    Excl(&'a [u8]),
    Incl(&'a [u8]),
    Inf,
}

impl Upper<'_> {
    fn admits(&self, k: &[u8]) -> bool {
        match *self {
            Upper::Excl(e) => k < e,
            Upper::Incl(e) => k <= e,
            Upper::Inf => true,
        }
    }

    fn max<'b>(a: Upper<'b>, b: Upper<'b>) -> Upper<'b> {
        use std::cmp::Ordering::*;
        let rank = |u: &Upper<'_>| match u {
            Upper::Excl(_) => 0,
            Upper::Incl(_) => 1,
            Upper::Inf => 2,
        };
        match (a, b) {
            (Upper::Inf, _) | (_, Upper::Inf) => Upper::Inf,
            (Upper::Excl(x) | Upper::Incl(x), Upper::Excl(y) | Upper::Incl(y)) => {
                match x.cmp(y) {
                    Greater => a,
                    Less => b,
                    // Same bytes: inclusive admits one key more.
                    Equal if rank(&a) >= rank(&b) => a,
                    Equal => b,
                }
            }
        }
    }
}

/// Answers "does any of these spans contain `k`?" in logarithmic time, so that a transaction
/// with many puts and deletes is checked in O(n log n) rather than O(puts × deletes).
pub(crate) struct SpanIndex<'a> {
    starts: Vec<&'a [u8]>,
    /// `reach[i]`: the largest upper bound among the first `i + 1` spans by start.
    reach: Vec<Upper<'a>>,
}

impl<'a> SpanIndex<'a> {
    pub(crate) fn new(spans: &[Span<'a>]) -> SpanIndex<'a> {
        let mut sorted: Vec<Span<'a>> = spans.to_vec();
        sorted.sort_by(|a, b| a.start().cmp(b.start()));
        let mut reach = Vec::with_capacity(sorted.len());
        let mut acc: Option<Upper<'a>> = None;
        for s in &sorted {
            let u = match acc {
                None => s.upper(),
                Some(prev) => Upper::max(prev, s.upper()),
            };
            acc = Some(u);
            reach.push(u);
        }
        SpanIndex {
            starts: sorted.iter().map(Span::start).collect(),
            reach,
        }
    }

    pub(crate) fn covers(&self, k: &[u8]) -> bool {
        // The spans starting at or before k; among them, k is covered iff the widest reaches it.
        let n = self.starts.partition_point(|s| *s <= k);
        match n.checked_sub(1).and_then(|i| self.reach.get(i)) {
            Some(u) => u.admits(k),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(span: Span<'_>, map: &OrdMap<Vec<u8>, ()>) -> Vec<Vec<u8>> {
        span.iter(map).map(|(k, _)| k.clone()).collect()
    }

    #[test]
    fn range_end_forms_select_as_etcd_documents() {
        let map: OrdMap<Vec<u8>, ()> = [&b"a"[..], b"b", b"ba", b"c"]
            .iter()
            .map(|k| (k.to_vec(), ()))
            .collect();
        assert_eq!(keys(Span::new(b"b", b""), &map), vec![b"b".to_vec()]);
        assert_eq!(keys(Span::new(b"x", b""), &map), Vec::<Vec<u8>>::new());
        assert_eq!(
            keys(Span::new(b"b", b"\0"), &map),
            vec![b"b".to_vec(), b"ba".to_vec(), b"c".to_vec()]
        );
        assert_eq!(keys(Span::new(b"\0", b"\0"), &map).len(), 4);
        assert_eq!(
            keys(Span::new(b"a", b"ba"), &map),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert!(keys(Span::new(b"c", b"a"), &map).is_empty(), "inverted");
        assert!(keys(Span::new(b"b", b"b"), &map).is_empty(), "empty");
    }

    #[test]
    fn the_index_agrees_with_a_linear_scan() {
        let spans = [
            Span::new(b"b", b""),
            Span::new(b"d", b"f"),
            Span::new(b"a", b"a\x01"),
            Span::new(b"x", b"\0"),
            Span::new(b"m", b"k"),
        ];
        let index = SpanIndex::new(&spans);
        for k in [
            &b"a"[..],
            b"a\x00",
            b"a\x01",
            b"b",
            b"ba",
            b"c",
            b"d",
            b"e\xff",
            b"f",
            b"l",
            b"w",
            b"x",
            b"zzz",
        ] {
            let linear = spans.iter().any(|s| match *s {
                Span::One(o) => o == k,
                Span::From(f) => k >= f,
                Span::Between(s, e) => k >= s && k < e,
            });
            assert_eq!(index.covers(k), linear, "{k:?}");
        }
    }
}
