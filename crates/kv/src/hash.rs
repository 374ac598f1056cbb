//! etcd's `HashKV`: a hash of the store's history up to a revision, computed as etcd 3.4's
//! mvcc `HashByRev` computes it, so a Synod member and an etcd member holding the same
//! history give the same number, and members can be compared across compactions.
//!
//! etcd's database keeps one entry per change in its `key` bucket, keyed by the revision
//! (`main` big-endian, `_`, `sub` big-endian, and a `t` after a tombstone's), valued by the
//! marshaled `mvccpb.KeyValue` (only the key for a tombstone). `HashByRev(rev)` is the
//! CRC-32C of the bucket name `key`, then of each entry's key and value in the bucket's order
//! (by revision), for entries with `main <= rev`; of the entries at or below the compaction
//! revision `C`, only those in the keep set of a compaction at `rev` (each key's live version
//! at `rev`), unless that set is empty. The store's histories hold exactly what etcd's
//! database holds once its compaction finished: every change after `C`, and each key's live
//! version at `C` (`drop_history_below` is etcd's compaction rule). The one difference: a
//! transaction that changes one key twice (a put in one nested transaction, a deletion of it
//! in a later one, which etcd 3.4 lets through) leaves two entries in etcd and one version
//! here (see `push_version`), so such a history hashes differently.
//!
//! The crate knows no protobuf: the caller passes the `KeyValue` encoder.

use crate::error::KvError;
use crate::store::{key_value, Version};
use crate::types::KeyValue;
use crate::view::KvView;

/// etcd's `HashKV` answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevisionHash {
    /// CRC-32C of the history through the revision asked for.
    pub hash: u32,
    /// The store's current revision (the response header's).
    pub revision: i64,
    /// The compaction revision, -1 before any (etcd's `compact_revision`).
    pub compact_revision: i64,
}

/// A revision key's length in etcd's database, without the tombstone mark.
const REVISION_KEY_BYTES: usize = 17;

impl KvView {
    /// etcd's `HashByRev(rev)` over the state the view holds: `rev` 0 means the current
    /// revision. `marshal` encodes a `KeyValue` as etcd's `mvccpb.KeyValue.Marshal` does
    /// (proto3, zero fields omitted). Refuses a revision below the compaction (`Compacted`) or
    /// past the current one (`FutureRevision`), as etcd does. One pass over every key, plus
    /// a sort of the entries hashed: run it off the member's core.
    pub fn hash_by_revision(
        &self,
        rev: i64,
        mut marshal: impl FnMut(KeyValue) -> Vec<u8>,
    ) -> Result<RevisionHash, KvError> {
        let compact = if self.state.compacted {
            self.state.compact_revision
        } else {
            -1
        };
        if rev > 0 && rev < compact {
            return Err(KvError::Compacted);
        }
        if rev > 0 && rev > self.state.revision {
            return Err(KvError::FutureRevision);
        }
        let rev = if rev == 0 { self.state.revision } else { rev };
        // Each key's entries at or below `rev`, and whether its live version at `rev` (its
        // keep entry) is one of them.
        let mut entries: Vec<(i64, u32, &[u8], &Version)> = Vec::new();
        let mut below_compaction: Vec<(i64, u32, &[u8], &Version)> = Vec::new();
        let mut keep_is_empty = true;
        for (key, history) in &self.state.keys {
            let n = history.partition_point(|v| v.mod_revision <= rev);
            let kept = n
                .checked_sub(1)
                .and_then(|i| history.get(i))
                .filter(|v| v.live.is_some());
            keep_is_empty &= kept.is_none();
            for v in &history[..n] {
                let entry = (v.mod_revision, v.sub, key.as_slice(), v);
                if v.mod_revision > compact || kept.is_some_and(|k| std::ptr::eq(k, v)) {
                    entries.push(entry);
                } else {
                    below_compaction.push(entry);
                }
            }
        }
        // etcd skips the entries at or below the compaction only when the keep set is not
        // empty ("don't skip if there isn't one").
        if keep_is_empty {
            entries.append(&mut below_compaction);
        }
        // etcd's bucket order: by (main, sub), big-endian bytes.
        entries.sort_unstable_by_key(|(main, sub, key, _)| (*main, *sub, *key));
        let mut crc = crc32c::crc32c(b"key");
        let mut revision_key = Vec::with_capacity(REVISION_KEY_BYTES + 1);
        for (main, sub, key, v) in entries {
            revision_key.clear();
            revision_key.extend_from_slice(&main.to_be_bytes());
            revision_key.push(b'_');
            revision_key.extend_from_slice(&u64::from(sub).to_be_bytes());
            let kv = match &v.live {
                Some(live) => key_value(key, main, live, true),
                None => {
                    revision_key.push(b't');
                    KeyValue {
                        key: key.to_vec(),
                        ..KeyValue::default()
                    }
                }
            };
            crc = crc32c::crc32c_append(crc, &revision_key);
            crc = crc32c::crc32c_append(crc, &marshal(kv));
        }
        Ok(RevisionHash {
            hash: crc,
            revision: self.state.revision,
            compact_revision: compact,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{cmp, compact, del, grant, op_del, op_put, put, put_req, revoke, txn};
    use crate::types::*;
    use crate::{KvError, KvStore};

    /// `mvccpb.KeyValue` as gogo marshals it: proto3, fields in order, zeros left out (the
    /// node uses prost, which does the same; `convert.rs` checks it byte for byte).
    fn marshal(kv: KeyValue) -> Vec<u8> {
        use crate::codec::Sink;
        let mut out = Vec::new();
        let bytes = |out: &mut Vec<u8>, tag: u8, b: &[u8]| {
            if !b.is_empty() {
                out.put_u8((tag << 3) | 2);
                out.put_u64(b.len() as u64);
                out.put_slice(b);
            }
        };
        // Protobuf's int64: the two's complement as an unsigned varint (not zigzag).
        let int = |out: &mut Vec<u8>, tag: u8, v: i64| {
            if v != 0 {
                out.put_u8(tag << 3);
                out.put_u64(v as u64);
            }
        };
        bytes(&mut out, 1, &kv.key);
        int(&mut out, 2, kv.create_revision);
        int(&mut out, 3, kv.mod_revision);
        int(&mut out, 4, kv.version);
        bytes(&mut out, 5, &kv.value);
        int(&mut out, 6, kv.lease);
        out
    }

    const LEASE: i64 = 0x1234;

    /// The history of the hashkv interop test (revisions 2..=12), as etcd took it there.
    fn history() -> KvStore {
        let mut s = KvStore::new();
        let leased = |s: &mut KvStore, k: &str, v: &str| {
            let p = PutRequest {
                lease: LEASE,
                ..PutRequest::new(k, v)
            };
            put_req(s, p).expect("put");
        };
        let run = |s: &mut KvStore, compare: Vec<Compare>, success: Vec<RequestOp>| {
            let t = TxnRequest {
                compare,
                success,
                failure: Vec::new(),
            };
            assert!(txn(s, t).expect("txn").succeeded);
        };
        put(&mut s, "a", "1");
        put(&mut s, "b", "2");
        run(
            &mut s,
            vec![],
            vec![op_put("c", "3"), op_put("d", "4"), op_del("a", "")],
        );
        assert_eq!(del(&mut s, "b", "e").deleted, 3);
        grant(&mut s, LEASE).expect("grant");
        leased(&mut s, "e", "5");
        put(&mut s, "a", "6");
        put(&mut s, "a", "7");
        let a_is_7 = cmp(
            "a",
            CompareTarget::Value(b"7".to_vec()),
            CompareResult::Equal,
        );
        run(
            &mut s,
            vec![a_is_7],
            vec![op_put("f", "8"), op_del("e", "")],
        );
        leased(&mut s, "g", "9");
        revoke(&mut s, LEASE).expect("revoke");
        let last = vec![op_put("h", "10"), op_put("i", "11"), op_put("a", "12")];
        run(&mut s, vec![], last);
        assert_eq!(s.revision(), 12);
        s
    }

    fn hash(s: &KvStore, rev: i64) -> Result<RevisionHash, KvError> {
        s.view().hash_by_revision(rev, marshal)
    }

    /// Each (revision, hash) of `want`, with the store at 12 and compacted at `compacted`.
    #[track_caller]
    fn check(s: &KvStore, want: &[(i64, u32)], compacted: i64) {
        for &(rev, hash_want) in want {
            let got = hash(s, rev).expect("a hash");
            assert_eq!((rev, got.hash), (rev, hash_want));
            assert_eq!((got.revision, got.compact_revision), (12, compacted));
        }
    }

    /// etcd 3.4.23's `endpoint hashkv --rev R` after the same requests (measured), before and
    /// after `compaction 8 --physical`. Revision 8 itself after the compaction is 3.4.27's
    /// rule (etcd 3.4.23 refuses it), from etcd's algorithm applied by hand.
    #[test]
    fn hashes_as_etcd_at_every_revision_before_and_after_a_compaction() {
        let mut s = history();
        let before: [(i64, u32); 12] = [
            (0, 2981199445),
            (2, 2587454935),
            (3, 1827592406),
            (4, 3973566003),
            (5, 1054737301),
            (6, 3375092376),
            (7, 3042847694),
            (8, 1773356465),
            (9, 2790353725),
            (10, 2721549577),
            (11, 4264019860),
            (12, 2981199445),
        ];
        check(&s, &before, -1);
        assert_eq!(hash(&s, 13), Err(KvError::FutureRevision));
        compact(&mut s, 8).expect("compacts");
        let after: [(i64, u32); 6] = [
            (0, 1908247865),
            (8, 3753345421),
            (9, 2500202025),
            (10, 4087827563),
            (11, 318562761),
            (12, 1908247865),
        ];
        check(&s, &after, 8);
        assert_eq!(hash(&s, 7), Err(KvError::Compacted));
    }

    #[test]
    fn a_hash_at_a_revision_ignores_later_writes_and_survives_a_snapshot() {
        let mut s = history();
        let at_9 = hash(&s, 9).expect("a hash");
        let later = TxnRequest {
            success: vec![op_put("z", "1"), op_del("f", "")],
            ..TxnRequest::default()
        };
        txn(&mut s, later).expect("txn");
        assert_eq!(hash(&s, 9).map(|h| h.hash), Ok(at_9.hash));
        let restored = KvStore::restore(&s.snapshot()).expect("restores");
        for rev in [0, 4, 5, 9, 12, 13] {
            assert_eq!(hash(&restored, rev), hash(&s, rev), "at {rev}");
        }
    }

    #[test]
    fn sub_revisions_change_the_hash_and_the_snapshot_only_when_a_command_changes_two_keys() {
        // One key per command: no sub-revision above 0, so the snapshot keeps version 1.
        let mut one = KvStore::new();
        put(&mut one, "a", "1");
        put(&mut one, "b", "2");
        assert_eq!(one.snapshot()[4], 1);
        // The same keys and values in one transaction, in the other order: b gets sub 0, a
        // sub 1, and the history hashes differently (etcd orders its bucket by revision).
        let both = |ops: Vec<RequestOp>| {
            let mut s = KvStore::new();
            let t = TxnRequest {
                success: ops,
                ..TxnRequest::default()
            };
            txn(&mut s, t).expect("txn");
            s
        };
        let two = both(vec![op_put("b", "2"), op_put("a", "1")]);
        let sorted = both(vec![op_put("a", "1"), op_put("b", "2")]);
        assert_ne!(hash(&two, 0), hash(&sorted, 0));
        assert_eq!(
            two.snapshot()[4],
            3,
            "sub-revisions need version 3's section"
        );
        let back = KvStore::restore(&two.snapshot()).expect("restores");
        assert_eq!(back.snapshot(), two.snapshot());
        assert_eq!(hash(&back, 0), hash(&two, 0));
    }
}
