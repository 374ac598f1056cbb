//! `synod sim --protocol fast` from the outside: a campaign prints its figures (collisions,
//! recoveries, every fault kind) and no violation.

use std::process::Command;

#[test]
fn a_fast_paxos_campaign_passes_and_reports_collisions() {
    let out = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args([
            "sim",
            "--protocol",
            "fast",
            "--seeds",
            "0..200",
            "--nodes",
            "5",
        ])
        .output()
        .expect("synod runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for needle in [
        "fast-paxos campaign: 5 nodes",
        "seeds run             200",
        "first learned in FastRound",
        "first learned in RecoveryRound",
        "coordinated recoveries",
        "every fault kind fired",
        "violations            0",
        "all 200 seeds passed every check",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing in:\n{stdout}");
    }
}
