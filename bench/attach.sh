#!/usr/bin/env bash
# Attach cost of an in-process command, printed as a markdown section on
# stdout (progress on stderr) for bench/RESULTS.md:
#
#   `fpctl attach PID getglobal __main__ counter` next to flight_profiler's
#   `flight_profiler PID --cmd "getglobal __main__ counter"`, both against
#   bench/attach_target.py run by one interpreter (a venv of pyenv's CPython
#   3.11, flight_profiler pip-installed into it, as flight_profiler needs):
#
#   1. fresh: a new target per run (nothing injected yet), ATTACH_RUNS runs
#      per tool (default 20), the tools interleaved;
#   2. warm: one target both tools have attached to already, ATTACH_WARM_RUNS
#      runs each (default 40), interleaved (each fpctl call is a new session:
#      fpd re-triggers the loaded helper; flight_profiler reconnects to its
#      agent's port);
#   3. fpctl with no fpd listening (its socket is fresh), fresh and warm:
#      fpctl starts fpd itself (--exit-when-idle), adding fpd's start and exit;
#   4. the Python embedded in libfpagent.so, compiled and executed in a fresh
#      process of the target's interpreter, as the helper's first request does.
#   fpd runs once (build/fpd --socket, copied with fpctl and libfpagent.so
#   to a scratch directory first, so a rebuild meanwhile cannot change them).
#
# Timing: a Python loop (from spawning the command to its output and to its
# exit; for fpctl --json also the arrival of the "agent" event, with fpd's
# stopped_ms/attach_ms); hyperfine, when installed, times the text-mode
# commands again (warm: plainly; fresh: --prepare starts a target,
# ATTACH_HF_FRESH_RUNS runs, default 10).
# Around each run the target's other threads report their longest gap
# between 1 ms ticks: a Python thread (needs the GIL: shows the tool's GIL
# holds) and a native thread (never touches Python), which also reports how
# much of its longest tick it spent neither asleep, running nor runnable
# (stopped).  The main thread sleeps: it is the one fpd hijacks.
#
# Needs root (ptrace of any process), cc, build/ (make), pyenv's 3.11, and
# PyPI for the first run (bench/out/fp-venv-3.11); without flight_profiler its
# rows are skipped with the reason.  About a minute.
set -euo pipefail
BENCH=attach.sh
. "$(dirname "$0")/lib.sh"
RUNS=${ATTACH_RUNS:-20}
WARM_RUNS=${ATTACH_WARM_RUNS:-40}
HF_FRESH_RUNS=${ATTACH_HF_FRESH_RUNS:-10}

bench_check
PY311=$(bench_python 3.11)
[ -n "$PY311" ] || { log "bench/attach.sh: no pyenv CPython 3.11 under $PYROOT/versions"; exit 1; }
bench_flight_venv 3.11
HYPERFINE=$(command -v hyperfine || true)

bench_cleanup() {
	[ -s "$WORK/fresh.pid" ] && kill -9 "$(cat "$WORK/fresh.pid")" 2>/dev/null
}
bench_start_fpd
# The Python embedded in that libfpagent.so, generated with it (for its size and compile time).
cp "$BUILD/gen/agent_py.c" "$WORK/bin/" 2>/dev/null || true

# The native ticker: a thread that never touches Python.  Besides its longest
# gap between 1 ms ticks it keeps the longest time of a tick that it spent
# neither asleep (1 ms), nor on a CPU, nor waiting in a run queue (from its
# /proc/thread-self/schedstat): time it was stopped, if any (ptrace, SIGSTOP),
# plus timer slack (~0.1 ms).
cat >"$WORK/ticker.c" <<'EOF'
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static _Atomic double worst_ms, worst_stopped_ms;
static atomic_int reset_flag, tid;
static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
/* On-CPU plus run-queue time of this thread so far, ms. */
static double busy_ms(int fd)
{
	char b[128];
	ssize_t n = pread(fd, b, sizeof(b) - 1, 0);
	if (n <= 0)
		return 0;
	b[n] = 0;
	char *e;
	double cpu = strtoull(b, &e, 10);
	double wait = strtoull(e, NULL, 10);
	return (cpu + wait) / 1e6;
}
static void *run(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	int fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	tid = gettid();
	double last = now_ms(), last_busy = busy_ms(fd);
	for (;;) {
		struct timespec d = {0, 1000000};
		nanosleep(&d, NULL);
		double n = now_ms(), b = busy_ms(fd);
		if (atomic_exchange(&reset_flag, 0)) {
			worst_ms = worst_stopped_ms = 0;
		} else {
			if (n - last > worst_ms)
				worst_ms = n - last;
			double stopped = n - last - 1.0 - (b - last_busy);
			if (stopped > worst_stopped_ms)
				worst_stopped_ms = stopped;
		}
		last = n;
		last_busy = b;
	}
	return NULL;
}
int ticker_start(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, run, NULL))
		return -1;
	while (!tid)
		usleep(100);
	return tid;
}
double ticker_worst(void) { return worst_ms; }
double ticker_worst_stopped(void) { return worst_stopped_ms; }
void ticker_reset(void) { reset_flag = 1; }
EOF
cc -O2 -shared -fPIC -pthread -o "$WORK/ticker.so" "$WORK/ticker.c"

TARGET_PY=$VENV_PYTHON
TARGET_ARGS="$REPO/bench/attach_target.py --native-ticker $WORK/ticker.so --probe"

# hyperfine --prepare for fresh targets: the previous one goes, a new one starts.
cat >"$WORK/fresh.sh" <<EOF
#!/bin/bash
[ -s $WORK/fresh.pid ] && kill -9 \$(cat $WORK/fresh.pid) 2>/dev/null
rm -f $WORK/fresh.out
setsid $TARGET_PY $TARGET_ARGS $WORK/probe-hf >$WORK/fresh.out 2>>$WORK/fresh.err </dev/null &
echo \$! >$WORK/fresh.pid
for i in \$(seq 1000); do grep -q ready $WORK/fresh.out 2>/dev/null && exit 0; sleep 0.01; done
exit 1
EOF
chmod +x "$WORK/fresh.sh"

export WORK TARGET_PY TARGET_ARGS SOCK FLIGHT FLIGHT_NOTE HYPERFINE RUNS WARM_RUNS HF_FRESH_RUNS PY311 BUILD
/usr/bin/python3 - <<'EOF'
import datetime, json, os, platform, shlex, statistics, subprocess, sys, time

E = os.environ
work, sock = E["WORK"], E["SOCK"]
target_cmd = [E["TARGET_PY"]] + E["TARGET_ARGS"].split()
fpctl = work + "/bin/fpctl"
flight = E["FLIGHT"]
hyperfine = E["HYPERFINE"]
runs, warm_runs, hf_fresh = int(E["RUNS"]), int(E["WARM_RUNS"]), int(E["HF_FRESH_RUNS"])
auto_sock = work + "/auto/fpd.sock"
os.mkdir(work + "/auto")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(cmd):
    return subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          universal_newlines=True).stdout.strip()


load_start = " ".join(open("/proc/loadavg").read().split()[:3])
ntargets = 0


class Target:
    def __init__(self):
        global ntargets
        ntargets += 1
        self.probe = "%s/probe-%d" % (work, ntargets)
        self.proc = subprocess.Popen(target_cmd + [self.probe], stdout=subprocess.PIPE,
                                     stderr=open(work + "/target.err", "a"))
        if self.proc.stdout.readline().strip() != b"ready":
            sys.exit("bench/attach.sh: the target did not start (see %s/target.err)" % work)
        self.pid = self.proc.pid
        self.tids = dict(kv.split("=") for kv in open(self.probe + ".tids").read().split())
        self.thread_of = {int(v): k for k, v in self.tids.items()}

    def reset(self):
        open(self.probe + ".reset", "w").close()
        deadline = time.monotonic() + 5
        while os.path.exists(self.probe + ".reset") and time.monotonic() < deadline:
            time.sleep(0.0005)
        time.sleep(0.005)  # the native thread takes the reset at its next tick

    def gaps(self):
        time.sleep(0.03)  # ticks after the command: the gaps it caused have ended
        return [float(x) for x in open(self.probe + ".gap").read().split()]

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def fpctl_cmd(pid, socket=sock, json_out=True):
    return [fpctl, "--socket", socket] + (["--json"] if json_out else []) + \
        ["attach", str(pid), "getglobal", "__main__", "counter"]


# Its client is Python: unbuffered, so that its VALUE line is seen when printed, not at exit.
flight_env = dict(os.environ, PYTHONUNBUFFERED="1")


def flight_cmd(pid):
    return [flight, str(pid), "--cmd", "getglobal __main__ counter", "--no-color"]


def timed(cmd, env=None):
    """Runs cmd; wall time to its exit and (seconds, line) for each line of its stdout."""
    err = open(work + "/cmd.err", "w+b")
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env)
    lines = []
    for line in iter(p.stdout.readline, b""):
        lines.append((time.perf_counter() - t0, line))
    rc = p.wait()
    t_exit = time.perf_counter() - t0
    err.seek(0)
    return rc, t_exit, lines, err.read().decode(errors="replace")


samples = {}  # row -> list of dicts


def run_one(row, target, cmd, kind):
    target.reset()
    rc, t_exit, lines, err = timed(cmd, flight_env if kind == "flight" else None)
    python_gap, native_gap, native_stopped = target.gaps()
    s = {"wall": t_exit * 1e3, "python": python_gap, "native": native_gap, "nstop": native_stopped,
         "rc": rc, "cmd": cmd}
    out = b"".join(l for _, l in lines).decode(errors="replace")
    if kind == "fpctl":
        value_ok = False
        for t, line in lines:
            ev = json.loads(line)
            if ev.get("event") == "agent":
                s.update(t_agent=t * 1e3, stopped=ev["stopped_ms"], attach_ms=ev["attach_ms"],
                         retries=ev.get("retries", 0),
                         loaded=ev["loaded"], hijacked=target.thread_of.get(ev["tid"], str(ev["tid"])))
            elif ev.get("event") == "value":
                s["t_value"] = s["out"] = t * 1e3
                value_ok = ev.get("value") == "42"
    else:
        for t, line in lines:
            if b"VALUE:" in line:
                s["out"] = t * 1e3
                value_ok = b"42" in line
    s["ok"] = rc == 0 and value_ok
    if not s["ok"]:
        s["why"] = (err.strip() or out.strip()).splitlines()[-1:] or ["rc %d" % rc]
        log("%s: failed (rc %d): %s" % (row, rc, (err + out).strip()[-300:]))
    samples.setdefault(row, []).append(s)


ROWS = [
    ("fresh", "fpctl (fpd running)"),
    ("fresh", "fpctl (fpd started by fpctl)"),
    ("fresh", "flight_profiler"),
    ("warm", "fpctl (fpd running)"),
    ("warm", "fpctl (fpd started by fpctl)"),
    ("warm", "flight_profiler"),
]
tools = {
    "fpctl (fpd running)": ("fpctl", lambda pid: fpctl_cmd(pid)),
    "fpctl (fpd started by fpctl)": ("fpctl", lambda pid: fpctl_cmd(pid, auto_sock)),
}
if flight:
    tools["flight_profiler"] = ("flight", flight_cmd)

# 0. The machine's own noise: the same gaps with no tool, over 300 ms windows.
base = Target()
for _ in range(runs):
    base.reset()
    time.sleep(0.3)
    py_gap, native_gap, native_stopped = base.gaps()
    samples.setdefault(("idle", "no tool (300 ms window)"), []).append(
        {"python": py_gap, "native": native_gap, "nstop": native_stopped, "ok": True})
base.kill()

# 1. Fresh targets, tools interleaved (the order rotates every round).
names = list(tools)
for i in range(runs):
    log("fresh round %d/%d" % (i + 1, runs))
    order = names[i % len(names):] + names[:i % len(names)]
    for name in order:
        kind, mk = tools[name]
        t = Target()
        run_one(("fresh", name), t, mk(t.pid), kind)
        t.kill()

# 2. One warm target: every tool attached once first, then interleaved.
w = Target()
for name in names:
    kind, mk = tools[name]
    for _ in range(3):
        timed(mk(w.pid))
for i in range(warm_runs):
    if i % 10 == 0:
        log("warm round %d/%d" % (i + 1, warm_runs))
    for name in names:
        kind, mk = tools[name]
        run_one(("warm", name), w, mk(w.pid), kind)

# 3. hyperfine, text mode (what a user runs).
hf = []  # (case, tool, cmdline, median, p95, runs)


def hf_run(case, tool, cmdline, extra, nruns):
    out = work + "/hf.json"
    args = [hyperfine, "--style", "none", "--runs", str(nruns), "--export-json", out] + extra + [cmdline]
    r = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
    if r.returncode != 0:
        log("hyperfine %s / %s failed: %s" % (case, tool, r.stderr.strip()[-300:]))
        hf.append((case, tool, cmdline, None, None, nruns, " ".join(shlex.quote(a) for a in args)))
        return
    t = sorted(json.load(open(out))["results"][0]["times"])
    hf.append((case, tool, cmdline, t[len(t) // 2] * 1e3, t[min(len(t) - 1, int(0.95 * len(t)))] * 1e3,
               len(t), " ".join(shlex.quote(a) for a in args if a != out).replace("--export-json ", "")))


if hyperfine:
    log("hyperfine: warm")
    q = lambda cmd: " ".join(shlex.quote(a) for a in cmd)
    hf_run("warm", "fpctl (fpd running)", q(fpctl_cmd(w.pid, json_out=False)), ["-N", "--warmup", "3"], warm_runs)
    if flight:
        hf_run("warm", "flight_profiler", q(flight_cmd(w.pid)), ["-N", "--warmup", "3"], warm_runs)
    log("hyperfine: fresh")
    pidref = '"$(cat %s/fresh.pid)"' % work
    hf_run("fresh", "fpctl (fpd running)",
           q(fpctl_cmd(0, json_out=False)).replace(" attach 0 ", " attach %s " % pidref),
           ["--prepare", work + "/fresh.sh"], hf_fresh)
    if flight:
        hf_run("fresh", "flight_profiler", q(flight_cmd(0)).replace(" 0 --cmd", " %s --cmd" % pidref, 1),
               ["--prepare", work + "/fresh.sh"], hf_fresh)
w.kill()

# 4. The embedded Python alone: compiled and executed (its imports) as the helper does on its
#    first request, in a fresh process of the target's interpreter; median of 5.
embedded = []  # (name, text)
try:
    import re, warnings
    warnings.simplefilter("ignore", DeprecationWarning)  # C's \? is no Python escape
    gen = open(work + "/bin/agent_py.c").read()
    gen = gen[gen.index("fp_agent_sources[] = {"):]
    for m in re.finditer(r'\{"([^"]+)",\s*((?:"(?:[^"\\\n]|\\.)*"\s*)+)\}', gen):
        lits = re.findall(r'"((?:[^"\\\n]|\\.)*)"', m.group(2))
        embedded.append((m.group(1), "".join(
            l.encode("latin-1", "backslashreplace").decode("unicode_escape") for l in lits)))
except (OSError, ValueError) as e:
    log("embedded sources: %s" % e)
emb_time = None
if embedded:
    os.mkdir(work + "/embedded")
    for name, text in embedded:
        with open(work + "/embedded/" + name, "w") as f:
            f.write(text)
    probe_py = r"""
import os, sys, time
d = sys.argv[1]
order = ["core.py"] + sorted(f for f in os.listdir(d) if f != "core.py")
ns = {"__builtins__": __builtins__, "__name__": "_fpagent"}
for n in ("_fp_send", "_fp_recv", "_fp_cancelled", "_fp_async_exc"):
    ns[n] = lambda *a: None
before = set(sys.modules)
tc = te = 0.0
for f in order:
    src = open(os.path.join(d, f)).read()
    t0 = time.perf_counter()
    code = compile(src, "<fpagent>/" + f, "exec")
    t1 = time.perf_counter()
    exec(code, ns)
    tc, te = tc + t1 - t0, te + time.perf_counter() - t1
print("%.2f %.2f %d" % (tc * 1e3, te * 1e3, len(set(sys.modules) - before)))
"""
    res = []
    for _ in range(5):
        r = subprocess.run([E["TARGET_PY"], "-c", probe_py, work + "/embedded"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True)
        if r.returncode == 0:
            res.append([float(x) for x in r.stdout.split()])
        else:
            log("embedded sources: %s" % r.stderr.strip()[-300:])
            break
    if res:
        emb_time = (statistics.median(x[0] for x in res), statistics.median(x[1] for x in res),
                    int(res[0][2]))

# ---- the section ----
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p * len(v)))]


def med(v):
    return statistics.median(v) if v else float("nan")


def f1(x):
    return "%.1f" % x


load_end = " ".join(open("/proc/loadavg").read().split()[:3])
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
pyver = sh(E["TARGET_PY"] + " --version")
flight_ver = sh(E["TARGET_PY"] + " -m pip show flight_profiler 2>/dev/null | sed -n 's/^Version: //p'") if flight else ""
head = sh("git rev-parse --short HEAD")
dirty = sh("git status --porcelain -- agent daemon cli common include | wc -l")

print("## Attach: getglobal on a fresh and on an attached target, fpctl and flight_profiler\n")
print("`bench/attach.sh`, %s, %d CPUs (%s), kernel %s; load average %s at the start, %s at the end." % (
    datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), os.cpu_count(), cpu or "?", platform.release(),
    load_start, load_end))
print("Target: `%s` (%s: a venv of `%s` with flight_profiler %s installed, as flight_profiler requires)," % (
    " ".join(target_cmd) + " PROBE", pyver, E["PY311"], flight_ver or "(not installed)"))
print("a new process for each fresh run, one for all warm runs.  fpd, fpctl and libfpagent.so: `%s` at %s%s," % (
    E["BUILD"], head, " with %s uncommitted files under agent/ daemon/ cli/ common/ include/" % dirty if dirty != "0" else ""))
print("copied to `%s/bin` first; fpd started once: `%s/bin/fpd --socket %s`." % (work, work, sock))
if embedded:
    print("That libfpagent.so embeds %d Python files, %d KB (build/gen/agent_py.c)." % (
        len(embedded), sum(len(t) for _, t in embedded) // 1024))
print("Python loop: from spawning the command to its output (fpctl --json: the value event;")
print("flight_profiler, run with PYTHONUNBUFFERED=1: its VALUE line) and to its exit; fresh runs first,")
print("the tools interleaved, then warm runs interleaved.  hyperfine times the text-mode commands to exit.")
print("Goal (issue 3): fresh <= 200 ms, warm <= 20 ms; the reference measured 870 ms and 190 ms.\n")

print("| case | tool | runs ok | to output: median ms | p95 ms | max ms | to exit: median ms | p95 ms |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for case, tool in ROWS:
    ss = samples.get((case, tool))
    if not ss:
        if tool == "flight_profiler":
            print("| %s | %s | skipped: %s | | | | | |" % (case, tool, E["FLIGHT_NOTE"]))
        continue
    ok = [s for s in ss if s["ok"]]
    fails = [s for s in ss if not s["ok"]]
    note = " (%d failed: %s)" % (len(fails), fails[0]["why"][0][:80]) if fails else ""
    if ok:
        out, wall = [s["out"] for s in ok], [s["wall"] for s in ok]
        print("| %s | %s | %d/%d%s | **%s** | %s | %s | %s | %s |" % (case, tool, len(ok), len(ss), note,
              f1(med(out)), f1(pct(out, 0.95)), f1(max(out)), f1(med(wall)), f1(pct(wall, 0.95))))
    else:
        print("| %s | %s | 0/%d%s | | | | | |" % (case, tool, len(ss), note))
for case, tool, cmdline, m, p, n, _ in hf:
    if m is None:
        print("| %s | %s, hyperfine | failed | | | | | |" % (case, tool))
    else:
        print("| %s | %s, hyperfine (text output) | %d | | | | %s | %s |" % (case, tool, n, f1(m), f1(p)))

print("\nHow long the target was stopped.  *stopped* is fpd's own figure (the agent event of")
print("`fpctl --json`): how long ptrace kept the hijacked thread (the main thread, asleep) stopped.")
print("The other columns are the longest gap between the 1 ms ticks of a target thread around one run")
print("(median / max over the runs; with nothing going on a tick takes 1.1 ms or more on a loaded")
print("machine, see the first row): the *Python thread* needs the GIL for a tick, so its gap shows how")
print("long the tool's code in the process held the GIL; the *native thread* never touches Python, so")
print("its gap shows whether the process's other threads were stopped at all, but also any wait for")
print("a CPU; *native stopped* is the part of its longest tick that it spent neither asleep (1 ms),")
print("nor on a CPU, nor in a run queue (its /proc/thread-self/schedstat): stopped, plus timer slack.\n")
print("| case | tool | stopped ms (fpd): median / max | hijacked thread | Python thread gap ms | native thread gap ms | native stopped ms |")
print("|---|---|---:|---|---:|---:|---:|")
for case, tool in [("idle", "no tool (300 ms window)")] + ROWS:
    ss = [s for s in samples.get((case, tool), []) if s["ok"]]
    if not ss:
        continue
    def mm(k):
        v = [s[k] for s in ss]
        return "%s / %s" % (f1(med(v)), f1(max(v)))
    stopped = mm("stopped") if "stopped" in ss[0] else "-"
    hij = "-"
    if "hijacked" in ss[0]:
        counts = {}
        for s in ss:
            counts[s["hijacked"]] = counts.get(s["hijacked"], 0) + 1
        hij = ", ".join("%s %d/%d" % (k, v, len(ss)) for k, v in sorted(counts.items()))
        hij += "; safe-point retries: %d" % sum(s.get("retries", 0) for s in ss)
    print("| %s | %s | %s | %s | %s | %s | %s |" % (case, tool, stopped, hij, mm("python"), mm("native"), mm("nstop")))
print("\nWhere fpctl's time goes (medians, ms): *to agent event* = fpctl's start, connect and hello,")
print("then fpd's injection (fresh: seize, dlopen of libfpagent.so, restore) or re-trigger (warm:")
print("a ptrace call of the loaded helper's entry point) and the helper's connect-back and hello;")
print("*attach_ms* is fpd's own count of that last part; *agent to value* = the request in the")
print("helper (GIL, first time: compile of the embedded Python, then getglobal and rendering).\n")
print("| case | fpd | to value | to agent event | of which attach_ms | agent to value | value to exit |")
print("|---|---|---:|---:|---:|---:|---:|")
for case, tool in ROWS:
    if not tool.startswith("fpctl"):
        continue
    ss = [s for s in samples.get((case, tool), []) if s["ok"]]
    if not ss:
        continue
    g = lambda f: f1(med([f(s) for s in ss]))
    print("| %s | %s | %s | %s | %s | %s | %s |" % (case, tool.split("(")[1].rstrip(")"), g(lambda s: s["t_value"]),
          g(lambda s: s["t_agent"]), g(lambda s: s["attach_ms"]), g(lambda s: s["t_value"] - s["t_agent"]),
          g(lambda s: s["wall"] - s["t_value"])))

print("\nCommand lines (PID: the target's pid):\n")
seen = set()
for case, tool in ROWS:
    ss = samples.get((case, tool))
    if ss and tool not in seen:
        seen.add(tool)
        pidpos = 1 if tool == "flight_profiler" else ss[0]["cmd"].index("attach") + 1
        cmd = list(ss[0]["cmd"])
        cmd[pidpos] = "PID"
        print("- %s (Python loop): `%s%s`" % (tool, "PYTHONUNBUFFERED=1 " if tool == "flight_profiler" else "",
                                             " ".join(shlex.quote(a) for a in cmd)))
for case, tool, cmdline, m, p, n, full in hf:
    print("- %s, %s (hyperfine): `%s`" % (case, tool, full))
print("- target: `%s %s/probe-N`" % (" ".join(target_cmd), work))
print("- fresh targets for hyperfine (`--prepare`): `%s/fresh.sh` kills the last one and starts" % work)
print("  `setsid %s %s/probe-hf`, waiting for its ready line" % (" ".join(target_cmd), work))

# ---- what the numbers say ----
def okv(case, tool, k):
    return [x[k] for x in samples.get((case, tool), []) if x["ok"]]


fo, wo = okv("fresh", "fpctl (fpd running)", "out"), okv("warm", "fpctl (fpd running)", "out")
print("\nSummary:\n")
if fo and wo:
    print("- fpctl getglobal, fpd running: fresh target %s ms median (goal <= 200: %s), attached target"
          % (f1(med(fo)), "met" if med(fo) <= 200 else "NOT met"))
    print("  %s ms median (goal <= 20: %s)." % (f1(med(wo)), "met" if med(wo) <= 20 else "NOT met"))
fa, wa = okv("fresh", "fpctl (fpd started by fpctl)", "out"), okv("warm", "fpctl (fpd started by fpctl)", "out")
fae, we = okv("warm", "fpctl (fpd started by fpctl)", "wall"), okv("warm", "fpctl (fpd running)", "wall")
if fo and wo and fa and wa and fae and we:
    print("- With no fpd listening, fpctl starts one (--exit-when-idle): +%s ms to the output on a fresh"
          % f1(med(fa) - med(fo)))
    print("  target, +%s ms on an attached one (fpd's start), and +%s ms to fpctl's exit, as fpctl also"
          % (f1(med(wa) - med(wo)), f1(med(fae) - med(we))))
    print("  waits for that fpd to leave (it looks for idleness every 50 ms).")
ff, fw = okv("fresh", "flight_profiler", "out"), okv("warm", "flight_profiler", "out")
if ff and fw:
    print("- flight_profiler: fresh %s ms, attached %s ms (medians).  Its first attach injects with its"
          % (f1(med(ff)), f1(med(fw))))
    print("  own ptrace tool (lib/attach); then its client's check_status() connects to the agent's TCP")
    print("  port before the agent's server thread listens, and sleeps 0.5 s (client.py: `time.sleep(0.5)`")
    print("  after a refused connect; seen on every first attach with time.sleep wrapped): most of the")
    print("  fresh - attached difference (%s ms).  Every call, warm or"
          % f1(med(ff) - med(fw)))
    print("  not, starts its Python client (imports), runs shell scripts (resolve_bin_path.sh, ps,")
    print("  readlink) and probes ports 16000-16500 for an agent that answers with the target's pid.")
st = okv("fresh", "fpctl (fpd running)", "stopped") + okv("warm", "fpctl (fpd running)", "stopped")
nat = [x for case in ("fresh", "warm") for tool in tools if tool.startswith("fpctl")
       for x in okv(case, tool, "native")]
idle = okv("idle", "no tool (300 ms window)", "native")
idle_st = okv("idle", "no tool (300 ms window)", "nstop")
st_f = okv("fresh", "fpctl (fpd running)", "stopped")
nst_f = okv("fresh", "fpctl (fpd running)", "nstop")
if st and nat and idle and st_f and nst_f:
    print("- fpd stops one thread, %s ms median, %s ms at most (every run with fpd running).  Over all"
          % (f1(med(st)), f1(max(st))))
    print("  fpctl runs the native thread's longest gap was %s ms median, %s ms at most (%s / %s with no"
          % (f1(med(nat)), f1(max(nat)), f1(med(idle)), f1(max(idle))))
    print("  tool: waiting for a CPU of a busy 2-CPU machine).  On fresh targets, where fpd's stop is")
    print("  longest (%s ms median), the native thread spent %s ms median (%s at most) of its longest tick"
          % (f1(med(st_f)), f1(med(nst_f)), f1(max(nst_f))))
    print("  neither asleep, running nor runnable, %s / %s with no tool: %s." % (
        f1(med(idle_st)), f1(max(idle_st)),
        "it was not stopped with the hijacked thread" if med(nst_f) < 0.5 * med(st_f) else
        "as long as fpd's stop, so it may have been stopped too: look at the runs"))
ff_ = [x for x in samples.get(("fresh", "fpctl (fpd running)"), []) if x["ok"]]
ww_ = [x for x in samples.get(("warm", "fpctl (fpd running)"), []) if x["ok"]]
if ff_ and ww_:
    print("- Where fpctl's first attach goes (medians): %s ms until fpd reports the helper up (injection"
          % f1(med([x["t_agent"] for x in ff_])))
    print("  and hello: attach_ms %s), then %s ms in the helper's first request against %s ms on an"
          % (f1(med([x["attach_ms"] for x in ff_])), f1(med([x["t_value"] - x["t_agent"] for x in ff_])),
             f1(med([x["t_value"] - x["t_agent"] for x in ww_]))))
    print("  attached target: the embedded Python is compiled and its imports run on the first request;")
    print("  the injection itself is a few ms, and the GIL was free (the target is idle).")
pf, pw = okv("fresh", "fpctl (fpd running)", "python"), okv("warm", "fpctl (fpd running)", "python")
if pf and pw:
    print("- The Python thread's longest gap, %s ms median on a fresh target against %s attached (%s with"
          % (f1(med(pf)), f1(med(pw)), f1(med(okv("idle", "no tool (300 ms window)", "python")))))
    print("  no tool over a longer window): what rises on a fresh target is the GIL held by the helper's")
    print("  first request, compiling and executing the embedded Python one file at a time (the GIL is")
    print("  handed over between files), not a stop.")
if emb_time:
    print("- The embedded Python alone (%d files, %d KB), compiled and executed in a fresh %s process as"
          % (len(embedded), sum(len(t) for _, t in embedded) // 1024, pyver))
    print("  the helper does (median of 5): compile %s ms, execution %s ms (it imports %d modules)."
          % (f1(emb_time[0]), f1(emb_time[1]), emb_time[2]))
    print("  All files are compiled on the first request whatever the command; getglobal uses core,")
    print("  locate, render and getglobal.")
EOF
