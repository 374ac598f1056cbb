//! The checks run on a recorded history and on the members' state after healing.
//!
//! Every function here is pure (history and dumps in, violations out) so that each can be
//! shown catching a planted violation in a unit test without a cluster.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use lincheck::kv::{KvInput, KvModel, KvOperation, KvOutput};
use lincheck::{CheckOptions, Verdict};

use crate::history::{Op, Outcome, Record};

/// Key prefix of the write-once "ledger" keys: each is put once by one client and never
/// touched again, so after healing an acknowledged one must be present with exactly the
/// revision its put was acknowledged at.
pub const LEDGER_PREFIX: &str = "ack/";

/// One key as a member holds it after healing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyState {
    pub key: String,
    pub value: String,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
}

/// One member's whole key space, read with a serializable Range at `revision`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dump {
    pub member: usize,
    pub revision: i64,
    pub keys: Vec<KeyState>,
}

impl Dump {
    /// FNV-1a over every field of every key in order: equal dumps hash equal.
    pub fn hash(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |bytes: &[u8]| {
            for b in bytes.iter().chain(std::iter::once(&0xffu8)) {
                h ^= u64::from(*b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for k in &self.keys {
            eat(k.key.as_bytes());
            eat(k.value.as_bytes());
            eat(&k.create_revision.to_le_bytes());
            eat(&k.mod_revision.to_le_bytes());
            eat(&k.version.to_le_bytes());
        }
        h
    }
}

/// Violations found, by check name. Every list must be empty for a run to pass.
#[derive(Clone, Debug, Default)]
pub struct Violations {
    pub by_check: BTreeMap<&'static str, Vec<String>>,
}

/// The check names, in the order they are reported (each is printed even at zero).
pub const CHECKS: [&str; 8] = [
    "linearizability",
    "txn-atomicity",
    "checker-unknown",
    "revision-order",
    "serializable-read-validity",
    "state-hash",
    "acknowledged-write-lost",
    "liveness",
];

impl Violations {
    pub fn add(&mut self, check: &'static str, what: String) {
        debug_assert!(CHECKS.contains(&check), "unknown check {check}");
        self.by_check.entry(check).or_default().push(what);
    }

    pub fn count(&self, check: &str) -> usize {
        self.by_check.get(check).map_or(0, Vec::len)
    }

    pub fn total(&self) -> usize {
        self.by_check.values().map(Vec::len).sum()
    }

    pub fn merge(&mut self, other: Violations) {
        for (check, list) in other.by_check {
            self.by_check.entry(check).or_default().extend(list);
        }
    }
}

/// What the linearizability check covered.
#[derive(Clone, Debug, Default)]
pub struct LinReport {
    /// Operations handed to lincheck (multi-key txns count once per key).
    pub checked_ops: usize,
    pub partitions: usize,
    /// Serializable reads: not linearizable by design, checked by the validity check only.
    pub serializable_reads: usize,
    pub verdict: Option<Verdict>,
}

/// Projects the history onto lincheck's per-key register model.
///
/// A multi-key txn becomes one operation per key with the txn's own interval. This is sound
/// (if the txn is linearizable at an instant, so is each projection at that instant) but
/// weaker: it does not check that the keys changed together. Serializable reads are left
/// out (they may legitimately be stale).
pub fn to_lincheck(records: &[Record]) -> (Vec<KvOperation>, usize) {
    let mut ops = Vec::with_capacity(records.len());
    let mut serializable = 0;
    for r in records {
        let (complete, outcome) = match (r.complete, &r.outcome) {
            (Some(c), Some(o)) => (Some(c), Some(o)),
            _ => (None, None),
        };
        let mut push = |input: KvInput, output: Option<KvOutput>| {
            let complete = output.as_ref().and(complete);
            ops.push(KvOperation {
                client: r.client,
                input,
                invoke: r.invoke,
                complete,
                output,
            });
        };
        match (&r.op, outcome) {
            (
                Op::Get {
                    serializable: true, ..
                },
                _,
            ) => serializable += 1,
            (Op::Get { key, .. }, o) => {
                let out = match o {
                    Some(Outcome::Get { value, .. }) => Some(KvOutput::Get {
                        value: value.clone(),
                    }),
                    _ => None,
                };
                push(KvInput::Get { key: key.clone() }, out);
            }
            (Op::Put { key, value }, o) => push(
                KvInput::Put {
                    key: key.clone(),
                    value: value.clone(),
                },
                o.map(|_| KvOutput::Put),
            ),
            (Op::Delete { key }, o) => {
                let out = match o {
                    Some(Outcome::Delete { deleted }) => Some(KvOutput::Delete {
                        existed: *deleted > 0,
                    }),
                    _ => None,
                };
                push(KvInput::Delete { key: key.clone() }, out);
            }
            (Op::Cas { key, expected, new }, o) => {
                let out = match o {
                    Some(Outcome::Cas { succeeded }) => Some(KvOutput::Cas { ok: *succeeded }),
                    _ => None,
                };
                push(
                    KvInput::Cas {
                        key: key.clone(),
                        expected: expected.clone(),
                        new: new.clone(),
                    },
                    out,
                );
            }
            (Op::MultiPut { puts }, o) => {
                for (key, value) in puts {
                    push(
                        KvInput::Put {
                            key: key.clone(),
                            value: value.clone(),
                        },
                        o.map(|_| KvOutput::Put),
                    );
                }
            }
            (Op::MultiGet { keys }, o) => {
                for (i, key) in keys.iter().enumerate() {
                    let out = match o {
                        Some(Outcome::MultiGet { values }) => Some(KvOutput::Get {
                            value: values.get(i).cloned().flatten(),
                        }),
                        _ => None,
                    };
                    push(KvInput::Get { key: key.clone() }, out);
                }
            }
        }
    }
    (ops, serializable)
}

/// Runs lincheck on the projected history.
pub fn check_linearizable(records: &[Record], max_states: u64) -> (LinReport, Violations) {
    let (ops, serializable_reads) = to_lincheck(records);
    let result = lincheck::check(
        &KvModel,
        &ops,
        &CheckOptions {
            max_states_per_partition: max_states,
            ..CheckOptions::default()
        },
    );
    let mut v = Violations::default();
    for p in &result.partitions {
        let what = format!(
            "key {:?}: {}",
            p.key,
            p.explanation.as_deref().unwrap_or("")
        );
        match p.verdict {
            Verdict::Ok => {}
            Verdict::Illegal => v.add("linearizability", what),
            Verdict::Unknown => v.add("checker-unknown", what),
        }
    }
    let report = LinReport {
        checked_ops: ops.len(),
        partitions: result.partitions.len(),
        serializable_reads,
        verdict: Some(result.verdict),
    };
    (report, v)
}

/// Revisions never go backwards:
/// - across the cluster, in real-time order, for every answered operation except serializable
///   reads: an operation invoked after another completed sees a revision at least as high;
/// - on one member incarnation, for serializable reads: the member's applied revision does not
///   decrease while its process lives.
pub fn check_revisions(records: &[Record]) -> Violations {
    let mut v = Violations::default();
    let mut global = Vec::new();
    let mut per_member: HashMap<(usize, u64), Vec<&Record>> = HashMap::new();
    for r in records {
        if r.complete.is_none() || r.revision.is_none() {
            continue;
        }
        match &r.op {
            Op::Get {
                serializable: true, ..
            } => {
                if let Some(inc) = r.incarnation {
                    per_member.entry((r.member, inc)).or_default().push(r);
                }
            }
            _ => global.push(r),
        }
    }
    sweep(&global, "cluster-wide", &mut v);
    let mut groups: Vec<_> = per_member.into_iter().collect();
    groups.sort_by_key(|(k, _)| *k);
    for ((member, inc), ops) in groups {
        sweep(
            &ops,
            &format!("member n{} incarnation {inc}", member + 1),
            &mut v,
        );
    }
    v
}

/// For each op, the highest revision among ops that completed strictly before it was invoked
/// must not exceed its own.
fn sweep(ops: &[&Record], scope: &str, v: &mut Violations) {
    let mut by_complete: Vec<&Record> = ops.to_vec();
    by_complete.sort_by_key(|r| r.complete);
    let mut by_invoke: Vec<&Record> = ops.to_vec();
    by_invoke.sort_by_key(|r| r.invoke);
    let mut i = 0;
    let mut max: Option<&Record> = None;
    for b in by_invoke {
        while i < by_complete.len() && by_complete[i].complete < Some(b.invoke) {
            let a = by_complete[i];
            if max.is_none_or(|m| a.revision > m.revision) {
                max = Some(a);
            }
            i += 1;
        }
        if let Some(a) = max {
            if b.revision < a.revision {
                v.add(
                    "revision-order",
                    format!(
                        "{scope}: {:?} by client {} invoked at {} saw revision {:?}, below {:?} \
                         seen by {:?} of client {} completed at {:?}",
                        b.op,
                        b.client,
                        b.invoke,
                        b.revision,
                        a.revision,
                        a.op,
                        a.client,
                        a.complete
                    ),
                );
            }
        }
    }
}

/// A serializable read may be stale but must return a value some write to that key was
/// invoked with before the read completed (values are unique per key), or nothing.
pub fn check_serializable_reads(records: &[Record]) -> Violations {
    let mut written: HashMap<(&str, &str), u64> = HashMap::new();
    for r in records {
        let pairs: Vec<(&str, &str)> = match &r.op {
            Op::Put { key, value } => vec![(key, value)],
            Op::Cas { key, new, .. } => vec![(key, new)],
            Op::MultiPut { puts } => puts.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            _ => vec![],
        };
        for (k, val) in pairs {
            let e = written.entry((k, val)).or_insert(r.invoke);
            *e = (*e).min(r.invoke);
        }
    }
    let mut v = Violations::default();
    for r in records {
        let (
            Op::Get {
                key,
                serializable: true,
            },
            Some(Outcome::Get {
                value: Some(value), ..
            }),
            Some(complete),
        ) = (&r.op, &r.outcome, r.complete)
        else {
            continue;
        };
        match written.get(&(key.as_str(), value.as_str())) {
            Some(invoked) if *invoked <= complete => {}
            _ => v.add(
                "serializable-read-validity",
                format!(
                    "client {} read {key:?} = {value:?} from n{} at {complete}, a value no write \
                     had been invoked with",
                    r.client,
                    r.member + 1
                ),
            ),
        }
    }
    v
}

/// Multi-key txns are atomic, as far as a read of two keys can show it: if a multi-get saw
/// key `a` hold the value a multi-put `P` wrote to both `a` and `b`, then `b` holds `P`'s value
/// too, unless some write that could have been linearized between `P` and the read produced
/// what the read saw of `b` (a write of that value, or a delete for nothing, invoked before
/// the read completed and not completed before `P` was invoked). Sound (never flags an atomic
/// history) but partial: the per-key projection checked by lincheck does the rest.
pub fn check_txn_atomicity(records: &[Record]) -> Violations {
    // (key, value) -> writes that produced it; (key) -> deletes. Failed CAS are included:
    // counting a write that did not happen only makes the check more lenient.
    let mut writers: HashMap<(&str, Option<&str>), Vec<&Record>> = HashMap::new();
    let mut multi_puts: HashMap<&str, &Record> = HashMap::new();
    for r in records {
        match &r.op {
            Op::Put { key, value } => writers.entry((key, Some(value))).or_default().push(r),
            Op::Cas { key, new, .. } => writers.entry((key, Some(new))).or_default().push(r),
            Op::Delete { key } => writers.entry((key, None)).or_default().push(r),
            Op::MultiPut { puts } => {
                for (k, v) in puts {
                    writers.entry((k, Some(v))).or_default().push(r);
                }
                if let Some((_, v)) = puts.first() {
                    multi_puts.insert(v, r);
                }
            }
            _ => {}
        }
    }
    let mut v = Violations::default();
    for r in records {
        let (Op::MultiGet { keys }, Some(Outcome::MultiGet { values }), Some(read_complete)) =
            (&r.op, &r.outcome, r.complete)
        else {
            continue;
        };
        for (i, seen) in values.iter().enumerate() {
            let Some(p) = seen.as_deref().and_then(|s| multi_puts.get(s)) else {
                continue;
            };
            let Op::MultiPut { puts } = &p.op else {
                continue;
            };
            let p_value = seen.as_deref();
            for (j, other) in keys.iter().enumerate() {
                if j == i || !puts.iter().any(|(k, _)| k == other) {
                    continue;
                }
                let saw = values[j].as_deref();
                if saw == p_value {
                    continue;
                }
                let explained = writers.get(&(other.as_str(), saw)).is_some_and(|ws| {
                    ws.iter().any(|w| {
                        w.invoke <= read_complete && w.complete.is_none_or(|c| c >= p.invoke)
                    })
                });
                if !explained {
                    v.add(
                        "txn-atomicity",
                        format!(
                            "client {} multi-get {keys:?} at [{}, {read_complete}] saw {:?} = \
                             {seen:?} from client {}'s multi-put {puts:?} but {other:?} = {saw:?}, \
                             which no write between them explains",
                            r.client, r.invoke, keys[i], p.client
                        ),
                    );
                }
            }
        }
    }
    v
}

/// After healing: every member holds the same keys (equal state hashes at the same revision),
/// and every acknowledged ledger put is present with the revision it was acknowledged at.
pub fn check_final_state(records: &[Record], dumps: &[Dump]) -> Violations {
    let mut v = Violations::default();
    let Some(first) = dumps.first() else {
        v.add("state-hash", "no member could be read after healing".into());
        return v;
    };
    for d in &dumps[1..] {
        if d.revision != first.revision || d.hash() != first.hash() {
            let a: BTreeSet<&KeyState> = first.keys.iter().collect();
            let b: BTreeSet<&KeyState> = d.keys.iter().collect();
            let diff: Vec<_> = a.symmetric_difference(&b).take(3).collect();
            v.add(
                "state-hash",
                format!(
                    "n{} at revision {} hash {:016x} vs n{} at revision {} hash {:016x} \
                     ({} keys vs {}; first differences {diff:?})",
                    first.member + 1,
                    first.revision,
                    first.hash(),
                    d.member + 1,
                    d.revision,
                    d.hash(),
                    first.keys.len(),
                    d.keys.len()
                ),
            );
        }
    }
    let attempted: HashMap<&str, &Record> = records
        .iter()
        .filter_map(|r| match &r.op {
            Op::Put { key, .. } if key.starts_with(LEDGER_PREFIX) => Some((key.as_str(), r)),
            _ => None,
        })
        .collect();
    for d in dumps {
        let held: HashMap<&str, &KeyState> = d
            .keys
            .iter()
            .filter(|k| k.key.starts_with(LEDGER_PREFIX))
            .map(|k| (k.key.as_str(), k))
            .collect();
        for (key, r) in &attempted {
            let Op::Put { value, .. } = &r.op else {
                continue;
            };
            match (held.get(key), r.revision) {
                (Some(k), Some(rev)) if k.value == *value && k.mod_revision == rev => {}
                (Some(k), None) if k.value == *value => {}
                (None, None) => {}
                (got, rev) => v.add(
                    "acknowledged-write-lost",
                    format!(
                        "n{}: {key:?} put {value:?} by client {} answered at revision {rev:?}, \
                         member holds {got:?}",
                        d.member + 1,
                        r.client
                    ),
                ),
            }
        }
        for key in held.keys().filter(|k| !attempted.contains_key(*k)) {
            v.add(
                "acknowledged-write-lost",
                format!("n{}: holds {key:?}, which no client wrote", d.member + 1),
            );
        }
    }
    v
}

#[cfg(test)]
mod tests {
    //! Each check shown catching a planted violation in a recorded history, and passing the
    //! same history without it.

    use super::*;

    fn rec(client: u64, op: Op, invoke: u64, done: Option<(u64, Outcome, i64)>) -> Record {
        let (complete, outcome, revision) = match done {
            Some((c, o, r)) => (Some(c), Some(o), Some(r)),
            None => (None, None, None),
        };
        Record {
            client,
            member: client as usize % 5,
            incarnation: Some(1),
            op,
            invoke,
            complete,
            outcome,
            revision,
            error: None,
        }
    }

    fn put(key: &str, value: &str) -> Op {
        Op::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    fn get(key: &str, serializable: bool) -> Op {
        Op::Get {
            key: key.into(),
            serializable,
        }
    }

    fn got(value: Option<&str>) -> Outcome {
        Outcome::Get {
            value: value.map(str::to_owned),
            mod_revision: 0,
        }
    }

    /// Put a, then put b, then a linearizable read: `stale` makes it return a.
    fn stale_read_history(stale: bool) -> Vec<Record> {
        vec![
            rec(1, put("k", "a"), 0, Some((10, Outcome::Put, 2))),
            rec(2, put("k", "b"), 20, Some((30, Outcome::Put, 3))),
            rec(
                3,
                get("k", false),
                40,
                Some((50, got(Some(if stale { "a" } else { "b" })), 3)),
            ),
        ]
    }

    #[test]
    fn a_stale_linearizable_read_is_caught() {
        let (_, v) = check_linearizable(&stale_read_history(true), 1_000_000);
        assert_eq!(v.count("linearizability"), 1, "{v:?}");
        let (report, v) = check_linearizable(&stale_read_history(false), 1_000_000);
        assert_eq!(v.total(), 0, "{v:?}");
        assert_eq!(report.verdict, Some(Verdict::Ok));
    }

    #[test]
    fn an_unknown_write_may_or_may_not_have_happened() {
        // The second put timed out: reading either value afterwards is fine.
        for seen in ["a", "b"] {
            let h = vec![
                rec(1, put("k", "a"), 0, Some((10, Outcome::Put, 2))),
                rec(2, put("k", "b"), 20, None),
                rec(3, get("k", false), 40, Some((50, got(Some(seen)), 3))),
            ];
            assert_eq!(check_linearizable(&h, 1_000_000).1.total(), 0, "{seen}");
        }
    }

    #[test]
    fn a_multi_key_txn_is_checked_per_key() {
        let h = vec![
            rec(
                1,
                Op::MultiPut {
                    puts: vec![("x".into(), "1".into()), ("y".into(), "1".into())],
                },
                0,
                Some((10, Outcome::MultiPut, 2)),
            ),
            rec(
                2,
                Op::MultiGet {
                    keys: vec!["x".into(), "y".into()],
                },
                20,
                Some((
                    30,
                    Outcome::MultiGet {
                        values: vec![Some("1".into()), None],
                    },
                    2,
                )),
            ),
        ];
        let (_, v) = check_linearizable(&h, 1_000_000);
        assert_eq!(
            v.count("linearizability"),
            1,
            "lost y must be caught: {v:?}"
        );
    }

    fn multi_put(pairs: &[(&str, &str)]) -> Op {
        Op::MultiPut {
            puts: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn multi_get(keys: &[&str], values: &[Option<&str>]) -> (Op, Outcome) {
        (
            Op::MultiGet {
                keys: keys.iter().map(|k| k.to_string()).collect(),
            },
            Outcome::MultiGet {
                values: values.iter().map(|v| v.map(str::to_owned)).collect(),
            },
        )
    }

    #[test]
    fn a_torn_multi_key_read_is_caught() {
        let (read, torn) = multi_get(&["x", "y"], &[Some("t1"), Some("old")]);
        let base = vec![
            rec(1, put("y", "old"), 0, Some((5, Outcome::Put, 2))),
            rec(
                2,
                multi_put(&[("x", "t1"), ("y", "t1")]),
                10,
                Some((20, Outcome::MultiPut, 3)),
            ),
        ];
        let mut h = base.clone();
        h.push(rec(3, read.clone(), 30, Some((40, torn.clone(), 3))));
        assert_eq!(check_txn_atomicity(&h).count("txn-atomicity"), 1);
        // Per key, each value alone could be explained only by a stale read of y, which the
        // per-key check also catches; the atomicity check names the txn.
        let (_, whole) = multi_get(&["x", "y"], &[Some("t1"), Some("t1")]);
        let mut h = base.clone();
        h.push(rec(3, read.clone(), 30, Some((40, whole, 3))));
        assert_eq!(check_txn_atomicity(&h).total(), 0);
        // A later write of y explains a different value.
        let (_, newer) = multi_get(&["x", "y"], &[Some("t1"), Some("new")]);
        let mut h = base;
        h.push(rec(4, put("y", "new"), 22, Some((25, Outcome::Put, 4))));
        h.push(rec(3, read, 30, Some((40, newer, 4))));
        assert_eq!(check_txn_atomicity(&h).total(), 0);
    }

    #[test]
    fn a_failed_cas_that_should_have_succeeded_is_caught() {
        let cas = Op::Cas {
            key: "k".into(),
            expected: Some("a".into()),
            new: "c".into(),
        };
        let h = vec![
            rec(1, put("k", "a"), 0, Some((10, Outcome::Put, 2))),
            rec(2, cas, 20, Some((30, Outcome::Cas { succeeded: false }, 2))),
        ];
        assert_eq!(
            check_linearizable(&h, 1_000_000).1.count("linearizability"),
            1
        );
    }

    #[test]
    fn serializable_reads_are_not_held_to_linearizability_but_to_validity() {
        let mut h = stale_read_history(false);
        h.push(rec(4, get("k", true), 60, Some((70, got(Some("a")), 2))));
        assert_eq!(check_linearizable(&h, 1_000_000).1.total(), 0);
        assert_eq!(check_serializable_reads(&h).total(), 0);
        h.push(rec(5, get("k", true), 60, Some((70, got(Some("zz")), 2))));
        assert_eq!(
            check_serializable_reads(&h).count("serializable-read-validity"),
            1
        );
    }

    #[test]
    fn a_revision_going_backwards_is_caught() {
        let h = vec![
            rec(1, put("k", "a"), 0, Some((10, Outcome::Put, 7))),
            rec(2, get("j", false), 20, Some((30, got(None), 6))),
        ];
        assert_eq!(check_revisions(&h).count("revision-order"), 1);
        // Concurrent operations may see revisions in either order.
        let h = vec![
            rec(1, put("k", "a"), 0, Some((10, Outcome::Put, 7))),
            rec(2, get("j", false), 5, Some((30, got(None), 6))),
        ];
        assert_eq!(check_revisions(&h).total(), 0);
        // A serializable read on one member incarnation going backwards.
        let h = vec![
            rec(0, get("k", true), 0, Some((10, got(None), 9))),
            rec(5, get("k", true), 20, Some((30, got(None), 8))),
        ];
        assert_eq!(check_revisions(&h).count("revision-order"), 1);
    }

    fn ks(key: &str, value: &str, rev: i64) -> KeyState {
        KeyState {
            key: key.into(),
            value: value.into(),
            create_revision: rev,
            mod_revision: rev,
            version: 1,
        }
    }

    #[test]
    fn diverged_members_and_lost_acknowledged_writes_are_caught() {
        let h = vec![
            rec(1, put("ack/c1-1", "c1-1"), 0, Some((10, Outcome::Put, 2))),
            rec(2, put("ack/c2-1", "c2-1"), 0, None),
        ];
        let good = Dump {
            member: 0,
            revision: 2,
            keys: vec![ks("ack/c1-1", "c1-1", 2)],
        };
        let also_good = Dump {
            member: 1,
            ..good.clone()
        };
        assert_eq!(check_final_state(&h, &[good.clone(), also_good]).total(), 0);

        let lost = Dump {
            member: 1,
            revision: 2,
            keys: vec![],
        };
        let v = check_final_state(&h, &[good.clone(), lost]);
        assert_eq!(v.count("state-hash"), 1, "{v:?}");
        assert_eq!(v.count("acknowledged-write-lost"), 1, "{v:?}");

        let wrong_revision = Dump {
            member: 2,
            revision: 3,
            keys: vec![ks("ack/c1-1", "c1-1", 3)],
        };
        let v = check_final_state(&h, &[wrong_revision]);
        assert_eq!(v.count("acknowledged-write-lost"), 1, "{v:?}");
    }
}
