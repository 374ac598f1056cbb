//! CPU time of server processes, from `/proc/<pid>/stat`: user plus system time of every
//! thread of the process, so a member's gRPC, core, WAL and transport threads all count.

use anyhow::{bail, Context as _};

/// The clock ticks per second `/proc` counts in.
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf reads a constant of the system; it has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// User + system seconds from the text of a `/proc/<pid>/stat` file. The command name (field
/// 2) is in parentheses and may hold spaces, so fields are counted after its last `)`.
pub fn parse_stat(text: &str, ticks_per_sec: f64) -> anyhow::Result<f64> {
    let Some(close) = text.rfind(')') else {
        bail!("no ')' in a stat line: {text:?}");
    };
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15 (proc(5)).
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .with_context(|| format!("a stat line without field {n}"))?
            .parse()
            .with_context(|| format!("field {n} of a stat line"))
    };
    Ok((field(14)? + field(15)?) as f64 / ticks_per_sec)
}

/// CPU seconds used so far by every process in `pids`, together.
pub fn cpu_secs(pids: &[u32]) -> anyhow::Result<f64> {
    let ticks = ticks_per_sec();
    let mut total = 0.0;
    for pid in pids {
        let path = format!("/proc/{pid}/stat");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        total += parse_stat(&text, ticks)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_user_plus_system_time() {
        // A command name with a space and a ')' inside, as proc(5) warns.
        let line =
            "4242 (synod node) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 9 0 \
                    100 1000 10 18446744073709551615";
        assert_eq!(parse_stat(line, 100.0).unwrap(), 4.0);
        assert!(parse_stat("4242 synod S 1", 100.0).is_err());
        assert!(parse_stat("1 (x) S 1 2", 100.0).is_err());
    }

    #[test]
    fn a_live_process_reads_and_a_gone_one_is_an_error() {
        assert!(cpu_secs(&[std::process::id()]).unwrap() >= 0.0);
        // Above the kernel's pid_max (at most 2^22), so never a live process.
        assert!(cpu_secs(&[u32::MAX]).is_err());
    }
}
