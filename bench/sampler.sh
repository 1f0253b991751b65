#!/usr/bin/env bash
# The sampler's cost, printed as a markdown section on stdout (progress on
# stderr) for bench/RESULTS.md:
#
#   1. Target slowdown: a CPU-bound target 30 Python frames deep does a fixed
#      amount of work and times it (CPU and wall); each tool samples it the
#      whole time, at 100 Hz and 1 kHz: `fpctl attach PID perf --format
#      collapsed` through a private fpd (it runs until the target exits and
#      writes the profile), `py-spy record` (default: it pauses the target
#      for each sample) and `py-spy record --nonblocking`.  One more row runs
#      fpd's sampler at 1 kHz on another, sleeping, Python process: its
#      cpu-clock interrupts still hit the target's CPU, but the program finds
#      nothing to walk there, so that row is what the interrupts alone cost.
#      The target is pinned to the last CPU and runs SCHED_FIFO there, fpd,
#      fpctl and py-spy are pinned to the others (taskset), so neither the
#      tools' own work nor the machine's other load take the target's CPU
#      (but for the 5 % a second the kernel keeps from real-time tasks).
#      RUNS rounds (default 10), each running every row once in turn;
#      slowdown = median over the rounds of (time with the tool / time
#      without it in the same round) - 1, which cancels the machine's load
#      drifting between rounds.  FPD_BASELINE=DIR adds the fpd rows of the
#      fpd and fpctl in DIR (e.g. a build of an older commit) to the same
#      rounds.
#   2. What the target loses to short interruptions: the same target spins
#      in a loop that reads the clock, 30 frames deep, and sums the gaps of
#      2 to 100 us between two reads: an interrupt and what runs in it (the
#      longer gaps are the real-time throttling above).  A cpu-clock
#      interrupt shows there as one gap per sample; the tick trigger adds
#      the walk to a tick that happens anyway.  This separates the direct
#      cost from the noise the machine's load leaves in the run times.
#      DETOUR_RUNS rounds (default 5) of 3 s per fpd row, medians.
#   3. In-kernel cost per sample at depth 30 (plain and --native), from the
#      kernel's BPF run-time statistics (kernel.bpf_stats_enabled, set for
#      the measurement and restored), which perf's --json profile event
#      carries: the program also runs (and returns at once) for every other
#      process, so the cost of those runs, measured against a sleeping
#      target with the same trigger, is taken out.
#
# Needs root, `make`, and bench/venv (bench/run.sh creates it) for py-spy.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=$(realpath "${FPD_BUILD:-build}")
BASELINE=${FPD_BASELINE:+$(realpath "$FPD_BASELINE")}
RUNS=${RUNS:-10}
WORK_ITERS=${WORK_ITERS:-30000000}
PYSPY=$(realpath bench/venv/bin/py-spy 2>/dev/null || true)

log() { printf '%s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { log "bench/sampler.sh: needs root (BPF)"; exit 1; }
for b in fpd fpctl; do
	[ -x "$BUILD/$b" ] || { log "bench/sampler.sh: $BUILD/$b is missing: run make"; exit 1; }
	[ -z "$BASELINE" ] || [ -x "$BASELINE/$b" ] || { log "bench/sampler.sh: $BASELINE/$b is missing"; exit 1; }
done
[ -x "$PYSPY" ] || { log "bench/sampler.sh: bench/venv/bin/py-spy is missing (bench/run.sh installs it): py-spy rows skipped"; PYSPY=""; }

PYROOT=$(pyenv root 2>/dev/null || echo /root/.pyenv)
TARGET_PY=""
for v in 3.12 3.11; do
	for d in "$PYROOT"/versions/$v.*; do
		[ -x "$d/bin/python3" ] && TARGET_PY="$d/bin/python3" && break 2
	done
done
[ -n "$TARGET_PY" ] || { log "bench/sampler.sh: no pyenv CPython 3.12 or 3.11"; exit 1; }

NCPU=$(nproc)
TARGET_CPU=$((NCPU - 1))
TOOL_CPUS=0
[ "$NCPU" -gt 2 ] && TOOL_CPUS="0-$((NCPU - 2))"
[ "$NCPU" -gt 1 ] || { log "bench/sampler.sh: needs 2 CPUs (the target and the tools apart)"; exit 1; }

# The target runs SCHED_FIFO on its CPU: other processes, which the machine
# may be busy with, cannot take that CPU from it and pollute its caches
# between two interrupts (the kernel still leaves them 5 % of each second).
TARGET_RUN=(taskset -c "$TARGET_CPU")
POLICY="normal scheduling"
if chrt -f 1 true 2>/dev/null; then
	TARGET_RUN=(chrt -f 1 "${TARGET_RUN[@]}")
	POLICY="SCHED_FIFO"
fi

WORK=$(mktemp -d /tmp/fpd-sampler-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
STATS_WAS=""
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	[ -z "$STATS_WAS" ] || sysctl -qw kernel.bpf_stats_enabled="$STATS_WAS"
	rm -rf "$WORK"
}
trap cleanup EXIT

# Private daemons, on the tools' CPUs.
start_fpd() { # dir socket
	taskset -c "$TOOL_CPUS" "$1/fpd" --socket "$2" >"$2.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 100); do [ -S "$2" ] && return; sleep 0.1; done
	log "bench/sampler.sh: $1/fpd did not start:"; cat "$2.log" >&2; exit 1
}
start_fpd "$BUILD" "$WORK/fpd.sock"
[ -z "$BASELINE" ] || start_fpd "$BASELINE" "$WORK/base.sock"
# Arrays, not functions: run in the background, $! is then fpctl itself (taskset execs it).
FPCTL=(taskset -c "$TOOL_CPUS" "$BUILD/fpctl" --socket "$WORK/fpd.sock")
BASE_FPCTL=(taskset -c "$TOOL_CPUS" "$BASELINE/fpctl" --socket "$WORK/base.sock")

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
# The interruption meter: SECONDS of reading the clock 30 frames deep; prints
# the gaps of 2-100 us per second and the ms per second they took.
cat >"$WORK/detour.py" <<'EOF'
import sys, time

def dive(n, secs):
    if n > 1:
        return dive(n - 1, secs)
    clock = time.perf_counter_ns
    prev = start = clock()
    end = start + int(secs * 1e9)
    n = lost = 0
    while prev < end:
        t = clock()
        d = t - prev
        prev = t
        if 2000 <= d < 100000:
            n += 1
            lost += d
    return n / secs, lost / 1e6 / secs

time.sleep(1.0)
print("%.0f %.3f" % dive(30, float(sys.argv[1])))
EOF
"$TARGET_PY" -c "import time; time.sleep(86400)" &
SLEEPER=$!
PIDS+=($SLEEPER)

# One run of a target under tool $1 at rate $2 ($3: the target's script and
# arguments, by default the timed work); prints what the target prints.
run_once() {
	local tool=$1 rate=$2 out=$WORK/out.txt pid tp="" stop=""
	# shellcheck disable=SC2086
	"${TARGET_RUN[@]}" "$TARGET_PY" ${3:-"$WORK/target.py" "$WORK_ITERS"} >"$out" &
	pid=$!
	# Attach once the interpreter is up (the target waits 1 s before its work).
	sleep 0.3
	case $tool in
	none) ;;
	fpd) "${FPCTL[@]}" attach "$pid" perf -r "$rate" --format collapsed -f "$WORK/p.collapsed" >"$WORK/tool.out" 2>&1 & tp=$! ;;
	fpd-base) "${BASE_FPCTL[@]}" attach "$pid" perf -r "$rate" --format collapsed -f "$WORK/p.collapsed" >"$WORK/tool.out" 2>&1 & tp=$! ;;
	fpd-elsewhere) "${FPCTL[@]}" attach "$SLEEPER" perf -r "$rate" --format collapsed -f "$WORK/q.collapsed" >"$WORK/tool.out" 2>&1 & tp=$! stop=1 ;;
	py-spy) taskset -c "$TOOL_CPUS" "$PYSPY" record -r "$rate" -p "$pid" -f raw -o "$WORK/pyspy.txt" >/dev/null 2>&1 & tp=$! ;;
	py-spy-nb) taskset -c "$TOOL_CPUS" "$PYSPY" record --nonblocking -r "$rate" -p "$pid" -f raw -o "$WORK/pyspy.txt" >/dev/null 2>&1 & tp=$! ;;
	esac
	wait "$pid"
	if [ -n "$tp" ]; then
		# The tools end by themselves once the target has exited, but for
		# the one sampling another process.
		[ -z "$stop" ] || kill -INT "$tp"
		wait "$tp" || { log "  $tool failed:"; cat "$WORK/tool.out" >&2; }
	fi
	cat "$out"
}

# Which trigger fpd uses at each rate (the tick up to CONFIG_HZ).
declare -A TRIG
for rate in 100 250 1000; do
	TRIG[$rate]=$("${FPCTL[@]}" --json attach "$SLEEPER" perf -d 0.2 -r $rate --format collapsed -f "$WORK/t.collapsed" |
		/usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["trigger"])')
done

ROWS=("none 0" "fpd 100" "fpd 1000" "fpd-elsewhere 1000")
[ -z "$BASELINE" ] || ROWS+=("fpd-base 100" "fpd-base 1000")
[ -z "$PYSPY" ] || ROWS+=("py-spy 100" "py-spy 1000" "py-spy-nb 100" "py-spy-nb 1000")
declare -A TIMES
log "slowdown: $TARGET_PY on CPU $TARGET_CPU, tools on CPU $TOOL_CPUS, $WORK_ITERS iterations 30 frames deep, $RUNS rounds"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= RUNS; r++)); do
	for row in "${ROWS[@]}"; do
		t=$(run_once $row)
		TIMES[$row]="${TIMES[$row]:-} ${t/ /:}"
		log "  round $r: $row: wall, cpu $t s"
	done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

DROWS=("none 0" "fpd 100" "fpd 1000" "fpd-elsewhere 1000")
[ -z "$BASELINE" ] || DROWS+=("fpd-base 100" "fpd-base 1000")
declare -A GAPS
log "interruptions: 3 s per run, ${DETOUR_RUNS:-5} rounds"
for ((r = 1; r <= ${DETOUR_RUNS:-5}; r++)); do
	for row in "${DROWS[@]}"; do
		t=$(run_once $row "$WORK/detour.py 3")
		GAPS[$row]="${GAPS[$row]:-} ${t/ /:}"
		log "  round $r: $row: gaps/s, ms/s $t"
	done
done

# Kernel cost: runs and run time of the program while sampling a spinning
# target, minus the runs that only filtered out another process.
STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1
kernel_stats() { # pid seconds rate [--native] -> "samples runs ns insns trigger"
	"${FPCTL[@]}" --json attach "$1" perf -d "$2" -r "$3" ${4:-} --format collapsed -f "$WORK/k.collapsed" |
		/usr/bin/python3 -c 'import json, sys; e = json.load(sys.stdin); b = e["bpf"]
print(e["samples"], b["runs"], b["run_ns"], b["verified_insns"], e["trigger"])'
}
log "kernel cost: 10 s each against a spinning and a sleeping target"
"${TARGET_RUN[@]}" "$TARGET_PY" "$WORK/target.py" 0 >/dev/null &
SPIN=$!
PIDS+=($SPIN)
sleep 1
KSTATS=()
for spec in "250" "1000" "1000 --native"; do
	read -r s r ns insns trig < <(kernel_stats "$SPIN" 10 $spec)
	read -r _ ri nsi _ _ < <(kernel_stats "$SLEEPER" 10 ${spec%% *})
	KSTATS+=("$spec:$s:$r:$ns:$insns:$trig:$ri:$nsi")
	log "  $spec Hz: $s samples, $r runs, $ns ns ($trig); sleeping target: $ri runs, $nsi ns"
done

/usr/bin/python3 - "$TARGET_PY" "$RUNS" "$WORK_ITERS" "$TARGET_CPU" "$TOOL_CPUS" "$LOAD_START" "$LOAD_END" "${BASELINE:-}" "${DETOUR_RUNS:-5}" "$POLICY" "${KSTATS[@]}" <<EOF
import os, platform, statistics, subprocess, sys
target_py, runs, iters, target_cpu, tool_cpus, load0, load1, baseline, druns, policy = sys.argv[1:11]
kstats = [k.split(":") for k in sys.argv[11:]]
ktrig = {$(for rate in "${!TRIG[@]}"; do printf '"%s": "%s", ' "$rate" "${TRIG[$rate]}"; done)}
times, gaps = {}, {}
$(for row in "${DROWS[@]}"; do printf 'gaps["%s"] = [tuple(map(float, x.split(":"))) for x in "%s".split()]\n' "$row" "${GAPS[$row]}"; done)
drows = [$(for row in "${DROWS[@]}"; do printf '"%s", ' "$row"; done)]
$(for row in "${ROWS[@]}"; do printf 'times["%s"] = [tuple(map(float, x.split(":"))) for x in "%s".split()]\n' "$row" "${TIMES[$row]}"; done)
rows = [$(for row in "${ROWS[@]}"; do printf '"%s", ' "$row"; done)]
names = {"none": "no tool", "fpd": "fpd sampler (BPF)", "fpd-base": "fpd sampler, baseline build",
         "fpd-elsewhere": "fpd sampler on another (sleeping) process",
         "py-spy": "py-spy record", "py-spy-nb": "py-spy record --nonblocking"}
base = times["none 0"]
cpu = subprocess.run("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2", shell=True,
                     stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
print("## Sampler: target slowdown and in-kernel cost\n")
print("Generated by \`bench/sampler.sh\` (RUNS=%s%s): %s CPUs (%s), kernel %s; load average %s at the" % (
    runs, " FPD_BASELINE=%s" % baseline if baseline else "", os.cpu_count(), cpu or "?", platform.release(), load0))
print("start, %s at the end.  Target: \`%s\`, %s additions 30 Python frames deep, timed by" % (load1, target_py, iters))
print("the target, pinned to CPU %s (%s); fpd, fpctl and py-spy pinned to CPU %s.  %s rounds of every row;" % (target_cpu, policy, tool_cpus, runs))
print("slowdown = median over the rounds of (time with the tool / time without it in the same")
print("round) - 1.  CPU time is the target's own (process_time): it includes the interrupts and")
print("the BPF program, which run in the target's context; wall time also shows py-spy's pauses")
print("of the target (its default mode).  fpd samples in the scheduler tick, an interrupt the")
print("kernel takes anyway, up to the tick's rate (CONFIG_HZ); above it every tick samples and")
print("cpu-clock perf events, an interrupt each, add the rest: the trigger column.")
print()
print("| tool | rate Hz | trigger | median CPU s | CPU slowdown | median wall s | wall slowdown |")
print("|---|---:|---|---:|---:|---:|---:|")
for row in rows:
    tool, rate = row.split()
    t = times[row]
    m = [statistics.median(x[i] for x in t) for i in (0, 1)]
    if tool == "none":
        slow = ["-", "-"]
    else:
        slow = ["%+.1f %%" % (statistics.median(x[i] / b[i] for x, b in zip(t, base)) * 100 - 100) for i in (0, 1)]
    trig = {"fpd": ktrig.get(rate, "?"), "fpd-elsewhere": ktrig.get(rate, "?"),
            "fpd-base": "as built"}.get(tool, "-")
    print("| %s | %s | %s | %.3f | %s | %.3f | %s |" % (names[tool], rate if rate != "0" else "-", trig,
          m[1], slow[1], m[0], slow[0]))
print()
print("Short interruptions of the target (gaps of 2-100 µs while it reads the clock in a loop 30")
print("frames deep; median of %s runs of 3 s per row, same pinning):" % druns)
print()
print("| tool | rate Hz | trigger | gaps per s | ms per s lost | more than without a tool |")
print("|---|---:|---|---:|---:|---:|")
g0 = [statistics.median(x[i] for x in gaps["none 0"]) for i in (0, 1)]
for row in drows:
    tool, rate = row.split()
    g = [statistics.median(x[i] for x in gaps[row]) for i in (0, 1)]
    trig = {"fpd": ktrig.get(rate, "?"), "fpd-elsewhere": ktrig.get(rate, "?"),
            "fpd-base": "as built"}.get(tool, "-")
    more = "-" if tool == "none" else "%+.2f %% of the CPU" % ((g[1] - g0[1]) / 10)
    print("| %s | %s | %s | %.0f | %.2f | %s |" % (names[tool], rate if rate != "0" else "-", trig, g[0], g[1], more))
print()
print("In-kernel cost at depth 30 (BPF run-time statistics, 10 s each, per CPU rate as given):")
print()
print("| rate | trigger | samples of the target | program runs | ns per run that only filters | **µs per sample** |")
print("|---|---|---:|---:|---:|---:|")
insns = 0
for spec, s, r, ns, ins, trig, ri, nsi in kstats:
    s, r, ns, ri, nsi = int(s), int(r), int(ns), int(ri), int(nsi)
    insns = max(insns, int(ins))
    idle_cost = nsi / ri if ri else 0.0
    per = (ns - (r - s) * idle_cost) / s if s else float("nan")
    print("| %s Hz | %s | %d | %d | %.0f | **%.2f** |" % (spec, trig, s, r, idle_cost, per / 1000))
print()
print("Goal: <= 5 µs per sample.  The filtering runs are measured against a sleeping target with")
print("the same trigger; the tick trigger's program also runs (and returns at once) for every")
print("other hrtimer of the machine.  The verifier processed at most %d instructions to load the" % insns)
print("program for this interpreter.")
EOF
