#!/usr/bin/env bash
# What a watch costs the target, printed as a markdown section on stdout
# (progress on stderr) for bench/RESULTS.md: `fpctl attach PID watch
# __main__ handle ...` next to flight_profiler's `flight_profiler PID --cmd
# "watch __main__ handle ..."`, on the same target (bench/watch_target.py)
# run by the same interpreter, for each interpreter of WATCH_PYTHONS
# (default "3.11 3.12": the trampoline and the sys.monitoring paths; each a
# venv of pyenv's CPython, flight_profiler pip-installed into it as it needs).
#
# Two scenarios per tool, each on a fresh target:
#   filtered: -f "args[0] < 0" (never true), calls back to back: the price
#             of the instrumentation and the filter on every call;
#   printed:  every call printed (default expression args,kwargs), one call
#             per millisecond so that both tools keep up with the output.
# The target times each call of handle() alone (median per round), and per
# round a batch of other() (the same code, never watched) and of raiser()
# (never watched, raises and is caught), and its CPU time so far.  Added
# cost = median of the rounds while the tool watches - median of the rounds
# before it started; "after" is the rounds once the tool has stopped (its
# instrumentation removed).  CPU per call: the process's CPU time per
# handle() call while watched minus before, which also counts what the
# tool's own threads in the process spend per record (fpd's helper sends
# records from its thread; flight_profiler from the calling one).
#
# Needs root, build/ (make), pyenv's CPythons and PyPI for the first run
# (bench/out/fp-venv-3.X); without flight_profiler its rows say why.
# About a minute per interpreter.
set -euo pipefail
BENCH=watch.sh
. "$(dirname "$0")/lib.sh"
PYTHONS=${WATCH_PYTHONS:-"3.11 3.12"}

bench_check
# "minor|python|flight_profiler-or-empty|note" per interpreter.
SETUPS=()
for minor in $PYTHONS; do
	bench_flight_venv "$minor"
	if [ -z "$VENV_PYTHON" ]; then
		log "bench/$BENCH: $FLIGHT_NOTE, skipped"
		continue
	fi
	SETUPS+=("$minor|$VENV_PYTHON|$FLIGHT|$FLIGHT_NOTE")
done
[ ${#SETUPS[@]} -gt 0 ] || { log "bench/$BENCH: no interpreter"; exit 1; }
bench_start_fpd

export WORK SOCK REPO
/usr/bin/python3 - "${SETUPS[@]}" <<'EOF'
import datetime, os, platform, signal, statistics, subprocess, sys, time

WORK, SOCK, REPO = os.environ["WORK"], os.environ["SOCK"], os.environ["REPO"]
FPCTL = WORK + "/bin/fpctl"
TARGET = REPO + "/bench/watch_target.py"
BASE_S, RUN_S, AFTER_S = 3.0, 4.0, 2.0
FILTER = "args[0] < 0"
SCENARIOS = [
    # name, target arguments, watch arguments after `watch __main__ handle`
    ("filtered", ["--calls", "20000"], ["-n", "1000000", "-f", FILTER]),
    ("printed", ["--calls", "200", "--pace", "0.001"], ["-n", "1000000"]),
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def rounds(path, start):
    with open(path) as f:
        lines = f.read().splitlines()
    return [tuple(map(float, l.split())) for l in lines[start:] if len(l.split()) == 5], len(lines)


def wait_rounds(path, seconds):
    """The rounds the target writes in the next `seconds` (at least 3)."""
    _, start = rounds(path, 0)
    t0 = time.monotonic()
    while True:
        time.sleep(0.1)
        got, _ = rounds(path, start)
        if time.monotonic() - t0 >= seconds and len(got) >= 3:
            return got[1:] if len(got) > 3 else got  # the first may straddle a change


def med(rs, i):
    return statistics.median(r[i] for r in rs)


def cpu_per_call(rs):
    """Process CPU seconds per handle() call over the rounds rs, in ns."""
    return (rs[-1][3] - rs[0][3]) / max(1.0, rs[-1][4] - rs[0][4]) * 1e9


def measure(python, tool, flight, scen_args, watch_args, tag):
    out = "%s/rounds-%s.txt" % (WORK, tag)
    target = subprocess.Popen([python, TARGET, "--out", out] + scen_args,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert target.stdout.readline().strip() == b"ready", "target did not start"
        base = wait_rounds(out, BASE_S)
        if tool == "fpctl":
            cmd = [FPCTL, "--socket", SOCK, "attach", str(target.pid), "watch", "__main__",
                   "handle"] + watch_args
            env, marker = None, b"watching"
        else:
            words = " ".join("'%s'" % w if " " in w else w for w in watch_args)
            cmd = [flight, str(target.pid), "--cmd", "watch __main__ handle " + words,
                   "--no-color"]
            # A port range of its own: flight_profiler finds its agent by
            # trying the ports of its range, and another run's agent (another
            # benchmark's target) on the default range can make it hang.
            env = dict(os.environ, PYTHONUNBUFFERED="1", PYFLIGHT_INJECT_START_PORT="27100",
                       PYFLIGHT_INJECT_END_PORT="27199")
            marker = b"successfully added"
        tool_out = open("%s/tool-%s.out" % (WORK, tag), "wb+")
        p = subprocess.Popen(cmd, stdout=tool_out, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        t0 = time.monotonic()
        while True:
            tool_out.seek(0)
            if marker in tool_out.read():
                break
            if p.poll() is not None or time.monotonic() - t0 > 60:
                tool_out.seek(0)
                raise RuntimeError("%s did not start watching: %s" % (
                    tool, tool_out.read()[-300:].decode(errors="replace")))
            time.sleep(0.05)
        during = wait_rounds(out, RUN_S)
        tool_out.seek(0)
        records = tool_out.read().count(b"method=__main__.handle")
        os.killpg(p.pid, signal.SIGINT)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        after = wait_rounds(out, AFTER_S)
        return base, during, after, records
    finally:
        target.kill()
        target.wait()


rows = []
for setup in sys.argv[1:]:
    minor, python, flight, note = setup.split("|", 3)
    version = subprocess.run([python, "--version"], stdout=subprocess.PIPE,
                             universal_newlines=True).stdout.split()[1]
    for scen, scen_args, watch_args in SCENARIOS:
        for tool in ("fpctl", "flight_profiler"):
            label = "fpctl watch" if tool == "fpctl" else "flight_profiler watch"
            if tool != "fpctl" and not flight:
                rows.append((version, scen, label, None, note or "flight_profiler missing"))
                continue
            log("%s %s %s" % (version, scen, tool))
            try:
                rows.append((version, scen, label,
                             measure(python, tool, flight, scen_args, watch_args,
                                     "%s-%s-%s" % (minor, scen, tool)), None))
            except Exception as e:
                rows.append((version, scen, label, None, "failed: %s" % e))


def sh(cmd):
    return subprocess.run(cmd, shell=True, stdout=subprocess.PIPE,
                          universal_newlines=True).stdout.strip()


print("## watch: cost per watched call, and on code nobody watches")
print()
print("`bench/watch.sh`, %s, %s CPUs (%s), load average at the end %s." % (
    datetime.date.today().isoformat(), os.cpu_count(),
    sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip() or "?",
    " ".join(open("/proc/loadavg").read().split()[:3])))
print("Target `bench/watch_target.py` run by a venv of each interpreter (flight_profiler")
print("installed in it); one fresh target per row.  `handle()` is watched: the median time")
print("of one call, timed alone by the target (perf_counter_ns around it, so ~0.1 us of")
print("timer is in every figure), before the watch, while it runs, and after it stopped.")
print("`other()` is the same code, never watched; `raiser()` is never watched and raises")
print("an exception through three frames to its caller, which catches it (sys.monitoring's")
print("PY_UNWIND sees each frame): their per-call averages in thread CPU time while the")
print("watch runs, minus before.  Scenarios: **filtered** `-f")
print("\"%s\"` (never true) with calls back to back: what instrumentation and filter cost" % FILTER)
print("each call; **printed**: every call printed (expression `args,kwargs`), one call per")
print("millisecond so that both tools keep up.  records: how many the tool printed while")
print("the rounds ran.  CPU added per call: the target process's CPU time per handle()")
print("call while watched minus before (a round's other calls included), which also counts")
print("the tool's own threads in the process (fpd's helper writes records from its thread).")
print()
print("| CPython | scenario | tool | handle() ns before | while watched | added per call | after | "
      "CPU added per call ns | other() added ns | raiser() added ns | records |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
added = {}
for version, scen, label, res, why in rows:
    if res is None:
        print("| %s | %s | %s | %s | | | | | | | |" % (version, scen, label, why))
        continue
    base, during, after, records = res
    b, d, a = med(base, 0), med(during, 0), med(after, 0)
    added[(version, scen, label)] = d - b
    cpu = cpu_per_call(during) - cpu_per_call(base)
    added[(version, scen, label, "cpu")] = cpu
    print("| %s | %s | %s | %.0f | %.0f | **%.0f** | %.0f | %.0f | %+.1f | %+.1f | %d |" % (
        version, scen, label, b, d, d - b, a, cpu, med(during, 1) - med(base, 1),
        med(during, 2) - med(base, 2), records))
print()
for version in sorted(set(r[0] for r in rows)):
    for scen, _, _ in SCENARIOS:
        ours = added.get((version, scen, "fpctl watch"))
        theirs = added.get((version, scen, "flight_profiler watch"))
        if ours is not None and theirs:
            cpu_ours = added[(version, scen, "fpctl watch", "cpu")]
            cpu_theirs = added[(version, scen, "flight_profiler watch", "cpu")]
            print("- %s, %s: fpctl watch adds %.0f ns per call, %.0f %% of flight_profiler's "
                  "%.0f ns (goal: at most 50 %%); CPU per call %.0f %% of theirs." % (
                      version, scen, ours, 100.0 * ours / theirs, theirs,
                      100.0 * cpu_ours / cpu_theirs if cpu_theirs > 0 else float("nan")))
print()
print("On 3.12+ fpctl's raiser() figure is what PY_UNWIND being a process-wide event costs")
print("while a watch runs: CPython calls the helper's C callback for each frame an exception")
print("leaves (some 30 ns a frame); up to 3.11 (a trampoline) nothing of the kind.")
print()
print("Command lines: `fpctl attach PID watch __main__ handle -n 1000000 [-f \"%s\"]`," % FILTER)
print("`flight_profiler PID --cmd \"watch __main__ handle -n 1000000 [-f '%s']\" --no-color`," % FILTER)
print("each stopped with SIGINT.  The machine may be shared with other work: compare rows")
print("of one run; the other()/raiser() columns are within the noise of a few ns unless")
print("a tool slows code it does not watch.")
EOF
