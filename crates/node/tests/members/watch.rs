//! etcd's Watch service on real members over loopback, through the generated gRPC client:
//! events in revision order with their versions, history from a past revision, filters,
//! cancel, compaction, progress, and a follower's watchers seeing the leader's writes.

use etcd_proto::etcdserverpb as pb;
use etcd_proto::etcdserverpb::{kv_client::KvClient, watch_client::WatchClient};
use etcd_proto::mvccpb::event::EventType;
use node::NodeConfig;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::common::{connect, free_port, start_all, three_configs};

async fn single(
    progress_every: Duration,
) -> (node::Node, tonic::transport::Channel, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::single("solo", dir.path().join("data"), free_port(), free_port());
    config.watch_progress_every = progress_every;
    let node = node::start(config).await.unwrap();
    let channel = connect(node.client_addr()).await;
    (node, channel, dir)
}

/// One watch stream: requests go in through `tx`, responses come out of `rx`.
struct Stream {
    tx: mpsc::Sender<pb::WatchRequest>,
    rx: Streaming<pb::WatchResponse>,
}

impl Stream {
    async fn open(channel: &tonic::transport::Channel) -> Stream {
        let (tx, requests) = mpsc::channel(16);
        let rx = WatchClient::new(channel.clone())
            .watch(ReceiverStream::new(requests))
            .await
            .unwrap()
            .into_inner();
        Stream { tx, rx }
    }

    async fn ask(&self, r: pb::watch_request::RequestUnion) {
        self.tx
            .send(pb::WatchRequest {
                request_union: Some(r),
            })
            .await
            .unwrap();
    }

    async fn create(&self, c: pb::WatchCreateRequest) {
        self.ask(pb::watch_request::RequestUnion::CreateRequest(c))
            .await;
    }

    async fn next(&mut self) -> pb::WatchResponse {
        tokio::time::timeout(Duration::from_secs(10), self.rx.message())
            .await
            .expect("a watch response within 10 s")
            .expect("the stream stays healthy")
            .expect("the stream stays open")
    }

    /// Nothing arrives for a while.
    async fn quiet(&mut self, wait: Duration) {
        if let Ok(m) = tokio::time::timeout(wait, self.rx.message()).await {
            panic!("expected silence, got {m:?}");
        }
    }

    /// Events of responses until `n` have come, all for watcher `id`.
    async fn events(&mut self, id: i64, n: usize) -> Vec<(EventType, String, String, i64)> {
        let mut got = Vec::new();
        while got.len() < n {
            let r = self.next().await;
            assert_eq!(r.watch_id, id, "{r:?}");
            assert!(!r.canceled && !r.created, "{r:?}");
            for e in r.events {
                let kv = e.kv.unwrap();
                got.push((
                    EventType::try_from(e.r#type).unwrap(),
                    String::from_utf8(kv.key).unwrap(),
                    String::from_utf8(kv.value).unwrap(),
                    kv.mod_revision,
                ));
            }
        }
        assert_eq!(got.len(), n, "{got:?}");
        got
    }
}

fn watch_key(key: &str) -> pb::WatchCreateRequest {
    pb::WatchCreateRequest {
        key: key.into(),
        ..Default::default()
    }
}

async fn put(kv: &mut KvClient<tonic::transport::Channel>, key: &str, value: &str) -> i64 {
    kv.put(pb::PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .header
    .unwrap()
    .revision
}

async fn delete(kv: &mut KvClient<tonic::transport::Channel>, key: &str, range_end: &str) {
    kv.delete_range(pb::DeleteRangeRequest {
        key: key.into(),
        range_end: range_end.into(),
        ..Default::default()
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_every_later_change_of_its_key_in_order() {
    let (node, channel, _dir) = single(Duration::from_secs(600)).await;
    let mut kv = KvClient::new(channel.clone());
    put(&mut kv, "k", "before").await;
    let mut s = Stream::open(&channel).await;
    s.create(watch_key("k")).await;
    let created = s.next().await;
    assert!(created.created && !created.canceled, "{created:?}");
    assert_eq!(created.header.as_ref().unwrap().revision, 2);
    let id = created.watch_id;

    let r1 = put(&mut kv, "k", "v1").await;
    put(&mut kv, "other", "x").await;
    let r2 = put(&mut kv, "k", "v2").await;
    delete(&mut kv, "k", "").await;
    let got = s.events(id, 3).await;
    assert_eq!(
        got,
        [
            (EventType::Put, "k".into(), "v1".into(), r1),
            (EventType::Put, "k".into(), "v2".into(), r2),
            (EventType::Delete, "k".into(), "".into(), r2 + 1),
        ]
    );
    s.quiet(Duration::from_millis(300)).await;
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_filters_prev_kv_cancel_compaction_and_progress() {
    let (node, channel, _dir) = single(Duration::from_millis(300)).await;
    let mut kv = KvClient::new(channel.clone());
    let first = put(&mut kv, "p/a", "1").await; // 2
    put(&mut kv, "p/b", "1").await; // 3
    put(&mut kv, "p/a", "2").await; // 4
    delete(&mut kv, "p/b", "").await; // 5
    let mut s = Stream::open(&channel).await;

    // From a past revision, a prefix, with the previous versions.
    s.create(pb::WatchCreateRequest {
        key: "p/".into(),
        range_end: "p0".into(),
        start_revision: first,
        prev_kv: true,
        watch_id: 7,
        ..Default::default()
    })
    .await;
    let created = s.next().await;
    assert_eq!((created.watch_id, created.created), (7, true));
    let mut history = Vec::new();
    while history.len() < 4 {
        let r = s.next().await;
        assert_eq!(r.watch_id, 7);
        history.extend(r.events);
    }
    let kinds: Vec<(i32, i64)> = history
        .iter()
        .map(|e| (e.r#type, e.kv.as_ref().unwrap().mod_revision))
        .collect();
    let (put_t, del_t) = (EventType::Put as i32, EventType::Delete as i32);
    assert_eq!(kinds, [(put_t, 2), (put_t, 3), (put_t, 4), (del_t, 5)]);
    let prev = history[2]
        .prev_kv
        .as_ref()
        .expect("prev_kv of the second put");
    assert_eq!((prev.value.as_slice(), prev.mod_revision), (&b"1"[..], 2));
    assert_eq!(history[3].prev_kv.as_ref().unwrap().key, b"p/b");

    // A second watcher on the same stream, deletes only; the same id again is refused.
    s.create(pb::WatchCreateRequest {
        key: "p/".into(),
        range_end: "p0".into(),
        filters: vec![pb::watch_create_request::FilterType::Noput as i32],
        ..Default::default()
    })
    .await;
    let deletes_only = s.next().await;
    assert!(deletes_only.created && !deletes_only.canceled);
    let deletes_id = deletes_only.watch_id;
    assert_ne!(deletes_id, 7);
    s.create(pb::WatchCreateRequest {
        watch_id: 7,
        ..watch_key("x")
    })
    .await;
    let dup = s.next().await;
    assert!(dup.created && dup.canceled, "{dup:?}");
    assert!(dup.cancel_reason.contains("duplicate watch ID"), "{dup:?}");

    // Cancel the first; then only the deletes-only watcher hears a put and a delete.
    s.ask(pb::watch_request::RequestUnion::CancelRequest(
        pb::WatchCancelRequest { watch_id: 7 },
    ))
    .await;
    let canceled = s.next().await;
    assert_eq!((canceled.watch_id, canceled.canceled), (7, true));
    put(&mut kv, "p/c", "1").await; // 6
    delete(&mut kv, "p/c", "").await; // 7
    let got = s.events(deletes_id, 1).await;
    assert_eq!(got, [(EventType::Delete, "p/c".into(), "".into(), 7)]);

    // A progress request answers with the revision, for no watcher in particular.
    s.ask(pb::watch_request::RequestUnion::ProgressRequest(
        pb::WatchProgressRequest {},
    ))
    .await;
    let progress = s.next().await;
    assert_eq!(progress.watch_id, -1);
    assert_eq!(progress.header.unwrap().revision, 7);
    assert!(progress.events.is_empty());

    // Behind a compaction: told the compaction revision, and cancelled.
    kv.compact(pb::CompactionRequest {
        revision: 6,
        ..Default::default()
    })
    .await
    .unwrap();
    s.create(pb::WatchCreateRequest {
        start_revision: 3,
        ..watch_key("p/a")
    })
    .await;
    let created = s.next().await;
    assert!(created.created);
    let compacted = s.next().await;
    assert_eq!(compacted.watch_id, created.watch_id);
    assert!(compacted.canceled);
    assert_eq!(compacted.compact_revision, 6);

    // progress_notify: an idle, caught-up watcher hears the revision every interval.
    s.create(pb::WatchCreateRequest {
        progress_notify: true,
        ..watch_key("quiet")
    })
    .await;
    let created = s.next().await;
    let notified = s.next().await;
    assert_eq!(notified.watch_id, created.watch_id);
    assert!(notified.events.is_empty() && !notified.canceled);
    assert_eq!(notified.header.unwrap().revision, 7);

    // A member stops promptly with a watch stream open, and the stream ends.
    tokio::time::timeout(Duration::from_secs(10), node.shutdown())
        .await
        .expect("shutdown does not wait for watch streams")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followers_watcher_sees_writes_made_through_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = start_all(&three_configs(dir.path())).await;
    // Every member's watcher hears every write, whichever member takes it.
    let mut streams = Vec::new();
    for n in &nodes {
        let channel = connect(n.client_addr()).await;
        let mut s = Stream::open(&channel).await;
        s.create(pb::WatchCreateRequest {
            key: "w/".into(),
            range_end: "w0".into(),
            ..Default::default()
        })
        .await;
        let created = s.next().await;
        assert!(created.created);
        streams.push((s, created.watch_id));
    }
    for (i, n) in nodes.iter().enumerate() {
        let mut kv = KvClient::new(connect(n.client_addr()).await);
        put(&mut kv, &format!("w/{i}"), "x").await;
    }
    for (s, id) in &mut streams {
        let got = s.events(*id, 3).await;
        let keys: Vec<&str> = got.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(keys, ["w/0", "w/1", "w/2"]);
        assert!(got.windows(2).all(|p| p[0].3 < p[1].3), "{got:?}");
    }
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_watch_requests_are_refused_one_by_one_and_the_stream_goes_on() {
    let (node, channel, _dir) = single(Duration::from_secs(600)).await;
    let mut s = Stream::open(&channel).await;
    s.create(watch_key("")).await;
    let empty = s.next().await;
    assert!(empty.created && empty.canceled, "{empty:?}");
    assert_eq!(empty.cancel_reason, "etcdserver: key is not provided");

    // A stream holds a bounded number of watchers; the one past the bound is refused.
    let max = node::watch::WATCHERS_PER_STREAM_MAX;
    for _ in 0..max {
        s.create(watch_key("k")).await;
        let r = s.next().await;
        assert!(r.created && !r.canceled, "{r:?}");
    }
    s.create(watch_key("k")).await;
    let over = s.next().await;
    assert!(over.created && over.canceled, "{over:?}");
    assert!(
        over.cancel_reason.contains("at most 1024 watchers"),
        "{over:?}"
    );

    // The stream still serves its watchers: one put, one event for each.
    let mut kv = KvClient::new(channel.clone());
    put(&mut kv, "k", "v").await;
    let mut events = 0;
    while events < max {
        events += s.next().await.events.len();
    }
    assert_eq!(events, max);
    node.shutdown().await.unwrap();
}

/// One event as compared: kind, key, value, mod revision, previous value.
type Seen = (EventType, String, String, i64, Option<String>);

fn seen(e: etcd_proto::mvccpb::Event) -> Seen {
    let kv = e.kv.unwrap();
    (
        EventType::try_from(e.r#type).unwrap(),
        String::from_utf8(kv.key).unwrap(),
        String::from_utf8(kv.value).unwrap(),
        kv.mod_revision,
        e.prev_kv.map(|p| String::from_utf8(p.value).unwrap()),
    )
}

/// Many watchers on one stream, in step with the member's applied batches or not (a past
/// start, a watcher created mid-load, a client that stops reading for a while so the stream
/// falls behind the shared queue), under concurrent writers: each sees exactly the changes of
/// its range after its start, in order, each once, as a single watcher reading the whole
/// history from revision 1 says they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watchers_in_and_out_of_step_see_each_change_once_in_order() {
    let (node, channel, _dir) = single(Duration::from_secs(600)).await;
    let mut kv = KvClient::new(channel.clone());
    put(&mut kv, "a0", "seed").await;
    // (key, range_end, start revision, prev_kv, no_delete)
    let specs: Vec<(&str, &str, i64, bool, bool)> = vec![
        ("a", "c", 0, false, false),
        ("a", "c", 1, true, false),
        ("c", "e", 0, true, true),
        ("d3", "", 0, false, false),
        ("e", "\0", 0, true, false),
        ("\0", "\0", 0, false, false),
        ("\0", "\0", 1, true, false),
        ("b", "f", 0, false, true),
    ];
    let mut s = Stream::open(&channel).await;
    for (key, end, start, prev_kv, no_delete) in &specs {
        s.create(pb::WatchCreateRequest {
            key: key.as_bytes().to_vec(),
            range_end: end.as_bytes().to_vec(),
            start_revision: *start,
            prev_kv: *prev_kv,
            filters: if *no_delete {
                vec![pb::watch_create_request::FilterType::Nodelete as i32]
            } else {
                Vec::new()
            },
            ..Default::default()
        })
        .await;
    }
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let mut kv = KvClient::new(channel.clone());
            tokio::spawn(async move {
                for i in 0..150 {
                    let key = format!("{}{}", ["a", "b", "c", "d", "e"][(i + w) % 5], i % 7);
                    if i % 9 == 4 {
                        delete(&mut kv, &key, "").await;
                    } else {
                        // Large enough that the stream's sends block while its client does
                        // not read.
                        put(&mut kv, &key, &format!("w{w}.{i}.{}", "x".repeat(2000))).await;
                    }
                }
            })
        })
        .collect();
    // Midway: a watcher that joins from a past revision, then a client that reads nothing
    // for a while, so the stream's queue fills and the shared batches pass it by.
    tokio::time::sleep(Duration::from_millis(30)).await;
    s.create(pb::WatchCreateRequest {
        key: b"\0".to_vec(),
        range_end: b"\0".to_vec(),
        start_revision: 2,
        ..Default::default()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    for w in writers {
        w.await.unwrap();
    }
    let last = put(&mut kv, "z", "end").await;

    // The whole history, read by one watcher from revision 1 on a stream of its own.
    let mut h = Stream::open(&channel).await;
    h.create(pb::WatchCreateRequest {
        key: b"\0".to_vec(),
        range_end: b"\0".to_vec(),
        start_revision: 1,
        prev_kv: true,
        ..Default::default()
    })
    .await;
    assert!(h.next().await.created);
    let mut history: Vec<Seen> = Vec::new();
    while history.last().map(|e| e.3) != Some(last) {
        history.extend(h.next().await.events.into_iter().map(seen));
    }
    let late_spec = ("\0", "\0", 2, false, false);
    let want = |i: usize, from: i64| -> Vec<Seen> {
        let (key, end, _, prev_kv, no_delete) = specs.get(i).copied().unwrap_or(late_spec);
        let in_range = |k: &str| match end {
            "" => k == key,
            "\0" => k >= key,
            end => k >= key && k < end,
        };
        history
            .iter()
            .filter(|e| e.3 > from && in_range(&e.1))
            .filter(|e| !(no_delete && e.0 == EventType::Delete))
            .map(|e| {
                let prev = if prev_kv { e.4.clone() } else { None };
                (e.0, e.1.clone(), e.2.clone(), e.3, prev)
            })
            .collect()
    };

    // Read what the stream sends until each watcher has as many events as it should. The
    // creations are answered in the order they were asked, each with the revision a watcher
    // without a start revision starts after.
    let mut watchers: Vec<(i64, i64, Vec<Seen>)> = Vec::new();
    let mut got: std::collections::BTreeMap<i64, Vec<Seen>> = Default::default();
    let done = |watchers: &Vec<(i64, i64, Vec<Seen>)>,
                got: &std::collections::BTreeMap<i64, Vec<Seen>>| {
        watchers.len() == specs.len() + 1
            && watchers
                .iter()
                .all(|(id, _, want)| got.get(id).map_or(0, Vec::len) >= want.len())
    };
    while !done(&watchers, &got) {
        let r = s.next().await;
        if r.created {
            let start = specs.get(watchers.len()).copied().unwrap_or(late_spec).2;
            let from = if start > 0 {
                start - 1
            } else {
                r.header.unwrap().revision
            };
            watchers.push((r.watch_id, from, want(watchers.len(), from)));
            continue;
        }
        assert!(!r.canceled, "{r:?}");
        let events: Vec<Seen> = r.events.into_iter().map(seen).collect();
        let revisions: Vec<i64> = events.iter().map(|e| e.3).collect();
        assert!(revisions.windows(2).all(|p| p[0] <= p[1]), "{revisions:?}");
        got.entry(r.watch_id).or_default().extend(events);
    }
    for (i, (id, from, want)) in watchers.iter().enumerate() {
        assert!(!want.is_empty(), "watcher {i} has something to see");
        assert_eq!(got.get(id), Some(want), "watcher {i} (after {from})");
    }
    // And nothing more: no change is sent twice.
    s.quiet(Duration::from_millis(300)).await;
    node.shutdown().await.unwrap();
}
