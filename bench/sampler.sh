#!/usr/bin/env bash
# The sampler's cost, printed as a markdown section on stdout (progress on
# stderr) for bench/RESULTS.md:
#
#   1. Target slowdown: a CPU-bound target 30 Python frames deep does a fixed
#      amount of work and times it; each tool samples it the whole time, at
#      100 Hz and 1 kHz: fpd's sampler (build/tests/test_sampler's `sample`
#      mode: the library fpd links, printing collapsed stacks) and
#      `py-spy record` (default: it pauses the target for each sample) and
#      `py-spy record --nonblocking`.  RUNS runs per row (default 5),
#      interleaved, medians compared with the no-tool runs.
#   2. In-kernel cost per sample at depth 30 (plain and --native), from the
#      kernel's BPF run-time statistics: the program also runs (and returns at once) for every
#      other process on each CPU, so the cost of those runs, measured against
#      a sleeping target, is taken out.
#
# Needs root, `make` and `make unit` (for build/tests/test_sampler), and
# bench/venv (bench/run.sh creates it) for py-spy.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=$(realpath "${FPD_BUILD:-build}")
RUNS=${RUNS:-5}
WORK_ITERS=${WORK_ITERS:-30000000}
SAMPLER=$BUILD/tests/test_sampler
PYSPY=bench/venv/bin/py-spy

log() { printf '%s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "bench/sampler.sh: needs root (BPF)"; exit 1; }
[ -x "$SAMPLER" ] || { log "bench/sampler.sh: $SAMPLER is missing: run make unit"; exit 1; }
[ -x "$PYSPY" ] || { log "bench/sampler.sh: $PYSPY is missing (bench/run.sh installs it): py-spy rows skipped"; PYSPY=""; }

PYROOT=$(pyenv root 2>/dev/null || echo /root/.pyenv)
TARGET_PY=""
for v in 3.12 3.11; do
	for d in "$PYROOT"/versions/$v.*; do
		[ -x "$d/bin/python3" ] && TARGET_PY="$d/bin/python3" && break 2
	done
done
[ -n "$TARGET_PY" ] || { log "bench/sampler.sh: no pyenv CPython 3.12 or 3.11"; exit 1; }

WORK=$(mktemp -d /tmp/fpd-sampler-bench.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

# The target: ITERS additions 30 frames deep, timed from after a 1 s pause
# that lets the tool attach; prints the wall and CPU seconds the work took.
cat >"$WORK/target.py" <<'EOF'
import sys, time

def dive(n, iters):
    if n > 1:
        return dive(n - 1, iters)
    x = 0
    for i in range(iters):
        x += i
    return x

iters = int(sys.argv[1])
if iters == 0:  # the kernel-cost target: work forever
    while True:
        dive(30, 1000000)
time.sleep(1.0)
t0, c0 = time.perf_counter(), time.process_time()
dive(30, iters)
print("%.4f %.4f" % (time.perf_counter() - t0, time.process_time() - c0))
EOF

# One timed run of the target under tool $1 at rate $2; prints "wall cpu" seconds.
run_once() {
	local tool=$1 rate=$2 out=$WORK/out.txt pid tp=""
	"$TARGET_PY" "$WORK/target.py" "$WORK_ITERS" >"$out" &
	pid=$!
	case $tool in
	none) ;;
	fpd) "$SAMPLER" sample "$pid" 600 "$rate" >/dev/null 2>"$WORK/tool.err" & tp=$! ;;
	py-spy) "$PYSPY" record -r "$rate" -p "$pid" -f raw -o "$WORK/pyspy.txt" >/dev/null 2>&1 & tp=$! ;;
	py-spy-nb) "$PYSPY" record --nonblocking -r "$rate" -p "$pid" -f raw -o "$WORK/pyspy.txt" >/dev/null 2>&1 & tp=$! ;;
	esac
	wait "$pid"
	if [ -n "$tp" ]; then
		# Both tools end by themselves once the target has exited.
		wait "$tp" || true
	fi
	cat "$out"
}

ROWS=("none 0" "fpd 100" "fpd 1000")
if [ -n "$PYSPY" ]; then
	ROWS+=("py-spy 100" "py-spy 1000" "py-spy-nb 100" "py-spy-nb 1000")
fi
declare -A TIMES
log "slowdown: $TARGET_PY, $WORK_ITERS iterations 30 frames deep, $RUNS runs per row"
for ((r = 1; r <= RUNS; r++)); do
	for row in "${ROWS[@]}"; do
		t=$(run_once $row)
		TIMES[$row]="${TIMES[$row]:-} ${t/ /:}"
		log "  run $r: $row: wall, cpu $t s"
	done
done

# Kernel cost: runs and run time of the program while sampling a spinning
# target, minus the runs that only filtered out another process.
kernel_stats() { # pid rate seconds [native] -> "samples runs ns insns"
	"$SAMPLER" sample "$1" "$3" "$2" stats ${4:-} | sed -n 's/^# samples=\([0-9]*\) .*kernel_runs=\([0-9]*\) kernel_ns=\([0-9]*\) kernel_insns=\([0-9]*\)$/\1 \2 \3 \4/p'
}
log "kernel cost: 1 kHz, 10 s against a spinning and a sleeping target"
"$TARGET_PY" "$WORK/target.py" 0 >/dev/null &
SPIN=$!
PIDS+=($SPIN)
"$TARGET_PY" -c "import time; time.sleep(3600)" &
SLEEP=$!
PIDS+=($SLEEP)
sleep 1
read -r s_busy r_busy ns_busy insns < <(kernel_stats "$SPIN" 1000 10)
read -r s_idle r_idle ns_idle _ < <(kernel_stats "$SLEEP" 1000 10)
read -r s_nat r_nat ns_nat _ < <(kernel_stats "$SPIN" 1000 10 native)

/usr/bin/python3 - "$TARGET_PY" "$RUNS" "$WORK_ITERS" "$s_busy" "$r_busy" "$ns_busy" "$r_idle" "$ns_idle" "$insns" "$s_nat" "$r_nat" "$ns_nat" "${ROWS[@]}" <<EOF
import os, platform, statistics, subprocess, sys
target_py, runs, iters = sys.argv[1], sys.argv[2], sys.argv[3]
s_busy, r_busy, ns_busy, r_idle, ns_idle, insns, s_nat, r_nat, ns_nat = map(int, sys.argv[4:13])
rows = sys.argv[13:]
times = {}
$(for row in "${ROWS[@]}"; do printf 'times["%s"] = [tuple(map(float, x.split(":"))) for x in "%s".split()]\n' "$row" "${TIMES[$row]}"; done)
names = {"none": "no tool", "fpd": "fpd sampler (BPF)", "py-spy": "py-spy record",
         "py-spy-nb": "py-spy record --nonblocking"}
base = [statistics.median(t[i] for t in times["none 0"]) for i in (0, 1)]
cpu = subprocess.run("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2", shell=True,
                     stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
print("## Sampler: target slowdown and in-kernel cost\n")
print("Generated by bench/sampler.sh: %s CPUs (%s), kernel %s, load average at the end %s." % (
    os.cpu_count(), cpu or "?", platform.release(), " ".join(open("/proc/loadavg").read().split()[:3])))
print("Target: \`%s\`, %s additions 30 Python frames deep, timed by the target;" % (target_py, iters))
print("%s runs per row, interleaved; slowdown = median / median without a tool - 1.  CPU time is" % runs)
print("the target's own (process_time): it includes the BPF program, which runs in the target's")
print("context, and is the stable figure on a loaded machine; wall time also shows py-spy's pauses")
print("of the target (its default mode), but varies with the machine's load.")
print()
print("| tool | rate Hz | median CPU s | CPU slowdown | median wall s | wall slowdown |")
print("|---|---:|---:|---:|---:|---:|")
for row in rows:
    tool, rate = row.split()
    m = [statistics.median(t[i] for t in times[row]) for i in (0, 1)]
    slow = ["-" if tool == "none" else "%+.1f %%" % ((m[i] / base[i] - 1) * 100) for i in (0, 1)]
    print("| %s | %s | %.3f | %s | %.3f | %s |" % (names[tool], rate if rate != "0" else "-",
          m[1], slow[1], m[0], slow[0]))
idle_cost = ns_idle / r_idle if r_idle else 0.0
per_sample = (ns_busy - (r_busy - s_busy) * idle_cost) / s_busy if s_busy else float("nan")
print()
print("In-kernel cost at depth 30 (BPF run-time statistics, 1 kHz per CPU, 10 s):")
print("%d samples of the target out of %d program runs, %.0f ns per run that only filters out" % (s_busy, r_busy, idle_cost))
print("another process (measured against a sleeping target): **%.2f µs per sample** (goal <= 5 µs)." % (per_sample / 1000))
print("The verifier processed %d instructions to load the program for this interpreter." % insns)
nat = (ns_nat - (r_nat - s_nat) * idle_cost) / s_nat if s_nat else float("nan")
print("With --native (registers and up to 16 KiB of user stack copied per sample): %.2f µs per sample." % (nat / 1000))
EOF
