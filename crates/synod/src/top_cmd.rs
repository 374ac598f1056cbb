//! `synod top`: a live view of a cluster in the terminal. Each member's role, ballot, chosen
//! and applied slots, lag, fsync latency, request rate and latency percentiles, leader changes
//! and alarm, read from every endpoint's `/metrics` and etcd's `Maintenance.Status`, and
//! redrawn every second. Works against etcd too, showing what its metrics allow (etcd has no
//! ballot, role or request-latency metric: the role comes from `etcd_server_is_leader`, the
//! rate from gRPC's counters). `Status` says what metrics do not: the version, the db size,
//! whether a member is a learner, its alarms, and (where metrics lack them, as on etcd) its
//! leader, term and indexes, which stand in for the ballot and the chosen and applied slots.
//!
//! Two faces over one model: a terminal UI (ratatui on crossterm: a table per refresh, `q` or
//! Esc quits) and, with `--once`, the same columns as plain text (two scrapes an interval
//! apart, so rates and percentiles are over that interval), which reads the same in a log, a
//! script and a test. Rates and percentiles are always over the last interval: the difference
//! of two scrapes' counters and histogram buckets, as Prometheus's `rate` would compute them.

use clap::Args;
use etcd_proto::etcdserverpb::StatusResponse;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

/// Flags of `synod top`.
#[derive(Args, Debug)]
pub struct TopArgs {
    /// The members' client URLs (`http://host:port` or `host:port`), comma-separated.
    #[arg(
        long,
        default_value = "http://127.0.0.1:2379,http://127.0.0.1:22379,http://127.0.0.1:32379"
    )]
    endpoints: String,
    /// Print the table once as text and exit (for scripts and tests): two scrapes one interval
    /// apart, so the rates cover that interval.
    #[arg(long)]
    once: bool,
    /// Milliseconds between redraws.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
}

/// One scrape or connection gets this long.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
/// The most of a `/metrics` answer read (a member's is some tens of KiB).
const METRICS_BYTES_MAX: u64 = 8 << 20;
/// The shortest interval between refreshes.
const INTERVAL_MIN: Duration = Duration::from_millis(100);

/// The columns, in order, for both faces.
const COLUMNS: [&str; 17] = [
    "ENDPOINT",
    "MEMBER",
    "ROLE",
    "BALLOT",
    "CHOSEN",
    "APPLIED",
    "LAG",
    "FSYNC99ms",
    "LEADERS",
    "ALARM",
    "REQ/s",
    "P50ms",
    "P99ms",
    "RTT99ms",
    "VERSION",
    "DB_MiB",
    "LEARNER",
];

/// `synod top`.
pub fn run(args: TopArgs) -> anyhow::Result<bool> {
    let endpoints: Vec<String> = args
        .endpoints
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(String::from)
        .collect();
    if endpoints.is_empty() {
        anyhow::bail!("--endpoints names no member");
    }
    let interval = Duration::from_millis(args.interval_ms).max(INTERVAL_MIN);
    let asker = Asker::new()?;
    if args.once {
        let first = asker.scrape_all(&endpoints);
        std::thread::sleep(interval);
        let view = View::new(&endpoints, &first, &asker.scrape_all(&endpoints), interval);
        let _ = std::io::stdout().write_all(view.text().as_bytes());
        // Exit 1 when some member could not be read: a script can tell.
        return Ok(view.rows.iter().all(|r| r.cells.is_some()));
    }
    tui::run(&asker, &endpoints, interval)?;
    Ok(true)
}

/// What one member said in one round: its metrics and its `Status` (`None`: that one did
/// not answer).
#[derive(Clone, Default)]
struct Seen {
    metrics: Option<Metrics>,
    status: Option<StatusResponse>,
}

impl Seen {
    fn answered(&self) -> bool {
        self.metrics.is_some() || self.status.is_some()
    }
}

/// What one round of asking every endpoint returned.
type Scrape = Vec<Seen>;

/// Asks the members: `/metrics` over plain HTTP, `Status` over gRPC (on its own small
/// runtime, every endpoint at once, so one member that does not answer costs one timeout).
struct Asker {
    runtime: tokio::runtime::Runtime,
}

impl Asker {
    fn new() -> anyhow::Result<Asker> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Asker { runtime })
    }

    fn scrape_all(&self, endpoints: &[String]) -> Scrape {
        let statuses = self.runtime.block_on(async {
            let mut calls = tokio::task::JoinSet::new();
            for (i, e) in endpoints.iter().enumerate() {
                let url = if e.contains("://") {
                    e.clone()
                } else {
                    format!("http://{e}")
                };
                calls.spawn(async move { (i, bench::status(&url, SCRAPE_TIMEOUT).await.ok()) });
            }
            let mut statuses = vec![None; endpoints.len()];
            while let Some(Ok((i, status))) = calls.join_next().await {
                statuses[i] = status;
            }
            statuses
        });
        endpoints
            .iter()
            .zip(statuses)
            .map(|(e, status)| Seen {
                metrics: fetch(e).ok().map(|t| Metrics::parse(&t)),
                status,
            })
            .collect()
    }
}

/// Samples by name, summed over label sets; the few labels shown; the histograms' buckets.
#[derive(Default, Clone)]
struct Metrics {
    values: BTreeMap<String, f64>,
    server_id: Option<String>,
    role: Option<String>,
    /// Cumulative bucket counts by histogram name and upper bound, summed over other labels.
    buckets: BTreeMap<String, BTreeMap<Bound, f64>>,
}

/// A bucket's upper bound, ordered (`+Inf` last) by `f64::total_cmp`.
#[derive(Clone, Copy, Debug)]
struct Bound(f64);
impl PartialEq for Bound {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Bound {}
impl PartialOrd for Bound {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bound {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut m = Metrics::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            if name == "etcd_server_id" {
                m.server_id = label(labels, "server_id");
            }
            if name == "synod_paxos_role" && value == 1.0 {
                m.role = label(labels, "role");
            }
            if let Some(histogram) = name.strip_suffix("_bucket") {
                let le = label(labels, "le").and_then(|le| match le.as_str() {
                    "+Inf" => Some(f64::INFINITY),
                    le => le.parse().ok(),
                });
                if let Some(le) = le {
                    *m.buckets
                        .entry(histogram.to_string())
                        .or_default()
                        .entry(Bound(le))
                        .or_default() += value;
                }
            }
            *m.values.entry(name.to_string()).or_default() += value;
        }
        m
    }

    fn get(&self, name: &str) -> Option<f64> {
        self.values.get(name).copied()
    }

    fn role(&self) -> String {
        if let Some(role) = &self.role {
            return role.clone();
        }
        // Gauges of 0 or 1.
        let leads = self.get("etcd_server_is_leader").map(|v| v > 0.5);
        let has_leader = self.get("etcd_server_has_leader").map(|v| v > 0.5);
        match (leads, has_leader) {
            (Some(true), _) => "leader".into(),
            (_, Some(false)) => "no leader".into(),
            (Some(false), _) => "follower".into(),
            _ => "-".into(),
        }
    }

    /// The `q` quantile of histogram `name` over what it gained since `before` (all of it
    /// without `before`), interpolated within the bucket as Prometheus's `histogram_quantile`.
    fn quantile(&self, before: Option<&Metrics>, name: &str, q: f64) -> Option<f64> {
        let now = self.buckets.get(name)?;
        let then = before.and_then(|b| b.buckets.get(name));
        let gained: Vec<(f64, f64)> = now
            .iter()
            .map(|(le, n)| {
                let old = then.and_then(|t| t.get(le)).copied().unwrap_or(0.0);
                // A counter that went back is a restarted member: take what it has now.
                (le.0, if *n >= old { n - old } else { *n })
            })
            .collect();
        quantile(&gained, q)
    }
}

/// Prometheus's `histogram_quantile` over cumulative `(upper bound, count)` buckets.
fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut below = (0.0, 0.0);
    for &(le, n) in buckets {
        if n >= rank {
            if le.is_infinite() {
                // Above the highest finite bound: say that bound.
                return Some(below.0);
            }
            let width = n - below.1;
            let into = if width > 0.0 {
                (rank - below.1) / width
            } else {
                1.0
            };
            return Some(below.0 + (le - below.0) * into);
        }
        below = (le, n);
    }
    None
}

fn label(labels: &str, key: &str) -> Option<String> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let end = labels[start..].find('"')?;
    Some(labels[start..start + end].to_string())
}

/// `GET /metrics` (plain HTTP endpoints only).
fn fetch(endpoint: &str) -> std::io::Result<String> {
    let answer = bench::http::get(endpoint, "/metrics", SCRAPE_TIMEOUT, METRICS_BYTES_MAX)?;
    if answer.status != 200 {
        return Err(std::io::Error::other(format!("answered {}", answer.status)));
    }
    Ok(answer.body)
}

fn whole(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

fn millis(v: Option<f64>) -> String {
    v.map_or("-".into(), |s| format!("{:.2}", s * 1000.0))
}

/// The chosen slots of a member: the committed count of its metrics, else `Status`'s index.
fn chosen_of(seen: &Seen) -> Option<f64> {
    seen.metrics
        .as_ref()
        .and_then(|m| m.get("etcd_server_proposals_committed_total"))
        .or_else(|| seen.status.as_ref().map(|s| s.raft_index as f64))
}

/// The role from the metrics, else from `Status` (it leads when the leader it names is
/// itself); a learner says so whatever the metrics say.
fn role_of(m: &Metrics, status: Option<&StatusResponse>) -> String {
    if status.is_some_and(|s| s.is_learner) {
        return "learner".into();
    }
    let role = m.role();
    if role != "-" {
        return role;
    }
    match status {
        Some(s) if s.leader == 0 => "no leader".into(),
        Some(s) if Some(s.leader) == s.header.as_ref().map(|h| h.member_id) => "leader".into(),
        Some(_) => "follower".into(),
        None => role,
    }
}

/// One member's line: its endpoint and, if it answered, the cells after it.
struct Line {
    endpoint: String,
    cells: Option<Vec<String>>,
    leads: bool,
}

/// What both faces draw: the lines, and the cluster's summary.
struct View {
    rows: Vec<Line>,
    /// Members that say they lead (more than one: a stale one not yet told).
    leaders: usize,
    leader_changes_max: f64,
    alarms: Vec<String>,
}

impl View {
    /// The view of `now`, with rates and percentiles over what changed since `before`, which
    /// was scraped `elapsed` earlier.
    fn new(endpoints: &[String], before: &Scrape, now: &Scrape, elapsed: Duration) -> View {
        let chosen_max = now.iter().filter_map(chosen_of).fold(0.0_f64, f64::max);
        let secs = elapsed.as_secs_f64().max(1e-3);
        let mut view = View {
            rows: Vec::new(),
            leaders: 0,
            leader_changes_max: 0.0,
            alarms: Vec::new(),
        };
        let none = Metrics::default();
        for (i, endpoint) in endpoints.iter().enumerate() {
            let seen = now.get(i).filter(|s| s.answered());
            let Some(seen) = seen else {
                view.rows.push(Line {
                    endpoint: endpoint.clone(),
                    cells: None,
                    leads: false,
                });
                continue;
            };
            // A member whose `/metrics` did not answer still shows what `Status` says.
            let m = seen.metrics.as_ref().unwrap_or(&none);
            let status = seen.status.as_ref();
            let then = before.get(i).and_then(|s| s.metrics.as_ref());
            let chosen = chosen_of(seen);
            let role = role_of(m, status);
            let leads = role == "leader";
            view.leaders += usize::from(leads);
            let changes = m.get("etcd_server_leader_changes_seen_total");
            view.leader_changes_max = view.leader_changes_max.max(changes.unwrap_or(0.0));
            // `Status.errors` holds etcd's alarm lines ("memberID:… alarm:NOSPACE").
            let status_alarm = status.map(|s| {
                s.errors
                    .iter()
                    .any(|e| e.contains("NOSPACE") || e.contains("NO_SPACE"))
            });
            let alarm = match m
                .get("synod_member_nospace_alarm")
                .map(|a| a > 0.5)
                .or(status_alarm)
            {
                Some(true) => {
                    view.alarms.push(format!("NOSPACE at {endpoint}"));
                    "NOSPACE"
                }
                Some(false) => "none",
                None => "-",
            };
            // Calls answered over the interval; a counter that went back counts from zero.
            let handled = m.get("grpc_server_handled_total").map(|n| {
                let old = then
                    .and_then(|t| t.get("grpc_server_handled_total"))
                    .unwrap_or(0.0);
                (if n >= old { n - old } else { n }) / secs
            });
            let request = "synod_request_duration_seconds";
            let from_status = |f: fn(&StatusResponse) -> u64| status.map(|s| f(s) as f64);
            let member = m.server_id.clone().or_else(|| {
                let id = status?.header.as_ref()?.member_id;
                Some(format!("{id:x}"))
            });
            let cells = vec![
                member.unwrap_or_else(|| "-".into()),
                role,
                whole(
                    m.get("synod_paxos_ballot_round")
                        .or(from_status(|s| s.raft_term)),
                ),
                whole(chosen),
                whole(
                    m.get("etcd_server_proposals_applied_total")
                        .or(from_status(|s| s.raft_applied_index)),
                ),
                whole(chosen.map(|c| chosen_max - c)),
                millis(m.quantile(then, "etcd_disk_wal_fsync_duration_seconds", 0.99)),
                whole(changes),
                alarm.into(),
                handled.map_or("-".into(), |r| format!("{r:.1}")),
                millis(m.quantile(then, request, 0.5)),
                millis(m.quantile(then, request, 0.99)),
                millis(m.quantile(then, "etcd_network_peer_round_trip_time_seconds", 0.99)),
                status.map_or("-".into(), |s| s.version.clone()),
                status.map_or("-".into(), |s| {
                    format!("{:.1}", s.db_size as f64 / (1024.0 * 1024.0))
                }),
                status.map_or("-".into(), |s| {
                    if s.is_learner { "yes" } else { "no" }.into()
                }),
            ];
            view.rows.push(Line {
                endpoint: endpoint.clone(),
                cells: Some(cells),
                leads,
            });
        }
        view
    }

    /// The cluster in one line: who leads, how often it changed, alarms.
    fn summary(&self) -> String {
        let leader = match self.leaders {
            0 => "no member leads".to_string(),
            1 => format!(
                "leader: {}",
                self.rows
                    .iter()
                    .find(|r| r.leads)
                    .map_or("-", |r| r.endpoint.as_str())
            ),
            n => format!("{n} members say they lead"),
        };
        let alarms = if self.alarms.is_empty() {
            "alarms: none".to_string()
        } else {
            format!("alarms: {}", self.alarms.join(", "))
        };
        format!(
            "{leader} | leader changes seen: {} | {alarms}",
            self.leader_changes_max
        )
    }

    /// The plain-text face: a header line, one line per member, then the summary.
    fn text(&self) -> String {
        let widths = [28, 17, 13, 7, 10, 10, 6, 9, 8, 7, 8, 8, 8, 8, 8, 7, 7];
        let mut out = String::new();
        let mut push = |cells: &[&str]| {
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let sep = if i + 1 == cells.len() { "\n" } else { " " };
                if i < 3 {
                    out.push_str(&format!("{cell:<w$}{sep}"));
                } else {
                    out.push_str(&format!("{cell:>w$}{sep}"));
                }
            }
        };
        push(&COLUMNS);
        for row in &self.rows {
            match &row.cells {
                Some(cells) => {
                    let mut all = vec![row.endpoint.as_str()];
                    all.extend(cells.iter().map(String::as_str));
                    push(&all);
                }
                None => push(&[row.endpoint.as_str(), "unreachable"]),
            }
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }
}

/// The terminal face: the same view in a ratatui table, redrawn every interval.
mod tui {
    use super::{Asker, View, COLUMNS};
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    use ratatui::layout::{Constraint, Layout};
    use ratatui::style::{Modifier, Style, Stylize};
    use ratatui::text::Line;
    use ratatui::widgets::{Block, Paragraph, Row, Table};
    use ratatui::Frame;
    use std::time::{Duration, Instant};

    /// Draws until `q`, Esc or Ctrl-C. The terminal is restored on every way out (ratatui's
    /// `init` installs a panic hook that restores it too).
    pub fn run(asker: &Asker, endpoints: &[String], interval: Duration) -> anyhow::Result<()> {
        let mut terminal = ratatui::try_init()?;
        let result = draw_until_quit(&mut terminal, asker, endpoints, interval);
        ratatui::try_restore()?;
        result
    }

    fn draw_until_quit(
        terminal: &mut ratatui::DefaultTerminal,
        asker: &Asker,
        endpoints: &[String],
        interval: Duration,
    ) -> anyhow::Result<()> {
        let mut before = asker.scrape_all(endpoints);
        let mut scraped = Instant::now();
        let mut view = View::new(endpoints, &before, &before, interval);
        loop {
            terminal.draw(|f| draw(f, &view, interval))?;
            // Wait for a key until the next refresh is due.
            let due = scraped + interval;
            while let Some(left) = due.checked_duration_since(Instant::now()) {
                if event::poll(left)? {
                    if let Event::Key(key) = event::read()? {
                        let ctrl_c = key.code == KeyCode::Char('c')
                            && key.modifiers.contains(KeyModifiers::CONTROL);
                        if key.kind == KeyEventKind::Press
                            && (matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c)
                        {
                            return Ok(());
                        }
                    }
                }
            }
            let now = asker.scrape_all(endpoints);
            view = View::new(endpoints, &before, &now, scraped.elapsed());
            before = now;
            scraped = Instant::now();
        }
    }

    fn draw(frame: &mut Frame, view: &View, interval: Duration) {
        let [top, table, help] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(frame.area());
        frame.render_widget(Paragraph::new(view.summary()).bold(), top);
        let header = Row::new(COLUMNS).style(Style::new().add_modifier(Modifier::REVERSED));
        let rows = view.rows.iter().map(|r| {
            let mut cells = vec![r.endpoint.clone()];
            match &r.cells {
                Some(c) => cells.extend(c.iter().cloned()),
                None => cells.push("unreachable".into()),
            }
            let row = Row::new(cells);
            if r.leads {
                row.bold()
            } else if r.cells.is_none() {
                row.dim()
            } else {
                row
            }
        });
        let widths = [
            Constraint::Min(22),
            Constraint::Length(17),
            Constraint::Length(13),
            Constraint::Length(7),
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(6),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(7),
        ];
        let block = Block::bordered().title(" synod top ");
        frame.render_widget(Table::new(rows, widths).header(header).block(block), table);
        let hint = format!(
            "q: quit | every {} ms from /metrics and Status | rates and percentiles over the last interval",
            interval.as_millis()
        );
        frame.render_widget(Line::from(hint).dim(), help);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEADER: &str = "# HELP x\netcd_server_id{server_id=\"ab\"} 1\nsynod_paxos_role{role=\"follower\"} 0\nsynod_paxos_role{role=\"leader\"} 1\nsynod_paxos_ballot_round 3\netcd_server_proposals_committed_total 10\netcd_server_proposals_applied_total 10\netcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.001\"} 5\netcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.002\"} 10\netcd_disk_wal_fsync_duration_seconds_bucket{le=\"+Inf\"} 10\netcd_server_leader_changes_seen_total 2\ngrpc_server_handled_total{grpc_code=\"OK\"} 30\n";

    #[test]
    fn a_row_shows_role_lag_fsync_and_rates_from_the_text_format() {
        // etcd: no role or ballot metric.
        let etcd = "etcd_server_is_leader 0\netcd_server_has_leader 1\netcd_server_proposals_committed_total 7\n";
        // 20 calls and 5 fsyncs (all between 1 and 2 ms) since the scrape before.
        let before_leader = LEADER
            .replace("OK\"} 30", "OK\"} 10")
            .replace("le=\"0.002\"} 10", "le=\"0.002\"} 5")
            .replace("le=\"+Inf\"} 10", "le=\"+Inf\"} 5");
        assert_ne!(before_leader, LEADER);
        let metrics = |text: &str| Seen {
            metrics: Some(Metrics::parse(text)),
            status: None,
        };
        // A member whose /metrics did not answer but whose Status did: a learner of etcd.
        let status_only = Seen {
            metrics: None,
            status: Some(StatusResponse {
                header: Some(etcd_proto::etcdserverpb::ResponseHeader {
                    member_id: 0xcd,
                    ..Default::default()
                }),
                version: "3.4.31".into(),
                db_size: 3 << 20,
                leader: 0xab,
                raft_index: 9,
                raft_term: 4,
                raft_applied_index: 8,
                errors: vec!["memberID:205 alarm:NOSPACE ".into()],
                is_learner: true,
                ..Default::default()
            }),
        };
        let before = vec![
            metrics(&before_leader),
            Seen::default(),
            Seen::default(),
            Seen::default(),
        ];
        let now = vec![metrics(LEADER), metrics(etcd), Seen::default(), status_only];
        let endpoints: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        let view = View::new(&endpoints, &before, &now, Duration::from_secs(2));
        let text = view.text();
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(lines[0], COLUMNS);
        // 20 calls over 2 s; fsync p99 over the interval: rank 4.95 of the 5 in (1 ms, 2 ms].
        assert_eq!(
            lines[1],
            [
                "a", "ab", "leader", "3", "10", "10", "0", "1.99", "2", "-", "10.0", "-", "-", "-",
                "-", "-", "-"
            ]
        );
        assert_eq!(
            lines[2],
            [
                "b", "-", "follower", "-", "7", "-", "3", "-", "-", "-", "-", "-", "-", "-", "-",
                "-", "-"
            ]
        );
        assert_eq!(lines[3], ["c", "unreachable"]);
        // Everything from Status: the term stands for the ballot, the index for the chosen
        // slot (lag against the leader's 10), the alarm line for the alarm.
        assert_eq!(
            lines[4],
            [
                "d", "cd", "learner", "4", "9", "8", "1", "-", "-", "NOSPACE", "-", "-", "-", "-",
                "3.4.31", "3.0", "yes"
            ]
        );
        assert_eq!(
            text.lines().nth(5),
            Some("leader: a | leader changes seen: 2 | alarms: NOSPACE at d")
        );
    }

    #[test]
    fn quantiles_follow_prometheus_interpolation() {
        let b = [(0.1, 10.0), (0.2, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(quantile(&b, 0.5), Some(0.1));
        assert!((quantile(&b, 0.75).unwrap() - 0.15).abs() < 1e-9);
        assert_eq!(quantile(&[(0.1, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
        // Everything above the top bound: the top bound.
        assert_eq!(
            quantile(&[(0.1, 0.0), (f64::INFINITY, 4.0)], 0.5),
            Some(0.1)
        );
    }
}
