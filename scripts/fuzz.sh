#!/usr/bin/env bash
# Fuzzes every decoder of untrusted input (issue 6): the cargo-fuzz targets in fuzz/.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 60)
#   FUZZ_TARGETS="wal_replay kv_request" scripts/fuzz.sh 30     (a subset)
#   FUZZ_SANITIZER=address scripts/fuzz.sh                      (ASan; default: none)
#
# First replays every input under fuzz/regressions/<target>/ (each a crash found before, kept
# so it stays fixed), then fuzzes each target in turn for the given time, one process at a
# time (no -jobs/-workers: libFuzzer's default is one in-process worker, and the machine is
# shared). Prints per target the CPU seconds used, executions, libFuzzer's final coverage
# (cov: edges, ft: features) and any crash; exits non-zero if a regression input or a fuzzing
# run crashed.
#
# The sanitizer defaults to none: the fuzzed code is safe Rust (the libraries' one `unsafe`,
# posix_fallocate in StdFs, is never reached from a harness, which all run on MemFs), so
# AddressSanitizer would only halve the executions. Debug assertions and overflow checks stay
# on (cargo fuzz's default), so an arithmetic overflow on hostile input is a crash.
#
# The seed corpus fuzz/corpus/<target>/ is read but never written: inputs a run finds go to
# fuzz/work/<target>/ (ignored by git), which later runs also start from. Regenerate the seeds
# with `cargo run --example gen_corpus` in fuzz/.
set -euo pipefail

cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
SANITIZER="${FUZZ_SANITIZER:-none}"
TARGETS=(${FUZZ_TARGETS:-peer_frame wal_replay snapshot_chunk kv_request})

if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || [ "$SECONDS_PER_TARGET" -lt 1 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2
    exit 2
fi

# libFuzzer needs nightly (sanitizer coverage flags); cargo-fuzz is an ordinary crate.
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz.sh: installing the nightly toolchain" >&2
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

# Longest input per target: enough for a raw WAL segment or a snapshot transfer script,
# short enough that each execution stays cheap.
max_len() {
    case "$1" in
        wal_replay) echo 16384 ;;
        snapshot_chunk | kv_request) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

FUZZ=(cargo +nightly fuzz run --sanitizer "$SANITIZER")
mkdir -p fuzz/work
# Build every target up front, so that build time is not counted as fuzzing time.
cargo +nightly fuzz build --sanitizer "$SANITIZER"

failed=0

echo "== replaying regression inputs"
for t in "${TARGETS[@]}"; do
    shopt -s nullglob
    inputs=(fuzz/regressions/"$t"/*)
    shopt -u nullglob
    if [ "${#inputs[@]}" -eq 0 ]; then
        echo "$t: no regression inputs"
        continue
    fi
    # Given files instead of corpus directories, libFuzzer runs each once and exits.
    if "${FUZZ[@]}" "$t" "${inputs[@]}" -- -timeout=10 >"fuzz/work/replay-$t.log" 2>&1; then
        echo "$t: ${#inputs[@]} regression inputs pass"
    else
        echo "$t: a regression input FAILS (log: fuzz/work/replay-$t.log)"
        failed=1
    fi
done

echo "== fuzzing ${SECONDS_PER_TARGET}s per target (sanitizer: $SANITIZER)"
summary=()
for t in "${TARGETS[@]}"; do
    work="fuzz/work/$t"
    log="fuzz/work/$t.log"
    mkdir -p "$work" "fuzz/artifacts/$t"
    before=$(find "fuzz/artifacts/$t" -type f | sort)
    # bash's `time` reports the CPU the run used (user + system), libFuzzer included.
    TIMEFORMAT='%U %S'
    set +e
    { time "${FUZZ[@]}" "$t" "$work" "fuzz/corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -max_len="$(max_len "$t")" \
        -print_final_stats=1 >"$log" 2>&1; } 2>"fuzz/work/$t.time"
    status=$?
    set -e
    read -r user sys <"fuzz/work/$t.time"
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }')
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    # The last status line ("#N DONE cov: ... ft: ..."), or the last pulse before a crash.
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    after=$(find "fuzz/artifacts/$t" -type f | sort)
    new=$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')
    if [ "$status" -ne 0 ] || [ -n "$new" ]; then
        failed=1
        crash="CRASH (exit $status) ${new//$'\n'/ }"
    else
        crash="no crashes"
    fi
    line=$(printf '%-15s cpu %7ss  execs %10s  cov %5s  ft %6s  %s' \
        "$t" "$cpu" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$crash")
    echo "$line"
    summary+=("$line")
done

echo "== summary"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
    cat >&2 <<'EOF'
fuzz.sh: crashes found. For each artifact:
  cargo +nightly fuzz tmin -s none <target> <artifact>      (minimize)
  cp <minimized> fuzz/regressions/<target>/<short-name>     (keep it as a regression input)
and see fuzz/work/<target>.log for the panic and stack.
EOF
    exit 1
fi
