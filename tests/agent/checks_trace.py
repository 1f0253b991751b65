"""Checks of trace's C hook (agent/trace.c) with the real helper loaded into
this interpreter (inproc.py: build/libfpagent.so and a fake fpd), run under
every interpreter by checkrun.py (CPython 3.6+ syntax only).  The traced
functions are in tracee.py and are called in this thread; the `ns` each
check gets (the Python-only harness) is not used: the helper's own
namespace lives in the library.

Covered: the tree (nesting, counts, C calls, pruning), the application's
profile function chained and restored exactly, cProfile unharmed, the
application changing its profiler during a traced call, exceptions,
recursion of the traced function (its inner calls in its tree, the
trampolines and the hooks left out), generators (called and traced) and
coroutines, calls in several threads at once, a tree too big to print,
deep recursion, a traced call still running when the trace ends or the
session goes, two commands tracing one function."""
import asyncio
import cProfile
import sys
import threading
import time

import tracee
from inproc import InProc, error, events

_agent = []


def agent():
    if not _agent:
        _agent.append(InProc())
    return _agent[0]


LEGACY = sys.version_info < (3, 12)


def start(func, **args):
    args["argv"] = ["tracee", func]
    rid = agent().request("trace", args)
    agent().wait_event(rid, "tracing")
    return rid


def traces(rid, timeout=30):
    frames = agent().wait(rid, timeout)
    assert error(frames) is None, error(frames)
    return events(frames, "trace")


def shape(ev):
    return [(n["depth"], n["name"], n["count"]) for n in ev["nodes"]]


WORK = [(0, "work", 1), (1, "helper", 3), (2, "leaf", 6), (3, "sum", 6), (1, "list.append", 3),
        (1, "sorted", 1), (1, "len", 1)]


def check_tree(ns):
    rid = start("work", interval=0, limits=2)
    tracee.work(10)
    tracee.work(10)
    got = traces(rid)
    assert [shape(t) for t in got] == [WORK, WORK], got
    t = got[0]
    assert t["thread"] == threading.current_thread().name and t["dropped"] == 0, t
    assert t["nodes"][0]["file"].endswith("tracee.py:%d" % tracee.work.__code__.co_firstlineno) \
        or t["nodes"][0]["line"] == tracee.work.__code__.co_firstlineno, t
    assert all(n["ms"] <= t["nodes"][0]["ms"] for n in t["nodes"]), t
    assert t["nodes"][0]["ms"] <= t["cost_ms"], t


def check_depth_and_interval(ns):
    rid = start("work", depth=1, limits=1)
    tracee.work(10)
    (t,) = traces(rid)
    assert shape(t) == [n for n in WORK if n[0] <= 1], t
    rid = start("slow", interval=1, limits=1)
    tracee.slow(0.005)
    (t,) = traces(rid)
    assert slow_shown(t, 1.0), t


def slow_shown(t, ms):
    """What -i ms shows of slow(): the sleep, and leaf only when a busy
    machine preempted it long enough to cost ms."""
    got = shape(t)
    assert got[:2] == [(0, "slow", 1), (1, "time.sleep", 1)], got
    assert all(n["ms"] >= ms for n in t["nodes"][1:]) and t["nodes"][1]["ms"] >= 5.0, t
    return all(name in ("leaf", "sum") for _, name, _ in got[2:])


def check_app_profiler_chained_and_restored(ns):
    seen = []

    def prof(frame, event, arg):
        if event == "call":
            seen.append(frame.f_code.co_name)
    rid = start("work", interval=0, limits=1)
    sys.setprofile(prof)
    try:
        tracee.work(5)
        after = sys.getprofile()
    finally:
        sys.setprofile(None)
    assert after is prof, after
    # The application's profiler saw every call of the traced one.
    assert seen.count("leaf") == 6 and seen.count("helper") == 3, seen
    (t,) = traces(rid)
    assert shape(t) == WORK and not t["interrupted"], t


def check_cprofile_unharmed(ns):
    pr = cProfile.Profile()
    rid = start("work", interval=0, limits=1)
    pr.enable()
    before = sys.getprofile()
    try:
        tracee.work(5)
        after = sys.getprofile()
    finally:
        pr.disable()
    assert after is before, (before, after)
    calls = dict((getattr(s.code, "co_name", s.code), s.callcount) for s in pr.getstats())
    assert calls.get("leaf") == 6 and calls.get("helper") == 3, calls
    (t,) = traces(rid)
    assert shape(t) == WORK, t


def check_profiler_changed_during_call(ns):
    def mine(frame, event, arg):
        pass
    rid = start("switches_profiler", interval=0, limits=1)
    try:
        tracee.switches_profiler(mine)
        assert sys.getprofile() is mine, sys.getprofile()
    finally:
        sys.setprofile(None)
    (t,) = traces(rid)
    if LEGACY:
        # Our hook gave way to the application's choice: the tree ends there.
        assert t["interrupted"] is True, t
        assert shape(t)[:3] == [(0, "switches_profiler", 1), (1, "leaf", 1), (2, "sum", 1)], t
    else:
        # sys.monitoring: a profile function is another tool; nothing is cut.
        assert t["interrupted"] is False, t
        assert (1, "leaf", 2) in shape(t), t


def check_exception(ns):
    rid = start("raiser", interval=0, limits=1)
    try:
        tracee.raiser(3)
    except KeyError as e:
        assert e.args == (3,), e
    else:
        raise AssertionError("no KeyError")
    (t,) = traces(rid)
    assert shape(t) == [(0, "raiser", 1), (1, "leaf", 1), (2, "sum", 1)], t


def check_recursion(ns):
    rid = start("fib", interval=0, limits=2)
    tracee.fib(4)
    tracee.fib(3)
    got = traces(rid)
    # The inner calls are in the tree of the outer one, not traces of their
    # own; instrument.py's trampolines and hooks are not in it either.
    assert [shape(t) for t in got] == [
        [(0, "fib", 1), (1, "fib", 2), (2, "fib", 4), (3, "fib", 2)],
        [(0, "fib", 1), (1, "fib", 2), (2, "fib", 2)]], got
    assert "instrument" not in str(got) and "fpagent" not in str(got), got


def check_deep_recursion(ns):
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 6000))
    try:
        rid = start("deep", depth=3, limits=1)
        assert tracee.deep(1500) == 1500
    finally:
        sys.setrecursionlimit(old)
    (t,) = traces(rid)
    assert shape(t) == [(0, "deep", 1), (1, "deep", 1), (2, "deep", 1), (3, "deep", 1)], t


def check_big_tree_is_cut(ns):
    codes = []
    for i in range(2500):
        scope = {}
        exec(compile("def f%d():\n    return %d\n" % (i, i), "<gen%d>" % i, "exec"), scope)
        codes.append(scope["f%d" % i])
    rid = start("many", interval=0, limits=1)
    tracee.many(codes)
    (t,) = traces(rid)
    assert len(t["nodes"]) == 2000 and t["cut"] == 501 and t["paths"] == 2501, (
        len(t["nodes"]), t["cut"], t["paths"])


def check_generator_consumer(ns):
    rid = start("consume", interval=0, limits=1)
    assert tracee.consume(3) == 1
    (t,) = traces(rid)
    got = shape(t)
    # The generator is entered once per item and once more to finish.
    assert got[:2] == [(0, "consume", 1), (1, "sum", 1)], got
    assert (2, "gen", 4) in got and (3, "leaf", 3) in got, got


def check_generator_traced(ns):
    # The generator's call runs from its first resumption to its end; the
    # time its consumer had it suspended is [yield] under it.
    rid = start("gen", interval=0, limits=1)
    assert list(tracee.gen(3)) == [0, 0, 1]
    (t,) = traces(rid)
    assert shape(t) == [(0, "gen", 1), (1, "leaf", 3), (2, "sum", 3), (1, "[yield]", 3)], t


def check_coroutine(ns):
    rid = start("coro", interval=5, limits=1)
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(tracee.coro(0.02)) == tracee.leaf(20)
    finally:
        loop.close()
    (t,) = traces(rid)
    got = [s for s in shape(t) if s[1] in ("coro", "sleep", "[await]")]
    assert got == [(0, "coro", 1), (1, "sleep", 2), (2, "[await]", 1)], got
    wait = [n for n in t["nodes"] if n["name"] == "[await]"][0]
    assert wait["ms"] >= 19.0 and t["nodes"][0]["ms"] >= wait["ms"], t


def check_threads(ns):
    rid = start("slow", limits=4)
    threads = [threading.Thread(target=tracee.slow, args=(0.01,), name="t%d" % i)
               for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    got = traces(rid)
    assert sorted(t["thread"] for t in got) == ["t0", "t1", "t2", "t3"], got
    assert all(slow_shown(t, 0.1) for t in got), got


def _blocked_call(done):
    tracee.blocker()
    done.append(sys.getprofile())
    # The thread traces anew once its stale trace is gone.
    rid = start("leaf", interval=0, limits=1)
    tracee.leaf(3)
    done.append(shape(traces(rid)[0]))


def check_trace_ends_during_a_call(ns):
    for how in ("cancel", "session"):
        a = agent()
        tracee.GATE.clear()
        tracee.INSIDE.clear()
        rid = start("blocker", limits=1)
        done = []
        th = threading.Thread(target=_blocked_call, args=(done,))
        th.start()
        assert tracee.INSIDE.wait(10)
        if how == "cancel":
            a.cancel(rid)
            a.wait(rid)
        else:
            a.close()
            _agent[:] = []
        tracee.GATE.set()
        th.join(30)
        assert not th.is_alive()
        assert done == [None, [(0, "leaf", 1), (1, "sum", 1)]], (how, done)


def check_two_commands(ns):
    # Two commands tracing one function both see each call, each pruned its
    # own way (one trace recorded, as deep as the deeper of them wants).
    a = agent()
    full = start("work", interval=0, limits=2)
    shallow = start("work", depth=1, limits=2)
    inner = start("helper", interval=0, limits=1)
    tracee.work(10)
    tracee.work(10)
    assert [shape(t) for t in traces(full)] == [WORK, WORK]
    assert [shape(t) for t in traces(shallow)] == [[n for n in WORK if n[0] <= 1]] * 2
    # A call inside another traced call is in that tree, not a trace of its
    # own; outside one it is traced.
    time.sleep(0.3)  # what the helper had to send is sent by now
    assert events(a.wait(inner, 0.5, lambda fr: True), "trace") == []
    tracee.helper(10)
    assert [shape(t) for t in traces(inner)] == [[(0, "helper", 1), (1, "leaf", 2),
                                                  (2, "sum", 2)]]
