//! `synod sim --protocol disk-paxos` from the outside: a campaign prints its figures with every
//! fault kind and no violation, and the default protocol is still Multi-Paxos.

use crate::synod;

#[test]
fn a_disk_paxos_campaign_passes_and_reports_every_fault_kind() {
    let out = synod(&[
        "sim",
        "--protocol",
        "disk-paxos",
        "--seeds",
        "0..200",
        "--processors",
        "3",
        "--disks",
        "3",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for needle in [
        "disk-paxos campaign: 3 processors, 3 disks",
        "seeds run             200",
        "runs all decided      200 of 200",
        "disk crash",
        "torn block write",
        "processor crash",
        "violations            0",
        "all 200 seeds passed every check",
    ] {
        assert!(stdout.contains(needle), "{needle:?} missing in:\n{stdout}");
    }
}

#[test]
fn an_unknown_protocol_is_refused_and_the_default_is_unchanged() {
    let out = synod(&["sim", "--protocol", "raft", "--seed", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // clap refuses it and names every protocol there is.
    assert!(
        stderr.contains("invalid value 'raft'") && stderr.contains("disk-paxos"),
        "{stderr}"
    );
    let out = synod(&["sim", "--seeds", "0..2", "--nodes", "3"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("linearizability"), "{stdout}");
}
