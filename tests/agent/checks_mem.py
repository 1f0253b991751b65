"""Checks of agent/py/mem.py (mem summary / mem diff), run under every
interpreter by checkrun.py (CPython 3.6+ syntax only).  Each check gets a
fresh helper namespace ns; requests run on a thread of their own, as in the
target, so that this thread's frames are roots of the walk like any
application thread's."""
import collections
import sys
import threading
import time

from reqthread import ReqThread


class MemProbeA(object):
    pass


class MemProbeB(object):
    __slots__ = ("v",)


class MemProbeC(object):
    pass


class MemProbeD(object):
    pass


class ProbeList(list):
    pass


def summary(ns, **args):
    args.setdefault("limit", 100000)
    args["argv"] = ["summary"]
    events, last = ReqThread(ns, "mem", args).join()
    assert last == ("end", None), last
    assert [e["event"] for e in events] == ["mem_summary"], events
    return events[0]


def rows_by_type(ev):
    out = {}
    for r in ev["rows"]:
        out.setdefault(r["type"], r)
    return out


def check_counts_and_sizes_of_a_class(ns):
    keep = [MemProbeA() for _ in range(1234)]
    ev = summary(ns)
    row = rows_by_type(ev)["checks.MemProbeA"]
    assert row["count"] == 1234, row
    assert row["size"] == 1234 * sys.getsizeof(keep[0]), row
    assert ev["objects"] >= 1234 and ev["size"] > row["size"] and ev["types"] > 10, ev


def check_untracked_objects_counted_once(ns):
    # floats are not tracked by the GC: reached through the list
    floats = [i + 0.5 for i in range(5000)]
    shared = MemProbeB()
    same = [shared] * 3000
    ev = summary(ns)
    rows = rows_by_type(ev)
    assert rows["float"]["count"] >= 5000, rows["float"]
    assert rows["checks.MemProbeB"]["count"] == 1, rows["checks.MemProbeB"]
    assert floats and same


def check_big_containers_in_slices(ns):
    # each larger than the slice size (20000 items)
    big_list = [MemProbeC() for _ in range(25000)]
    big_tuple = tuple(MemProbeC() for _ in range(21000))
    big_dict = dict((i, MemProbeD()) for i in range(22000))
    big_set = set(MemProbeD() for _ in range(23000))
    big_deque = collections.deque(MemProbeD() for _ in range(20500))
    sub = ProbeList(range(30000))
    sub.extra = MemProbeB()
    rows = rows_by_type(summary(ns))
    assert rows["checks.MemProbeC"]["count"] == 46000, rows["checks.MemProbeC"]
    assert rows["checks.MemProbeD"]["count"] == 65500, rows["checks.MemProbeD"]
    assert rows["checks.ProbeList"]["count"] == 1, rows["checks.ProbeList"]
    # the subclass's __dict__ is walked too
    assert rows["checks.MemProbeB"]["count"] == 1, rows["checks.MemProbeB"]
    assert big_list and big_tuple and big_dict and big_set and big_deque


def check_thread_locals_and_static_types(ns):
    """Objects only a sleeping thread's local variable holds are counted
    (from 3.11 on, through f_locals), and so is what built-in types hold."""
    ready, stop = threading.Event(), threading.Event()

    def worker():
        local_only = [MemProbeA() for _ in range(77)]
        ready.set()
        stop.wait(30)
        return local_only

    t = threading.Thread(target=worker)
    t.start()
    ready.wait(10)
    try:
        rows = rows_by_type(summary(ns))
    finally:
        stop.set()
        t.join()
    assert rows["checks.MemProbeA"]["count"] == 77, rows.get("checks.MemProbeA")
    # slot wrappers live in the dicts of built-in types, which the GC does not see
    assert rows["wrapper_descriptor"]["count"] > 100, rows["wrapper_descriptor"]


def check_helper_state_not_counted(ns):
    rows = rows_by_type(summary(ns))
    assert "_fpagent._MemSnapshot" not in rows and "_MemSnapshot" not in rows, sorted(rows)


def check_limit_and_order(ns):
    ev = summary(ns, limit=5)
    sizes = [r["size"] for r in ev["rows"]]
    assert len(sizes) == 5 and sizes == sorted(sizes, reverse=True), ev["rows"]
    assert ev["order"] == "descending"
    ev = summary(ns, limit=7, order="ascending")
    sizes = [r["size"] for r in ev["rows"]]
    assert len(sizes) == 7 and sizes == sorted(sizes), ev["rows"]
    biggest = summary(ns, limit=1)["rows"][0]["size"]
    assert sizes[-1] <= biggest


def check_diff_shows_growth(ns):
    grown = []

    def grow():
        time.sleep(0.2)
        grown.extend(MemProbeC() for _ in range(500))

    t = threading.Thread(target=grow)
    t.start()
    events, last = ReqThread(ns, "mem", {"argv": ["diff"], "interval": 1.0, "limit": 1000}).join()
    t.join()
    assert last == ("end", None), last
    assert [e["event"] for e in events] == ["mem_snapshot", "mem_diff"], events
    snap, diff = events
    assert snap["interval"] == 1.0 and snap["objects"] > 0, snap
    row = rows_by_type(diff)["checks.MemProbeC"]
    assert row["count"] == 500 and row["size"] == 500 * sys.getsizeof(grown[0]), row
    assert diff["after"]["objects"] > diff["before"]["objects"] > 0, diff
    deltas = [r["size"] for r in diff["rows"]]
    assert deltas == sorted(deltas, reverse=True), deltas


def check_diff_cancelled_while_waiting(ns):
    req = ReqThread(ns, "mem", {"argv": ["diff"], "interval": 60})
    req.wait_for(lambda evs: [e for e in evs if e["event"] == "mem_snapshot"], 60,
                 "the first snapshot")
    start = time.time()
    req.cancel()
    events, last = req.join(10)
    assert time.time() - start < 2, "the cancel took %.1f s" % (time.time() - start)
    assert last == ("end", None) and [e["event"] for e in events] == ["mem_snapshot"], events


def check_bad_input(ns):
    bad = [
        ({"argv": ["summary"], "order": "sideways"},
         "mem: --order takes descending or ascending, not 'sideways'"),
        ({"argv": ["summary"], "limit": -1}, "mem: --limit takes a whole number from 1, not '-1'"),
        ({"argv": ["summary"], "limit": "x"}, "mem: --limit takes a whole number from 1, not 'x'"),
        ({"argv": ["diff"], "interval": 0}, "mem diff: --interval takes a number of seconds from "
                                            "0.1 to 3600, not '0'"),
        ({"argv": ["summary"], "interval": 5}, "mem summary: --interval applies to mem diff only"),
        ({"argv": ["sideways"]}, "mem: unknown action 'sideways'"),
        ({"argv": []}, "mem: unknown action ''"),
    ]
    for args, message in bad:
        events, last = ReqThread(ns, "mem", args).join()
        assert events == [] and last[0] == "error", (args, events, last)
        assert last[1]["exit"] == 2 and last[1]["message"].startswith(message), (args, last)
        assert "\n" not in last[1]["message"]


class MemProbeE(object):
    pass


def check_module_globals_counted(ns):
    # Reached only through a module's dict (sys.modules), which is what the
    # walk takes of a module.
    mod = type(sys)("fp_mem_probe_module")
    mod.held = [MemProbeE() for _ in range(321)]
    sys.modules[mod.__name__] = mod
    del mod
    try:
        row = rows_by_type(summary(ns))["checks.MemProbeE"]
    finally:
        del sys.modules["fp_mem_probe_module"]
    assert row["count"] == 321, row


def check_asyncio_free_list_left_alone(ns):
    """CPython 3.12.0-3.12.5's _asyncio traverses the freed iterators on
    its FutureIter free list (gh-122695): a walk that took and dropped a
    reference to one freed it again, onto the list it was on, so the list
    became a cycle (the next full collection never ends) and the next two
    awaits got one and the same iterator."""
    import asyncio
    loop = asyncio.new_event_loop()
    try:
        futures = [loop.create_future() for _ in range(2)]
        it = iter(futures[0])
        del it  # freed: onto the free list
        summary(ns)
        first, second = iter(futures[0]), iter(futures[1])
        assert first is not second, "two live iterators are one object: %r" % first
    finally:
        loop.close()
