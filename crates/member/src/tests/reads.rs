//! Reads answered on a view of the applied state (`Answer::ReadOnView`): the driver serves them
//! off the member's core, later, and must get what the member would have answered at once.

use super::*;

/// The value a served read gives, from a `ViewRead` the member handed out.
fn served_value(read: &crate::ViewRead) -> Option<String> {
    value_of(Some(Answer::Read(read.serve())))
}

fn on_view(answer: Option<Answer>) -> crate::ViewRead {
    match answer {
        Some(Answer::ReadOnView(read)) => read,
        other => panic!("not a read on a view: {other:?}"),
    }
}

#[test]
fn a_read_on_a_view_answers_the_state_when_the_member_decided_not_when_served() {
    let mut c = Cluster::new(3, 7);
    let leader = c.elect();
    let follower = (1..=3).find(|m| *m != leader).expect("a follower");
    let mut held = Vec::new();
    for round in 0..4 {
        let value = format!("v{round}");
        let w = c.request(leader, put("k", &value));
        assert!(c.tick_until(SEC, |c| c.answered(w)));
        assert_put_ok(c.answer(w));
        // Each read is decided after the write applied at the member asked (a linearizable
        // read waits for it; a serializable one at the leader, which applied it to answer).
        for (at, linearizable) in [(leader, false), (leader, true), (follower, true)] {
            let r = c.request(at, get("k", linearizable));
            assert!(c.tick_until(SEC, |c| c.answered(r)));
            let read = on_view(c.answer_unserved(r));
            assert_eq!(served_value(&read).as_deref(), Some(value.as_str()));
            held.push((read, value.clone()));
        }
    }
    // Served long after, with the store four writes further on: each still answers the value
    // of its own moment, so no view was reused past a slot applied after it.
    for (read, value) in &held {
        assert_eq!(served_value(read).as_deref(), Some(value.as_str()));
    }
    let revisions: Vec<i64> = held.iter().map(|(r, _)| r.view.revision()).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] <= w[1]),
        "views went back: {revisions:?}"
    );
}

#[test]
fn watch_reads_are_served_by_the_member_itself() {
    let mut c = Cluster::new(1, 3);
    let leader = c.elect();
    let w = c.request(leader, put("k", "v"));
    assert!(c.tick_until(SEC, |c| c.answered(w)));
    assert_put_ok(c.answer(w));
    let watch = Request::Read {
        read: KvRead::Watch(kv::WatchRead::everything(0, 100, 1 << 20)),
        linearizable: false,
    };
    let r = c.request(leader, watch);
    assert!(c.tick_until(SEC, |c| c.answered(r)));
    match c.answer_unserved(r) {
        Some(Answer::Read(Ok((Ok(KvReadResponse::Watch(w)), _)))) => {
            assert_eq!(w.events.len(), 1, "{w:?}");
        }
        other => panic!("not a served watch read: {other:?}"),
    }
}
