//! `synod sim` from the outside: a seed replays byte for byte, a campaign prints its
//! figures, and `--bug` without the planted-bugs feature is a clear error.

use crate::synod;

#[test]
fn one_seed_replays_byte_for_byte() {
    let dir = std::env::temp_dir().join(format!("synod-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let a = dir.join("a.jsonl");
    let b = dir.join("b.jsonl");
    let run = |path: &std::path::Path| {
        let out = synod(&[
            "sim",
            "--seed",
            "42",
            "--nodes",
            "5",
            "--faults",
            "all",
            "--trace",
            path.to_str().expect("utf-8"),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .replace(path.to_str().expect("utf-8"), "TRACE")
    };
    let figures_a = run(&a);
    let figures_b = run(&b);
    assert_eq!(figures_a, figures_b);
    assert!(figures_a.contains("violations            0"), "{figures_a}");
    let bytes_a = std::fs::read(&a).expect("trace a");
    let bytes_b = std::fs::read(&b).expect("trace b");
    assert!(bytes_a.len() > 10_000);
    assert!(bytes_a == bytes_b, "traces differ");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_small_campaign_passes() {
    let out = synod(&["sim", "--seeds", "0..8", "--nodes", "3", "--faults", "all"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("all 8 seeds passed every check"),
        "{stdout}"
    );
    assert!(
        stdout.contains("linearizability       8 ok, 0 illegal, 0 unknown"),
        "{stdout}"
    );
}

#[test]
fn bug_without_the_feature_is_refused() {
    let out = synod(&["sim", "--seed", "1", "--bug", "skip-persist"]);
    if sim::planted_bugs_available() {
        // A workspace test build unifies features: the core has its planted bugs here, so the
        // flag works and the bug is caught (or not) like any run; only check it ran.
        assert!(out.status.code().is_some());
    } else {
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("planted-bugs"));
    }
}

#[test]
fn paxos_commit_and_two_phase_commit_campaigns_run() {
    let out = synod(&[
        "sim",
        "--protocol",
        "commit",
        "--seeds",
        "0..20",
        "--rms",
        "4",
        "--f",
        "1",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("all 20 seeds passed every check"),
        "{stdout}"
    );
    assert!(stdout.contains("0 blocked"), "{stdout}");
    let out = synod(&["sim", "--protocol", "2pc", "--seeds", "0..20", "--rms", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("2pc campaign: 3 RMs, F = 0"), "{stdout}");
}
