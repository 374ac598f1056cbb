//! `synod top`: each member's role, ballot, chosen and applied slots, lag, fsync time, leader
//! changes and alarm, read from every endpoint's `/metrics` and redrawn every second (or
//! printed once with `--once`). Works against etcd too, showing what its metrics allow (etcd
//! has no ballot or role metric: the role comes from `etcd_server_is_leader`).
//!
//! A plain text table redrawn with ANSI escapes, not a full terminal UI: it reads the same in
//! a terminal, a log and a test.

use clap::Args;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
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
    /// Print the table once and exit (for scripts and tests).
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
    loop {
        let rows: Vec<Row> = endpoints.iter().map(|e| Row::scrape(e)).collect();
        let table = render(&rows);
        let mut out = std::io::stdout();
        if args.once {
            let _ = out.write_all(table.as_bytes());
            // Exit 1 when some member could not be read: a script can tell.
            return Ok(rows.iter().all(|r| r.metrics.is_some()));
        }
        // Clear the screen and home the cursor, then draw.
        let _ = write!(out, "\x1b[2J\x1b[H{table}");
        let _ = out.flush();
        std::thread::sleep(Duration::from_millis(args.interval_ms.max(100)));
    }
}

/// One member as its metrics describe it (`None`: it did not answer).
struct Row {
    endpoint: String,
    metrics: Option<Metrics>,
}

/// Samples by name, summed over label sets, plus the label of the few labelled ones we show.
#[derive(Default)]
struct Metrics {
    values: BTreeMap<String, f64>,
    server_id: Option<String>,
    role: Option<String>,
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
}

fn label(labels: &str, key: &str) -> Option<String> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let end = labels[start..].find('"')?;
    Some(labels[start..start + end].to_string())
}

impl Row {
    fn scrape(endpoint: &str) -> Row {
        Row {
            endpoint: endpoint.to_string(),
            metrics: fetch(endpoint).ok().map(|t| Metrics::parse(&t)),
        }
    }
}

/// `GET /metrics` over HTTP/1.1 (plain HTTP endpoints only).
fn fetch(endpoint: &str) -> std::io::Result<String> {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let addr = host
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{host} resolves to nothing")))?;
    let mut stream = TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT)?;
    stream.set_read_timeout(Some(SCRAPE_TIMEOUT))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.take(METRICS_BYTES_MAX).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!(
            "answered {}",
            head.lines().next().unwrap_or_default()
        )));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Ok(dechunk(body));
    }
    Ok(body.to_string())
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}

fn whole(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

/// The table: one line per member, lag against the furthest chosen slot among them.
fn render(rows: &[Row]) -> String {
    let chosen_max = rows
        .iter()
        .filter_map(|r| {
            r.metrics
                .as_ref()?
                .get("etcd_server_proposals_committed_total")
        })
        .fold(0.0_f64, f64::max);
    let mut out = format!(
        "{:<28} {:<17} {:<13} {:>7} {:>10} {:>10} {:>6} {:>9} {:>8} {:>6}\n",
        "ENDPOINT",
        "MEMBER",
        "ROLE",
        "BALLOT",
        "CHOSEN",
        "APPLIED",
        "LAG",
        "FSYNC ms",
        "LEADERS",
        "ALARM"
    );
    for row in rows {
        let Some(m) = &row.metrics else {
            out.push_str(&format!("{:<28} unreachable\n", row.endpoint));
            continue;
        };
        let chosen = m.get("etcd_server_proposals_committed_total");
        let fsync = match (
            m.get("etcd_disk_wal_fsync_duration_seconds_sum"),
            m.get("etcd_disk_wal_fsync_duration_seconds_count"),
        ) {
            (Some(sum), Some(n)) if n > 0.0 => format!("{:.2}", sum * 1000.0 / n),
            _ => "-".into(),
        };
        let alarm = match m.get("synod_member_nospace_alarm").map(|a| a > 0.5) {
            Some(true) => "NOSPACE",
            Some(false) => "none",
            None => "-",
        };
        out.push_str(&format!(
            "{:<28} {:<17} {:<13} {:>7} {:>10} {:>10} {:>6} {:>9} {:>8} {:>6}\n",
            row.endpoint,
            m.server_id.as_deref().unwrap_or("-"),
            m.role(),
            whole(m.get("synod_paxos_ballot_round")),
            whole(chosen),
            whole(m.get("etcd_server_proposals_applied_total")),
            whole(chosen.map(|c| chosen_max - c)),
            fsync,
            whole(m.get("etcd_server_leader_changes_seen_total")),
            alarm,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_shows_role_lag_and_fsync_from_the_text_format() {
        let leader = "# HELP x\netcd_server_id{server_id=\"ab\"} 1\nsynod_paxos_role{role=\"follower\"} 0\nsynod_paxos_role{role=\"leader\"} 1\nsynod_paxos_ballot_round 3\netcd_server_proposals_committed_total 10\netcd_server_proposals_applied_total 10\netcd_disk_wal_fsync_duration_seconds_sum 0.02\netcd_disk_wal_fsync_duration_seconds_count 10\netcd_server_leader_changes_seen_total 2\n";
        // etcd: no role or ballot metric.
        let etcd = "etcd_server_is_leader 0\netcd_server_has_leader 1\netcd_server_proposals_committed_total 7\n";
        let rows = vec![
            Row {
                endpoint: "a".into(),
                metrics: Some(Metrics::parse(leader)),
            },
            Row {
                endpoint: "b".into(),
                metrics: Some(Metrics::parse(etcd)),
            },
            Row {
                endpoint: "c".into(),
                metrics: None,
            },
        ];
        let table = render(&rows);
        let lines: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[1],
            ["a", "ab", "leader", "3", "10", "10", "0", "2.00", "2", "-"]
        );
        assert_eq!(
            lines[2],
            ["b", "-", "follower", "-", "7", "-", "3", "-", "-", "-"]
        );
        assert_eq!(lines[3], ["c", "unreachable"]);
    }
}
