//! The command line's side of `sim::campaign`, shared by every protocol of `synod sim`: which
//! seeds and how many threads, writing a single seed's trace, and printing a campaign's
//! report (JSON, or text with the wall time and one verdict: the line tests and
//! scripts/test.sh look for, or the failing count and the first failing seed's replay line).

use anyhow::{Context, Result};
use sim::campaign::{default_threads, CampaignTotals, SeedReport};
use std::io::Write;
use std::ops::Range;
use std::path::Path;
use std::time::Instant;

/// The seeds a command runs: the one `--seed`, else `--seeds`, else `default`.
pub(crate) fn seeds_of(
    seed: Option<u64>,
    seeds: Option<Range<u64>>,
    default: Range<u64>,
) -> Range<u64> {
    match seed {
        Some(s) => s..s + 1,
        None => seeds.unwrap_or(default),
    }
}

/// The planted bug named `name` among `known`, for `--bug`. Refused in a build without the
/// planted-bugs feature, where it would be compiled to nothing and silently ignored;
/// `command` is what to run instead (e.g. `sim --member`), `what` names the kind of bug.
pub(crate) fn planted_bug<B: Copy>(
    name: &str,
    known: &[B],
    name_of: fn(B) -> &'static str,
    (what, command): (&str, &str),
) -> Result<B> {
    if !sim::planted_bugs_available() {
        anyhow::bail!(
            "--bug needs a build with planted bugs: cargo run --release -p synod --features planted-bugs -- {command} ..."
        );
    }
    known
        .iter()
        .copied()
        .find(|b| name_of(*b) == name)
        .with_context(|| {
            let names: Vec<&str> = known.iter().map(|b| name_of(*b)).collect();
            format!("unknown {what} {name:?}; known: {}", names.join(", "))
        })
}

/// `--threads`, or every core.
pub(crate) fn threads_of(threads: Option<usize>) -> usize {
    threads.map_or_else(default_threads, |t| t.max(1))
}

/// Writes a single seed's trace lines to `path`, one a line.
pub(crate) fn write_trace_lines(path: &Path, lines: &[String]) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for line in lines {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// How a campaign's text ends.
pub(crate) struct Tail {
    /// Print the wall time since this instant (as `  wall time  ...`).
    pub wall_since: Option<Instant>,
}

/// Prints a campaign: its JSON, or its text report, the wall time and the verdict. Returns
/// whether every seed passed (the exit code).
pub(crate) fn print_campaign<T: CampaignTotals, R: SeedReport>(
    report: &T,
    runs: &[R],
    json: bool,
    tail: Tail,
) -> Result<bool> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(report.passed());
    }
    print!("{report}");
    if let Some(started) = tail.wall_since {
        println!("  wall time             {:.1?}", started.elapsed());
    }
    print_verdict(report, runs);
    Ok(report.passed())
}

/// The verdict line: every seed passed, or how many failed and how to replay the first.
pub(crate) fn print_verdict<T: CampaignTotals, R: SeedReport>(report: &T, runs: &[R]) {
    if report.passed() {
        println!("all {} seeds passed every check", report.seeds_run());
        return;
    }
    println!(
        "FAILED: {} of {} seeds; replay the first with:",
        report.failing_seed_count(),
        report.seeds_run()
    );
    if let Some(first) = runs.iter().find(|r| !r.passed()) {
        println!("  {}", first.replay_command());
    }
}
