//! `cargo xtask bench-vs-etcd`: the same workloads against etcd, Synod and the in-memory
//! reference (`bench::reference`) in one run, each with its servers' CPU time per 1,000
//! operations, and Synod's figures as ratios of etcd's and of the reference's.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bench::{BenchConfig, BenchReport, Consistency, Limit, Workload};
use serde_json::json;

use crate::cluster::{free_ports, member_specs, Cluster, System};
use crate::cpu;

/// Where Debian's etcd-server package puts etcd.
pub(crate) const DEFAULT_ETCD_BIN: &str = "/usr/bin/etcd";
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

    /// Concurrent requesters; a list (1,64,256) measures every workload at each count.
    #[arg(long, value_delimiter = ',', default_value = "32")]
    pub clients: Vec<usize>,

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

    #[command(flatten)]
    pub systems: SystemsArgs,

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
    fn config(
        &self,
        case: Case,
        clients: usize,
        endpoints: Vec<String>,
    ) -> anyhow::Result<BenchConfig> {
        let (workload, consistency) = case.workload();
        let mut c = BenchConfig::new(endpoints, workload);
        c.consistency = consistency;
        c.clients = clients;
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
        match self.systems.only {
            Some(s) => vec![s],
            None => vec![System::Etcd, System::Synod, System::Reference],
        }
    }
}

/// Whether `system` runs `case`: the reference serves the KV API only, so not Watch.
fn runs(system: System, case: Case) -> bool {
    !(system == System::Reference && case == Case::Watch)
}

/// One measured point: a case at a number of clients, its report, and the servers' CPU
/// seconds (every process of the system together) over the timed part.
struct Measured {
    case: Case,
    clients: usize,
    report: BenchReport,
    cpu_secs: Option<f64>,
}

/// What one system measured, point by point, and why it stopped early if it did.
#[derive(Default)]
struct SystemResults {
    reports: Vec<Measured>,
    failure: Option<String>,
}

pub fn run(args: BenchVsEtcdArgs) -> anyhow::Result<bool> {
    let systems = args.systems();
    if args.workloads.is_empty() {
        bail!("--workloads: name at least one");
    }
    if args.clients.is_empty() {
        bail!("--clients: name at least one count");
    }
    // Validate the flags once before starting anything.
    for &clients in &args.clients {
        args.config(
            args.workloads[0],
            clients,
            vec!["http://127.0.0.1:1".into(); MEMBERS],
        )?;
    }

    let (mut binaries, etcd_version) = args.systems.binaries(&systems)?;
    if systems.contains(&System::Reference) {
        // This very binary serves the reference (its hidden `reference-server` task).
        let me = std::env::current_exe().context("finding this xtask binary")?;
        binaries.insert(System::Reference, me);
    }

    let parent = crate::target_dir().join("bench-vs-etcd");
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    tmp.disable_cleanup(args.keep_data);

    // Every port for every system at once, so their ports never overlap.
    let ports = free_ports(2 * MEMBERS * systems.len())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;

    eprintln!(
        "bench-vs-etcd: {} workloads x {} client counts x {} s per system; data under {}",
        args.workloads.len(),
        args.clients.len(),
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

    let rows = rows(&args.workloads, &args.clients, &results);
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
        .any(|m| m.report.errors > 0);
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

/// Starts `system`'s cluster, runs every case at every client count against it, stops it.
/// Reports gathered before a failure are kept in `got`.
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
    let pids = cluster.pids();
    for &case in args.workloads.iter().filter(|&&c| runs(system, c)) {
        for &clients in &args.clients {
            let config = args.config(case, clients, cluster.client_urls())?;
            eprintln!(
                "{system}: {} with {clients} clients for {:?}",
                case.name(),
                args.duration
            );
            // CPU time from the first timed request (after any preload) to the report.
            let mut cpu_start = None;
            let report = runtime
                .block_on(bench::run_observed(config, || {
                    cpu_start = cpu::cpu_secs(&pids).ok();
                }))
                .with_context(|| format!("{system} {}", case.name()))?;
            let cpu_secs = match (cpu_start, cpu::cpu_secs(&pids)) {
                (Some(a), Ok(b)) => Some(b - a),
                _ => None,
            };
            eprintln!(
                "{system}: {} x{clients}: {:.0} ops/s, p50 {} µs, p99 {} µs, p99.9 {} µs, \
                 {} CPU-s per 1k ops, {} conflicts, {} errors",
                case.name(),
                report.throughput_ops_per_sec,
                report.latency.p50_us,
                report.latency.p99_us,
                report.latency.p999_us,
                fmt_opt(cpu_per_kop(cpu_secs, &report).map(|c| format!("{c:.3}"))),
                report.conflicts,
                report.errors
            );
            got.reports.push(Measured {
                case,
                clients,
                report,
                cpu_secs,
            });
        }
    }
    cluster.stop()
}

/// Server CPU seconds per 1,000 answered operations.
fn cpu_per_kop(cpu_secs: Option<f64>, r: &BenchReport) -> Option<f64> {
    per_kop(cpu_secs, r.ops_ok + r.conflicts)
}

fn per_kop(cpu_secs: Option<f64>, answered: u64) -> Option<f64> {
    let cpu = cpu_secs?;
    (answered > 0).then(|| cpu * 1000.0 / answered as f64)
}

/// The binaries that run etcd's and Synod's members, for those of `systems` that have members
/// (etcd checked to exist, Synod built unless given), and etcd's version line.
pub(crate) fn member_binaries(
    systems: &[System],
    synod_bin: Option<&Path>,
    etcd_bin: &Path,
) -> anyhow::Result<(BTreeMap<System, PathBuf>, Option<String>)> {
    let mut binaries = BTreeMap::new();
    let mut etcd_version = None;
    if systems.contains(&System::Etcd) {
        if !etcd_bin.exists() {
            bail!(
                "etcd not found at {}; install it with:\n  {ETCD_INSTALL}",
                etcd_bin.display()
            );
        }
        etcd_version = Some(version_line(etcd_bin));
        binaries.insert(System::Etcd, absolute(etcd_bin)?);
    }
    if systems.contains(&System::Synod) {
        let bin = match synod_bin {
            Some(bin) => absolute(bin)?,
            None => build_synod()?,
        };
        binaries.insert(System::Synod, bin);
    }
    Ok((binaries, etcd_version))
}

/// The flags every benchmark of Synod beside etcd shares: which systems, and their binaries.
#[derive(clap::Args, Debug)]
pub struct SystemsArgs {
    /// Run against one system only (no ratios).
    #[arg(long, value_enum)]
    pub only: Option<System>,
    /// The synod binary [default: build it with `cargo build --release -p synod`].
    #[arg(long)]
    pub synod_bin: Option<PathBuf>,
    /// The etcd binary (3.4 from Debian's etcd-server package).
    #[arg(long, default_value = DEFAULT_ETCD_BIN)]
    pub etcd_bin: PathBuf,
}

impl SystemsArgs {
    /// The systems with members (etcd and Synod, or the one `--only` names) for a benchmark
    /// of what only members do (`what`): the reference server has none.
    pub fn member_systems(&self, what: &str) -> anyhow::Result<Vec<System>> {
        match self.only {
            None => Ok(vec![System::Etcd, System::Synod]),
            Some(System::Reference) => {
                bail!("--only reference: the reference server has no members ({what})")
            }
            Some(system) => Ok(vec![system]),
        }
    }

    /// The member binaries of `systems` ([`member_binaries`]).
    pub fn binaries(
        &self,
        systems: &[System],
    ) -> anyhow::Result<(BTreeMap<System, PathBuf>, Option<String>)> {
        member_binaries(systems, self.synod_bin.as_deref(), &self.etcd_bin)
    }
}

/// The flags every benchmark of Synod alone (no etcd beside it) shares.
#[derive(clap::Args, Debug)]
pub struct SynodAloneArgs {
    /// The synod binary [default: build it with `cargo build --release -p synod`].
    #[arg(long)]
    pub synod_bin: Option<PathBuf>,
    /// Do not draw progress bars.
    #[arg(long)]
    pub no_progress: bool,
}

impl SynodAloneArgs {
    /// The synod binary (built unless given) and a fresh directory `target/NAME` for the
    /// benchmark's clusters.
    pub fn synod_alone(&self, name: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        synod_alone(self.synod_bin.as_deref(), name)
    }
}

/// The binary that runs Synod's members (built unless given), for the benchmarks of Synod alone,
/// and a fresh directory `target/NAME` for their clusters.
pub(crate) fn synod_alone(
    synod_bin: Option<&Path>,
    name: &str,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (mut binaries, _) =
        member_binaries(&[System::Synod], synod_bin, Path::new(DEFAULT_ETCD_BIN))?;
    let bin = binaries
        .remove(&System::Synod)
        .context("member_binaries gives Synod's binary when asked for it")?;
    let parent = crate::target_dir().join(name);
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    Ok((bin, parent))
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
    p999_us: u64,
    /// Server CPU seconds per 1,000 answered operations (all members).
    cpu_per_kop: Option<f64>,
    errors: u64,
}

impl Figures {
    fn of(m: &Measured) -> Self {
        let r = &m.report;
        let cpu_per_kop = cpu_per_kop(m.cpu_secs, r);
        if r.config.workload == Workload::Watch {
            if let Some(events) = r.by_op.get(bench::WATCH_EVENT) {
                return Figures {
                    throughput: events.throughput_ops_per_sec,
                    p50_us: events.latency.p50_us,
                    p99_us: events.latency.p99_us,
                    p999_us: events.latency.p999_us,
                    cpu_per_kop,
                    errors: r.errors,
                };
            }
        }
        Figures {
            throughput: r.throughput_ops_per_sec,
            p50_us: r.latency.p50_us,
            p99_us: r.latency.p99_us,
            p999_us: r.latency.p999_us,
            cpu_per_kop,
            errors: r.errors,
        }
    }
}

/// One case at one client count, each system's figures.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    case: Case,
    clients: usize,
    by_system: BTreeMap<System, Figures>,
}

/// a / b, when b is not zero.
fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// The ratios a row prints: Synod over etcd, and Synod over the reference.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Ratios {
    throughput: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    p999: Option<f64>,
    cpu: Option<f64>,
}

impl Row {
    fn synod_over(&self, other: System) -> Option<Ratios> {
        let (o, s) = (
            self.by_system.get(&other)?,
            self.by_system.get(&System::Synod)?,
        );
        Some(Ratios {
            throughput: ratio(s.throughput, o.throughput),
            p50: ratio(s.p50_us as f64, o.p50_us as f64),
            p99: ratio(s.p99_us as f64, o.p99_us as f64),
            p999: ratio(s.p999_us as f64, o.p999_us as f64),
            cpu: s
                .cpu_per_kop
                .zip(o.cpu_per_kop)
                .and_then(|(s, o)| ratio(s, o)),
        })
    }
}

fn rows(cases: &[Case], clients: &[usize], results: &BTreeMap<System, SystemResults>) -> Vec<Row> {
    let mut out = Vec::new();
    for &case in cases {
        for &n in clients {
            let by_system = results
                .iter()
                .filter_map(|(&system, r)| {
                    r.reports
                        .iter()
                        .find(|m| m.case == case && m.clients == n)
                        .map(|m| (system, Figures::of(m)))
                })
                .collect();
            out.push(Row {
                case,
                clients: n,
                by_system,
            });
        }
    }
    out
}

fn header(args: &BenchVsEtcdArgs, etcd_version: Option<&str>) -> String {
    let mut s = format!(
        "{MEMBERS} members per replicated system on loopback, each syncing to disk; the \
         reference is one in-memory process (no replication, no fsync); clients {:?}, {} \
         conns, {:.0} s per point, {} keys of {} B, values of {} B, mixed {} % reads",
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

/// The table: a line per workload, client count and system, then Synod's ratios.
fn table(rows: &[Row], systems: &[System]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:>7} {:<9} | {:>9} | {:>8} {:>8} {:>8} | {:>10} | {:>6}",
        "workload",
        "clients",
        "system",
        "ops/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "CPU-s/1k",
        "errors"
    );
    for r in rows {
        for system in systems {
            let f = r.by_system.get(system);
            let _ = writeln!(
                out,
                "{:<8} {:>7} {:<9} | {:>9} | {:>8} {:>8} {:>8} | {:>10} | {:>6}",
                r.case.name(),
                r.clients,
                system.name(),
                fmt_opt(f.map(|f| format!("{:.0}", f.throughput))),
                fmt_opt(f.map(|f| f.p50_us)),
                fmt_opt(f.map(|f| f.p99_us)),
                fmt_opt(f.map(|f| f.p999_us)),
                fmt_opt(f.and_then(|f| f.cpu_per_kop).map(|c| format!("{c:.3}"))),
                fmt_opt(f.map(|f| f.errors)),
            );
        }
        for other in [System::Etcd, System::Reference] {
            if let Some(q) = r.synod_over(other) {
                let _ = writeln!(
                    out,
                    "{:<8} {:>7} {:<9} | {:>9} | {:>8} {:>8} {:>8} | {:>10} |",
                    "",
                    "",
                    format!("syn/{}", &other.name()[..3]),
                    fmt_ratio(q.throughput),
                    fmt_ratio(q.p50),
                    fmt_ratio(q.p99),
                    fmt_ratio(q.p999),
                    fmt_ratio(q.cpu),
                );
            }
        }
    }
    out.push_str(
        "syn/etc = synod / etcd, syn/ref = synod / reference, measured in this run: above 1 \
         favours Synod for ops/s, below 1 for latency and CPU. CPU-s/1k = server CPU seconds \
         (every process of the system) per 1,000 answered operations.",
    );
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
        let reports: Vec<serde_json::Value> = r
            .reports
            .iter()
            .map(|m| {
                json!({
                    "workload": m.case.name(),
                    "clients": m.clients,
                    "server_cpu_secs": m.cpu_secs,
                    "server_cpu_secs_per_1k_ops": cpu_per_kop(m.cpu_secs, &m.report),
                    "report": m.report,
                })
            })
            .collect();
        systems.insert(
            system.name().to_string(),
            json!({ "reports": reports, "failure": r.failure }),
        );
    }
    let ratios: Vec<serde_json::Value> = rows
        .iter()
        .map(|row| {
            let q = |other| {
                row.synod_over(other).map(|q| {
                    json!({
                        "throughput": q.throughput, "p50": q.p50, "p99": q.p99,
                        "p999": q.p999, "cpu_per_op": q.cpu,
                    })
                })
            };
            json!({
                "workload": row.case.name(),
                "clients": row.clients,
                "synod_over_etcd": q(System::Etcd),
                "synod_over_reference": q(System::Reference),
            })
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
        "ratios": ratios,
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
        assert_eq!(
            a.systems(),
            vec![System::Etcd, System::Synod, System::Reference]
        );
        assert_eq!(a.clients, vec![32]);
        assert_eq!(a.systems.etcd_bin, PathBuf::from("/usr/bin/etcd"));
        // 6 workloads x 3 systems (the reference skips watch) stays within three minutes.
        let points = a.workloads.len() * 3 - 1;
        let load = a.duration * points as u32;
        assert!(load <= Duration::from_secs(180), "{load:?}");
        assert!(!runs(System::Reference, Case::Watch));
        assert!(runs(System::Reference, Case::TxnCas) && runs(System::Synod, Case::Watch));
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
            "5,64",
            "--conns",
            "2",
            "--value-size",
            "100",
        ])
        .unwrap();
        assert_eq!(a.systems(), vec![System::Etcd]);
        assert_eq!(a.workloads, vec![Case::GetS, Case::TxnCas]);
        assert_eq!(a.clients, vec![5, 64]);
        let eps = vec!["http://127.0.0.1:1".to_string(); 3];
        let c = a.config(Case::GetS, 5, eps.clone()).unwrap();
        assert_eq!(c.workload, Workload::Get);
        assert_eq!(c.consistency, Consistency::Serializable);
        assert_eq!(c.limit, Limit::Duration(Duration::from_secs(3)));
        assert_eq!((c.clients, c.conns, c.value_size), (5, 2, 100));
        let c = a.config(Case::GetL, 64, eps.clone()).unwrap();
        assert_eq!(c.consistency, Consistency::Linearizable);
        assert_eq!(c.clients, 64);

        assert!(a.config(Case::Put, 0, eps).is_err());
        assert!(parse(&["--workloads", "delete"]).is_err());
        assert!(parse(&["--only", "zookeeper"]).is_err());
        assert_eq!(
            parse(&["--only", "reference"]).unwrap().systems(),
            vec![System::Reference]
        );
    }

    fn figures(throughput: f64, p50_us: u64, p99_us: u64, cpu: Option<f64>) -> Figures {
        Figures {
            throughput,
            p50_us,
            p99_us,
            p999_us: 2 * p99_us,
            cpu_per_kop: cpu,
            errors: 0,
        }
    }

    #[test]
    fn ratios_are_synod_over_etcd_and_over_the_reference() {
        let row = Row {
            case: Case::Put,
            clients: 64,
            by_system: BTreeMap::from([
                (System::Etcd, figures(1000.0, 400, 2000, Some(0.2))),
                (System::Synod, figures(1500.0, 200, 3000, Some(0.05))),
                (System::Reference, figures(6000.0, 100, 600, Some(0.025))),
            ]),
        };
        let e = row.synod_over(System::Etcd).unwrap();
        assert_eq!(
            (e.throughput, e.p50, e.p99, e.p999, e.cpu),
            (Some(1.5), Some(0.5), Some(1.5), Some(1.5), Some(0.25))
        );
        let r = row.synod_over(System::Reference).unwrap();
        assert_eq!(
            (r.throughput, r.p50, r.cpu),
            (Some(0.25), Some(2.0), Some(2.0))
        );
        let one_sided = Row {
            by_system: BTreeMap::from([(System::Etcd, figures(1.0, 1, 1, None))]),
            ..row.clone()
        };
        assert_eq!(one_sided.synod_over(System::Etcd), None);
        assert_eq!(ratio(5.0, 0.0), None, "no division by zero");

        let systems = [System::Etcd, System::Synod, System::Reference];
        let text = table(&[row, one_sided], &systems);
        // Ratio lines have columns; the closing note names the ratios too.
        let ratio_lines = |name: &str| -> Vec<&str> {
            text.lines()
                .filter(|l| l.contains(name) && l.contains('|'))
                .collect()
        };
        let syn_etc = ratio_lines("syn/etc");
        assert_eq!(syn_etc.len(), 1, "one ratio line for the full row: {text}");
        assert!(
            syn_etc[0].contains("1.50x") && syn_etc[0].contains("0.25x"),
            "{text}"
        );
        let syn_ref = ratio_lines("syn/ref")[0];
        assert!(
            syn_ref.contains("0.25x") && syn_ref.contains("2.00x"),
            "{text}"
        );
        // CPU per 1k ops printed beside each system's throughput.
        let synod = text
            .lines()
            .find(|l| l.starts_with("put") && l.contains("synod"))
            .unwrap();
        assert!(synod.contains("1500") && synod.contains("0.050"), "{text}");
        // The one-sided row shows dashes for the missing systems.
        let missing = text
            .lines()
            .filter(|l| l.starts_with("put") && l.contains("reference"))
            .nth(1)
            .unwrap();
        assert!(missing.contains(" - "), "{text}");
    }

    #[test]
    fn cpu_per_kop_counts_answered_operations() {
        assert_eq!(per_kop(Some(1.0), 0), None, "no ops, no figure");
        assert_eq!(per_kop(Some(1.0), 2000), Some(0.5));
        assert_eq!(per_kop(None, 2000), None);
    }
}
