//! `synod bench --workload watch` against a real 3-member cluster: every watcher sees every
//! answered put, and the report says so (events counted, none missing).

use crate::common::{run_bounded, Cluster};
use std::process::Command;
use std::time::Duration;

#[test]
fn the_watch_workload_sees_every_put_on_every_watcher() {
    let c = Cluster::start(3);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_synod"));
    cmd.args([
        "bench",
        "--workload",
        "watch",
        "--watchers",
        "4",
        "--total",
        "300",
        "--clients",
        "8",
        "--no-progress",
        "--json",
        "-",
        "--endpoints",
        &c.endpoints(),
    ]);
    let out = run_bounded(cmd, None, Duration::from_secs(120));
    assert!(out.success(), "{out}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("a JSON report");
    assert_eq!(report["ops_ok"], 300, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    let events = &report["by_op"]["watch-event"];
    assert_eq!(
        events["ok"],
        4 * 300,
        "each of 4 watchers saw each of 300 puts: {report}"
    );
    assert_eq!(events["errors"], 0, "{report}");
    let p50 = events["latency"]["p50_us"].as_u64().expect("a p50");
    assert!(p50 > 0, "{report}");
}
