//! Whole-store work of the member (encoding and decoding a snapshot, HashKV, a backup) on
//! threads of their own at a lower OS priority than the threads that serve requests.
//!
//! Such a pass takes seconds on a large store, and every member of a cluster starts its
//! snapshot at the same slot: three members on one 2-core machine, each encoding 120–180 MB at
//! full priority for 0.7–1.6 s, set the write tail (p99.9 of puts 270–400 ms in the 10 s
//! windows holding a snapshot, 75–85 ms in those without). At a nice of [`NICENESS`] the
//! scheduler gives a serving thread about ten times the share of a whole-store thread while
//! both want the CPU, and the work still runs (never starved, as an idle-class thread could
//! be: the log would grow until the snapshot is done).
//!
//! What it must never do: run a job that the core waits on for an answer to a heartbeat or a
//! write (those stay on the core's task and tokio's blocking pool), or lose a job: a thread
//! that cannot be started runs the job on tokio's blocking pool instead, at normal priority.

use std::sync::{Arc, Mutex};

/// How much lower than the serving threads whole-store work runs (Unix nice, 0 to 19).
const NICENESS: i32 = 10;

/// Runs `work` on a thread named `name` at a lower priority; never drops it.
pub(crate) fn spawn(name: &str, work: impl FnOnce() + Send + 'static) {
    // The job is shared with the fallback: if the thread cannot be started, its closure is
    // dropped unrun, and the job is taken back out.
    let job = Arc::new(Mutex::new(Some(work)));
    let on_thread = job.clone();
    let started = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            lower_priority();
            let work = on_thread.lock().ok().and_then(|mut w| w.take());
            if let Some(work) = work {
                work();
            }
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, job = name, "no thread for whole-store work; running it on the blocking pool");
        let work = job.lock().ok().and_then(|mut w| w.take());
        if let Some(work) = work {
            tokio::task::spawn_blocking(work);
        }
    }
}

/// Lowers the calling thread's priority (Linux: nice is per thread). Failing is harmless:
/// the work then runs at the priority it would have had.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on this thread's own id; no memory is shared.
        let rc = unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, NICENESS)
        };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a whole-store thread's priority");
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn whole_store_work_runs_at_a_lower_priority() {
        let (tx, rx) = std::sync::mpsc::channel();
        spawn("synod-test-bg", move || {
            // SAFETY: reads this thread's own nice value.
            let nice = unsafe {
                *libc::__errno_location() = 0;
                libc::getpriority(
                    libc::PRIO_PROCESS,
                    libc::syscall(libc::SYS_gettid) as libc::id_t,
                )
            };
            let _ = tx.send(nice);
        });
        let nice = rx.recv().expect("the job ran");
        let own = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        assert_eq!(
            nice,
            (own + NICENESS).min(19),
            "the job ran at the lowered priority"
        );
    }
}
