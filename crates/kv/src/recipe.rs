//! etcd's concurrency recipes (clientv3's `concurrency` package: the mutex and the leader
//! election) as decisions, sans IO: which key a contender writes, which reads it makes and
//! what their answers mean. The node's Lock and Election services (`crates/node/src/
//! recipe.rs`) and the member simulator's lock clients both take their decisions here, so the
//! recipe the simulator checks is the one the node runs.
//!
//! A contender of `name` writes `<name>/<lease in hex>` under its lease (unless it exists),
//! and its place in the queue is that key's create revision: the contender whose key is the
//! oldest holds (the lock, or the leadership). A contender waits until no key created before
//! its own remains, one at a time: it reads the newest older key and waits for that key's
//! deletion after the revision of the read, then reads again.

use crate::types::{prefix_end, RangeRequest, SortOrder, SortTarget};

/// `<name>/`: the prefix under which every contender's key of `name` lives.
pub fn contenders(name: &[u8]) -> Vec<u8> {
    [name, b"/"].concat()
}

/// `<name>/<lease in hex>`: the key a contender with `lease` writes.
pub fn contender_key(name: &[u8], lease: i64) -> Vec<u8> {
    [contenders(name).as_slice(), format!("{lease:x}").as_bytes()].concat()
}

/// A range over the keys under `prefix` that answers the oldest (`first`) or the newest of
/// them by create revision, only among those created at or before `max_create_revision` (0:
/// all). The node sends the same read in etcd's form.
pub fn top_by_creation(prefix: &[u8], first: bool, max_create_revision: i64) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: if first {
            SortOrder::Ascend
        } else {
            SortOrder::Descend
        },
        sort_target: SortTarget::Create,
        max_create_revision,
        ..RangeRequest::default()
    }
}

/// Whether a contender whose key was created at `mine` holds right away, given the create
/// revision of the oldest contender its claim read (its own key among them, so `None` only
/// if it is gone already).
pub fn holds_at_claim(mine: i64, oldest_created: Option<i64>) -> bool {
    oldest_created.is_none_or(|o| o == mine)
}

/// What a contender does after reading the newest key created before its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Turn {
    /// No older key remains: it holds (a lock also checks its own key is still there).
    Holds,
    /// Wait until `key` is deleted after revision `after` (the read's), then read again.
    WaitForDelete {
        /// The newest older contender's key.
        key: Vec<u8>,
        /// The revision the read ran at.
        after: i64,
    },
}

/// The turn a contender is at, from the answer to [`top_by_creation`] (`first` false,
/// `max_create_revision` its own create revision - 1): the newest older key, if any, and the
/// revision the read ran at.
pub fn turn(newest_older: Option<&[u8]>, read_at: i64) -> Turn {
    match newest_older {
        None => Turn::Holds,
        Some(key) => Turn::WaitForDelete {
            key: key.to_vec(),
            after: read_at,
        },
    }
}

/// Whether a contender's key created at `rev` still stands, given the create revision a
/// read of the key found (`None`: absent): its lease may have ended while it waited, and
/// then it holds nothing.
pub fn still_created_at(found_created: Option<i64>, rev: i64) -> bool {
    found_created == Some(rev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contender_key_is_the_name_then_the_lease_in_hex() {
        assert_eq!(contender_key(b"lk", 0x2a), b"lk/2a".to_vec());
        assert_eq!(contenders(b"lk"), b"lk/".to_vec());
    }

    #[test]
    fn the_oldest_key_holds_and_the_others_wait_for_the_newest_older_one() {
        assert!(holds_at_claim(5, Some(5)));
        assert!(!holds_at_claim(7, Some(5)));
        assert!(holds_at_claim(7, None));
        assert_eq!(turn(None, 9), Turn::Holds);
        assert_eq!(
            turn(Some(b"lk/1"), 9),
            Turn::WaitForDelete {
                key: b"lk/1".to_vec(),
                after: 9
            }
        );
        assert!(still_created_at(Some(7), 7));
        assert!(!still_created_at(Some(8), 7));
        assert!(!still_created_at(None, 7));
    }
}
