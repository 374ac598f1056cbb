//! A small real run of Disk Paxos: three processes (this test binary, re-executed as children)
//! share three directories as disks, on real files with `fdatasync`, and choose a value while
//! one directory stops working partway.
//!
//! The fault: tests run as root, for whom `chmod 000` stops nothing, so the parent *replaces
//! the directory with a regular file of the same name* (the directory is renamed away, a file
//! put in its place). Every request to that disk then fails with `ENOTDIR`: the driver opens
//! the disk's file for each request, so no process writes on through an old handle.
//!
//! Partway: each disk request sleeps `IO_DELAY` first (a slow disk), so a ballot takes tens of
//! milliseconds; the parent replaces the directory as soon as a child reports its first ballot,
//! and checks no child had decided by then. All three must decide the same value, one of the
//! three inputs, and the children must have seen requests fail.

use paxos::disk::{DiskConfig, DiskId, DiskPaxosOptions, DiskProcessor};
use paxos::{NodeId, PlantedBugs};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use storage::disk_paxos::BlockDisk;
use storage::StdFs;

const CHILD_ENV: &str = "SYNOD_DISK_PAXOS_CHILD";
const DIRS_ENV: &str = "SYNOD_DISK_PAXOS_DIRS";
const PROCESSORS: usize = 3;
const DISKS: usize = 3;
const IO_DELAY: Duration = Duration::from_millis(5);
const TICK: Duration = Duration::from_millis(1);
const CHILD_DEADLINE: Duration = Duration::from_secs(30);
/// Starts a child's report in its stdout, which it shares with the test harness's own text
/// (printed without a newline before the test's output).
const MARK: &str = "@disk-paxos@ ";

/// The test, or, inside a re-executed child, one processor.
#[test]
fn three_processes_decide_one_value_while_a_disk_directory_disappears() {
    if let Ok(id) = std::env::var(CHILD_ENV) {
        let dirs: Vec<PathBuf> = std::env::var(DIRS_ENV)
            .unwrap()
            .split(':')
            .map(PathBuf::from)
            .collect();
        child(NodeId(id.parse().unwrap()), &dirs);
        return;
    }
    parent();
}

fn input(id: NodeId) -> Vec<u8> {
    format!("value of processor {}", id.0).into_bytes()
}

/// One processor: a synchronous driver, one request at a time (so one processor's requests to
/// a disk are in order, as `DiskIo` requires), ticking every millisecond of idle time.
fn child(id: NodeId, dirs: &[PathBuf]) {
    let config = DiskConfig::new(PROCESSORS, DISKS).unwrap();
    let options = DiskPaxosOptions {
        phase_timeout_ticks: 2_000,
        retry_timeout_ticks: 5,
        retry_jitter_ticks: 60,
    };
    let disks: Vec<BlockDisk<StdFs>> = dirs
        .iter()
        .enumerate()
        .map(|(d, dir)| BlockDisk::new(StdFs::new(), dir, DiskId(d as u8), config))
        .collect();
    let mut p = DiskProcessor::new(id, config, options, PlantedBugs::none()).unwrap();
    p.propose(input(id)).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(id.0);
    let mut out = std::io::stdout().lock();
    let mut failed = 0u64;
    let mut ballots = 0u64;
    let started = Instant::now();
    while started.elapsed() < CHILD_DEADLINE {
        let ready = p.ready();
        if let Some(v) = ready.decided {
            writeln!(out, "{MARK}failed {failed}").unwrap();
            writeln!(out, "{MARK}decided {}", String::from_utf8_lossy(&v)).unwrap();
            out.flush().unwrap();
            return;
        }
        if ready.io.is_empty() {
            std::thread::sleep(TICK);
            p.tick(&mut rng);
        }
        for io in ready.io {
            std::thread::sleep(IO_DELAY);
            let disk = &disks[io.disk().0 as usize];
            let (completion, error) = disk.serve(id, io);
            if let Some(e) = error {
                failed += 1;
                writeln!(out, "{MARK}io-error {e}").unwrap();
            }
            p.completed(completion);
        }
        if p.counters().ballots > ballots {
            ballots = p.counters().ballots;
            writeln!(out, "{MARK}ballot {ballots}").unwrap();
            out.flush().unwrap();
        }
    }
    writeln!(out, "{MARK}undecided").unwrap();
}

struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

fn spawn(exe: &Path, id: u64, dirs: &str) -> Running {
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "three_processes_decide_one_value_while_a_disk_directory_disappears",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, id.to_string())
        .env(DIRS_ENV, dirs)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    Running { child, lines }
}

fn parent() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<PathBuf> = (0..DISKS)
        .map(|d| tmp.path().join(format!("disk{d}")))
        .collect();
    for d in &dirs {
        std::fs::create_dir(d).unwrap();
    }
    let joined = dirs
        .iter()
        .map(|d| d.to_str().unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<Running> = (1..=PROCESSORS as u64)
        .map(|id| spawn(&exe, id, &joined))
        .collect();

    let started = Instant::now();
    let mut decided: Vec<Option<String>> = vec![None; PROCESSORS];
    let mut failed = vec![0u64; PROCESSORS];
    let mut fault_at: Option<Duration> = None;
    let mut decided_before_fault = false;
    while decided.iter().any(Option::is_none) {
        assert!(
            started.elapsed() < CHILD_DEADLINE + Duration::from_secs(10),
            "children did not all decide: {decided:?}"
        );
        let mut idle = true;
        for (i, c) in children.iter_mut().enumerate() {
            while let Ok(line) = c.lines.try_recv() {
                idle = false;
                let Some(at) = line.find(MARK) else { continue };
                let line = &line[at + MARK.len()..];
                if std::env::var_os("SYNOD_DISK_PAXOS_VERBOSE").is_some() {
                    println!("{:>8.1?} p{} {line}", started.elapsed(), i + 1);
                }
                if let Some(v) = line.strip_prefix("decided ") {
                    decided[i] = Some(v.to_string());
                    decided_before_fault |= fault_at.is_none();
                } else if let Some(n) = line.strip_prefix("failed ") {
                    failed[i] = n.parse().unwrap();
                } else if line.starts_with("ballot ") && fault_at.is_none() {
                    // Partway: the first ballot has begun. The third disk's directory becomes
                    // a regular file.
                    let gone = tmp.path().join("disk2.gone");
                    std::fs::rename(&dirs[2], &gone).unwrap();
                    std::fs::write(&dirs[2], b"not a directory any more").unwrap();
                    fault_at = Some(started.elapsed());
                } else if line == "undecided" {
                    panic!("processor {} gave up undecided", i + 1);
                }
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    for c in &mut children {
        assert!(c.child.wait().unwrap().success());
    }
    let fault_at = fault_at.expect("the fault never fired: the run is void");
    assert!(
        !decided_before_fault,
        "a processor decided before the fault: the run is void"
    );
    println!(
        "disk paxos on real files: 3 processes, 3 directories; disk2 replaced by a file at \
         {fault_at:.1?}; all decided {:?} by {:.1?}; failed requests per processor {failed:?}",
        decided[0],
        started.elapsed()
    );
    let first = decided[0].clone().unwrap();
    assert!(
        decided.iter().all(|d| d.as_deref() == Some(first.as_str())),
        "disagreement: {decided:?}"
    );
    assert!((1..=PROCESSORS as u64).any(|id| input(NodeId(id)) == first.as_bytes()));
    assert!(
        failed.iter().sum::<u64>() > 0,
        "no request failed: the fault did not reach the driver"
    );
}
