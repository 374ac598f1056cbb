//! The member-level simulation is a pure function of its seed: the same seed gives the same
//! trace and report, byte for byte; another seed gives another trace.

use sim::member::{MemberSimConfig, MemberSimulation};
use sim::FaultProfile;

fn run(seed: u64) -> (Vec<String>, String) {
    let mut config = MemberSimConfig::new(seed, 3, FaultProfile::All);
    config.trace = true;
    let mut sim = MemberSimulation::new(config);
    while sim.step() {}
    let trace = sim.trace().to_vec();
    let report = sim.run();
    (
        trace,
        serde_json::to_string(&report).expect("a report serializes"),
    )
}

#[test]
fn the_same_seed_gives_the_same_trace_and_report() {
    for seed in [3, 11] {
        let (trace_a, report_a) = run(seed);
        let (trace_b, report_b) = run(seed);
        assert!(trace_a.len() > 100, "a run has a trace");
        assert_eq!(trace_a, trace_b, "seed {seed}: traces differ");
        assert_eq!(report_a, report_b, "seed {seed}: reports differ");
    }
    let (other, _) = run(4);
    assert_ne!(run(3).0, other, "different seeds, different runs");
}
