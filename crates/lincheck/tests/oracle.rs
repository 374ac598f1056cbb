//! Differential test against a brute-force oracle on tiny random histories,
//! legal or not. The checker's prunings (forced reads, unknown-op
//! dominance and overshadowing, memoization) and its search orders must
//! never change a verdict.

use lincheck::kv::{KvInput, KvModel, KvOperation, KvOutput};
use lincheck::{check, CheckOptions, Model, SearchOrder, Verdict};
use proptest::prelude::*;

/// Tries every order that respects real time, with no memo and no pruning.
/// Unknown-outcome operations may be placed anywhere after their
/// invocation, or left out.
fn brute_force(history: &[KvOperation]) -> bool {
    fn go(history: &[KvOperation], placed: &mut Vec<bool>, state: &Option<String>) -> bool {
        let all_known_placed = history
            .iter()
            .zip(placed.iter())
            .all(|(op, done)| *done || op.complete.is_none());
        if all_known_placed {
            return true;
        }
        for next in 0..history.len() {
            if placed[next] {
                continue;
            }
            // `next` may go now unless some unplaced operation returned
            // strictly before it was invoked.
            let blocked = history.iter().zip(placed.iter()).any(|(other, done)| {
                !*done && other.complete.is_some_and(|c| c < history[next].invoke)
            });
            if blocked {
                continue;
            }
            let op = &history[next];
            if let Some(after) = KvModel.step(state, &op.input, op.output.as_ref()) {
                placed[next] = true;
                let found = go(history, placed, &after);
                placed[next] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    go(history, &mut vec![false; history.len()], &None)
}

const VALUES: [&str; 3] = ["a", "b", "c"];

fn value() -> impl Strategy<Value = String> {
    prop::sample::select(&VALUES[..]).prop_map(str::to_owned)
}

fn maybe_value() -> impl Strategy<Value = Option<String>> {
    prop::option::of(value())
}

/// An input with an arbitrary (not necessarily consistent) output.
fn input_output() -> impl Strategy<Value = (KvInput, KvOutput)> {
    let key = || Just("k".to_owned());
    prop_oneof![
        (key(), maybe_value())
            .prop_map(|(key, value)| (KvInput::Get { key }, KvOutput::Get { value })),
        (key(), value()).prop_map(|(key, value)| (KvInput::Put { key, value }, KvOutput::Put)),
        (key(), maybe_value(), value(), any::<bool>()).prop_map(|(key, expected, new, ok)| {
            (KvInput::Cas { key, expected, new }, KvOutput::Cas { ok })
        }),
        (key(), any::<bool>())
            .prop_map(|(key, existed)| (KvInput::Delete { key }, KvOutput::Delete { existed })),
    ]
}

fn operation() -> impl Strategy<Value = KvOperation> {
    (input_output(), 0..4u64, 0..12u64, 0..6u64, 0..5u8).prop_map(
        |((input, output), client, invoke, length, unknown)| {
            let known = unknown != 0;
            KvOperation {
                client,
                input,
                invoke,
                complete: known.then_some(invoke + length),
                output: known.then_some(output),
            }
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn verdict_matches_brute_force(history in prop::collection::vec(operation(), 1..10)) {
        let expected = if brute_force(&history) { Verdict::Ok } else { Verdict::Illegal };
        for order in [SearchOrder::Interleaved, SearchOrder::UnknownEarly, SearchOrder::UnknownLate] {
            let options = CheckOptions { order, ..CheckOptions::default() };
            let result = check(&KvModel, &history, &options);
            prop_assert_eq!(result.verdict, expected, "{:?}: {}", order, result);
        }
    }
}

#[test]
fn oracle_itself_distinguishes_legal_from_illegal() {
    let put = |value: &str, invoke, complete| KvOperation {
        client: 1,
        input: KvInput::Put {
            key: "k".into(),
            value: value.into(),
        },
        invoke,
        complete: Some(complete),
        output: Some(KvOutput::Put),
    };
    let get = |value: &str, invoke, complete| KvOperation {
        client: 2,
        input: KvInput::Get { key: "k".into() },
        invoke,
        complete: Some(complete),
        output: Some(KvOutput::Get {
            value: Some(value.into()),
        }),
    };
    assert!(brute_force(&[put("a", 0, 1), get("a", 2, 3)]));
    assert!(!brute_force(&[
        put("a", 0, 1),
        put("b", 2, 3),
        get("a", 4, 5)
    ]));
}
