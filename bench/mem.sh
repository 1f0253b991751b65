#!/usr/bin/env bash
# The longest GIL pause of `mem summary` on a heap of about 5 million
# objects, per interpreter, printed as a markdown section on stdout (make
# bench merges it into bench/RESULTS.md); progress on stderr.
#
# bench/mem_pause.py builds the heap in its own process, starts a ticker
# thread that records its longest gap between 1 ms sleeps, and runs the real
# `fpctl attach <its own pid> mem summary` (fpctl starts fpd itself: run as
# root).  SCHED_FIFO (chrt -f 10) keeps a busy machine from stealing the CPU
# mid-measurement; the "at rest" column is the same ticker without mem.
# Goal (issue 3): no stretch above ~50 ms.
#
#   FPD_BUILD (default build), OBJECTS (default 5000000)
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=$(realpath "${FPD_BUILD:-build}")
OBJECTS=${OBJECTS:-5000000}
PYROOT=$(pyenv root 2>/dev/null || echo /root/.pyenv)
PYTHONS=()
for v in 3.8 3.12 3.13; do
	for p in "$PYROOT"/versions/$v.*/bin/python3; do [ -x "$p" ] && PYTHONS+=("$p") && break; done
done
[ -x /usr/bin/python3.11 ] && PYTHONS+=(/usr/bin/python3.11)

CHRT=()
chrt -f 10 true 2>/dev/null && CHRT=(chrt -f 10)

cat <<HDR
## mem summary: longest GIL pause on a heap of ~5 million objects

\`${CHRT[*]} PYTHON bench/mem_pause.py $OBJECTS --fpctl $BUILD/fpctl\` (\`bench/mem.sh\`):
the heap is built in the measuring process, whose ticker thread sleeps 1 ms
in a loop and records the longest gap; the mem summary is the real one,
injected by fpd.  Machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg) at start.

| interpreter | objects counted | tracked by the GC | mem summary | longest pause | at rest | one gc.get_objects() |
|---|---|---|---|---|---|---|
HDR
for py in "${PYTHONS[@]}"; do
	printf '%s\n' "mem_pause: $py" >&2
	line=$("${CHRT[@]}" "$py" bench/mem_pause.py "$OBJECTS" --fpctl "$BUILD/fpctl")
	printf '%s\n' "$line" >&2
	# "python 3.12.1 via fpctl: heap of N objects counted (M tracked by the GC),
	#  mem summary T s: longest pause P ms (as long at rest R ms; one gc.get_objects() G ms; ...)"
	echo "$line" | sed -E 's/^python ([^ ]+) via fpctl: heap of ([0-9]+) objects counted \(([0-9]+) tracked by the GC\), mem summary ([0-9.]+) s: longest pause ([0-9.]+) ms \(as long at rest ([0-9.]+) ms; one gc.get_objects\(\) ([0-9.]+) ms.*/| \1 | \2 | \3 | \4 s | **\5 ms** | \6 ms | \7 ms |/'
done
cat <<'EOF2'

The walk never calls gc.get_objects() (one such call alone holds the GIL
for the time in the last column): it follows references from sys.modules,
gc.garbage and every thread's frames in slices of about 20k objects and
sleeps 0.5 ms every 5 ms of work (agent/py/mem.py).
EOF2
