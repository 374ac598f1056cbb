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

use crate::auth::AuthStore;
use crate::store::{Keys, KvStore, Lease, Limits};
use imbl::OrdMap;

/// The replicated state of a [`KvStore`] at the moment [`KvStore::view`] took it. Its
/// [`KvView::snapshot`] and [`KvView::digest`] (the encoder, in `snapshot.rs`) are, byte for
/// byte, what the store's own [`KvStore::snapshot`] and [`KvStore::digest`] answered at that
/// moment: the store's are a view taken and encoded at once. `Send + Sync`:
/// made to be moved to another thread.
#[derive(Clone, Debug)]
pub struct KvView {
    pub(crate) keys: Keys,
    pub(crate) leases: OrdMap<i64, Lease>,
    pub(crate) revision: i64,
    pub(crate) compact_revision: i64,
    pub(crate) compacted: bool,
    pub(crate) alarms: crate::alarm::Alarms,
    pub(crate) lease_id_next: i64,
    pub(crate) lease_leader: (u64, u64),
    pub(crate) limits: Limits,
    pub(crate) auth: AuthStore,
}

impl KvStore {
    /// The replicated state as it is now, in O(1) for the keys and leases (they are shared,
    /// not copied; see the module doc) plus a copy of the auth tables.
    pub fn view(&self) -> KvView {
        KvView {
            keys: self.keys.clone(),
            leases: self.leases.clone(),
            revision: self.revision,
            compact_revision: self.compact_revision,
            compacted: self.compacted,
            alarms: self.alarms.clone(),
            lease_id_next: self.lease_id_next,
            lease_leader: self.lease_leader,
            limits: self.limits,
            auth: self.auth.clone(),
        }
    }
}

impl KvView {
    /// The store's revision when the view was taken.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The store's compaction revision when the view was taken.
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// Keys in the index when the view was taken ([`KvStore::keys_len`]).
    pub fn keys_len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KvCommand, LeaseGrantRequest, PutRequest};

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
