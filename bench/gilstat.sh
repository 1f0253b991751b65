#!/usr/bin/env bash
# gilstat's cost per GIL release/acquire pair, printed as a markdown section
# on stdout (the lead merges it into bench/RESULTS.md); progress on stderr.
#
# The target is one thread calling os.fstat(0) in a loop: each call drops
# the GIL (PyEval_SaveThread) around the system call and takes it back
# (PyEval_RestoreThread), i.e. one pair = three probe hits (take_gil entry
# and return, drop_gil), with no other thread to wait for.  The loop's CPU
# time per call (thread_time: user + system, where the uprobe traps are
# charged; wall time would mostly measure other load on the machine) is
# measured without gilstat and with it, alternately, ROUNDS times; the cost
# per pair is the difference of the medians.  The BPF programs' own run time (kernel.bpf_stats
# _enabled) is shown next to it: the rest is the uprobe trap and return
# trampoline.  Goal: <= 2 us per pair.
#
#   FPD_BUILD (default build), ROUNDS (default 5), CALLS per round (default 200000)
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=$(realpath "${FPD_BUILD:-build}")
ROUNDS=${ROUNDS:-5}
CALLS=${CALLS:-200000}
WORK=$(mktemp -d /tmp/fpd-bench-gil.XXXXXX)
SOCK=$WORK/fpd.sock
FPD_PID=""
TARGET_PID=""
GIL_PID=""

cleanup() {
	for p in $GIL_PID $TARGET_PID $FPD_PID; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

log() { printf '%s\n' "$*" >&2; }

PYROOT=$(pyenv root 2>/dev/null || echo /root/.pyenv)
PYTHONS=()
for v in 3.13 3.12 3.11 3.8; do
	for d in "$PYROOT"/versions/$v.*; do
		[ -x "$d/bin/python3" ] && PYTHONS+=("$d/bin/python3") && break
	done
done
[ -x /usr/bin/python3.11 ] && PYTHONS+=(/usr/bin/python3.11)
[ ${#PYTHONS[@]} -gt 0 ] || { log "bench/gilstat.sh: no interpreter found"; exit 1; }

"$BUILD/fpd" --socket "$SOCK" >"$WORK/fpd.log" 2>&1 &
FPD_PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { log "bench/gilstat.sh: fpd did not start:"; cat "$WORK/fpd.log" >&2; exit 1; }
stats_before=$(sysctl -n kernel.bpf_stats_enabled)
sysctl -qw kernel.bpf_stats_enabled=1

# The target prints the CPU ns per fstat of each round it is asked for on stdin.
cat >"$WORK/target.py" <<PY
import os, sys, time
calls = $CALLS
print("ready", flush=True)
for line in sys.stdin:
    t = time.thread_time_ns()
    for _ in range(calls):
        os.fstat(0)
    print((time.thread_time_ns() - t) / calls, flush=True)
PY

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# gil_ programs loaded now: "id run_time_ns run_cnt" lines.
gil_progs() {
	bpftool -j prog show | /usr/bin/python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p.get("name", "").startswith("gil_"):
        print(p["id"], p.get("run_time_ns", 0), p.get("run_cnt", 0))'
}

# Run time (ns) and count summed over the programs not in $WORK/before: ours,
# not those of other gilstats running on the machine.
bpf_time() {
	gil_progs | awk 'NR == FNR { old[$1] = 1; next } !($1 in old) { t += $2; c += $3 }
		END { print t + 0, c + 0 }' "$WORK/before" -
}

cat <<MD
## gilstat: cost per GIL release/acquire pair

\`bench/gilstat.sh\`, $(date -u +%Y-%m-%d), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start.
One thread calling \`os.fstat(0)\` ($CALLS calls per round, $ROUNDS rounds
alternately without and with \`gilstat on 0 0 60\`; the thread's CPU time per
call): each call drops and takes the GIL once (3 probe hits). Goal: <= 2 us per pair.

| interpreter | probes from | fstat without | with gilstat | cost per pair | probe hits per call | of which BPF programs |
|---|---|---|---|---|---|---|
MD

for py in "${PYTHONS[@]}"; do
	log "== $py"
	coproc TGT { exec "$py" "$WORK/target.py"; }
	TARGET_PID=$TGT_PID
	read -r _ <&"${TGT[0]}"
	without=()
	with=()
	bpf_ns=0
	bpf_cnt=0
	symbols="?"
	for r in $(seq "$ROUNDS"); do
		echo go >&"${TGT[1]}"
		read -r ns <&"${TGT[0]}"
		without+=("$ns")
		# (a first line so that awk never sees an empty file there)
		{ echo none; gil_progs; } >"$WORK/before"
		"$BUILD/fpctl" --socket "$SOCK" --json attach "$TARGET_PID" gilstat on 0 0 60 \
			>"$WORK/gil.out" 2>&1 &
		GIL_PID=$!
		for _ in $(seq 100); do grep -q gilstat_start "$WORK/gil.out" && break; sleep 0.1; done
		grep -q gilstat_start "$WORK/gil.out" || { log "gilstat did not start:"; cat "$WORK/gil.out" >&2; exit 1; }
		symbols=$(grep -o '"symbols": *"[a-z]*"' "$WORK/gil.out" | head -n1 | sed 's/.*"\([a-z]*\)"$/\1/')
		read -r t0 c0 < <(bpf_time)
		echo go >&"${TGT[1]}"
		read -r ns <&"${TGT[0]}"
		read -r t1 c1 < <(bpf_time)
		with+=("$ns")
		bpf_ns=$((bpf_ns + t1 - t0))
		bpf_cnt=$((bpf_cnt + c1 - c0))
		kill -INT "$GIL_PID"
		wait "$GIL_PID" 2>/dev/null || true
		GIL_PID=""
		log "round $r: without ${without[-1]} ns, with ${with[-1]} ns"
	done
	exec {TGT[1]}>&-
	wait "$TARGET_PID" 2>/dev/null || true
	TARGET_PID=""
	w0=$(printf '%s\n' "${without[@]}" | median)
	w1=$(printf '%s\n' "${with[@]}" | median)
	ver=$("$py" -c 'import sys; print(sys.version.split()[0])')
	awk -v py="$py" -v ver="$ver" -v s="$symbols" -v a="$w0" -v b="$w1" -v bn="$bpf_ns" \
		-v bc="$bpf_cnt" -v calls="$((ROUNDS * CALLS))" 'BEGIN {
		per_hit = bc ? bn / bc : 0
		printf "| %s (%s) | %s | %.2f us | %.2f us | **%.2f us** | %.2f | %.2f us (%.0f ns a hit) |\n",
			ver, py, s, a / 1000, b / 1000, (b - a) / 1000, bc / calls,
			bc / calls * per_hit / 1000, per_hit }'
done

sysctl -qw kernel.bpf_stats_enabled="$stats_before"
cat <<'MD'

Almost all of it is the uprobe traps (int3, and the return trampoline of the
uretprobe), not the BPF programs.  The report's cost warning counts 1.5 us
per switch: at N switches/s the probes take about N x 1.5 us of CPU per
second, so gilstat warns above about 13,000 switches/s (2 % of a CPU).
CPU-bound threads switch about 200 times/s (0.03 %); code that releases the
GIL around short calls 10^5 times/s pays about 15 %: gilstat runs only while
asked for.  Only the target traps: the probes are bound to its pid, so other
processes running the same libpython are not slowed.
MD
