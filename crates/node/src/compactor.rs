//! Auto-compaction (etcd's `--auto-compaction-mode` and `--auto-compaction-retention`): the
//! leader compacts the store's history through the log, as a client's `Compact` would, so that
//! history does not grow until the NOSPACE alarm stops writes.
//!
//! The clock is the node's: the decision of *when* and *through which revision* is made here,
//! and what it decides is an ordinary command every member applies at the same slot, so the
//! store stays deterministic. Only the leader compacts; a member that stops leading forgets its
//! samples and one that starts leading begins afresh (etcd pauses and resumes its compactor
//! the same way), so a compaction is never issued twice for one reason.

use crate::config::AutoCompaction;
use crate::error::NodeError;
use crate::service::Services;
use kv::{CompactRequest, KvCommand};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The shortest pause between two looks, whatever the retention.
const LOOK_EVERY_MIN: Duration = Duration::from_millis(100);

/// Revisions seen by the leader over time, and the compaction they call for.
#[derive(Debug, Default)]
struct Samples {
    /// (when, store revision then), oldest first; at most one older than the retention.
    seen: VecDeque<(Instant, i64)>,
}

impl Samples {
    /// Records `revision` at `now`; answers the revision to compact through, if the newest
    /// sample at least `retention` old is one, and drops what is older than it.
    fn observe(&mut self, now: Instant, revision: i64, retention: Duration) -> Option<i64> {
        debug_assert!(self
            .seen
            .back()
            .is_none_or(|(t, r)| *t <= now && *r <= revision));
        self.seen.push_back((now, revision));
        let old_enough = |t: &Instant| now.saturating_duration_since(*t) >= retention;
        let newest_old = self.seen.iter().rposition(|(t, _)| old_enough(t))?;
        self.seen.drain(..newest_old);
        self.seen.front().map(|(_, r)| *r)
    }
}

/// Runs until `stopping`: every look, if this member leads, decides and proposes a compaction.
pub(crate) async fn run(
    services: Services,
    member_id: u64,
    policy: AutoCompaction,
    mut stopping: watch::Receiver<bool>,
) {
    let every = match policy {
        AutoCompaction::Periodic(retention) => (retention / 10).max(LOOK_EVERY_MIN),
        AutoCompaction::Revision { every, .. } => every.max(LOOK_EVERY_MIN),
    };
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut samples = Samples::default();
    // The highest revision this member compacted through while leading: never asked again.
    let mut compacted = 0i64;
    loop {
        tokio::select! {
            _ = stopping.wait_for(|s| *s) => return,
            _ = ticker.tick() => {}
        }
        let Ok(status) = services.core_status().await else {
            continue;
        };
        if status.leader != member_id {
            samples = Samples::default();
            continue;
        }
        let target = match policy {
            AutoCompaction::Periodic(retention) => {
                samples.observe(Instant::now(), status.revision, retention)
            }
            AutoCompaction::Revision { keep, .. } => Some(
                status
                    .revision
                    .saturating_sub(i64::try_from(keep).unwrap_or(i64::MAX)),
            ),
        };
        let Some(target) = target.filter(|t| *t > compacted && *t > 0) else {
            continue;
        };
        let compact = KvCommand::Compact(CompactRequest { revision: target });
        match services.write(&compact).await {
            Ok(_) => {
                compacted = target;
                tracing::info!(revision = target, "auto-compaction: compacted the history");
            }
            Err(status) if status.message().contains("compacted") => compacted = target,
            Err(status) if status.message() == NodeError::Stopped.to_string() => return,
            Err(status) => {
                tracing::warn!(revision = target, error = %status.message(), "auto-compaction failed; will try again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_compacts_through_the_newest_revision_at_least_the_retention_old() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let retention = Duration::from_millis(1000);
        let mut s = Samples::default();
        assert_eq!(
            s.observe(at(0), 5, retention),
            None,
            "nothing old enough yet"
        );
        assert_eq!(s.observe(at(500), 9, retention), None);
        assert_eq!(s.observe(at(999), 12, retention), None);
        assert_eq!(
            s.observe(at(1000), 20, retention),
            Some(5),
            "seen a retention ago"
        );
        assert_eq!(s.observe(at(1600), 30, retention), Some(9));
        assert_eq!(
            s.observe(at(1700), 30, retention),
            Some(9),
            "no newer old sample"
        );
        assert_eq!(s.observe(at(5000), 31, retention), Some(30));
        assert!(
            s.seen.len() <= 3,
            "only what may still be needed is kept: {:?}",
            s.seen
        );
    }
}
