//! What a run measured, and its two renderings: a table for people, JSON for programs.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::config::{BenchConfig, Limit};

/// Latency histograms hold microseconds from 1 µs to this bound; slower samples are clamped
/// to it (no request outlives `--request-timeout`, so only absurd timeouts get there).
pub const LATENCY_MAX_US: u64 = 3_600_000_000;

/// Three significant digits: a recorded value is off by at most 0.1 %.
pub(crate) fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low,
    // sigfig <= 5), so this cannot fail.
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("constant histogram bounds are valid")
}

/// Latency percentiles of answered requests, in microseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub min_us: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    /// Summarizes a histogram of microseconds; all zeros when it is empty.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean_us: h.mean(),
            min_us: h.min(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// Figures for one kind of operation (`put`, `get` or `cas`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpReport {
    /// Answered without error (for `cas`: the compare held and the put was applied).
    pub ok: u64,
    /// `cas` only: answered, but the compare failed because another client wrote first.
    pub conflicts: u64,
    /// Failed RPCs (including client-side timeouts).
    pub errors: u64,
    /// Answered operations (ok + conflicts) per second of the run.
    pub throughput_ops_per_sec: f64,
    /// Of answered operations; a `cas` spans its read and its txn.
    pub latency: LatencySummary,
}

/// The untimed preload that gives gets something to find.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PreloadReport {
    pub keys: u64,
    pub duration_secs: f64,
}

/// Everything one run measured, plus the configuration it ran with.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchReport {
    pub config: BenchConfig,
    /// From the first request to the last answer (or timeout).
    pub duration_secs: f64,
    /// Operations answered without error (cas: compare held).
    pub ops_ok: u64,
    /// Compare-and-swaps answered with a failed compare.
    pub conflicts: u64,
    /// Failed operations, all codes together (with the watch workload, events a watcher
    /// never received too).
    pub errors: u64,
    /// Failed operations by gRPC code name (`Unavailable`, `DeadlineExceeded`, ...).
    pub errors_by_code: BTreeMap<String, u64>,
    /// The first message seen for each code, to tell what went wrong.
    pub error_samples: BTreeMap<String, String>,
    /// Answered operations (ops_ok + conflicts) per second: the server did the work for a
    /// conflict too, so it counts; errors do not.
    pub throughput_ops_per_sec: f64,
    /// Of every answered operation.
    pub latency: LatencySummary,
    /// Per kind of operation (only `mixed` has more than one).
    pub by_op: BTreeMap<String, OpReport>,
    pub preload: Option<PreloadReport>,
}

/// Operations per second; 0 for an empty interval rather than a division by zero.
pub fn throughput(ops: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        ops as f64 / secs
    } else {
        0.0
    }
}

/// The name under which the watch workload reports its events.
pub const WATCH_EVENT: &str = "watch-event";

/// What one kind of operation accumulated during a run; merged across clients.
#[derive(Clone, Debug)]
pub(crate) struct OpTally {
    pub ok: u64,
    pub conflicts: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    pub error_samples: BTreeMap<String, String>,
    pub latency_us: Histogram<u64>,
}

impl Default for OpTally {
    fn default() -> Self {
        OpTally {
            ok: 0,
            conflicts: 0,
            errors_by_code: BTreeMap::new(),
            error_samples: BTreeMap::new(),
            latency_us: new_histogram(),
        }
    }
}

impl OpTally {
    pub fn errors(&self) -> u64 {
        self.errors_by_code.values().sum()
    }

    pub fn record_answer(&mut self, latency: Duration, conflict: bool) {
        if conflict {
            self.conflicts += 1;
        } else {
            self.ok += 1;
        }
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.saturating_record(us.max(1));
    }

    pub fn record_error(&mut self, status: &tonic::Status) {
        self.record_errors(status, 1);
    }

    /// `n` failures alike.
    pub fn record_errors(&mut self, status: &tonic::Status, n: u64) {
        if n == 0 {
            return;
        }
        let code = format!("{:?}", status.code());
        *self.errors_by_code.entry(code.clone()).or_insert(0) += n;
        self.error_samples
            .entry(code)
            .or_insert_with(|| describe(status));
    }

    pub fn merge(&mut self, other: &OpTally) {
        self.ok += other.ok;
        self.conflicts += other.conflicts;
        for (code, n) in &other.errors_by_code {
            *self.errors_by_code.entry(code.clone()).or_insert(0) += n;
        }
        for (code, msg) in &other.error_samples {
            self.error_samples
                .entry(code.clone())
                .or_insert_with(|| msg.clone());
        }
        // Same bounds on both sides, and saturating records, so adding cannot overflow
        // the range; a failure would mean a bug here, and the samples are then dropped.
        let _ = self.latency_us.add(&other.latency_us);
    }

    fn report(&self, elapsed: Duration) -> OpReport {
        OpReport {
            ok: self.ok,
            conflicts: self.conflicts,
            errors: self.errors(),
            throughput_ops_per_sec: throughput(self.ok + self.conflicts, elapsed),
            latency: LatencySummary::from_histogram(&self.latency_us),
        }
    }
}

impl BenchReport {
    /// Builds the report from the per-kind tallies of a run that took `elapsed`.
    pub(crate) fn from_tallies(
        config: BenchConfig,
        tallies: &BTreeMap<&'static str, OpTally>,
        elapsed: Duration,
        preload: Option<PreloadReport>,
    ) -> Self {
        // Throughput and latency are the requests' own; the watch workload's events are
        // reported beside them (by_op), not mixed into them. Failures count from both: an
        // event a watcher never saw is as much a failure as a request that failed.
        let mut all = OpTally::default();
        let mut failures = OpTally::default();
        for (name, t) in tallies {
            if *name != WATCH_EVENT {
                all.merge(t);
            }
            failures.merge(t);
        }
        let by_op = tallies
            .iter()
            .map(|(name, t)| (name.to_string(), t.report(elapsed)))
            .collect();
        let summary = all.report(elapsed);
        BenchReport {
            config,
            duration_secs: elapsed.as_secs_f64(),
            ops_ok: all.ok,
            conflicts: all.conflicts,
            errors: failures.errors(),
            errors_by_code: failures.errors_by_code,
            error_samples: failures.error_samples,
            throughput_ops_per_sec: summary.throughput_ops_per_sec,
            latency: summary.latency,
            by_op,
            preload,
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Every field is a plain number, string or map with string keys: serialization of
        // such a value cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

impl fmt::Display for BenchReport {
    /// The human table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let mut workload = c.workload.name().to_string();
        if matches!(
            c.workload,
            crate::Workload::Get | crate::Workload::Mixed | crate::Workload::TxnCas
        ) {
            let _ = write!(workload, " ({:?} reads)", c.consistency);
        }
        if c.workload == crate::Workload::Mixed {
            let _ = write!(workload, ", {} % reads", c.mixed_read_percent);
        }
        let limit = match c.limit {
            Limit::Duration(d) => format!("{:.1} s", d.as_secs_f64()),
            Limit::Total(n) => format!("{n} ops"),
        };
        writeln!(f, "workload      {workload}")?;
        writeln!(
            f,
            "setup         {} endpoint(s), {} conn(s), {} client(s), {} keys of {} B, values of {} B, limit {limit}",
            c.endpoints.len(),
            c.conns,
            c.clients,
            c.key_space,
            c.key_size,
            c.value_size
        )?;
        if let Some(p) = &self.preload {
            writeln!(
                f,
                "preload       {} keys in {:.2} s (not timed)",
                p.keys, p.duration_secs
            )?;
        }
        writeln!(f, "duration      {:.2} s", self.duration_secs)?;
        writeln!(
            f,
            "operations    {} ok, {} conflicts, {} errors",
            self.ops_ok, self.conflicts, self.errors
        )?;
        for (code, n) in &self.errors_by_code {
            let sample = self.error_samples.get(code).map_or("", String::as_str);
            writeln!(f, "  {code:<18} {n:>8}  e.g. {sample:?}")?;
        }
        writeln!(f, "throughput    {:.1} ops/s", self.throughput_ops_per_sec)?;
        writeln!(
            f,
            "latency (µs)  {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}",
            "op", "p50", "p90", "p99", "p99.9", "max", "ops/s"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, l: &LatencySummary, tput: f64| {
            writeln!(
                f,
                "              {:>11} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9.1}",
                name, l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us, tput
            )
        };
        row(f, "all", &self.latency, self.throughput_ops_per_sec)?;
        if self.by_op.len() > 1 {
            for (name, op) in &self.by_op {
                row(f, name, &op.latency, op.throughput_ops_per_sec)?;
            }
        }
        Ok(())
    }
}

/// A status's message and, for failures below gRPC (TLS refused, connection reset), what
/// caused them: tonic's message alone says only "transport error".
fn describe(status: &tonic::Status) -> String {
    let mut text = status.message().to_string();
    let mut cause = std::error::Error::source(status);
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Workload;

    #[test]
    fn percentiles_of_a_known_histogram() {
        // 1..=1000 µs once each: below 2048 a 3-digit histogram is exact, so the
        // percentiles are the values themselves.
        let mut h = new_histogram();
        for us in 1..=1000 {
            h.record(us).unwrap();
        }
        let s = LatencySummary::from_histogram(&h);
        assert_eq!(s.count, 1000);
        assert_eq!(s.min_us, 1);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.p90_us, 900);
        assert_eq!(s.p99_us, 990);
        assert_eq!(s.p999_us, 999);
        assert_eq!(s.max_us, 1000);
        assert!((s.mean_us - 500.5).abs() < 1e-9, "{}", s.mean_us);
    }

    #[test]
    fn percentiles_of_a_skewed_histogram() {
        // 990 fast requests and 10 slow ones: p99 is still fast, p99.9 is slow.
        let mut h = new_histogram();
        h.record_n(100, 990).unwrap();
        h.record_n(50_000, 10).unwrap();
        let s = LatencySummary::from_histogram(&h);
        assert_eq!(s.p50_us, 100);
        assert_eq!(s.p99_us, 100);
        // 50_000 is not exact at 3 digits; it lies within 0.1 %.
        assert!(s.p999_us.abs_diff(50_000) <= 50, "{}", s.p999_us);
        assert!(s.max_us.abs_diff(50_000) <= 50, "{}", s.max_us);
    }

    #[test]
    fn empty_histogram_is_all_zero() {
        assert_eq!(
            LatencySummary::from_histogram(&new_histogram()),
            LatencySummary::default()
        );
    }

    #[test]
    fn throughput_math() {
        assert_eq!(throughput(1000, Duration::from_secs(2)), 500.0);
        assert_eq!(throughput(3, Duration::from_millis(1500)), 2.0);
        assert_eq!(throughput(10, Duration::ZERO), 0.0);
    }

    #[test]
    fn tallies_merge_into_a_report() {
        let mut put = OpTally::default();
        let mut get = OpTally::default();
        for _ in 0..30 {
            put.record_answer(Duration::from_micros(2000), false);
        }
        for _ in 0..70 {
            get.record_answer(Duration::from_micros(500), false);
        }
        // A second client's put tally, with a conflict-free error mix.
        let mut put2 = OpTally::default();
        put2.record_error(&tonic::Status::unavailable("leader lost"));
        put2.record_error(&tonic::Status::unavailable("again"));
        put2.record_error(&tonic::Status::deadline_exceeded("slow"));
        put.merge(&put2);
        // Sub-microsecond answers are recorded as 1 µs, not dropped.
        get.record_answer(Duration::from_nanos(10), false);

        let tallies = BTreeMap::from([("put", put), ("get", get)]);
        let config = crate::BenchConfig::new(vec!["http://127.0.0.1:1".into()], Workload::Mixed);
        let r = BenchReport::from_tallies(config, &tallies, Duration::from_secs(4), None);
        assert_eq!(r.ops_ok, 101);
        assert_eq!(r.errors, 3);
        assert_eq!(r.errors_by_code.get("Unavailable"), Some(&2));
        assert_eq!(r.errors_by_code.get("DeadlineExceeded"), Some(&1));
        assert_eq!(
            r.error_samples.get("Unavailable").map(String::as_str),
            Some("leader lost"),
            "the first message is kept"
        );
        assert_eq!(r.throughput_ops_per_sec, 101.0 / 4.0);
        assert_eq!(r.by_op["put"].throughput_ops_per_sec, 30.0 / 4.0);
        assert_eq!(r.by_op["put"].errors, 3);
        assert_eq!(r.by_op["get"].ok, 71);
        assert_eq!(r.latency.count, 101);
        assert_eq!(r.latency.min_us, 1);
        // 71 of 101 answers are <= 500 µs, so the median is a get's latency...
        assert_eq!(r.latency.p50_us, 500);
        // ...and the p90 a put's (2000 µs is exact at 3 digits).
        assert_eq!(r.latency.p90_us, 2000);

        let table = r.to_string();
        assert!(table.contains("101 ok, 0 conflicts, 3 errors"), "{table}");
        assert!(table.contains("Unavailable"), "{table}");
        assert!(table.contains("25.2 ops/s"), "{table}");
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json["ops_ok"], 101);
        assert_eq!(json["config"]["workload"], "mixed");
        assert_eq!(json["config"]["limit"]["duration"], 10.0);
        assert_eq!(json["by_op"]["get"]["latency"]["p50_us"], 500);
    }
}
