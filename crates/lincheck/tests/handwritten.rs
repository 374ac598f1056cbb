//! Small histories whose verdict can be worked out by hand.

mod common;

use common::{cas, delete, get, put, timed_out};
use lincheck::kv::{KvInput, KvModel, KvOperation};
use lincheck::{check, validate, CheckOptions, CheckResult, HistoryError, Verdict};

fn run(history: &[KvOperation]) -> CheckResult {
    check(&KvModel, history, &CheckOptions::default())
}

fn assert_verdict(history: &[KvOperation], expected: Verdict) -> CheckResult {
    let result = run(history);
    assert_eq!(result.verdict, expected, "{result}");
    result
}

#[test]
fn empty_history_is_ok() {
    let result = assert_verdict(&[], Verdict::Ok);
    assert!(result.partitions.is_empty());
}

#[test]
fn sequential_history_is_ok() {
    assert_verdict(
        &[
            get(1, "x", None, 0, 1),
            put(1, "x", "1", 2, 3),
            get(2, "x", Some("1"), 4, 5),
            cas(2, "x", Some("1"), "2", true, 6, 7),
            cas(1, "x", Some("1"), "3", false, 8, 9),
            delete(1, "x", true, 10, 11),
            delete(2, "x", false, 12, 13),
            cas(2, "x", None, "4", true, 14, 15),
            get(1, "x", Some("4"), 16, 17),
        ],
        Verdict::Ok,
    );
}

#[test]
fn concurrent_read_may_see_old_or_new_value() {
    for seen in [None, Some("1")] {
        assert_verdict(
            &[put(1, "x", "1", 0, 10), get(2, "x", seen, 5, 15)],
            Verdict::Ok,
        );
    }
}

#[test]
fn concurrent_writes_may_land_in_either_order() {
    // Reads started after both writes agree on whichever landed last.
    for last in ["1", "2"] {
        assert_verdict(
            &[
                put(1, "x", "1", 0, 10),
                put(2, "x", "2", 0, 10),
                get(3, "x", Some(last), 11, 12),
                get(1, "x", Some(last), 13, 14),
            ],
            Verdict::Ok,
        );
    }
}

#[test]
fn stale_read_after_completed_write_is_illegal() {
    let result = assert_verdict(
        &[
            put(1, "x", "0", 0, 1),
            put(1, "x", "1", 2, 3),
            get(2, "x", Some("0"), 4, 5),
        ],
        Verdict::Illegal,
    );
    let explanation = result.partitions[0]
        .explanation
        .as_deref()
        .expect("illegal partitions are explained");
    assert!(
        explanation.contains("Longest linearizable prefix: 2"),
        "{explanation}"
    );
    assert!(explanation.contains("#2 client 2"), "{explanation}");
}

#[test]
fn read_of_value_never_written_is_illegal() {
    assert_verdict(
        &[put(1, "x", "1", 0, 10), get(2, "x", Some("7"), 5, 15)],
        Verdict::Illegal,
    );
}

#[test]
fn cas_reporting_success_on_mismatch_is_illegal() {
    assert_verdict(
        &[
            put(1, "x", "1", 0, 1),
            cas(2, "x", Some("0"), "2", true, 2, 3),
        ],
        Verdict::Illegal,
    );
}

#[test]
fn cas_reporting_failure_on_match_is_illegal() {
    assert_verdict(
        &[
            put(1, "x", "1", 0, 1),
            cas(2, "x", Some("1"), "2", false, 2, 3),
        ],
        Verdict::Illegal,
    );
}

#[test]
fn two_concurrent_cas_from_same_expectation_cannot_both_succeed() {
    let both = [
        cas(1, "x", None, "a", true, 0, 10),
        cas(2, "x", None, "b", true, 0, 10),
    ];
    assert_verdict(&both, Verdict::Illegal);
    let one = [
        cas(1, "x", None, "a", true, 0, 10),
        cas(2, "x", None, "b", false, 0, 10),
    ];
    assert_verdict(&one, Verdict::Ok);
}

#[test]
fn cas_success_not_visible_to_later_read_is_illegal() {
    assert_verdict(
        &[cas(1, "x", None, "a", true, 0, 1), get(2, "x", None, 2, 3)],
        Verdict::Illegal,
    );
}

#[test]
fn unknown_write_explains_later_read() {
    assert_verdict(
        &[
            put(1, "x", "1", 0, 1),
            timed_out(put(2, "x", "2", 2, 3)),
            get(3, "x", Some("1"), 10, 11),
            // Only the timed-out write can explain this, and it may land
            // long after its client gave up.
            get(3, "x", Some("2"), 20, 21),
            get(1, "x", Some("2"), 30, 31),
        ],
        Verdict::Ok,
    );
}

#[test]
fn unknown_write_invoked_after_read_cannot_explain_it() {
    let result = assert_verdict(
        &[
            put(1, "x", "1", 0, 1),
            get(3, "x", Some("2"), 10, 11),
            timed_out(put(2, "x", "2", 12, 13)),
        ],
        Verdict::Illegal,
    );
    assert_eq!(result.partitions[0].operations, 3);
}

#[test]
fn unknown_write_cannot_take_effect_twice() {
    // 1 -> 2 -> 1 -> 2 would need the timed-out write to land twice.
    assert_verdict(
        &[
            put(1, "x", "1", 0, 1),
            timed_out(put(2, "x", "2", 2, 3)),
            get(3, "x", Some("2"), 10, 11),
            put(1, "x", "1", 12, 13),
            get(3, "x", Some("2"), 14, 15),
        ],
        Verdict::Illegal,
    );
}

#[test]
fn unknown_write_never_observed_is_ok() {
    assert_verdict(
        &[
            put(1, "x", "1", 0, 1),
            timed_out(put(2, "x", "2", 2, 3)),
            get(3, "x", Some("1"), 10, 11),
            get(3, "x", Some("1"), 20, 21),
        ],
        Verdict::Ok,
    );
}

#[test]
fn unknown_cas_and_delete_are_handled() {
    assert_verdict(
        &[
            put(1, "x", "1", 0, 1),
            timed_out(cas(2, "x", Some("1"), "2", true, 2, 3)),
            timed_out(delete(4, "x", true, 2, 3)),
            get(3, "x", Some("2"), 10, 11),
            get(3, "x", None, 12, 13),
        ],
        Verdict::Ok,
    );
}

#[test]
fn unknown_reads_are_dropped_before_search() {
    let result = assert_verdict(
        &[
            put(1, "x", "1", 0, 1),
            timed_out(get(2, "x", Some("zzz"), 2, 3)),
            get(3, "x", Some("1"), 4, 5),
        ],
        Verdict::Ok,
    );
    assert_eq!(result.partitions[0].operations, 2);
    assert_eq!(result.partitions[0].dropped_unknown_reads, 1);
}

#[test]
fn clients_observing_two_writes_in_opposite_orders_is_illegal() {
    assert_verdict(
        &[
            put(1, "x", "1", 0, 100),
            put(2, "x", "2", 0, 100),
            get(3, "x", Some("1"), 10, 20),
            get(3, "x", Some("2"), 30, 40),
            get(4, "x", Some("2"), 10, 20),
            get(4, "x", Some("1"), 30, 40),
        ],
        Verdict::Illegal,
    );
}

#[test]
fn operations_touching_at_one_instant_are_concurrent() {
    // The write completes at 10 and the read starts at 10: either order is
    // admissible, so seeing the old value is not a violation.
    assert_verdict(
        &[put(1, "x", "1", 0, 10), get(2, "x", None, 10, 20)],
        Verdict::Ok,
    );
    // One tick later the write is strictly before the read.
    assert_verdict(
        &[put(1, "x", "1", 0, 10), get(2, "x", None, 11, 20)],
        Verdict::Illegal,
    );
}

#[test]
fn partitions_are_independent_and_verdicts_combine() {
    let result = assert_verdict(
        &[
            put(1, "a", "1", 0, 1),
            get(2, "a", Some("1"), 2, 3),
            put(1, "b", "1", 0, 1),
            put(1, "b", "2", 2, 3),
            get(2, "b", Some("1"), 4, 5),
        ],
        Verdict::Illegal,
    );
    let verdicts: Vec<(&str, Verdict)> = result
        .partitions
        .iter()
        .map(|p| (p.key.as_str(), p.verdict))
        .collect();
    assert_eq!(verdicts, [("a", Verdict::Ok), ("b", Verdict::Illegal)]);
    assert!(result.partitions[0].explanation.is_none());
}

/// Six concurrent writes interleaved with six concurrent reads: valid, but
/// only found after exploring more than a handful of configurations.
fn history_needing_search() -> Vec<KvOperation> {
    let mut history = Vec::new();
    for i in 0..6u64 {
        let value = i.to_string();
        history.push(put(i, "x", &value, 0, 100));
        history.push(get(10 + i, "x", Some(&value), 0, 100));
    }
    history.push(put(20, "b", "1", 0, 1));
    history
}

#[test]
fn exhausted_budget_is_unknown_never_ok() {
    let history = history_needing_search();
    let full = run(&history);
    assert_eq!(full.verdict, Verdict::Ok, "{full}");
    let needed = full.partitions[1].states_explored;
    assert!(needed > 3, "history should need search, used {needed}");

    let tiny = CheckOptions {
        max_states_per_partition: 3,
        ..CheckOptions::default()
    };
    let result = check(&KvModel, &history, &tiny);
    assert_eq!(result.verdict, Verdict::Unknown, "{result}");
    let x = &result.partitions[1];
    assert_eq!(x.key, "x");
    assert_eq!(x.verdict, Verdict::Unknown);
    assert!(x.states_explored <= 3);
    assert!(x
        .explanation
        .as_deref()
        .is_some_and(|e| e.contains("abandoned")));
    // The small partition still finished within budget.
    assert_eq!(result.partitions[0].verdict, Verdict::Ok);
}

#[test]
fn illegal_beats_unknown_in_overall_verdict() {
    let mut history = history_needing_search();
    history.extend([
        put(1, "c", "1", 0, 1),
        put(1, "c", "2", 2, 3),
        get(2, "c", Some("1"), 4, 5),
    ]);
    let tiny = CheckOptions {
        max_states_per_partition: 3,
        ..CheckOptions::default()
    };
    let result = check(&KvModel, &history, &tiny);
    assert_eq!(result.verdict, Verdict::Illegal, "{result}");
    assert!(result
        .partitions
        .iter()
        .any(|p| p.verdict == Verdict::Unknown));
}

#[test]
fn malformed_operations_make_their_partition_unknown() {
    let mut backwards = put(1, "x", "1", 10, 5);
    backwards.client = 7;
    let mut no_output = get(2, "y", None, 0, 1);
    no_output.output = None;
    let mut no_completion = get(3, "z", None, 0, 1);
    no_completion.complete = None;
    let history = [backwards, no_output, no_completion, put(1, "w", "1", 0, 1)];

    assert_eq!(
        validate(&history),
        Err(HistoryError::CompletesBeforeInvoke {
            index: 0,
            invoke: 10,
            complete: 5
        })
    );
    let result = assert_verdict(&history, Verdict::Unknown);
    assert_eq!(
        result.malformed,
        [
            HistoryError::CompletesBeforeInvoke {
                index: 0,
                invoke: 10,
                complete: 5
            },
            HistoryError::MissingOutput { index: 1 },
            HistoryError::OutputWithoutCompletion { index: 2 },
        ]
    );
    let verdicts: Vec<Verdict> = result.partitions.iter().map(|p| p.verdict).collect();
    // Partitions are sorted by key: w, x, y, z.
    assert_eq!(
        verdicts,
        [
            Verdict::Ok,
            Verdict::Unknown,
            Verdict::Unknown,
            Verdict::Unknown
        ]
    );
    assert_eq!(validate(&history[3..]), Ok(()));
}

#[test]
fn first_operation_impossible_is_explained() {
    let result = assert_verdict(&[get(1, "x", Some("1"), 0, 1)], Verdict::Illegal);
    let explanation = result.partitions[0].explanation.as_deref().unwrap_or("");
    assert!(
        explanation.contains("Longest linearizable prefix: 0"),
        "{explanation}"
    );
    assert!(
        explanation.contains("cannot produce this output"),
        "{explanation}"
    );
}

#[test]
fn kv_partition_is_the_key() {
    use lincheck::Model;
    let input = KvInput::Cas {
        key: "k9".into(),
        expected: None,
        new: "v".into(),
    };
    assert_eq!(KvModel.partition(&input), "k9");
    assert!(!KvModel.is_read_only(&input));
    assert!(KvModel.is_read_only(&KvInput::Get { key: "k9".into() }));
}
