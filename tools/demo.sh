#!/usr/bin/env bash
# make demo: a private fpd, the demo service, and fpctl's main commands against it.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${FPD_BUILD:-build}
PORT=${DEMO_PORT:-8765}
PYTHON=${DEMO_PYTHON:-/usr/bin/python3}

WORK=$(mktemp -d /tmp/fpd-demo.XXXXXX)
SOCK=$WORK/fpd.sock
FPD_PID=""
SERVICE_PID=""
cleanup() {
	local status=$?
	set +e
	if [ -n "$SERVICE_PID" ]; then kill "$SERVICE_PID" 2>/dev/null; wait "$SERVICE_PID" 2>/dev/null; fi
	if [ -n "$FPD_PID" ]; then kill -TERM "$FPD_PID" 2>/dev/null; wait "$FPD_PID" 2>/dev/null; fi
	rm -rf "$WORK"
	exit "$status"
}
trap cleanup EXIT

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then B=$'\033[1m' N=$'\033[0m'; else B="" N=""; fi
section() { printf '\n%s=== %s ===%s\n' "$B" "$*" "$N"; }
run() { printf '$ %s\n' "$*"; "$@"; }
fpctl() { "$BUILD/fpctl" --socket "$SOCK" "$@"; }

section "starting fpd on $SOCK"
"$BUILD/fpd" --socket "$SOCK" >"$WORK/fpd.log" 2>&1 &
FPD_PID=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
if [ ! -S "$SOCK" ]; then echo "fpd did not start:"; cat "$WORK/fpd.log"; exit 1; fi
echo "fpd pid $FPD_PID"

section "starting the demo service ($PYTHON examples/demo_service.py $PORT)"
"$PYTHON" examples/demo_service.py "$PORT" >"$WORK/service.log" 2>&1 &
SERVICE_PID=$!
for _ in $(seq 100); do grep -q "demo service on" "$WORK/service.log" 2>/dev/null && break; sleep 0.1; done
cat "$WORK/service.log"

section "a few requests"
# One slow request in the background (about 20 s of CPU), so that a pool
# worker is busy in count_primes() during the dumps below.
"$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=120).read()' \
	"http://127.0.0.1:$PORT/work?n=3000000" >/dev/null 2>&1 &
for n in 20000 30000 40000; do
	printf 'GET /work?n=%s -> ' "$n"
	"$PYTHON" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=30).read().decode().strip())' \
		"http://127.0.0.1:$PORT/work?n=$n"
done

section "fpctl ps"
run fpctl ps

section "fpctl status"
run fpctl status

section "fpctl attach $SERVICE_PID stack"
run fpctl attach "$SERVICE_PID" stack

section "fpctl attach $SERVICE_PID stack --native"
run fpctl attach "$SERVICE_PID" stack --native

# A steady load while profiling, so the flame graph and the GIL report have work to show.
load() {
	for _ in 1 2 3 4 5 6; do
		"$PYTHON" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=60).read()' \
			"http://127.0.0.1:$PORT/work?n=200000" >/dev/null 2>&1 || true
	done
}

OUTDIR=build/demo
mkdir -p "$OUTDIR"
section "fpctl attach $SERVICE_PID perf -d 3 -f $OUTDIR/flamegraph.svg  (BPF sampling, the service never stopped)"
load &
LOAD_PID=$!
run fpctl attach "$SERVICE_PID" perf -d 3 -f "$OUTDIR/flamegraph.svg"
echo "open $OUTDIR/flamegraph.svg in a browser: hover, click to zoom, search"
run fpctl attach "$SERVICE_PID" perf -d 2 --format collapsed -f "$OUTDIR/profile.collapsed"
sort -t' ' -k2 -nr "$OUTDIR/profile.collapsed" | awk 'NR <= 3' | cut -c1-160

section "fpctl --timeout 5 attach $SERVICE_PID gilstat on 50 50 2  (uprobes on the GIL; warn above 50 ms)"
run fpctl --timeout 5 attach "$SERVICE_PID" gilstat on 50 50 2 || true
wait "$LOAD_PID" 2>/dev/null || true

section "fpctl attach $SERVICE_PID getglobal __main__ STATS -x 2  (the in-process helper, injected now)"
run fpctl attach "$SERVICE_PID" getglobal __main__ STATS -x 2

section "fpctl attach $SERVICE_PID watch __main__ work -n 2 --expr \"args, return_obj\"  (the aggregator's call, every second)"
run fpctl attach "$SERVICE_PID" watch __main__ work -n 2 --expr "args, return_obj"

section "fpctl attach $SERVICE_PID trace __main__ work -n 1  (the calls inside one call of it, with their cost)"
run fpctl attach "$SERVICE_PID" trace __main__ work -n 1

section "fpctl attach $SERVICE_PID vmtool -a getInstances -c \"concurrent.futures.thread ThreadPoolExecutor\""
run fpctl attach "$SERVICE_PID" vmtool -a getInstances -c "concurrent.futures.thread ThreadPoolExecutor" -n 1

section "fpctl attach $SERVICE_PID mem summary --limit 10"
run fpctl attach "$SERVICE_PID" mem summary --limit 10

section "done: stopping the service and fpd"
