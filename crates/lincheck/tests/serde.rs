//! The JSON-lines history format the chaos tool writes.

mod common;

use common::{cas, get, put, timed_out};
use lincheck::kv::{KvInput, KvOperation, KvOutput};
use lincheck::{check, CheckOptions, Verdict};

#[test]
fn operation_is_one_json_line_in_the_documented_shape() {
    let op = put(3, "k1", "v7", 100, 140);
    let line = serde_json::to_string(&op).expect("serializable");
    assert_eq!(
        line,
        r#"{"client":3,"input":{"op":"put","key":"k1","value":"v7"},"invoke":100,"complete":140,"output":{"result":"put"}}"#
    );
    assert!(!line.contains('\n'));
    let back: KvOperation = serde_json::from_str(&line).expect("parses");
    assert_eq!(back, op);
}

#[test]
fn unknown_outcome_serializes_as_nulls() {
    let op = timed_out(cas(5, "k1", None, "v9", true, 130, 0));
    let line = serde_json::to_string(&op).expect("serializable");
    assert_eq!(
        line,
        r#"{"client":5,"input":{"op":"cas","key":"k1","expected":null,"new":"v9"},"invoke":130,"complete":null,"output":null}"#
    );
    let back: KvOperation = serde_json::from_str(&line).expect("parses");
    assert_eq!(back, op);
}

#[test]
fn every_variant_round_trips() {
    let history = vec![
        put(1, "k", "a", 0, 1),
        get(2, "k", Some("a"), 2, 3),
        get(2, "j", None, 2, 3),
        cas(1, "k", Some("a"), "b", true, 4, 5),
        KvOperation {
            client: 4,
            input: KvInput::Delete { key: "k".into() },
            invoke: 6,
            complete: Some(7),
            output: Some(KvOutput::Delete { existed: true }),
        },
    ];
    let text: String = history
        .iter()
        .map(|op| serde_json::to_string(op).expect("serializable") + "\n")
        .collect();
    assert!(text.contains(r#""output":{"result":"get","value":null}"#));
    assert!(text.contains(r#""output":{"result":"delete","existed":true}"#));
    assert!(text.contains(r#""output":{"result":"cas","ok":true}"#));
    let parsed: Vec<KvOperation> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .expect("parses");
    assert_eq!(parsed, history);
    assert_eq!(
        check(&lincheck::kv::KvModel, &parsed, &CheckOptions::default()).verdict,
        Verdict::Ok
    );
}

#[test]
fn unknown_input_tag_is_rejected() {
    let line = r#"{"client":1,"input":{"op":"append","key":"k"},"invoke":0,"complete":null,"output":null}"#;
    assert!(serde_json::from_str::<KvOperation>(line).is_err());
}
