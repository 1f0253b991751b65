#!/usr/bin/env bash
# What a trace costs the calls it traces, printed as a markdown section on
# stdout (progress on stderr) for bench/RESULTS.md: `fpctl attach PID trace
# __main__ METHOD -i 0.1` next to flight_profiler's `flight_profiler PID --cmd
# "trace __main__ METHOD -i 0.1"`, on the same target (bench/trace_target.py)
# run by the same interpreter, for each interpreter of TRACE_PYTHONS (default
# "3.10 3.11 3.12": PyEval_SetProfile with frame objects already there, with
# frame objects made for it, and sys.monitoring; each a venv of pyenv's
# CPython with flight_profiler pip-installed into it, shared with
# bench/watch.sh).
#
# Two methods, each on a fresh target per tool: handle (a request handler,
# about 3,200 Python and 5,200 C calls in a few ms) and tiny (1,500 calls of
# a one-line function and 3,000 of builtins in a fraction of a ms: nothing
# but call overhead, the worst case).  Every call is traced (-n 1000000),
# one call every 5 ms.  The target times each call alone, in CPU time of its
# thread (what the tool's hooks add to the call; other processes on a busy
# machine do not count) and in wall time; the median of each round of 20.
# Added = median of the rounds while the tool traces - median of the rounds
# before it started; "after" is the rounds once it stopped (its
# instrumentation removed).  Process CPU per call also counts the tool's own
# threads in the process (fpd's helper names the nodes and sends the trees
# from its thread; flight_profiler formats them in the traced one).
#
# Needs root, build/ (make), pyenv's CPythons and PyPI for the first run;
# without flight_profiler its rows say why.  About a minute per interpreter.
set -euo pipefail
BENCH=trace.sh
. "$(dirname "$0")/lib.sh"
PYTHONS=${TRACE_PYTHONS:-"3.10 3.11 3.12"}

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
# The floor: a C profile function that does nothing (bench/trace_target.py --noop-hook).
printf 'int fp_noop_profile(void *o, void *f, int what, void *arg)\n{\n\treturn 0;\n}\n' \
	>"$WORK/noop.c"
cc -O2 -shared -fPIC -o "$WORK/noop.so" "$WORK/noop.c"

export WORK SOCK REPO
/usr/bin/python3 - "${SETUPS[@]}" <<'EOF'
import datetime, os, signal, statistics, subprocess, sys, time

WORK, SOCK, REPO = os.environ["WORK"], os.environ["SOCK"], os.environ["REPO"]
FPCTL = WORK + "/bin/fpctl"
TARGET = REPO + "/bench/trace_target.py"
BASE_S, RUN_S, AFTER_S = 3.0, 4.0, 2.0
METHODS = ("handle", "tiny")
TRACE_ARGS = ["-i", "0.1", "-n", "1000000"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def rounds(path, start):
    with open(path) as f:
        lines = f.read().splitlines()
    return [tuple(map(float, l.split())) for l in lines[start:] if len(l.split()) == 4], len(lines)


def wait_rounds(path, seconds, target):
    """The rounds the target writes in the next `seconds` (at least 3)."""
    _, start = rounds(path, 0)
    t0 = time.monotonic()
    while True:
        time.sleep(0.1)
        got, _ = rounds(path, start)
        if time.monotonic() - t0 >= seconds and len(got) >= 3:
            return got[1:] if len(got) > 3 else got  # the first may straddle a change
        if time.monotonic() - t0 > seconds + 30:
            with open(target.errpath, "rb") as f:
                err = f.read().decode(errors="replace").strip().splitlines()
            raise RuntimeError("the target stopped calling the method: %s" % (
                err[-1] if err else "(no error printed)"))


def med(rs, i):
    return statistics.median(r[i] for r in rs)


def process_cpu_per_call(rs):
    """The process's CPU time per call over the rounds rs, in ns (the pacing
    sleeps cost none)."""
    return (rs[-1][2] - rs[0][2]) / max(1.0, rs[-1][3] - rs[0][3]) * 1e9


def measure(python, version, tool, flight, method, tag):
    out = "%s/rounds-%s.txt" % (WORK, tag)
    errpath = "%s/target-%s.err" % (WORK, tag)
    flag = "%s/yardstick-%s" % (WORK, tag)
    hook = WORK + "/noop.so" if tool == "noop" else "cprofile"
    with open(errpath, "wb") as err:
        target = subprocess.Popen([python, TARGET, "--out", out, "--method", method, "--hook",
                                   hook, "--hook-flag", flag], stdout=subprocess.PIPE, stderr=err)
    target.errpath = errpath
    try:
        ready = target.stdout.readline().split()
        assert ready[:1] == [b"ready"], "target did not start"
        CALLS[(version, method)] = (int(ready[1]), int(ready[2]))
        base = wait_rounds(out, BASE_S, target)
        if tool in ("cProfile", "noop"):
            open(flag, "w").close()
            during = wait_rounds(out, RUN_S, target)
            os.unlink(flag)
            return base, during, wait_rounds(out, AFTER_S, target), 0, b""
        if tool == "fpctl":
            cmd = [FPCTL, "--socket", SOCK, "attach", str(target.pid), "trace", "__main__",
                   method] + TRACE_ARGS
            env, marker, header = None, b"tracing __main__.", b" thread="
        else:
            cmd = [flight, str(target.pid), "--cmd",
                   "trace __main__ %s %s" % (method, " ".join(TRACE_ARGS)), "--no-color"]
            # A port range of its own (as bench/watch.sh does, on another):
            # flight_profiler finds its agent by trying the ports of its
            # range, and another run's agent on the default range can make it
            # hang.
            env = dict(os.environ, PYTHONUNBUFFERED="1", PYFLIGHT_INJECT_START_PORT="27200",
                       PYFLIGHT_INJECT_END_PORT="27299")
            marker, header = b"successfully added", b" thread="
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
                raise RuntimeError("%s did not start tracing: %s" % (
                    tool, tool_out.read()[-300:].decode(errors="replace")))
            time.sleep(0.05)
        during = wait_rounds(out, RUN_S, target)
        tool_out.seek(0)
        text = tool_out.read()
        traces = text.count(header)
        os.killpg(p.pid, signal.SIGINT)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        try:
            after = wait_rounds(out, AFTER_S, target)
        except RuntimeError as e:
            after = str(e)  # the tool's stop broke the target
        return base, during, after, traces, text
    finally:
        target.kill()
        target.wait()


LABELS = {"fpctl": "fpctl trace", "flight_profiler": "flight_profiler trace",
          "cProfile": "cProfile (yardstick)", "noop": "no-op C hook (floor)"}
rows, samples = [], {}
CALLS = {}  # (version, method) -> (Python calls, C calls) inside one call
for setup in sys.argv[1:]:
    minor, python, flight, note = setup.split("|", 3)
    version = subprocess.run([python, "--version"], stdout=subprocess.PIPE,
                             universal_newlines=True).stdout.split()[1]
    for method in METHODS:
        for tool in ("fpctl", "flight_profiler", "cProfile", "noop"):
            label = LABELS[tool]
            if tool == "flight_profiler" and not flight:
                rows.append((version, method, label, None, note or "flight_profiler missing"))
                continue
            log("%s %s %s" % (version, method, tool))
            try:
                res = measure(python, version, tool, flight, method,
                              "%s-%s-%s" % (minor, method, tool))
                rows.append((version, method, label, res[:4], None))
                samples[(version, method, label)] = res[4]
            except Exception as e:
                rows.append((version, method, label, None, "failed: %s" % e))


def sh(cmd):
    return subprocess.run(cmd, shell=True, stdout=subprocess.PIPE,
                          universal_newlines=True).stdout.strip()


def first_trace(text):
    """The first traced call of a tool's output, at most 14 lines."""
    lines = text.decode(errors="replace").splitlines()
    start = [i for i, l in enumerate(lines) if " thread=" in l]
    if not start:
        return []
    body = []
    for l in lines[start[0]:]:
        if body and (not l.strip() or " thread=" in l or set(l.strip()) <= set("\u2500-")):
            break
        body.append(l)
    return body[:14]


print("## trace: cost per traced call")
print()
print("`bench/trace.sh`, %s, %s CPUs (%s), load average at the end %s." % (
    datetime.date.today().isoformat(), os.cpu_count(),
    sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip() or "?",
    " ".join(open("/proc/loadavg").read().split()[:3])))
print("Target `bench/trace_target.py` run by a venv of each interpreter (flight_profiler")
print("installed in it); a fresh target per row; every call traced with `-i 0.1`, one call")


def calls(method, i):
    """The range of calls of kind i (0 Python, 1 C) one call of method makes
    on the interpreters measured."""
    got = sorted(set(n[i] for (v, m), n in CALLS.items() if m == method))
    return "?" if not got else "%d" % got[0] if len(got) == 1 else "%d-%d" % (got[0], got[-1])


print("every 5 ms.  **handle**: a request handler over 200 JSON documents (parse, validate,")
print("hash, count words, format: %s Python and %s C calls, by interpreter); **tiny**: %s" % (
    calls("handle", 0), calls("handle", 1), calls("tiny", 0)))
print("calls of a one-line function and %s of builtins, nothing but call overhead (the worst" % (
    calls("tiny", 1)))
print("case).  CPU: the calling thread's CPU time per call (thread_time_ns, immune to what")
print("other processes do), median of rounds of 20 calls, before the trace, while it runs and")
print("after it stopped; overhead = while / before - 1.  Wall: the same in wall time.")
print("Process CPU added: the whole target process per call while traced minus before, the")
print("tool's own threads in the process included.  traces: how many the tool printed while")
print("the rounds ran.  cProfile (the stdlib's C profiler, enabled by the target itself in the")
print("calling thread) is the yardstick: what a profile hook that sees every call costs.")
print("The floor: a C profile function that returns at once, set with PyEval_SetProfile in")
print("the calling thread (on 3.12+ CPython runs it through sys.monitoring's legacy profiler")
print("tool): what the interpreter itself charges for a profile hook of any kind, before the")
print("hook does anything.")
print()
print("| CPython | method | tool | CPU us before | while traced | **overhead** | after | "
      "wall us before | while traced | overhead | process CPU added us | traces |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
over, added_ns = {}, {}
for version, method, label, res, why in rows:
    if res is None:
        print("| %s | %s | %s | %s | | | | | | | | |" % (version, method, label, why))
        continue
    base, during, after, traces = res
    cb, cd = med(base, 1) / 1e3, med(during, 1) / 1e3
    ca = "%.0f" % (med(after, 1) / 1e3) if type(after) is list else after.replace("|", "/")
    wb, wd = med(base, 0) / 1e3, med(during, 0) / 1e3
    proc = (process_cpu_per_call(during) - process_cpu_per_call(base)) / 1e3
    over[(version, method, label)] = cd / cb - 1
    added_ns[(version, method, label)] = (cd - cb) * 1e3 / max(
        1, sum(CALLS.get((version, method), ())))
    print("| %s | %s | %s | %.0f | %.0f | **%+.0f %%** | %s | %.0f | %.0f | %+.0f %% | %.0f | %d |" % (
        version, method, label, cb, cd, 100 * (cd / cb - 1), ca, wb, wd, 100 * (wd / wb - 1),
        proc, traces))
print()
for version in sorted(set(r[0] for r in rows)):
    for method in METHODS:
        ours = over.get((version, method, "fpctl trace"))
        added = added_ns.get((version, method, "fpctl trace"))
        theirs = over.get((version, method, "flight_profiler trace"))
        yard = over.get((version, method, LABELS["cProfile"]))
        floor = over.get((version, method, LABELS["noop"]))
        floor_ns = added_ns.get((version, method, LABELS["noop"]))
        if ours is not None:
            print("- %s, %s: fpctl trace adds %.0f %% CPU per call (%.0f ns per call made "
                  "inside it); flight_profiler %s, cProfile %s; the no-op hook alone %s." % (
                      version, method, 100 * ours, added,
                      "%.0f %%" % (100 * theirs) if theirs is not None else "-",
                      "%.0f %%" % (100 * yard) if yard is not None else "-",
                      "%.0f %% (%.0f ns per call)" % (100 * floor, floor_ns)
                      if floor is not None else "-"))
print()
print("What each printed for its first traced call of handle:")
for label in ("fpctl trace", "flight_profiler trace"):
    keys = [k for k in samples if k[1] == "handle" and k[2] == label]
    if keys:
        print()
        print("%s (CPython %s):" % (label, keys[-1][0]))
        print()
        print("```")
        for line in first_trace(samples[keys[-1]]):
            print(line)
        print("```")
print()
print("Command lines: `fpctl attach PID trace __main__ METHOD %s`," % " ".join(TRACE_ARGS))
print("`flight_profiler PID --cmd \"trace __main__ METHOD %s\" --no-color`, each" % " ".join(
    TRACE_ARGS))
print("stopped with SIGINT.  The machine may be shared with other work: compare rows of one")
print("run.")
EOF
