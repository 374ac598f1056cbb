//! etcd's Cluster API over the core's reconfiguration: who the members are (the core's
//! configuration: node ids are etcd member ids, voters and learners) and what each is called
//! and where it listens (the member table, replicated beside it).
//!
//! **The member table** maps a member id to its name and peer URLs. It is replicated state: a
//! change to it is a command in the log ([`TableCommand`], a payload whose first byte is
//! [`TABLE_COMMAND_TAG`], which the key-value store's codec refuses without touching the store),
//! applied by every member at the same slot, and it travels in the member's snapshot body. A
//! cluster starts with the table of its `--initial-cluster`. The configuration decides who is
//! a member; the table only describes members: an entry for an id outside the configuration is
//! never listed, and a member without an entry is listed with no name and no URLs (as etcd
//! lists a member that has not started yet).
//!
//! How each request maps onto the core (the leader proposes; see `Member::cluster_change`):
//! - `MemberAdd` as a learner: a stop-sign whose configuration adds the id as a learner, then
//!   the table entry; answered once both are applied here. Without `is_learner` it is refused
//!   ([`crate::MemberError::VoterAddRefused`]): the core only makes voters of caught-up learners.
//! - `MemberPromote`: a stop-sign making the learner a voter (the core refuses a lagging one).
//! - `MemberRemove`: a stop-sign without the id; every member drops the id's entry as it
//!   applies that stop-sign. Answered once the new configuration is in force here (a removed
//!   leader hands the lead over).
//! - `MemberUpdate`: the table entry only (no configuration change).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The first byte of a member-table command's payload. The key-value codec's version byte is
/// 1, so the store refuses these (with a decode error and no change) and the member applies
/// them to its table instead.
pub const TABLE_COMMAND_TAG: u8 = 0xC7;

/// At most this many peer URLs per member, and this many bytes per URL.
pub const PEER_URLS_MAX: usize = 16;
/// See [`PEER_URLS_MAX`].
pub const URL_BYTES_MAX: usize = 512;

/// What the cluster knows of one member beside its id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Its name (`--name`); empty for a member added but never described by its start.
    pub name: String,
    /// Where its peers reach it.
    pub peer_urls: Vec<String>,
}

/// The member table: member id → what is known of it.
pub type MemberTable = BTreeMap<u64, MemberInfo>;

/// One change to the member table, as a command in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TableCommand {
    /// Describe member `id` (replacing what was known).
    Set {
        /// The member.
        id: u64,
        /// Its description.
        info: MemberInfo,
    },
}

impl TableCommand {
    /// The command's payload: the tag, then postcard.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_extend(self, vec![TABLE_COMMAND_TAG])
            .expect("postcard encodes a table command into a vector")
    }

    /// The command in `payload`, if it is one (`None` for a key-value command).
    pub fn decode(payload: &[u8]) -> Option<TableCommand> {
        match payload.split_first() {
            Some((&TABLE_COMMAND_TAG, rest)) => postcard::from_bytes(rest).ok(),
            _ => None,
        }
    }

    /// Applies the command to `table`.
    pub fn apply(&self, table: &mut MemberTable) {
        match self {
            TableCommand::Set { id, info } => {
                table.insert(*id, info.clone());
            }
        }
    }
}

/// One member as `MemberList` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberEntry {
    /// Member id.
    pub id: u64,
    /// Name (empty until known).
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs it announced (empty until heard from).
    pub client_urls: Vec<String>,
    /// Whether it is a learner (receives the log, does not vote).
    pub is_learner: bool,
}

/// A change asked through the Cluster API (also on the wire, forwarded to the leader:
/// variants are appended, never reordered).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterChange {
    /// `MemberAdd`: a new member `id` (chosen by the caller) at `peer_urls`.
    Add {
        /// Its id.
        id: u64,
        /// Its peer URLs.
        peer_urls: Vec<String>,
        /// As a learner (the only way the core accepts a new member).
        learner: bool,
    },
    /// `MemberPromote`: make learner `id` a voter.
    Promote {
        /// The learner.
        id: u64,
    },
    /// `MemberRemove`: remove `id` (voter or learner, this member included).
    Remove {
        /// The member.
        id: u64,
    },
    /// `MemberUpdate`: new peer URLs for `id`.
    Update {
        /// The member.
        id: u64,
        /// Its new peer URLs.
        peer_urls: Vec<String>,
    },
}

/// Peer URLs in a comparable form (etcd compares them as given, after sorting).
pub(crate) fn urls_overlap(a: &[String], b: &[String]) -> bool {
    a.iter().any(|u| b.contains(u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_commands_round_trip_and_are_not_kv_commands() {
        let set = TableCommand::Set {
            id: 7,
            info: MemberInfo {
                name: "n".into(),
                peer_urls: vec!["http://127.0.0.1:1".into()],
            },
        };
        let bytes = set.encode();
        assert_eq!(TableCommand::decode(&bytes), Some(set.clone()));
        assert!(kv::decode(&bytes).is_err(), "the store must refuse it");
        let put = kv::encode(&kv::KvCommand::Put(kv::PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        }));
        assert_eq!(TableCommand::decode(&put), None);
        let mut table = MemberTable::new();
        set.apply(&mut table);
        assert_eq!(table[&7].name, "n");
    }
}
