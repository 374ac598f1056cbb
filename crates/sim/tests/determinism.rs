//! A run is a pure function of its seed: same seed, same trace bytes, same figures; and a
//! campaign's figures do not depend on how many threads ran it.

use sim::trace::write_jsonl;
use sim::{run_seeds, CampaignReport, CampaignSpec, FaultProfile, SimConfig, Simulation};

fn traced_run(seed: u64, nodes: usize) -> (Vec<u8>, String) {
    let mut config = SimConfig::new(seed, nodes, FaultProfile::All);
    config.trace = true;
    let mut simulation = Simulation::new(config);
    while simulation.step() {}
    let report = simulation.finish();
    let mut bytes = Vec::new();
    write_jsonl(&mut bytes, &simulation.trace_header(), simulation.trace())
        .expect("writing to memory");
    (bytes, report.to_string())
}

#[test]
fn same_seed_same_trace_bytes_and_figures() {
    for (seed, nodes) in [(42, 5), (7, 3)] {
        let (trace_a, figures_a) = traced_run(seed, nodes);
        let (trace_b, figures_b) = traced_run(seed, nodes);
        assert!(trace_a.len() > 10_000, "the trace recorded the run");
        assert!(trace_a == trace_b, "seed {seed}: traces differ");
        assert_eq!(figures_a, figures_b, "seed {seed}: figures differ");
    }
}

#[test]
fn tracing_does_not_change_the_run() {
    let (_, traced) = traced_run(11, 5);
    let untraced = Simulation::new(SimConfig::new(11, 5, FaultProfile::All)).run();
    assert_eq!(traced, untraced.to_string());
}

#[test]
fn different_seeds_differ() {
    let (a, _) = traced_run(1, 3);
    let (b, _) = traced_run(2, 3);
    assert_ne!(a, b);
}

#[test]
fn campaign_figures_do_not_depend_on_thread_count() {
    let mut spec = CampaignSpec::new(0..40, 3, FaultProfile::All);
    spec.threads = 1;
    let one = CampaignReport::from_runs(&run_seeds(&spec, &|_| {}));
    spec.threads = 3;
    let three = CampaignReport::from_runs(&run_seeds(&spec, &|_| {}));
    assert_eq!(one, three);
}

#[test]
fn trace_header_names_the_format_and_the_run() {
    let (bytes, _) = traced_run(3, 3);
    let text = String::from_utf8(bytes).expect("JSON is UTF-8");
    let header: sim::trace::TraceHeader =
        serde_json::from_str(text.lines().next().expect("a header line")).expect("header parses");
    assert_eq!(header.format, sim::trace::TRACE_FORMAT_NAME);
    assert_eq!(header.version, sim::trace::TRACE_FORMAT_VERSION);
    assert_eq!(
        (header.seed, header.nodes, header.faults),
        (3, 3, FaultProfile::All)
    );
    for line in text.lines().skip(1) {
        let record: sim::trace::TraceRecord =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let _ = record;
    }
}
