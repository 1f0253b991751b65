"""Checks of agent/py/tt.py (the time tunnel's store, snapshots, list,
show, replay, delete) over agent/py/instrument.py, run under every
interpreter by checkrun.py (CPython 3.6+ syntax only).  The recorded
calls are made by the check's own thread, the request runs on another
as in the target."""
import asyncio
import gc
import socket
import sys
import threading
import types

import harness
from reqthread import ReqThread


def ok(ns, args):
    events, last = harness.run(ns, "tt", args)
    assert last == ("end", None), (events, last)
    return events


def fails(ns, args, exit=1):
    events, last = harness.run(ns, "tt", args)
    assert last is not None and last[0] == "error", (events, last)
    assert last[1]["exit"] == exit, last
    assert "\n" not in last[1]["message"], last
    return last[1]["message"]


def eq(got, want):
    assert got == want, "got:\n%r\nwant:\n%r" % (got, want)


def restored(func, code):
    """func runs code (its own, not a trampoline: 3.6-3.11) and no
    sys.monitoring tool is left in use (3.12+)."""
    mon = getattr(sys, "monitoring", None)
    return func.__code__ is code and (mon is None or
                                      all(mon.get_tool(i) is None for i in (3, 4)))


class Service(object):
    def __init__(self):
        self.calls = 0
        self.lock = threading.Lock()

    def handle(self, request, *, flag=False):
        self.calls += 1
        request["handled"] = True  # the body mutates its argument
        if request.get("boom"):
            raise ValueError("boom %d" % request["n"])
        return {"n": request["n"], "calls": self.calls}

    @classmethod
    def build(cls, n):
        return n * 2

    @staticmethod
    def helper(a, *, b=1):
        return a + b


def _module():
    mod = types.ModuleType("fptt_mod")
    mod.Service = Service
    mod.SERVICE = Service()

    def add(a, b):
        return a + b

    def hold(x):
        return None

    def fill(x):
        x.append("filled")
        return len(x)

    def outer(x):
        step = 1

        def inner(y):
            return y + step
        return inner(x) * 2

    def gen(n):
        for i in range(n):
            yield i
        return "done %d" % n

    async def fetch(x):
        await asyncio.sleep(0)
        return x * 2

    mod.add, mod.hold, mod.fill, mod.outer, mod.gen, mod.fetch = add, hold, fill, outer, gen, fetch
    sys.modules["fptt_mod"] = mod
    return mod


def start(ns, argv, **opts):
    """tt -t argv on a thread; returns it once instrumented."""
    args = {"record": True, "argv": argv}
    args.update(opts)
    r = ReqThread(ns, "tt", args)
    r.wait_for(lambda evs: [e for e in evs if e["event"] == "tt_start"] or r.last(),
               what="tt_start")
    assert r.last() is None, r.last()
    return r


def record(ns, argv, calls, **opts):
    """tt -t argv with -n len(calls); runs each call; the request's events."""
    opts.setdefault("limits", len(calls))
    r = start(ns, argv, **opts)
    for c in calls:
        try:
            c()
        except Exception:
            pass
    events, last = r.join(30)
    assert last == ("end", None), (events, last)
    return events


def rows(events):
    return [e for e in events if e["event"] == "tt_row"]


def show(ns, index, **opts):
    args = {"index": index}
    args.update(opts)
    ev = [e for e in ok(ns, args) if e["event"] == "tt_record"]
    eq(len(ev), 1)
    return ev[0]


def values(rec):
    return dict((v["expr"], v) for v in rec["values"])


def check_record_rows_from_1000_and_limit(ns):
    mod = _module()
    code = mod.add.__code__
    ev = record(ns, ["fptt_mod", "add"], [lambda i=i: mod.add(i, 1) for i in range(5)],
                limits=3)
    eq([r["index"] for r in rows(ev)], [1000, 1001, 1002])
    r = rows(ev)[0]
    eq((r["module"], r["method"], r["is_ret"], r["is_exp"]), ("fptt_mod", "add", True, False))
    assert r["cost_ms"] >= 0 and len(r["timestamp"]) == 23, r
    end = [e for e in ev if e["event"] == "tt_end"][0]
    eq((end["recorded"], end["reason"], end["records"]), (3, "limit", 3))
    eq(values(show(ns, 1001))["args[0]"]["value"], "1")
    eq(values(show(ns, 1001))["return_obj"]["value"], "2")
    assert restored(mod.add, code), "instrumentation left in place"


def check_method_target_kwargs_and_exception(ns):
    mod = _module()
    svc = mod.SERVICE
    ev = record(ns, ["fptt_mod", "Service", "handle"],
                [lambda: svc.handle({"n": 1}, flag=True), lambda: svc.handle({"n": 2, "boom": 1})])
    eq([(r["is_ret"], r["is_exp"], r["method"]) for r in rows(ev)],
       [(True, False, "Service.handle"), (False, True, "Service.handle")])
    rec = show(ns, 1000)
    v = values(rec)
    eq(sorted(v), ["args[0]", "kwargs['flag']", "return_obj", "target"])
    # At entry, before the body set "handled".
    eq(v["args[0]"]["value"], "{\n  'n': 1\n}")
    eq(v["kwargs['flag']"]["value"], "True")
    eq(v["target"]["value_type"], "checks.Service")
    # The target holds a lock: kept as text, marked.
    assert "not copyable" in v["target"]["note"], v["target"]
    eq(rec["notes"], [])
    eq(rec["thread"], threading.current_thread().name)
    rec = show(ns, 1001)
    v = values(rec)
    eq(v["exception"]["value_type"], "ValueError")
    assert "boom 2" in v["exception"]["value"], v["exception"]
    tb = v["exception"]["traceback"]
    assert tb.startswith("Traceback (most recent call last):\n  File \"%s\"" % __file__) and \
        tb.splitlines()[1].endswith("in handle") and tb.endswith("ValueError: boom 2"), tb
    assert "return_obj" not in v


def check_classmethod_and_staticmethod(ns):
    mod = _module()
    ev = record(ns, ["fptt_mod", "Service", "build"], [lambda: mod.Service.build(21)])
    v = values(show(ns, rows(ev)[0]["index"]))
    eq((v["target"]["value"], v["args[0]"]["value"], v["return_obj"]["value"]),
       ("<class 'checks.Service'>", "21", "42"))
    ev = record(ns, ["fptt_mod", "Service", "helper"], [lambda: mod.Service.helper(1, b=5)])
    v = values(show(ns, rows(ev)[0]["index"]))
    eq(sorted(v), ["args[0]", "kwargs['b']", "return_obj"])
    eq(v["return_obj"]["value"], "6")


def check_snapshot_independent_of_later_mutation(ns):
    mod = _module()
    shared = {"items": [1, 2], "nested": {"k": "v"}}
    ev = record(ns, ["fptt_mod", "hold"], [lambda: mod.hold(shared)])
    idx = rows(ev)[0]["index"]
    shared["items"].append(3)
    shared["nested"]["k"] = "changed"
    shared["new"] = 1
    v = values(show(ns, idx, expand=3))
    eq(v["args[0]"]["value"], "{\n  'items': [\n    1,\n    2\n  ],\n  'nested': {\n"
       "    'k': 'v'\n  }\n}")
    # The body's own mutation is not in the recorded argument either.
    lst = ["a"]
    ev = record(ns, ["fptt_mod", "fill"], [lambda: mod.fill(lst)])
    v = values(show(ns, rows(ev)[0]["index"]))
    eq((v["args[0]"]["value"], v["return_obj"]["value"]), ("[\n  'a'\n]", "2"))
    eq(lst, ["a", "filled"])


def check_text_for_uncopyable_values(ns):
    mod = _module()
    lock = threading.Lock()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    gen = (i for i in range(3))
    try:
        ev = record(ns, ["fptt_mod", "hold"], [lambda: mod.hold(lock), lambda: mod.hold(sock),
                                               lambda: mod.hold(gen),
                                               lambda: mod.hold([1, lock, "x"])])
    finally:
        sock.close()
    idx = [r["index"] for r in rows(ev)]
    for i, kind in zip(idx[:3], ("lock", "socket", "generator")):
        rec = show(ns, i)
        v = values(rec)["args[0]"]
        assert kind in v["value_type"], v
        assert v["note"].startswith("not a copy: text taken at the call (not copyable: "), v
        eq(rec["notes"], [])
    # A list holding a lock: the list is copied, only the lock is text.
    rec = show(ns, idx[3])
    assert rec["notes"] == ["args[0][1]: not copyable: %s" % rec["notes"][0].split(
        "not copyable: ", 1)[1]], rec["notes"]
    v = values(rec)["args[0]"]
    eq(v["value_type"], "list")
    assert "'x'" in v["value"] and "lock" in v["value"], v
    # Nothing kept the live objects: the generator is unreferenced by tt.
    holders = [r for r in gc.get_referrers(gen) if type(r).__name__ in ("_TTRecord", "_TTText")]
    eq(holders, [])


def check_over_budget_kept_as_text(ns):
    mod = _module()
    big = list(range(50000))
    ev = record(ns, ["fptt_mod", "hold"], [lambda: mod.hold(big)])
    rec = show(ns, rows(ev)[0]["index"])
    v = values(rec)["args[0]"]
    assert v["note"].startswith("not a copy: text taken at the call (over the snapshot "
                                "budget"), v["note"]
    eq(v["value_type"], "list")
    assert v["value"].startswith("[\n  0,\n  1,"), v["value"][:100]
    assert rec["size"] < 64 << 10, rec["size"]


def check_caps_and_eviction_order(ns):
    mod = _module()
    ev = ok(ns, {"max_records": 3})
    eq((ev[0]["event"], ev[0]["max_records"], ev[0]["records"]), ("tt_caps", 3, 0))
    record(ns, ["fptt_mod", "add"], [lambda i=i: mod.add(i, 0) for i in range(5)])
    listed = ok(ns, {"list": True})
    eq([r["index"] for r in rows(listed)], [1002, 1003, 1004])
    end = listed[-1]
    eq((end["event"], end["shown"], end["records"], end["max_records"], end["evicted"]),
       ("tt_list_end", 3, 3, 3, 2))
    msg = fails(ns, {"index": 1000})
    eq(msg, "tt: record 1000 was deleted, or dropped when the store was full (the store "
            "holds 3 records, 1002 to 1004; tt -l lists them)")
    # Lowering the cap drops the oldest at once.
    ok(ns, {"max_records": 1})
    eq([r["index"] for r in rows(ok(ns, {"list": True}))], [1004])
    # The byte cap: records of ~200 KiB each in a 1 MiB store.
    ok(ns, {"max_records": 1000, "max_mb": 1})
    blobs = [[bytes([i % 256]) * 1024 for i in range(200)] for _ in range(8)]
    record(ns, ["fptt_mod", "hold"], [lambda b=b: mod.hold(b) for b in blobs])
    listed = ok(ns, {"list": True})
    idx = [r["index"] for r in rows(listed)]
    end = listed[-1]
    assert end["bytes"] <= 1 << 20 and end["max_bytes"] == 1 << 20, end
    assert 2 <= len(idx) < 8 and idx == list(range(1013 - len(idx), 1013)), idx


def check_list_filters(ns):
    mod = _module()
    svc = mod.SERVICE
    record(ns, ["fptt_mod", "add"], [lambda: mod.add(1, 2), lambda: mod.add(10, 20)])
    record(ns, ["fptt_mod", "Service", "handle"], [lambda: svc.handle({"n": 7})])
    eq(len(rows(ok(ns, {"list": True}))), 3)
    eq([r["index"] for r in rows(ok(ns, {"list": True, "method": "fptt_mod.add"}))],
       [1000, 1001])
    eq([r["index"] for r in rows(ok(ns, {"list": True, "method": "fptt_mod.None.add"}))],
       [1000, 1001])
    eq([r["index"] for r in rows(ok(ns, {"list": True, "method": "fptt_mod.Service.handle"}))],
       [1002])
    eq(rows(ok(ns, {"list": True, "method": "fptt_mod.nothing"})), [])
    eq([r["index"] for r in rows(ok(ns, {"list": True, "filter": "return_obj == 30"}))], [1001])
    eq([r["index"] for r in rows(ok(ns, {"list": True, "filter": "args[0]['n'] == 7"}))], [1002])
    eq([r["index"] for r in rows(ok(ns, {"list": True, "filter": "cost >= 0 and "
                                         "target is None", "method": "fptt_mod.add"}))],
       [1000, 1001])
    # A filter that raises on some records: they are left out, and told.
    ev = ok(ns, {"list": True, "filter": "args[0] > 5"})
    eq([r["index"] for r in rows(ev)], [1001])
    note = [e for e in ev if e["event"] == "tt_notice"][0]["text"]
    assert "TypeError" in note and "record 1002" in note, note
    msg = fails(ns, {"list": True, "filter": "args[0] >"}, exit=2)
    assert msg.startswith("tt: -f args[0] >: not a Python expression"), msg


def check_record_filter(ns):
    mod = _module()
    ev = record(ns, ["fptt_mod", "add"], [lambda i=i: mod.add(i, 0) for i in range(6)],
                limits=2, filter="args[0] % 2 == 1 and return_obj > 1 and cost >= 0")
    eq([r["index"] for r in rows(ev)], [1000, 1001])
    eq([values(show(ns, i))["args[0]"]["value"] for i in (1000, 1001)], ["3", "5"])


def check_delete_and_delete_all(ns):
    mod = _module()
    record(ns, ["fptt_mod", "add"], [lambda i=i: mod.add(i, 0) for i in range(3)])
    ev = ok(ns, {"delete": 1001})
    eq((ev[0]["event"], ev[0]["count"], ev[0]["index"]), ("tt_deleted", 1, 1001))
    eq([r["index"] for r in rows(ok(ns, {"list": True}))], [1000, 1002])
    msg = fails(ns, {"delete": 1001})
    assert msg.startswith("tt: record 1001 was deleted"), msg
    eq(fails(ns, {"index": 5}), "tt: record 5 does not exist (the store holds 2 records, "
                                "1000 to 1002; tt -l lists them)")
    ev = ok(ns, {"delete_all": True})
    eq(ev[0]["count"], 2)
    eq(rows(ok(ns, {"list": True})), [])
    eq(fails(ns, {"index": 0}), "tt: record 0 does not exist (the store is empty)")
    # Indices go on from where they were: an old index never names a new record.
    ev = record(ns, ["fptt_mod", "add"], [lambda: mod.add(1, 1)])
    eq(rows(ev)[0]["index"], 1003)


def check_replay(ns):
    mod = _module()
    svc = mod.SERVICE
    record(ns, ["fptt_mod", "Service", "handle"], [lambda: svc.handle({"n": 5})])
    before = svc.calls
    ev = ok(ns, {"index": 1000, "play": True})
    rep = [e for e in ev if e["event"] == "tt_replayed"][0]
    eq((rep["index"], rep["new_index"], rep["target"]), (1000, 1001, "the live target"))
    rec = [e for e in ev if e["event"] == "tt_record"][0]
    eq((rec["index"], rec["replay_of"], rec["is_ret"]), (1001, 1000, True))
    eq(svc.calls, before + 1)
    assert "'n': 5" in values(rec)["return_obj"]["value"], rec
    # The replayed body mutated its copy of the argument, not the record.
    eq(values(show(ns, 1000))["args[0]"]["value"], "{\n  'n': 5\n}")
    # Functions, static and class methods; a replay that raises is recorded.
    record(ns, ["fptt_mod", "add"], [lambda: mod.add(2, 3)])
    rec = [e for e in ok(ns, {"index": 1002, "play": True}) if e["event"] == "tt_record"][0]
    eq((rec["index"], values(rec)["return_obj"]["value"]), (1003, "5"))
    record(ns, ["fptt_mod", "Service", "build"], [lambda: mod.Service.build(4)])
    rec = [e for e in ok(ns, {"index": 1004, "play": True}) if e["event"] == "tt_record"][0]
    eq(values(rec)["return_obj"]["value"], "8")
    record(ns, ["fptt_mod", "Service", "helper"], [lambda: mod.Service.helper(4, b=2)])
    rec = [e for e in ok(ns, {"index": 1006, "play": True}) if e["event"] == "tt_record"][0]
    eq(values(rec)["return_obj"]["value"], "6")
    record(ns, ["fptt_mod", "Service", "handle"], [lambda: svc.handle({"n": 9, "boom": 1})])
    rec = [e for e in ok(ns, {"index": 1008, "play": True}) if e["event"] == "tt_record"][0]
    eq((rec["index"], rec["is_exp"], values(rec)["exception"]["value_type"]),
       (1009, True, "ValueError"))
    # The traceback starts at the method: no helper or trampoline frame.
    tb = values(rec)["exception"]["traceback"].splitlines()
    assert tb[1].strip().startswith("File \"%s\"" % __file__) and tb[1].endswith("in handle"), tb


def check_replay_refused(ns):
    mod = _module()
    lock = threading.Lock()
    record(ns, ["fptt_mod", "hold"], [lambda: mod.hold(lock)])
    eq(fails(ns, {"index": 1000, "play": True}),
       "tt: record 1000 cannot be replayed: args[0] was kept only as text at the call "
       "(tt -i 1000 shows why)")
    ok(ns, {"delete": 1000})
    msg = fails(ns, {"index": 1000, "play": True})
    assert msg.startswith("tt: record 1000 was deleted"), msg
    # The target is gone and was not copyable (it held a lock).
    live = [mod.Service()]
    record(ns, ["fptt_mod", "Service", "handle"], [lambda: live[0].handle({"n": 1})])
    del live[:]
    gc.collect()
    msg = fails(ns, {"index": 1001, "play": True})
    assert msg.startswith("tt: record 1001 cannot be replayed: the target object is gone and "
                          "was not copyable at the call (not copyable: "), msg


def check_cancel_removes(ns):
    mod = _module()
    code = mod.add.__code__
    r = start(ns, ["fptt_mod", "add"])
    mod.add(1, 1)
    r.wait_for(lambda evs: [e for e in evs if e["event"] == "tt_row"], what="a row")
    r.cancel()
    events, last = r.join(10)
    eq(last, ("end", None))
    end = [e for e in events if e["event"] == "tt_end"][0]
    eq((end["recorded"], end["reason"]), (1, "cancelled"))
    assert restored(mod.add, code)


def check_usage_errors(ns):
    mod = _module()
    code = mod.add.__code__
    msg = fails(ns, {"record": True, "list": True, "argv": ["fptt_mod", "add"]}, exit=2)
    eq(msg, "tt: -t and -l cannot be combined")
    eq(fails(ns, {"list": True, "play": True}, exit=2), "tt: -p replays a record: tt -i IDX -p")
    eq(fails(ns, {}, exit=2), "tt: one of -t, -l, -i, -d, -da (or --max-records/--max-mb) "
                              "is needed")
    msg = fails(ns, {"record": True, "argv": ["fptt_mod", "add"], "limits": 0}, exit=2)
    eq(msg, "tt: -n takes a whole number of at least 1")
    msg = fails(ns, {"index": 1000, "expand": 9}, exit=2)
    assert "-x takes a whole number from 1 to 4" in msg, msg
    msg = fails(ns, {"record": True, "argv": ["fptt_nowhere", "f"]})
    assert msg.startswith("tt: module fptt_nowhere is not loaded in the target"), msg
    msg = fails(ns, {"record": True, "argv": ["fptt_mod", "add"], "filter": "1 +"}, exit=2)
    assert msg.startswith("tt: -f 1 +: not a Python expression"), msg
    eq(fails(ns, {"max_records": 0}, exit=2),
       "tt: --max-records takes a whole number of at least 1")
    assert restored(mod.add, code)


def _run_async(coro):
    loop = asyncio.new_event_loop()  # asyncio.run is 3.7+
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def check_generator_and_coroutine(ns):
    """Their call is their run: return_obj is what they returned; a replay
    runs them to their end too (a coroutine on a loop of its own)."""
    mod = _module()
    ev = record(ns, ["fptt_mod", "gen"], [lambda: list(mod.gen(3))])
    rec = show(ns, rows(ev)[0]["index"])
    eq((values(rec)["args[0]"]["value"], values(rec)["return_obj"]["value"]), ("3", "'done 3'"))
    rec = [e for e in ok(ns, {"index": rec["index"], "play": True})
           if e["event"] == "tt_record"][0]
    eq((rec["replay_of"], values(rec)["return_obj"]["value"]), (1000, "'done 3'"))
    ev = record(ns, ["fptt_mod", "fetch"], [lambda: _run_async(mod.fetch(21))])
    rec = show(ns, rows(ev)[0]["index"])
    eq((rec["index"], rec["is_async"], values(rec)["return_obj"]["value"]), (1002, True, "42"))
    rec = [e for e in ok(ns, {"index": 1002, "play": True}) if e["event"] == "tt_record"][0]
    eq((rec["index"], values(rec)["return_obj"]["value"]), (1003, "42"))


def check_nested(ns):
    mod = _module()
    ev = record(ns, ["fptt_mod", "outer"], [lambda: mod.outer(4)], nested="inner")
    r = rows(ev)[0]
    eq((r["method"], r["index"]), ("outer.<locals>.inner", 1000))
    v = values(show(ns, 1000))
    eq((v["args[0]"]["value"], v["return_obj"]["value"]), ("4", "5"))
    eq([x["index"] for x in rows(ok(ns, {"list": True, "method": "fptt_mod.outer.inner"}))],
       [1000])
    eq(fails(ns, {"index": 1000, "play": True}),
       "tt: record 1000 cannot be replayed: outer.<locals>.inner is a nested function, which "
       "exists only while outer runs")
