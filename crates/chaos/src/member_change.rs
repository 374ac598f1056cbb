//! The membership changes of the `replace` fault, through etcd's Cluster API as an operator's
//! etcdctl would ask them, and how to tell that an earlier try already took effect (a change
//! whose answer was lost to a timeout is asked again and then refused as done).

use etcd_proto::etcdserverpb::cluster_client::ClusterClient;
use etcd_proto::etcdserverpb::{
    MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
};
use std::time::Duration;
use tonic::transport::Channel;

/// One request's bound: a change waits for a stop-sign to be chosen and applied.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// A change the nemesis asks.
#[derive(Clone, Debug)]
pub enum Change {
    /// `member remove ID`.
    Remove(u64),
    /// `member add --learner --peer-urls=URL`.
    AddLearner(String),
    /// `member promote ID`.
    Promote(u64),
}

impl Change {
    /// Whether refusal `e` says an earlier try of this change took effect.
    pub fn done_by(&self, e: &tonic::Status) -> bool {
        let m = e.message();
        match self {
            Change::Remove(_) => m.contains("member not found"),
            Change::AddLearner(_) => m.contains("Peer URLs already exists"),
            Change::Promote(_) => {
                m.contains("can only promote a learner member") && !m.contains("in sync")
            }
        }
    }
}

/// Asks `change` of the member behind `ch`.
pub async fn ask(ch: &Channel, change: &Change) -> Result<(), tonic::Status> {
    let mut c = ClusterClient::new(ch.clone());
    let call = async {
        match change {
            Change::Remove(id) => c
                .member_remove(MemberRemoveRequest { id: *id })
                .await
                .map(drop),
            Change::AddLearner(url) => c
                .member_add(MemberAddRequest {
                    peer_ur_ls: vec![url.clone()],
                    is_learner: true,
                })
                .await
                .map(drop),
            Change::Promote(id) => c
                .member_promote(MemberPromoteRequest { id: *id })
                .await
                .map(drop),
        }
    };
    tokio::time::timeout(ASK_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no answer in time")))
}

/// The id of the member listed at peer URL `url`, asking the members other than `skip`.
pub async fn id_at(channels: &[Channel], skip: usize, url: &str) -> Option<u64> {
    for ch in channels
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != skip)
        .map(|(_, c)| c)
    {
        let mut c = ClusterClient::new(ch.clone());
        let list = c.member_list(MemberListRequest { linearizable: true });
        let Ok(Ok(list)) = tokio::time::timeout(ASK_TIMEOUT, list).await else {
            continue;
        };
        if let Some(m) = list
            .into_inner()
            .members
            .iter()
            .find(|m| m.peer_ur_ls.iter().any(|u| u == url))
        {
            return Some(m.id);
        }
    }
    None
}
