//! Opening a trace written by `synod sim --seed S --trace FILE`: its header names the seed,
//! cluster, fault profile and bug, which is all a replay needs. The records that follow are
//! checked against the replay, so a trace from another version of the simulator is refused
//! rather than shown wrongly.

use crate::model::{Protocol, SessionError, Spec};
use serde::Serialize;
use sim::trace::{TraceHeader, TraceRecord, TRACE_FORMAT_NAME, TRACE_FORMAT_VERSION};
use sim::Simulation;

/// Most trace records compared with the replay (the page sends the start of a file).
pub const RECORDS_CHECKED_MAX: usize = 5_000;

/// A trace opened: the session that replays it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Opened {
    /// The session: Multi-Paxos with the trace's seed, size, faults and bug.
    pub spec: Spec,
    /// How many records of the trace the replay reproduced exactly.
    pub checked: usize,
}

fn bad(what: impl Into<String>) -> SessionError {
    SessionError::Trace(what.into())
}

/// Reads `text` (JSON lines: a header, then records) and checks it against a replay.
pub fn open(text: &str) -> Result<Opened, SessionError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().ok_or_else(|| bad("the file is empty"))?;
    let header: TraceHeader = serde_json::from_str(first)
        .map_err(|e| bad(format!("the first line is not a trace header: {e}")))?;
    if header.format != TRACE_FORMAT_NAME || header.version != TRACE_FORMAT_VERSION {
        return Err(bad(format!(
            "format {:?} version {} (this explorer reads {TRACE_FORMAT_NAME} version {TRACE_FORMAT_VERSION})",
            header.format, header.version
        )));
    }
    if header.bugs.len() > 1 {
        return Err(bad("the explorer replays at most one planted bug"));
    }
    let faults = serde_json::to_value(header.faults)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .ok_or_else(|| bad("unreadable fault profile"))?;
    let spec = Spec {
        protocol: Protocol::Multi,
        nodes: header.nodes,
        seed: header.seed,
        bug: header.bugs.first().cloned(),
        faults: Some(faults),
        spares: 0,
        quorums: None,
        leases: None,
        two_phase: false,
    };
    crate::session::validate(&spec, &[])?;
    let bugs = crate::session::bugs_of(&spec)?;
    let config = crate::multi::config(&spec, bugs)?;
    let mut sim = Simulation::new(config);
    let replayed = sim.trace_header();
    if replayed != header {
        return Err(bad(
            "the header's options differ from what this build's simulator uses for that seed",
        ));
    }
    let mut checked = 0;
    for (n, line) in lines.take(RECORDS_CHECKED_MAX).enumerate() {
        let record: TraceRecord = match serde_json::from_str(line) {
            Ok(r) => r,
            // The page may cut the file in the middle of a line: stop at the first bad one.
            Err(_) if n > 0 => break,
            Err(e) => return Err(bad(format!("line 2 is not a trace record: {e}"))),
        };
        while sim.trace().len() <= n {
            if !sim.step() {
                return Err(bad(format!("the replay ended before record {}", n + 1)));
            }
        }
        if sim.trace()[n] != record {
            return Err(bad(format!(
                "record {} differs from the replay: the trace was written by another version",
                n + 1
            )));
        }
        checked += 1;
    }
    Ok(Opened { spec, checked })
}
