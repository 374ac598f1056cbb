//! The watch workload's watchers: streams over the whole key space that time each event from
//! its put's start (the first bytes of every value) to its arrival, and count what they got.

use std::time::{Duration, Instant};

use etcd_proto::etcdserverpb::watch_client::WatchClient;
use etcd_proto::etcdserverpb::{watch_request, WatchCreateRequest, WatchRequest};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Status;

use crate::config::STAMP_BYTES;
use crate::report::OpTally;
use crate::BenchError;

/// A value for the watch workload: nanoseconds since `origin`, then padding to `size`.
pub(crate) fn stamped_value(origin: Instant, size: usize) -> Vec<u8> {
    let nanos = u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let mut v = Vec::with_capacity(size.max(STAMP_BYTES));
    v.extend_from_slice(&nanos.to_be_bytes());
    v.resize(size.max(STAMP_BYTES), b'v');
    v
}

fn stamp_of(value: &[u8]) -> Option<Duration> {
    let bytes: [u8; STAMP_BYTES] = value.get(..STAMP_BYTES)?.try_into().ok()?;
    Some(Duration::from_nanos(u64::from_be_bytes(bytes)))
}

/// The running watchers.
pub(crate) struct Watchers {
    tasks: JoinSet<OpTally>,
    /// How many events each watcher must see before it stops; set when the puts are done.
    target: watch::Sender<Option<u64>>,
    /// Keeps each stream's request side open: dropping it would end the watch.
    _requests: Vec<mpsc::Sender<WatchRequest>>,
}

impl Watchers {
    /// Opens `count` watch streams over `channels` and waits until each is created.
    pub(crate) async fn start(
        count: usize,
        channels: &[Channel],
        origin: Instant,
        timeout: Duration,
    ) -> Result<Watchers, BenchError> {
        let (target, target_rx) = watch::channel(None);
        let mut tasks = JoinSet::new();
        let mut requests = Vec::new();
        for i in 0..count {
            let (tx, rx) = mpsc::channel(1);
            let create = WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(
                    WatchCreateRequest {
                        // Every key: etcd's "from key \0" form.
                        key: vec![0],
                        range_end: vec![0],
                        ..Default::default()
                    },
                )),
            };
            tx.send(create).await.map_err(|_| BenchError::Watch {
                reason: "the watch request stream closed before it started".into(),
            })?;
            let mut client = WatchClient::new(channels[i % channels.len()].clone());
            let opened = tokio::time::timeout(timeout, client.watch(ReceiverStream::new(rx)))
                .await
                .map_err(|_| BenchError::Watch {
                    reason: format!("no watch stream within {timeout:?}"),
                })?
                .map_err(|s| BenchError::Watch {
                    reason: s.to_string(),
                })?;
            let mut stream = opened.into_inner();
            let created = tokio::time::timeout(timeout, stream.message())
                .await
                .map_err(|_| BenchError::Watch {
                    reason: format!("the watch was not created within {timeout:?}"),
                })?;
            match created {
                Ok(Some(r)) if r.created && !r.canceled => {}
                other => {
                    return Err(BenchError::Watch {
                        reason: format!("the watch was not created: {other:?}"),
                    })
                }
            }
            requests.push(tx);
            let mut target = target_rx.clone();
            tasks.spawn(async move {
                let mut tally = OpTally::default();
                let mut seen = 0u64;
                loop {
                    if let Some(want) = *target.borrow_and_update() {
                        if seen >= want {
                            return tally;
                        }
                    }
                    tokio::select! {
                        message = stream.message() => match message {
                            Ok(Some(r)) => {
                                let now = origin.elapsed();
                                for e in &r.events {
                                    seen += 1;
                                    match e.kv.as_ref().and_then(|kv| stamp_of(&kv.value)) {
                                        Some(sent) => tally
                                            .record_answer(now.saturating_sub(sent), false),
                                        None => tally.record_error(&Status::data_loss(
                                            "an event without its put's send time",
                                        )),
                                    }
                                }
                            }
                            Ok(None) => {
                                tally.record_error(&Status::aborted("the watch stream ended"));
                                return tally;
                            }
                            Err(s) => {
                                tally.record_error(&s);
                                return tally;
                            }
                        },
                        changed = target.changed() => {
                            if changed.is_err() {
                                return tally;
                            }
                        }
                    }
                }
            });
        }
        Ok(Watchers {
            tasks,
            target,
            _requests: requests,
        })
    }

    /// Waits until every watcher has seen `puts` events or `grace` has passed, and returns
    /// their tallies merged; each event a watcher missed is an error.
    pub(crate) async fn finish(mut self, puts: u64, grace: Duration) -> OpTally {
        let _ = self.target.send(Some(puts));
        let mut all = OpTally::default();
        let deadline = tokio::time::Instant::now() + grace;
        let watchers = self.tasks.len() as u64;
        let mut finished = 0u64;
        while let Ok(Some(done)) = tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
            if let Ok(tally) = done {
                all.merge(&tally);
                finished += 1;
            }
        }
        self.tasks.abort_all();
        let missing = (puts * watchers).saturating_sub(all.ok);
        let late = Status::deadline_exceeded(format!(
            "{} of {watchers} watchers saw fewer events than the {puts} answered puts within \
             {grace:?} of the last",
            watchers - finished
        ));
        all.record_errors(&late, missing);
        all
    }
}
