#!/usr/bin/env bash
# make bench: wall time of one stack dump, fpctl side by side with py-spy and
# pystack, on the same targets in the same run -> bench/RESULTS.md.
#
#   targets: "1 thread"            one thread sleeping 3 frames deep
#            "50 threads x 50"     50 threads, each 50 frames deep
#   tools:   fpctl attach PID stack            (fpd on a private socket)
#            fpctl attach PID stack --native
#            py-spy dump --pid PID             (stops the target while it reads)
#            py-spy dump --nonblocking --pid PID
#            pystack remote PID                (stops the target while it reads)
#            pystack remote --no-block PID
#
# Timing: hyperfine when available (installed with apt-get when missing and
# we are root), else a Python loop; RUNS runs each (default 20) after WARMUP.
# Whether a tool stops the target is measured, not assumed: a probe thread in
# the target counts its iterations and we look for gaps (see bench/target.py).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
BUILD=$(realpath "${FPD_BUILD:-build}")
RUNS=${RUNS:-20}
WARMUP=${WARMUP:-3}
OUT=bench/out
VENV=bench/venv
mkdir -p "$OUT"

note() { printf '\n== %s\n' "$*"; }

# Interpreter of the targets: pyenv 3.12 or 3.11 (py-spy and pystack support both).
PYROOT=$(pyenv root 2>/dev/null || echo /root/.pyenv)
TARGET_PY=""
for v in 3.12 3.11; do
	for d in "$PYROOT"/versions/$v.*; do
		[ -x "$d/bin/python3" ] && TARGET_PY="$d/bin/python3" && break 2
	done
done
if [ -z "$TARGET_PY" ]; then
	echo "bench: no pyenv CPython 3.12 or 3.11 under $PYROOT/versions" >&2
	exit 1
fi

note "tools"
if [ ! -x "$VENV/bin/python" ]; then
	# Debian's python3 has no ensurepip until python3-venv is installed.
	if ! /usr/bin/python3 -m venv "$VENV" >/dev/null 2>&1; then
		rm -rf "$VENV"
		apt-get install -y -qq python3-venv >/dev/null 2>&1 ||
			{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq python3-venv >/dev/null 2>&1; } ||
			echo "bench: python3-venv could not be installed"
		/usr/bin/python3 -m venv "$VENV"
	fi
fi
PEERS=()
for pkg in py-spy pystack; do
	if "$VENV/bin/pip" install -q --disable-pip-version-check "$pkg" >"$OUT/pip-$pkg.log" 2>&1; then
		echo "$pkg: $("$VENV/bin/$pkg" --version 2>&1 | head -n 1)"
		PEERS+=("$pkg")
	else
		echo "$pkg: pip install failed, skipped (see $OUT/pip-$pkg.log)"
	fi
done
if ! command -v hyperfine >/dev/null && [ "$(id -u)" = 0 ]; then
	(apt-get install -y -qq hyperfine >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq hyperfine >/dev/null 2>&1; }) ||
		echo "hyperfine: could not be installed, timing with a Python loop"
fi
HYPERFINE=$(command -v hyperfine || true)
echo "hyperfine: ${HYPERFINE:-none}"

WORK=$(mktemp -d /tmp/fpd-bench.XXXXXX)
FPD_PID=""
TARGET_PIDS=()
cleanup() {
	for p in "${TARGET_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	if [ -n "$FPD_PID" ]; then kill -TERM "$FPD_PID" 2>/dev/null || true; wait "$FPD_PID" 2>/dev/null || true; fi
	rm -rf "$WORK"
}
trap cleanup EXIT

note "fpd"
SOCK=$WORK/fpd.sock
"$BUILD/fpd" --socket "$SOCK" >"$OUT/fpd.log" 2>&1 &
FPD_PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { echo "fpd did not start, see $OUT/fpd.log" >&2; exit 1; }
FPCTL="$BUILD/fpctl --socket $SOCK"
echo "fpd pid $FPD_PID on $SOCK"

# Starts bench/target.py as TARGET[$1]; waits for its "ready" line.
declare -A TARGET PROBE
start_target() {
	local key=$1 name=$2; shift 2
	local fifo=$WORK/$name.out fd line
	mkfifo "$fifo"
	"$TARGET_PY" bench/target.py --probe "$WORK/probe-$name" "$@" >"$fifo" 2>"$OUT/target-$name.err" &
	TARGET[$key]=$!
	PROBE[$key]=$WORK/probe-$name
	TARGET_PIDS+=($!)
	exec {fd}<"$fifo"
	read -r -t 60 line <&"$fd" || { echo "target $name did not start" >&2; exit 1; }
	exec {fd}<&-
}

note "targets ($TARGET_PY)"
start_target "1 thread" one --threads 1 --depth 3
start_target "50 threads x 50" many --threads 50 --depth 50
for k in "1 thread" "50 threads x 50"; do echo "$k: pid ${TARGET[$k]}"; done

# Tool name -> command template (PID substituted).  "no tool" runs `true`:
# its stall column is the probe's baseline (scheduling noise of the machine).
declare -A CMD
ORDER=("no tool (true)" "fpctl stack" "fpctl stack --native")
CMD[no tool (true)]="$(command -v true)"
CMD[fpctl stack]="$FPCTL attach PID stack"
CMD[fpctl stack --native]="$FPCTL attach PID stack --native"
for peer in "${PEERS[@]}"; do
	case $peer in
	py-spy)
		ORDER+=("py-spy dump" "py-spy dump --nonblocking")
		CMD[py-spy dump]="$REPO/$VENV/bin/py-spy dump --pid PID"
		CMD[py-spy dump --nonblocking]="$REPO/$VENV/bin/py-spy dump --nonblocking --pid PID"
		;;
	pystack)
		ORDER+=("pystack remote" "pystack remote --no-block")
		CMD[pystack remote]="$REPO/$VENV/bin/pystack remote PID"
		CMD[pystack remote --no-block]="$REPO/$VENV/bin/pystack remote --no-block PID"
		;;
	esac
done

note "measuring ($RUNS runs each, $WARMUP warm-up)"
RESULTS=$WORK/results.tsv
: >"$RESULTS"
for k in "1 thread" "50 threads x 50"; do
	pid=${TARGET[$k]}
	probe=${PROBE[$k]}
	for tool in "${ORDER[@]}"; do
		cmd=${CMD[$tool]//PID/$pid}
		if ! $cmd >"$OUT/sample.txt" 2>&1; then
			echo "$k / $tool: failed, skipped: $(head -n 1 "$OUT/sample.txt")"
			printf '%s\t%s\t%s\tfailed\t\t\t\n' "$k" "$tool" "$cmd" >>"$RESULTS"
			continue
		fi
		# The probe writes the longest gap between its iterations since the last reset.
		: >"$probe.reset"
		while [ -e "$probe.reset" ]; do sleep 0.01; done
		if [ -n "$HYPERFINE" ]; then
			"$HYPERFINE" -N --style none --warmup "$WARMUP" --runs "$RUNS" \
				--export-json "$WORK/h.json" "$cmd" >/dev/null 2>&1
			read -r median p95 < <(/usr/bin/python3 -c '
import json, sys
t = sorted(json.load(open(sys.argv[1]))["results"][0]["times"])
print("%.1f %.1f" % (t[len(t) // 2] * 1e3, t[min(len(t) - 1, int(0.95 * len(t)))] * 1e3))' "$WORK/h.json")
		else
			read -r median p95 < <(/usr/bin/python3 - "$RUNS" "$WARMUP" $cmd <<'EOF'
import subprocess, sys, time
runs, warm, cmd = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
t = []
for i in range(warm + runs):
    s = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    if i >= warm:
        t.append(time.perf_counter() - s)
t.sort()
print("%.1f %.1f" % (t[len(t) // 2] * 1e3, t[min(len(t) - 1, int(0.95 * len(t)))] * 1e3))
EOF
)
		fi
		gap=$(cat "$probe.gap" 2>/dev/null || echo "?")
		printf '%s\t%s\t%s\tok\t%s\t%s\t%s\n' "$k" "$tool" "$cmd" "$median" "$p95" "$gap" >>"$RESULTS"
		printf '%-16s %-28s median %7s ms  p95 %7s ms  longest target stall %s ms\n' "$k" "$tool" "$median" "$p95" "$gap"
	done
done

note "bench/RESULTS.md"
/usr/bin/python3 - "$RESULTS" "$TARGET_PY" "$RUNS" "$WARMUP" "${HYPERFINE:-python loop}" <<'EOF' >bench/RESULTS.md
import datetime, os, platform, subprocess, sys
results, target_py, runs, warm, timer = sys.argv[1:6]
rows = [line.rstrip("\n").split("\t") for line in open(results)]
def sh(cmd):
    return subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
print("# Benchmarks: one stack dump, fpctl and peers\n")
print("Generated by `make bench` (bench/run.sh) on %s." % datetime.datetime.now().strftime("%Y-%m-%d %H:%M %Z").strip())
print()
print("- machine: %s CPUs (%s), kernel %s, %s; load average at the end: %s" % (
    os.cpu_count(), cpu or "?", platform.release(), sh(". /etc/os-release; echo $PRETTY_NAME"),
    " ".join(open("/proc/loadavg").read().split()[:3])))
print("- targets: `%s bench/target.py` (%s)" % (target_py, sh(target_py + " --version")))
print("- timing: %s, %s runs after %s warm-up runs, wall time of the whole command" % (timer, runs, warm))
print("- stall: the longest gap seen by a probe thread in the target (it ticks every 1 ms) while the")
print("  tool ran repeatedly: how long the tool stopped the process (a tick costs < 0.1 ms)")
print()
print("| target | tool | median ms | p95 ms | longest target stall ms |")
print("|---|---|---:|---:|---:|")
for target, tool, cmd, status, median, p95, gap in rows:
    if status != "ok":
        print("| %s | %s | failed | | |" % (target, tool))
    else:
        print("| %s | %s | %s | %s | %s |" % (target, tool, median, p95, gap))
print("\n## Command lines\n")
seen = set()
for target, tool, cmd, *_ in rows:
    if (target, tool) not in seen:
        seen.add((target, tool))
        print("- %s, %s: `%s`" % (target, tool, cmd))
versions = [sh("bench/venv/bin/py-spy --version 2>/dev/null")]
pystack = sh("bench/venv/bin/pystack --version 2>/dev/null")
if pystack:
    versions.append(pystack if pystack.startswith("pystack") else "pystack " + pystack)
print("\nTool versions: %s." % "; ".join(v for v in versions if v))
print()
print("Notes: py-spy dump and pystack remote stop the target (ptrace) while they read it")
print("unless given --nonblocking / --no-block; fpctl stack never stops it, fpctl stack")
print("--native stops it for the unwind only.  The machine is small (2 CPUs) and may be")
print("shared with other work: compare rows of one run, not numbers across runs.")
EOF
# The BPF tier's benchmarks and the helper's print their own sections
# (bench/attach.sh compares getglobal with flight_profiler, which it
# pip-installs into bench/out/fp-venv-3.11 on its first run, bench/watch.sh watch
# and bench/trace.sh trace, into bench/out/fp-venv-3.X; bench/mem.sh measures
# mem summary's GIL pauses).
for b in bench/sampler.sh bench/gilstat.sh bench/attach.sh bench/watch.sh bench/trace.sh bench/mem.sh; do
	note "$b"
	if section=$("$b"); then
		printf '\n%s\n' "$section" >>bench/RESULTS.md
	else
		printf '\n## %s\n\nfailed in this run (see its output above).\n' "$b" >>bench/RESULTS.md
	fi
done
cat bench/RESULTS.md
