//! A consistent, read-only copy of the replicated state that costs O(1) to take.
//!
//! The store's maps (keys → history, leases, each lease's keys) are persistent B-trees
//! (`imbl::OrdMap`): a clone shares every node with the store, and a write to the store copies
//! only the nodes on its path that a clone still shares (at most one path per write, and each
//! node at most once per view). So a member can take a view on its one core thread, hand it to
//! a worker that serializes it (a snapshot, a backup) or hashes it (HashKV), and keep applying
//! writes meanwhile: the worker sees the state at the moment the view was taken, whatever the
//! store does after.
//!
//! The auth tables are copied outright (they are small: users and roles, not keys).

use crate::auth::SimpleTokens;
use crate::store::KvStore;
use crate::watch::ChangeIndex;
use crate::{KvError, KvRead, KvReadResponse};

/// The replicated state of a [`KvStore`] at the moment [`KvStore::view`] took it. Its
/// [`KvView::snapshot`] and [`KvView::digest`] (the encoder, in `snapshot.rs`) are, byte for
/// byte, what the store's own [`KvStore::snapshot`] and [`KvStore::digest`] answered at that
/// moment: the store's are a view taken and encoded at once. [`KvView::read`] answers a read as
/// the store answered it then, so a member's driver can serve ranges off the member's core.
/// `Send + Sync`: made to be moved to another thread.
#[derive(Clone, Debug)]
pub struct KvView {
    /// The store's replicated state, shared with it. Its two non-replicated parts are left
    /// empty: the watch change index (so a view serves no watch read: [`KvView::serves`]) and
    /// the simple tokens (a read never needs them).
    pub(crate) state: KvStore,
}

impl KvStore {
    /// The replicated state as it is now, in O(1) for the keys and leases (they are shared,
    /// not copied; see the module doc) plus a copy of the auth tables and the alarms.
    pub fn view(&self) -> KvView {
        KvView {
            state: KvStore {
                keys: self.keys.clone(),
                leases: self.leases.clone(),
                revision: self.revision,
                compact_revision: self.compact_revision,
                compacted: self.compacted,
                alarms: self.alarms.clone(),
                lease_id_next: self.lease_id_next,
                lease_leader: self.lease_leader,
                limits: self.limits,
                changes: ChangeIndex::default(),
                auth: self.auth.clone(),
                tokens: SimpleTokens::default(),
            },
        }
    }
}

impl KvView {
    /// The store's revision when the view was taken.
    pub fn revision(&self) -> i64 {
        self.state.revision
    }

    /// The store's compaction revision when the view was taken.
    pub fn compact_revision(&self) -> i64 {
        self.state.compact_revision
    }

    /// Keys in the index when the view was taken ([`KvStore::keys_len`]).
    pub fn keys_len(&self) -> usize {
        self.state.keys.len()
    }

    /// Whether a view can answer `q`: every read but a watch's, which needs the store's change
    /// index (a view does not copy it; watch reads are bounded batches, served by the store).
    pub fn serves(q: &KvRead) -> bool {
        match q {
            KvRead::Watch(_) => false,
            KvRead::As { read, .. } => KvView::serves(read),
            KvRead::Range(_)
            | KvRead::LeaseTimeToLive { .. }
            | KvRead::LeaseLeases
            | KvRead::Auth(_) => true,
        }
    }

    /// Answers `q` as [`KvStore::read`] answered it when the view was taken (the same code, on
    /// the same state): a range over every key runs here, on whatever thread holds the view,
    /// not on the store's. A read the view cannot serve ([`KvView::serves`]) is refused with
    /// [`KvError::Decode`]: a caller's bug, never a client's.
    pub fn read(&self, q: &KvRead) -> Result<KvReadResponse, KvError> {
        if !KvView::serves(q) {
            return Err(KvError::Decode(crate::DecodeError::Malformed(
                "a watch read sent to a view: watch reads need the store's change index".into(),
            )));
        }
        self.state.read(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KvCommand, LeaseGrantRequest, PutRequest, RangeRequest};

    fn assert_send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn a_view_can_move_to_another_thread() {
        assert_send_sync::<KvView>();
        let mut store = KvStore::new();
        store
            .apply(&KvCommand::Put(PutRequest::new("k", "v")))
            .expect("put");
        let (view, bytes) = (store.view(), store.snapshot());
        let made = std::thread::spawn(move || view.snapshot()).join();
        assert_eq!(made.ok(), Some(bytes));
    }

    #[test]
    fn a_view_answers_reads_as_the_store_did_when_it_was_taken() {
        let mut store = KvStore::new();
        for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
            store
                .apply(&KvCommand::Put(PutRequest::new(k, v)))
                .expect("put");
        }
        let grant = KvCommand::LeaseGrant(LeaseGrantRequest { id: 9, ttl: 30 });
        store.apply(&grant).expect("grant");
        let reads = [
            KvRead::Range(RangeRequest::range("a", "z")),
            KvRead::Range(RangeRequest::single("b")),
            // A revision the store does not have yet: refused alike.
            KvRead::Range(RangeRequest {
                revision: 99,
                ..RangeRequest::single("a")
            }),
            KvRead::LeaseLeases,
            KvRead::LeaseTimeToLive { id: 9, keys: true },
            KvRead::LeaseTimeToLive { id: 8, keys: false },
        ];
        let before: Vec<_> = reads
            .iter()
            .map(|q| format!("{:?}", store.read(q)))
            .collect();
        let view = store.view();
        store
            .apply(&KvCommand::Put(PutRequest::new("b", "changed")))
            .expect("put");
        store
            .apply(&KvCommand::DeleteRange(crate::DeleteRangeRequest::new(
                "c", "",
            )))
            .expect("delete");
        let after: Vec<_> = reads
            .iter()
            .map(|q| format!("{:?}", store.read(q)))
            .collect();
        assert_ne!(before, after, "the store moved on");
        let from_view: Vec<_> = reads
            .iter()
            .map(|q| format!("{:?}", view.read(q)))
            .collect();
        assert_eq!(from_view, before);
        // A watch read needs the change index, which a view does not hold: refused, not
        // answered with nothing.
        let watch = KvRead::Watch(crate::WatchRead::everything(0, 100, 1 << 20));
        assert!(!KvView::serves(&watch));
        assert!(view.read(&watch).is_err());
        assert!(store.read(&watch).is_ok());
    }

    #[test]
    fn a_view_keeps_a_lease_whose_keys_change_after_it() {
        let mut store = KvStore::new();
        let grant = KvCommand::LeaseGrant(LeaseGrantRequest { id: 7, ttl: 60 });
        store.apply(&grant).expect("grant");
        let on_lease = |k: &str| {
            let mut p = PutRequest::new(k, "v");
            p.lease = 7;
            KvCommand::Put(p)
        };
        store.apply(&on_lease("a")).expect("put");
        let view = store.view();
        let (bytes, digest) = (store.snapshot(), store.digest());
        store.apply(&on_lease("b")).expect("put");
        store
            .apply(&KvCommand::LeaseRevoke(crate::LeaseRevokeRequest { id: 7 }))
            .expect("revoke");
        assert_ne!(store.digest(), digest, "the store moved on");
        assert_eq!(view.snapshot(), bytes);
        assert_eq!(view.digest(), digest);
        assert_eq!(view.keys_len(), 1);
    }
}
