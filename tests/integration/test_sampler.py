"""The BPF sampler against real targets, once per interpreter.

Driven through build/tests/test_sampler's `sample` mode (the sampler library
as fpd links it, printing collapsed stacks: "thread;outer (file:line);...
count") until `fpctl perf` lands.  A target runs one thread spinning in
hot_a and one calling leaf from hot_b: both stacks must show, outermost
first, on the marked lines, with roughly equal shares (they take turns on
the GIL).
"""

import os
import re
import subprocess
from collections import Counter

import pytest

import fpdtest
from fpdtest import TARGETS, marker_line

HOT = TARGETS / "hotpair.py"
FRAME = re.compile(r"^(.*) \((.*):(-?\d+)\)$")
NATIVE = re.compile(r"^(.*) \[(.*)\]$")


@pytest.fixture(scope="session")
def driver():
    if os.geteuid() != 0:
        pytest.skip("the sampler needs root (CAP_BPF, CAP_PERFMON)")
    path = fpdtest.build_dir() / "tests" / "test_sampler"
    if not os.access(str(path), os.X_OK):
        pytest.fail("%s is missing: build it with `make unit`" % path, pytrace=False)
    return path


def sample(driver, pid, seconds, rate, *opts):
    """{thread: Counter(tuple of (func, file, line) outermost first)}, stats.
    Native frames are (func, "[library]", None)."""
    r = subprocess.run([str(driver), "sample", str(pid), str(seconds), str(rate)] + list(opts),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    out, err = r.stdout.decode(), r.stderr.decode()
    assert r.returncode == 0, "sampler failed: %s" % err
    stacks, stats = {}, {}
    for line in out.splitlines():
        if line.startswith("# "):
            stats = {k: int(v) for k, v in (w.split("=") for w in line[2:].split())}
            continue
        key, count = line.rsplit(" ", 1)
        parts = key.split(";")
        frames = []
        for p in parts[1:]:
            m = FRAME.match(p)
            if m:
                frames.append((m.group(1), m.group(2), int(m.group(3))))
                continue
            m = NATIVE.match(p)
            assert m, "bad frame %r in %r" % (p, line)
            frames.append((m.group(1), "[%s]" % m.group(2), None))
        stacks.setdefault(parts[0], Counter())[tuple(frames)] += int(count)
    assert "samples" in stats, "no stats line in %r" % out
    return stacks, stats


def total(counter):
    return sum(counter.values())


def ends_with(counter, tail):
    n = len(tail)
    return sum(c for frames, c in counter.items() if [(f[0], f[1]) for f in frames[-n:]] == tail)


@pytest.fixture(scope="module")
def hot(interp, workdir):
    target = fpdtest.Target(interp.python, "hotpair.py", logdir=workdir).ready()
    yield target
    target.kill()


def test_hot_functions(interp, driver, hot):
    stacks, stats = sample(driver, hot.pid, 3, 199)
    a, b = stacks.get("hot-a", Counter()), stacks.get("hot-b", Counter())
    both = total(a) + total(b)
    assert both >= 30, "too few samples of the hot threads: %s, stats %s" % (stacks, stats)
    assert stats["faulted"] <= stats["samples"] // 10, stats
    assert stats["lost"] == 0, stats
    # They take turns on the GIL: neither may dominate.
    assert 0.2 <= total(a) / both <= 0.8, "shares: hot-a %d, hot-b %d" % (total(a), total(b))

    file = str(HOT)
    in_a = ends_with(a, [("hot_a", file)])
    assert in_a >= 0.9 * total(a), "hot-a stacks: %s" % a
    leaf_b = ends_with(b, [("hot_b", file), ("leaf", file)])
    self_b = ends_with(b, [("hot_b", file)])
    assert leaf_b + self_b >= 0.9 * total(b), "hot-b stacks: %s" % b
    assert leaf_b >= self_b, "leaf should be hotter than hot_b itself: %s" % b

    # Current lines, from the instruction offsets the kernel read.
    lines = Counter(f[2] for frames in a for f in frames[-1:] for _ in range(a[frames]))
    assert lines.most_common(1)[0][0] == marker_line(file, "hot_a"), lines
    leaf_lines = Counter()
    for frames, c in b.items():
        if frames and frames[-1][0] == "leaf":
            leaf_lines[frames[-1][2]] += c
            assert frames[-2][2] == marker_line(file, "hot_b"), frames
    assert leaf_lines[marker_line(file, "leaf")] >= 0.6 * total(leaf_lines), leaf_lines

    # Outermost first: threading's bootstrap, then run, then the target function.
    run = interp.qualname("Thread.run", "run")
    for frames in list(a) + list(b):
        funcs = [f[0] for f in frames]
        assert run in funcs, frames
        assert funcs.index(run) < funcs.index("hot_a" if "hot_a" in funcs else "hot_b"), frames


def test_idle_includes_blocked_threads(interp, driver, hot):
    stacks, stats = sample(driver, hot.pid, 1, 50, "idle")
    main = stacks.get("MainThread", Counter())
    assert total(main) >= 10, "the main thread, blocked in read, was not sampled: %s" % stacks
    inner = Counter(frames[-1][:1] + frames[-1][2:] for frames in main.elements())
    serve = ("serve", marker_line(TARGETS / "fptarget.py", "serve"))
    assert inner.most_common(1)[0][0] == serve, inner
    assert total(stacks.get("hot-a", Counter())) >= 10, stacks
    # With --gil too, only the threads taking turns on the GIL remain.
    stacks, stats = sample(driver, hot.pid, 1, 50, "idle", "gil")
    assert "MainThread" not in stacks, stacks


def test_gil_only(interp, driver, workdir):
    target = fpdtest.Target(interp.python, "hotpair.py", ["nogil"], logdir=workdir).ready()
    try:
        stacks, stats = sample(driver, target.pid, 2, 199)
        free = total(stacks.get("nogil", Counter()))
        assert free >= 15, "the GIL-free thread should be sampled on CPU: %s" % stacks
        stacks, stats = sample(driver, target.pid, 2, 199, "gil")
        held = total(stacks.get("nogil", Counter()))
        hot = total(stacks.get("hot-a", Counter())) + total(stacks.get("hot-b", Counter()))
        assert hot >= 20, stacks
        assert held <= 0.25 * free + 2, "--gil kept %d of the GIL-free thread's samples (%d without)" % (held, free)
    finally:
        target.kill()


def test_native(interp, driver, hot):
    """--native: the copied stack unwinds to the thread's start, and each
    eval-loop frame gives way to the Python frames it runs."""
    stacks, stats = sample(driver, hot.pid, 2, 199, "native")
    file = str(HOT)
    hot_stacks = stacks.get("hot-a", Counter()) + stacks.get("hot-b", Counter())
    n = total(hot_stacks)
    assert n >= 15, "too few samples: %s, stats %s" % (stacks, stats)
    started = evals = in_order = 0
    for frames, c in hot_stacks.items():
        natives = [f[0] for f in frames if f[2] is None]
        python = [f[0] for f in frames if f[2] is not None and f[1] == file]
        if frames and frames[0][2] is None and ({"start_thread", "clone", "__clone3"} & set(natives)):
            started += c
        if any(f and f.startswith("_PyEval_EvalFrameDefault") for f in natives):
            evals += c
        if python in (["hot_a"], ["hot_b"], ["hot_b", "leaf"]):
            in_order += c
    assert started >= 0.8 * n, "unwinds that reached the thread start: %d of %d: %s" % (started, n, hot_stacks)
    assert evals <= 0.1 * n, "eval-loop frames left unmerged in %d of %d: %s" % (evals, n, hot_stacks)
    assert in_order >= 0.9 * n, hot_stacks
