//! `cargo xtask bench-vs-etcd`: the same workloads against etcd, then Synod, in one run,
//! and Synod's figures as ratios of etcd's.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bench::{BenchConfig, BenchReport, Consistency, Limit, Workload};
use serde_json::json;

use crate::cluster::{free_ports, member_specs, Cluster, System};

/// Where Debian's etcd-server package puts etcd.
const DEFAULT_ETCD_BIN: &str = "/usr/bin/etcd";
const ETCD_INSTALL: &str = "sudo apt-get install -y etcd-server";
const MEMBERS: usize = 3;
const READY_WITHIN: Duration = Duration::from_secs(30);

/// One measured case: a workload with its read consistency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Case {
    /// Puts.
    Put,
    /// Linearizable single-key gets.
    GetL,
    /// Serializable single-key gets.
    GetS,
    /// Read mod_revision, then compare-and-swap put (linearizable read).
    TxnCas,
    /// Linearizable gets and puts, --mixed-read-percent of them gets.
    Mixed,
    /// Puts while watchers follow the whole key space; the row shows the events (delivered
    /// per second, and latency from the put's start to each watcher's receipt).
    Watch,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Put => "put",
            Case::GetL => "get-l",
            Case::GetS => "get-s",
            Case::TxnCas => "txn-cas",
            Case::Mixed => "mixed",
            Case::Watch => "watch",
        }
    }

    fn workload(self) -> (Workload, Consistency) {
        match self {
            Case::Put => (Workload::Put, Consistency::Linearizable),
            Case::GetL => (Workload::Get, Consistency::Linearizable),
            Case::GetS => (Workload::Get, Consistency::Serializable),
            Case::TxnCas => (Workload::TxnCas, Consistency::Linearizable),
            Case::Mixed => (Workload::Mixed, Consistency::Linearizable),
            Case::Watch => (Workload::Watch, Consistency::Linearizable),
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct BenchVsEtcdArgs {
    /// How long each workload runs against each system (e.g. 10s).
    #[arg(long, value_parser = bench::parse_duration, default_value = "10s")]
    pub duration: Duration,

    /// Concurrent requesters.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,

    /// gRPC connections [default: one per member].
    #[arg(long)]
    pub conns: Option<usize>,

    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,

    /// Key size in bytes.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,

    /// Distinct keys (gets and mixed preload them all first, untimed).
    #[arg(long, default_value_t = 1000)]
    pub key_space: u64,

    /// Percentage of gets in the mixed workload.
    #[arg(long, default_value_t = 90)]
    pub mixed_read_percent: u8,

    /// Workloads to run, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "put,get-l,get-s,txn-cas,mixed,watch"
    )]
    pub workloads: Vec<Case>,

    /// Run against one system only (no ratios).
    #[arg(long, value_enum)]
    pub only: Option<System>,

    /// The synod binary [default: build it with `cargo build --release -p synod`].
    #[arg(long)]
    pub synod_bin: Option<PathBuf>,

    /// The etcd binary (3.4 from Debian's etcd-server package).
    #[arg(long, default_value = DEFAULT_ETCD_BIN)]
    pub etcd_bin: PathBuf,

    /// Bound on each request.
    #[arg(long, value_parser = bench::parse_duration, default_value = "5s")]
    pub request_timeout: Duration,

    /// Also write every report and the ratios as JSON to FILE, or to stdout with "-".
    #[arg(long, value_name = "FILE|-")]
    pub json: Option<PathBuf>,

    /// Keep the data directories and member logs (under target/bench-vs-etcd/) afterwards.
    #[arg(long)]
    pub keep_data: bool,

    /// Do not draw progress bars.
    #[arg(long)]
    pub no_progress: bool,
}

impl BenchVsEtcdArgs {
    fn config(&self, case: Case, endpoints: Vec<String>) -> anyhow::Result<BenchConfig> {
        let (workload, consistency) = case.workload();
        let mut c = BenchConfig::new(endpoints, workload);
        c.consistency = consistency;
        c.clients = self.clients;
        if let Some(conns) = self.conns {
            c.conns = conns;
        }
        c.key_space = self.key_space;
        c.key_size = self.key_size;
        c.value_size = self.value_size;
        c.limit = Limit::Duration(self.duration);
        c.mixed_read_percent = self.mixed_read_percent;
        c.request_timeout = self.request_timeout;
        c.progress = !self.no_progress;
        c.validate()?;
        Ok(c)
    }

    fn systems(&self) -> Vec<System> {
        match self.only {
            Some(s) => vec![s],
            None => vec![System::Etcd, System::Synod],
        }
    }
}

/// What one system measured, case by case, and why it stopped early if it did.
#[derive(Default)]
struct SystemResults {
    reports: Vec<(Case, BenchReport)>,
    failure: Option<String>,
}

pub fn run(args: BenchVsEtcdArgs) -> anyhow::Result<bool> {
    let systems = args.systems();
    if args.workloads.is_empty() {
        bail!("--workloads: name at least one");
    }
    // Validate the flags once before starting anything.
    args.config(
        args.workloads[0],
        vec!["http://127.0.0.1:1".into(); MEMBERS],
    )?;

    let mut binaries = BTreeMap::new();
    let mut etcd_version = None;
    if systems.contains(&System::Etcd) {
        if !args.etcd_bin.exists() {
            bail!(
                "etcd not found at {}; install it with:\n  {ETCD_INSTALL}",
                args.etcd_bin.display()
            );
        }
        etcd_version = Some(version_line(&args.etcd_bin));
        binaries.insert(System::Etcd, absolute(&args.etcd_bin)?);
    }
    if systems.contains(&System::Synod) {
        let bin = match &args.synod_bin {
            Some(bin) => absolute(bin)?,
            None => build_synod()?,
        };
        binaries.insert(System::Synod, bin);
    }

    let parent = crate::target_dir().join("bench-vs-etcd");
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    tmp.disable_cleanup(args.keep_data);

    // Every port for both clusters at once, so their ports never overlap.
    let ports = free_ports(2 * MEMBERS * systems.len())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;

    eprintln!(
        "bench-vs-etcd: {} x {} s per system; data under {}",
        args.workloads.len(),
        args.duration.as_secs_f64(),
        tmp.path().display()
    );
    let started = Instant::now();
    let mut results: BTreeMap<System, SystemResults> = BTreeMap::new();
    for (i, &system) in systems.iter().enumerate() {
        let pairs: Vec<(u16, u16)> = ports[2 * MEMBERS * i..2 * MEMBERS * (i + 1)]
            .chunks(2)
            .map(|p| (p[0], p[1]))
            .collect();
        let dir = tmp.path().join(system.name());
        let bin = &binaries[&system];
        let mut got = SystemResults::default();
        if let Err(e) = run_system(&runtime, &args, system, bin, &dir, &pairs, &mut got) {
            // The error names member logs: keep them for reading.
            tmp.disable_cleanup(true);
            got.failure = Some(format!("{e:#}"));
        }
        results.insert(system, got);
    }
    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());

    let rows = rows(&args.workloads, &results);
    println_to_report(&args, &header(&args, etcd_version.as_deref()))?;
    println_to_report(&args, &table(&rows, &systems))?;
    if let Some(path) = &args.json {
        let doc = json_document(&args, etcd_version.as_deref(), &results, &rows);
        let text = serde_json::to_string_pretty(&doc).context("encoding the JSON report")?;
        if path == Path::new("-") {
            println!("{text}");
        } else {
            std::fs::write(path, text + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(s, r)| r.failure.as_ref().map(|f| format!("{s}: {f}")))
        .collect();
    if args.keep_data || !failures.is_empty() {
        eprintln!("kept data and logs in {}", tmp.path().display());
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    let any_errors = results
        .values()
        .flat_map(|r| &r.reports)
        .any(|(_, r)| r.errors > 0);
    Ok(!any_errors)
}

/// With `--json -` stdout is the JSON; the table then goes to stderr.
fn println_to_report(args: &BenchVsEtcdArgs, text: &str) -> anyhow::Result<()> {
    if args.json.as_deref() == Some(Path::new("-")) {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
    Ok(())
}

/// Starts `system`'s cluster, runs every case against it, stops it. Reports gathered
/// before a failure are kept in `got`.
fn run_system(
    runtime: &tokio::runtime::Runtime,
    args: &BenchVsEtcdArgs,
    system: System,
    bin: &Path,
    dir: &Path,
    ports: &[(u16, u16)],
    got: &mut SystemResults,
) -> anyhow::Result<()> {
    let specs = member_specs(ports);
    eprintln!(
        "{system}: starting {} members ({})",
        specs.len(),
        bin.display()
    );
    let mut cluster = Cluster::start(system, bin, dir, &specs)?;
    runtime.block_on(cluster.wait_ready(READY_WITHIN))?;
    for &case in &args.workloads {
        let config = args.config(case, cluster.client_urls())?;
        eprintln!("{system}: {} for {:?}", case.name(), args.duration);
        let report = runtime
            .block_on(bench::run(config))
            .with_context(|| format!("{system} {}", case.name()))?;
        eprintln!(
            "{system}: {}: {:.0} ops/s, p50 {} µs, p99 {} µs, {} conflicts, {} errors",
            case.name(),
            report.throughput_ops_per_sec,
            report.latency.p50_us,
            report.latency.p99_us,
            report.conflicts,
            report.errors
        );
        got.reports.push((case, report));
    }
    cluster.stop()
}

/// The binary's absolute path, so that what runs does not depend on a working directory.
fn absolute(bin: &Path) -> anyhow::Result<PathBuf> {
    std::fs::canonicalize(bin).with_context(|| format!("finding {}", bin.display()))
}

/// `cargo build --release -p synod`, then the binary's path.
fn build_synod() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building synod: cargo build --release -p synod");
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "synod"])
        .current_dir(crate::workspace_root())
        .status()
        .context("running cargo build --release -p synod")?;
    if !status.success() {
        bail!("cargo build --release -p synod failed ({status})");
    }
    let bin = crate::target_dir().join("release").join("synod");
    if !bin.exists() {
        bail!("built synod, but {} does not exist", bin.display());
    }
    Ok(bin)
}

/// The first line of `BIN --version`, or why there is none.
fn version_line(bin: &Path) -> String {
    match Command::new(bin).arg("--version").output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("unknown version")
            .to_string(),
        Err(e) => format!("unknown version ({e})"),
    }
}

/// The figures a table row shows for one system.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Figures {
    throughput: f64,
    p50_us: u64,
    p99_us: u64,
    errors: u64,
}

impl Figures {
    fn of(r: &BenchReport) -> Self {
        if r.config.workload == Workload::Watch {
            if let Some(events) = r.by_op.get(bench::WATCH_EVENT) {
                return Figures {
                    throughput: events.throughput_ops_per_sec,
                    p50_us: events.latency.p50_us,
                    p99_us: events.latency.p99_us,
                    errors: r.errors,
                };
            }
        }
        Figures {
            throughput: r.throughput_ops_per_sec,
            p50_us: r.latency.p50_us,
            p99_us: r.latency.p99_us,
            errors: r.errors,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Row {
    case: Case,
    etcd: Option<Figures>,
    synod: Option<Figures>,
}

/// synod / etcd, when both exist and etcd's is not zero.
fn ratio(synod: f64, etcd: f64) -> Option<f64> {
    (etcd > 0.0).then(|| synod / etcd)
}

impl Row {
    fn ratios(&self) -> Option<(Option<f64>, Option<f64>, Option<f64>)> {
        let (e, s) = (self.etcd?, self.synod?);
        Some((
            ratio(s.throughput, e.throughput),
            ratio(s.p50_us as f64, e.p50_us as f64),
            ratio(s.p99_us as f64, e.p99_us as f64),
        ))
    }
}

fn rows(cases: &[Case], results: &BTreeMap<System, SystemResults>) -> Vec<Row> {
    let find = |system: System, case: Case| {
        results.get(&system).and_then(|r| {
            r.reports
                .iter()
                .find(|(c, _)| *c == case)
                .map(|(_, rep)| Figures::of(rep))
        })
    };
    cases
        .iter()
        .map(|&case| Row {
            case,
            etcd: find(System::Etcd, case),
            synod: find(System::Synod, case),
        })
        .collect()
}

fn header(args: &BenchVsEtcdArgs, etcd_version: Option<&str>) -> String {
    let mut s = format!(
        "{MEMBERS} members per system on loopback, each syncing to disk; {} clients, {} conns, \
         {:.0} s per workload, {} keys of {} B, values of {} B, mixed {} % reads",
        args.clients,
        args.conns
            .map_or_else(|| MEMBERS.to_string(), |c| c.to_string()),
        args.duration.as_secs_f64(),
        args.key_space,
        args.key_size,
        args.value_size,
        args.mixed_read_percent
    );
    if let Some(v) = etcd_version {
        let _ = write!(s, "\n{v}");
    }
    s
}

fn fmt_opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"))
}

/// The side-by-side table; with one system, its figures alone.
fn table(rows: &[Row], systems: &[System]) -> String {
    let both = systems.len() > 1;
    let mut out = String::new();
    if both {
        let _ = writeln!(
            out,
            "{:<8} | {:>9} {:>9} {:>6} | {:>8} {:>8} {:>6} | {:>8} {:>8} {:>6} | {:>9}",
            "", "ops/s", "", "", "p50 µs", "", "", "p99 µs", "", "", "errors"
        );
        let _ = writeln!(
            out,
            "{:<8} | {:>9} {:>9} {:>6} | {:>8} {:>8} {:>6} | {:>8} {:>8} {:>6} | {:>9}",
            "workload",
            "etcd",
            "synod",
            "ratio",
            "etcd",
            "synod",
            "ratio",
            "etcd",
            "synod",
            "ratio",
            "etcd/syn"
        );
        for r in rows {
            let (tput, p50, p99) = r.ratios().unwrap_or((None, None, None));
            let _ = writeln!(
                out,
                "{:<8} | {:>9} {:>9} {:>6} | {:>8} {:>8} {:>6} | {:>8} {:>8} {:>6} | {:>9}",
                r.case.name(),
                fmt_opt(r.etcd.map(|f| format!("{:.0}", f.throughput))),
                fmt_opt(r.synod.map(|f| format!("{:.0}", f.throughput))),
                fmt_ratio(tput),
                fmt_opt(r.etcd.map(|f| f.p50_us)),
                fmt_opt(r.synod.map(|f| f.p50_us)),
                fmt_ratio(p50),
                fmt_opt(r.etcd.map(|f| f.p99_us)),
                fmt_opt(r.synod.map(|f| f.p99_us)),
                fmt_ratio(p99),
                format!(
                    "{}/{}",
                    fmt_opt(r.etcd.map(|f| f.errors)),
                    fmt_opt(r.synod.map(|f| f.errors))
                ),
            );
        }
        out.push_str(
            "ratio = synod / etcd, measured in this run: above 1 favours Synod for ops/s, \
             below 1 for latency.",
        );
    } else {
        let system = systems.first().copied().unwrap_or(System::Etcd);
        let _ = writeln!(
            out,
            "{:<8} | {:>9} | {:>8} | {:>8} | {:>6}   ({system})",
            "workload", "ops/s", "p50 µs", "p99 µs", "errors"
        );
        for r in rows {
            let f = match system {
                System::Etcd => r.etcd,
                System::Synod => r.synod,
            };
            let _ = writeln!(
                out,
                "{:<8} | {:>9} | {:>8} | {:>8} | {:>6}",
                r.case.name(),
                fmt_opt(f.map(|f| format!("{:.0}", f.throughput))),
                fmt_opt(f.map(|f| f.p50_us)),
                fmt_opt(f.map(|f| f.p99_us)),
                fmt_opt(f.map(|f| f.errors)),
            );
        }
        let _ = out.pop(); // the last newline; the caller prints a line
    }
    out
}

fn json_document(
    args: &BenchVsEtcdArgs,
    etcd_version: Option<&str>,
    results: &BTreeMap<System, SystemResults>,
    rows: &[Row],
) -> serde_json::Value {
    let mut systems = serde_json::Map::new();
    for (system, r) in results {
        let reports: serde_json::Map<String, serde_json::Value> = r
            .reports
            .iter()
            .map(|(case, rep)| (case.name().to_string(), json!(rep)))
            .collect();
        systems.insert(
            system.name().to_string(),
            json!({ "reports": reports, "failure": r.failure }),
        );
    }
    let ratios: serde_json::Map<String, serde_json::Value> = rows
        .iter()
        .filter_map(|row| {
            let (tput, p50, p99) = row.ratios()?;
            Some((
                row.case.name().to_string(),
                json!({ "throughput": tput, "p50": p50, "p99": p99 }),
            ))
        })
        .collect();
    json!({
        "settings": {
            "members": MEMBERS,
            "duration_secs": args.duration.as_secs_f64(),
            "clients": args.clients,
            "conns": args.conns,
            "key_space": args.key_space,
            "key_size": args.key_size,
            "value_size": args.value_size,
            "mixed_read_percent": args.mixed_read_percent,
            "workloads": args.workloads.iter().map(|c| c.name()).collect::<Vec<_>>(),
        },
        "etcd_version": etcd_version,
        "systems": systems,
        "ratios_synod_over_etcd": ratios,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchVsEtcdArgs,
    }

    fn parse(argv: &[&str]) -> Result<BenchVsEtcdArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("x").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn defaults_cover_every_workload_within_budget() {
        let a = parse(&[]).unwrap();
        assert_eq!(
            a.workloads,
            vec![
                Case::Put,
                Case::GetL,
                Case::GetS,
                Case::TxnCas,
                Case::Mixed,
                Case::Watch
            ]
        );
        assert_eq!(a.systems(), vec![System::Etcd, System::Synod]);
        assert_eq!(a.etcd_bin, PathBuf::from("/usr/bin/etcd"));
        // 6 workloads x 2 systems x duration stays within two minutes of load.
        let load = a.duration * (a.workloads.len() as u32) * 2;
        assert!(load <= Duration::from_secs(120), "{load:?}");
    }

    #[test]
    fn flags_reach_the_bench_config() {
        let a = parse(&[
            "--only",
            "etcd",
            "--workloads",
            "get-s,txn-cas",
            "--duration",
            "3s",
            "--clients",
            "5",
            "--conns",
            "2",
            "--value-size",
            "100",
        ])
        .unwrap();
        assert_eq!(a.systems(), vec![System::Etcd]);
        assert_eq!(a.workloads, vec![Case::GetS, Case::TxnCas]);
        let eps = vec!["http://127.0.0.1:1".to_string(); 3];
        let c = a.config(Case::GetS, eps.clone()).unwrap();
        assert_eq!(c.workload, Workload::Get);
        assert_eq!(c.consistency, Consistency::Serializable);
        assert_eq!(c.limit, Limit::Duration(Duration::from_secs(3)));
        assert_eq!((c.clients, c.conns, c.value_size), (5, 2, 100));
        let c = a.config(Case::GetL, eps.clone()).unwrap();
        assert_eq!(c.consistency, Consistency::Linearizable);

        let bad = parse(&["--clients", "0"]).unwrap();
        assert!(bad.config(Case::Put, eps).is_err());
        assert!(parse(&["--workloads", "delete"]).is_err());
        assert!(parse(&["--only", "zookeeper"]).is_err());
    }

    fn figures(throughput: f64, p50_us: u64, p99_us: u64) -> Option<Figures> {
        Some(Figures {
            throughput,
            p50_us,
            p99_us,
            errors: 0,
        })
    }

    #[test]
    fn ratios_are_synod_over_etcd() {
        let row = Row {
            case: Case::Put,
            etcd: figures(1000.0, 400, 2000),
            synod: figures(1500.0, 200, 3000),
        };
        assert_eq!(row.ratios(), Some((Some(1.5), Some(0.5), Some(1.5))));
        let one_sided = Row {
            synod: None,
            ..row.clone()
        };
        assert_eq!(one_sided.ratios(), None);
        assert_eq!(ratio(5.0, 0.0), None, "no division by zero");

        let text = table(&[row, one_sided], &[System::Etcd, System::Synod]);
        let put = text.lines().find(|l| l.starts_with("put")).unwrap();
        assert!(put.contains("1.50x") && put.contains("0.50x"), "{text}");
        assert_eq!(put.matches("1.50x").count(), 2, "{text}");
        // The one-sided row shows dashes for the missing system and its ratios.
        let last = text
            .lines()
            .filter(|l| l.starts_with("put"))
            .nth(1)
            .unwrap();
        assert!(last.contains(" - "), "{text}");
    }

    #[test]
    fn one_system_table_has_no_ratios() {
        let row = Row {
            case: Case::GetL,
            etcd: figures(12345.6, 700, 4000),
            synod: None,
        };
        let text = table(&[row], &[System::Etcd]);
        assert!(text.contains("12346"), "{text}");
        assert!(!text.contains('x'), "{text}");
        assert!(text.contains("(etcd)"), "{text}");
    }
}
