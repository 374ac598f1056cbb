//! Permission checks: a user's permissions merged into disjoint key intervals, one list for
//! reading and one for writing (what etcd's range-permission cache builds with its interval
//! trees), and "does this list cover that range".
//!
//! Keys are byte strings in bytewise order. Every range form is a half-open interval
//! `[start, end)` over them: the one key `k` is `[k, k ++ [0])` (nothing sorts between `k` and
//! `k ++ [0]`), `[k, [0])` is `[k, ∞)`, and `[k, e)` is itself.

use super::{Permission, PermissionType};

/// An interval's upper bound. `Before(e) < Unbounded`, and `Before`s compare by their bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    /// Every key below `e`.
    Before(Vec<u8>),
    /// No upper bound.
    Unbounded,
}

/// The keys `k` with `start <= k < end`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Interval {
    start: Vec<u8>,
    end: End,
}

impl Interval {
    /// The one key `key`.
    fn point(key: &[u8]) -> Interval {
        let mut end = Vec::with_capacity(key.len() + 1);
        end.extend_from_slice(key);
        end.push(0);
        Interval {
            start: key.to_vec(),
            end: End::Before(end),
        }
    }

    /// The keys etcd's `(key, range_end)` forms select.
    fn of(key: &[u8], range_end: &[u8]) -> Interval {
        match range_end {
            [] => Interval::point(key),
            [0] => Interval {
                start: key.to_vec(),
                end: End::Unbounded,
            },
            end => Interval {
                start: key.to_vec(),
                end: End::Before(end.to_vec()),
            },
        }
    }

    /// A request's interval: as [`Interval::of`], except that an empty or inverted range
    /// (which selects no key) stands for its first key, so that naming a range one may not
    /// touch is refused even when the range is empty.
    fn requested(key: &[u8], range_end: &[u8]) -> Interval {
        let i = Interval::of(key, range_end);
        match &i.end {
            End::Before(e) if e.as_slice() <= key => Interval::point(key),
            _ => i,
        }
    }

    /// Whether `key` is at or below this interval's end, so that an interval starting at
    /// `key` touches or overlaps this one.
    fn reaches(&self, key: &[u8]) -> bool {
        match &self.end {
            End::Before(e) => key <= e.as_slice(),
            End::Unbounded => true,
        }
    }
}

/// Sorts and merges intervals that overlap or touch, so that the result is disjoint, ascending
/// and has a gap (a key no interval holds) between any two neighbours.
fn merge(mut intervals: Vec<Interval>) -> Vec<Interval> {
    intervals.sort_by(|a, b| a.start.cmp(&b.start).then_with(|| a.end.cmp(&b.end)));
    let mut merged: Vec<Interval> = Vec::with_capacity(intervals.len());
    for i in intervals {
        match merged.last_mut() {
            Some(last) if last.reaches(&i.start) => {
                if i.end > last.end {
                    last.end = i.end;
                }
            }
            _ => merged.push(i),
        }
    }
    merged
}

/// Whether the merged `intervals` hold every key of `want` (non-empty). Since merged
/// intervals are disjoint with gaps between them, only the one holding `want.start` can, and
/// it must reach at least as far as `want`.
fn covers(intervals: &[Interval], want: &Interval) -> bool {
    let n = intervals.partition_point(|i| i.start <= want.start);
    match n.checked_sub(1).and_then(|i| intervals.get(i)) {
        Some(i) => i.end >= want.end,
        None => false,
    }
}

/// What one user may read and write, as of one auth revision: every permission of every role
/// it has, merged ([`crate::AuthStore::permissions`]). Cheap to ask many times: a watch holds
/// one and asks [`UserPermissions::may_read`] per event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPermissions {
    /// Auth off, or a `root` user: everything.
    everything: bool,
    read: Vec<Interval>,
    write: Vec<Interval>,
    auth_revision: u64,
}

impl UserPermissions {
    pub(super) fn everything(auth_revision: u64) -> UserPermissions {
        UserPermissions {
            everything: true,
            read: Vec::new(),
            write: Vec::new(),
            auth_revision,
        }
    }

    pub(super) fn merge<'a>(
        perms: impl Iterator<Item = &'a Permission>,
        auth_revision: u64,
    ) -> UserPermissions {
        let mut read = Vec::new();
        let mut write = Vec::new();
        for p in perms {
            let i = Interval::of(&p.key, &p.range_end);
            if p.perm_type.allows_read() {
                read.push(i.clone());
            }
            if p.perm_type.allows_write() {
                write.push(i);
            }
        }
        UserPermissions {
            everything: false,
            read: merge(read),
            write: merge(write),
            auth_revision,
        }
    }

    /// The auth revision these permissions were read at.
    pub fn auth_revision(&self) -> u64 {
        self.auth_revision
    }

    /// Whether every key of `key`..`range_end` (etcd's forms, see
    /// [`crate::AuthStore::check`]) may be used as `perm_type` says.
    pub fn allows(&self, key: &[u8], range_end: &[u8], perm_type: PermissionType) -> bool {
        if self.everything {
            return true;
        }
        let want = Interval::requested(key, range_end);
        (!perm_type.allows_read() || covers(&self.read, &want))
            && (!perm_type.allows_write() || covers(&self.write, &want))
    }

    /// Whether the one key `key` may be read: a watch asks this of every event before it
    /// delivers it, so that no event outside the granted ranges is ever sent.
    pub fn may_read(&self, key: &[u8]) -> bool {
        self.everything || covers(&self.read, &Interval::point(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(key: &str, range_end: &str) -> Interval {
        Interval::of(key.as_bytes(), range_end.as_bytes())
    }

    #[test]
    fn merging_joins_overlapping_and_touching_intervals_only() {
        let merged = merge(vec![
            iv("c", "e"),
            iv("a", "b"),
            iv("b", "c"),   // touches [a, b) and [c, e)
            iv("x", ""),    // the point x = [x, x\0)
            iv("x\0", "y"), // touches the point x
            iv("z", ""),
        ]);
        assert_eq!(merged, vec![iv("a", "e"), iv("x", "y"), iv("z", "")]);
    }

    #[test]
    fn a_gap_of_one_key_is_a_gap() {
        // [a, k) and [k\0, z) leave exactly the key k uncovered.
        let merged = merge(vec![iv("a", "k"), iv("k\0", "z")]);
        assert_eq!(merged.len(), 2);
        assert!(!covers(&merged, &iv("j", "l")));
        assert!(!covers(&merged, &iv("k", "")));
        assert!(covers(&merged, &iv("k\0", "")));
        assert!(covers(&merged, &iv("a", "k")));
    }

    #[test]
    fn range_ends_are_exclusive_and_open_ends_reach_everything() {
        let merged = merge(vec![iv("a", "c"), iv("m", "\0")]);
        assert!(covers(&merged, &iv("b", "")));
        assert!(
            !covers(&merged, &iv("c", "")),
            "range_end is not in the range"
        );
        assert!(covers(&merged, &iv("a", "c")));
        assert!(!covers(&merged, &iv("a", "c\0")));
        assert!(covers(&merged, &iv("m", "\0")));
        assert!(covers(&merged, &iv("zzz", "")));
        assert!(!covers(&merged, &iv("l", "\0")));
    }

    #[test]
    fn empty_and_inverted_requests_stand_for_their_first_key() {
        assert_eq!(Interval::requested(b"b", b"a"), Interval::point(b"b"));
        assert_eq!(Interval::requested(b"b", b"b"), Interval::point(b"b"));
        assert_eq!(Interval::requested(b"b", b"\0"), iv("b", "\0"));
    }
}
