"""The BPF sampler, through `fpctl attach PID perf`, once per interpreter.

targets/hotpair.py runs thread hot-a spinning in hot_a and thread hot-b
calling leaf from hot_b; they take turns on the GIL.  test_perf.py checks
the file formats, shares and bad input; this file checks what the sampler
itself puts in the collapsed profile a user gets: current lines from the
instruction offsets the kernel read, stacks outermost first from the
thread's bootstrap, as many samples as the rate and the threads' CPU time
call for (the scheduler tick drives it up to the kernel's tick rate,
cpu-clock events add the rest above), --idle, --gil and --native.
"""

import json
import os
import re
import time
from collections import Counter
from pathlib import Path

import pytest

import fpdtest
from fpdtest import TARGETS, marker_line

HOT = str(TARGETS / "hotpair.py")
WROTE = re.compile(r"^Wrote (\d+) samples to ([^,\s]+)(.*)$")
PYFRAME = re.compile(r"^(.*) \((.*):(\d+)\)$")
NATIVE = re.compile(r"^(.*) \((.*)\)$")


@pytest.fixture(autouse=True)
def needs_root():
    if os.geteuid() != 0:
        pytest.skip("the sampler needs fpd to load BPF programs: run the suite as root")


@pytest.fixture(scope="module")
def hot(interp, workdir):
    target = fpdtest.Target(interp.python, "hotpair.py", logdir=workdir).ready()
    yield target
    target.kill()


@pytest.fixture
def out(workdir):
    d = Path(workdir) / ("sampler-%d" % time.monotonic_ns())
    d.mkdir()
    return d


def perf(fpctl, pid, out, *opts):
    """Runs perf to a collapsed file: ({thread: Counter(stack)}, samples, extras).
    A stack is a tuple of (func, file, line) outermost first; a native frame
    is (func, "[library]", None).  extras: the rest of the "Wrote" line."""
    r = fpctl("attach", pid, "perf", "--format", "collapsed", "-f", "p.collapsed",
              *[str(o) for o in opts], cwd=str(out))
    m = WROTE.match(r.out.strip())
    assert m and m.group(2) == "p.collapsed", r.out
    stacks = {}
    for line in (out / "p.collapsed").read_text().splitlines():
        key, count = line.rsplit(" ", 1)
        parts = key.split(";")
        frames = []
        for p in parts[1:]:
            py, nat = PYFRAME.match(p), NATIVE.match(p)
            if py:
                frames.append((py.group(1), py.group(2), int(py.group(3))))
            else:
                frames.append((nat.group(1) if nat else p, "[%s]" % (nat.group(2) if nat else "?"), None))
        stacks.setdefault(parts[0], Counter())[tuple(frames)] += int(count)
    n = int(m.group(1))
    assert sum(total(c) for c in stacks.values()) == n
    return stacks, n, m.group(3)


def extra(extras, what):
    """A count from the tail of the "Wrote" line (", 3 lost, 2 cut by a fault")."""
    m = re.search(r", (\d+) %s" % what, extras)
    return int(m.group(1)) if m else 0


def total(counter):
    return sum(counter.values())


def ends_with(counter, tail):
    n = len(tail)
    return sum(c for frames, c in counter.items() if [(f[0], f[1]) for f in frames[-n:]] == tail)


def test_hot_functions(interp, fpctl, hot, out):
    stacks, n, extras = perf(fpctl, hot.pid, out, "-d", 3, "-r", 199)
    a, b = stacks.get("hot-a", Counter()), stacks.get("hot-b", Counter())
    both = total(a) + total(b)
    assert both >= 30, "too few samples of the hot threads: %s" % stacks
    assert extra(extras, "cut by a fault") <= n // 10, extras
    assert extra(extras, "lost") == 0, extras
    # They take turns on the GIL: neither may dominate.
    assert 0.2 <= total(a) / both <= 0.8, "shares: hot-a %d, hot-b %d" % (total(a), total(b))

    in_a = ends_with(a, [("hot_a", HOT)])
    assert in_a >= 0.9 * total(a), "hot-a stacks: %s" % a
    leaf_b = ends_with(b, [("hot_b", HOT), ("leaf", HOT)])
    self_b = ends_with(b, [("hot_b", HOT)])
    assert leaf_b + self_b >= 0.9 * total(b), "hot-b stacks: %s" % b
    assert leaf_b >= self_b, "leaf should be hotter than hot_b itself: %s" % b

    # Current lines, from the instruction offsets the kernel read.
    lines = Counter(f[2] for frames in a for f in frames[-1:] for _ in range(a[frames]))
    assert lines.most_common(1)[0][0] == marker_line(HOT, "hot_a"), lines
    leaf_lines = Counter()
    for frames, c in b.items():
        if frames and frames[-1][0] == "leaf":
            leaf_lines[frames[-1][2]] += c
            assert frames[-2][2] == marker_line(HOT, "hot_b"), frames
    assert leaf_lines[marker_line(HOT, "leaf")] >= 0.6 * total(leaf_lines), leaf_lines

    # Outermost first: threading's bootstrap, then run, then the target function.
    run = interp.qualname("Thread.run", "run")
    for frames in list(a) + list(b):
        funcs = [f[0] for f in frames]
        assert run in funcs, frames
        assert funcs.index(run) < funcs.index("hot_a" if "hot_a" in funcs else "hot_b"), frames


def run_ns(pid, tid):
    with open("/proc/%d/task/%d/schedstat" % (pid, tid)) as f:
        return int(f.read().split()[0])


@pytest.mark.parametrize("rate", [100, 1000])
def test_rate_follows_cpu_time(fpctl, debian_python, workdir, out, rate):
    """The threads get rate samples per second they ran, whichever trigger
    serves the rate: the tick (up to CONFIG_HZ, whose ticks each stand for
    1/HZ s of CPU time), the tick and cpu-clock events above.  The two hot
    threads hand
    the GIL to each other every 5 ms and so keep leaving and entering the
    CPUs, which is where counting ticks could go wrong."""
    t = fpdtest.Target(debian_python, "hotpair.py", logdir=str(workdir)).ready()
    try:
        tids = {n: t.threads[n].tid for n in ("hot-a", "hot-b")}
        cpu0 = {n: run_ns(t.pid, tid) for n, tid in tids.items()}
        r = fpctl("--json", "attach", t.pid, "perf", "-d", 2, "-r", rate, "--format", "collapsed",
                  cwd=str(out))
        cpu = {n: (run_ns(t.pid, tid) - cpu0[n]) / 1e9 for n, tid in tids.items()}
    finally:
        t.kill()
    ev = json.loads(r.out)
    # The tick needs BTF to be traced; without, cpu-clock events serve alone.
    if os.path.exists("/sys/kernel/btf/vmlinux"):
        assert ev["trigger"].startswith("tick"), ev["trigger"]
    assert ev["trigger"] in ("tick", "tick+cpu-clock", "cpu-clock"), ev["trigger"]
    got = Counter()
    for s in ev["stacks"]:
        got[s["tid"]] += s["count"]
    # Together: a fixed sampling period and the 5 ms turns alias, so one
    # thread can get more than its share for a while, but not the pair.  The
    # CPU time also covers fpctl's start and end, outside the sampling.
    want = rate * sum(cpu.values())
    have = sum(got[tid] for tid in tids.values())
    assert 0.75 * want - 10 <= have <= 1.1 * want + 10, (have, got, cpu, ev["trigger"])
    for name, tid in tids.items():
        assert got[tid] >= 0.3 * rate * cpu[name], (name, got, cpu)


def test_idle_includes_blocked_threads(interp, fpctl, hot, out):
    stacks, n, _ = perf(fpctl, hot.pid, out, "-d", 1, "-r", 50, "--idle")
    main = stacks.get("MainThread", Counter())
    assert total(main) >= 10, "the main thread, blocked in read, was not sampled: %s" % stacks
    inner = Counter(frames[-1][:1] + frames[-1][2:] for frames in main.elements())
    serve = ("serve", marker_line(TARGETS / "fptarget.py", "serve"))
    assert inner.most_common(1)[0][0] == serve, inner
    assert total(stacks.get("hot-a", Counter())) >= 10, stacks
    # With --gil too, only the threads taking turns on the GIL remain.
    stacks, n, _ = perf(fpctl, hot.pid, out, "-d", 1, "-r", 50, "--idle", "--gil")
    assert "MainThread" not in stacks, stacks


def test_gil_only(interp, fpctl, workdir, out):
    target = fpdtest.Target(interp.python, "hotpair.py", ["nogil"], logdir=workdir).ready()
    try:
        stacks, n, _ = perf(fpctl, target.pid, out, "-d", 2, "-r", 199)
        free = total(stacks.get("nogil", Counter()))
        assert free >= 15, "the GIL-free thread should be sampled on CPU: %s" % stacks
        stacks, n, _ = perf(fpctl, target.pid, out, "-d", 2, "-r", 199, "--gil")
        held = total(stacks.get("nogil", Counter()))
        hot = total(stacks.get("hot-a", Counter())) + total(stacks.get("hot-b", Counter()))
        assert hot >= 20, stacks
        assert held <= 0.25 * free + 2, "--gil kept %d of the GIL-free thread's samples (%d without)" % (held, free)
    finally:
        target.kill()


def test_native(interp, fpctl, hot, out):
    """--native: the copied stack unwinds to the thread's start, and each
    eval-loop frame gives way to the Python frames it runs."""
    stacks, n, _ = perf(fpctl, hot.pid, out, "-d", 2, "-r", 199, "--native")
    hot_stacks = stacks.get("hot-a", Counter()) + stacks.get("hot-b", Counter())
    n = total(hot_stacks)
    assert n >= 15, "too few samples: %s" % stacks
    started = evals = in_order = 0
    for frames, c in hot_stacks.items():
        natives = [f[0] for f in frames if f[2] is None]
        python = [f[0] for f in frames if f[2] is not None and f[1] == HOT]
        if frames and frames[0][2] is None and ({"start_thread", "clone", "__clone3"} & set(natives)):
            started += c
        if any(f and f.startswith("_PyEval_EvalFrameDefault") for f in natives):
            evals += c
        if python in (["hot_a"], ["hot_b"], ["hot_b", "leaf"]):
            in_order += c
    assert started >= 0.8 * n, "unwinds that reached the thread start: %d of %d: %s" % (started, n, hot_stacks)
    assert evals <= 0.1 * n, "eval-loop frames left unmerged in %d of %d: %s" % (evals, n, hot_stacks)
    assert in_order >= 0.9 * n, hot_stacks
