"""Checks of the watch command (agent/py/watch.py) through the fake link,
run under every interpreter by checkrun.py (CPython 3.6+ syntax only): the
request runs on a thread of its own as in libfpagent.so while this thread
calls the watched functions."""
import sys
import threading
import time
import types

import harness
from reqthread import ReqThread

MOD = "fpcheck_watch"


class Shop(object):
    def __init__(self):
        self.items = {"apple": 3}

    def buy(self, item, count=1, *, coupon=None):
        self.items[item] = self.items.get(item, 0) - count
        return {"item": item, "left": self.items[item]}

    def refund(self, item):
        raise KeyError(item)


class Outer(object):
    def run(self, x):
        def step(y):
            return y + 1
        return step(x) * 2


def slow(ms):
    time.sleep(ms / 1000.0)
    return ms


def module():
    mod = types.ModuleType(MOD)
    mod.Shop = Shop
    mod.slow = slow
    mod.Outer = Outer
    sys.modules[MOD] = mod
    return mod


def watch(ns, *argv, **opts):
    module()
    args = dict(opts)
    args["argv"] = list(argv)
    return ReqThread(ns, "watch", args)


def started(req):
    req.wait_for(lambda ev: [e for e in ev if e["event"] == "watching"], what="watching")


def records(req):
    return req.events("record")


def until_records(req, n, call):
    """Calls call() until req has n records; returns them."""
    deadline = time.time() + 30
    while len(records(req)) < n:
        assert time.time() < deadline, (req.events(), req.last())
        call()
        time.sleep(0.002)
    return records(req)


def fails(ns, argv, exit=2, **opts):
    req = watch(ns, *argv, **opts)
    events, last = req.join()
    assert last is not None and last[0] == "error", (events, last)
    assert last[1]["exit"] == exit, last
    assert "\n" not in last[1]["message"], last
    return last[1]["message"]


def check_default_record(ns):
    code = Shop.buy.__code__
    req = watch(ns, MOD, "Shop", "buy", limits=2)
    started(req)
    shop = Shop()
    shop.buy("apple", 2, coupon="X")
    shop.buy("pear")
    events, last = req.join()
    assert last == ("end", None), last
    assert Shop.buy.__code__ is code
    recs = records(req)
    assert len(recs) == 2, events
    r = recs[0]
    assert r["method"] == "checks.Shop.buy" and r["is_exp"] is False, r
    assert r["expr"] == "args,kwargs" and r["value_type"] == "tuple", r
    assert r["value"] == "(\n  ('apple', 2),\n  {'coupon': 'X'}\n)", r["value"]
    assert abs(r["ts"] - time.time()) < 30 and r["cost_ms"] >= 0, r
    assert r["thread"] == threading.current_thread().name and r["ident"] == threading.get_ident()
    assert recs[1]["value"] == "(\n  ('pear', 1),\n  {'coupon': None}\n)", recs[1]["value"]
    assert events[0]["event"] == "watching" and events[0]["limit"] == 2, events


def check_expr_names_and_filter(ns):
    req = watch(ns, MOD, "Shop", "buy", limits=1, expr="target.items, return_obj['left'], cost",
                filter="args[0] == 'kiwi' and kwargs['coupon'] is None and cost >= 0 "
                       "and return_obj['left'] < 0 and target is not None")
    started(req)
    shop = Shop()
    shop.buy("apple")
    shop.buy("kiwi", 4)
    req.join()
    (r,) = records(req)
    assert r["value"].startswith("(\n  {'apple': 2, 'kiwi': -4},\n  -4,\n  "), r["value"]
    cost = float(r["value"].split("\n")[3].strip())
    assert abs(cost - r["cost_ms"]) < 1e-9, (cost, r["cost_ms"])


def check_cost_of_slow_call(ns):
    req = watch(ns, MOD, "slow", limits=1, expr="return_obj", filter="cost >= 75")
    started(req)
    slow(0)
    slow(80)
    req.join()
    (r,) = records(req)
    assert r["value"] == "80" and r["cost_ms"] >= 79, r


def check_expression_error_in_record(ns):
    req = watch(ns, MOD, "Shop", "buy", limits=1, expr="args[5]")
    started(req)
    assert Shop().buy("apple") == {"item": "apple", "left": 2}
    req.join()
    (r,) = records(req)
    assert r["expr_error"] == "IndexError: tuple index out of range", r
    assert "value" not in r


def check_filter_error_in_record(ns):
    req = watch(ns, MOD, "Shop", "buy", limits=1, filter="kwargs['nope']")
    started(req)
    assert Shop().buy("apple") == {"item": "apple", "left": 2}
    req.join()
    (r,) = records(req)
    assert r["filter"] == "kwargs['nope']" and r["filter_error"] == "KeyError: 'nope'", r


def check_exit_in_expression_contained(ns):
    req = watch(ns, MOD, "slow", limits=1, expr="exit(3)")
    started(req)
    assert slow(0) == 0
    req.join()
    (r,) = records(req)
    assert r["expr_error"].startswith("SystemExit"), r


def check_exceptions_only(ns):
    req = watch(ns, MOD, "Shop", "refund", exception=True, limits=1)
    started(req)
    try:
        Shop().refund("pear")
    except KeyError as e:
        assert e.args == ("pear",)
    req.join()
    (r,) = records(req)
    assert r["is_exp"] is True, r
    tb = r["exception"].splitlines()
    assert tb[0] == "Traceback (most recent call last):", tb
    assert tb[1].strip().startswith('File "') and tb[1].endswith("in refund"), tb
    assert tb[2].strip() == "raise KeyError(item)" and tb[-1] == "KeyError: 'pear'", tb
    assert len(tb) == 4, tb


def check_exceptions_only_skips_successes(ns):
    req = watch(ns, MOD, "slow", exception=True, limits=1)
    started(req)
    for _ in range(20):
        slow(0)
    time.sleep(0.3)
    assert records(req) == []
    req.cancel()
    events, last = req.join()
    assert last == ("end", None) and records(req) == [], (events, last)
    assert slow.__code__.co_name == "slow"


def check_limit_stops_and_restores(ns):
    code = Shop.buy.__code__
    req = watch(ns, MOD, "Shop", "buy", limits=3)
    started(req)
    shop = Shop()
    recs = until_records(req, 3, lambda: shop.buy("apple"))
    events, last = req.join()
    assert last == ("end", None) and len(records(req)) == 3, events
    assert Shop.buy.__code__ is code
    if sys.version_info >= (3, 12):
        assert all(sys.monitoring.get_tool(t) is None for t in (3, 4))
    n = len(records(req))
    shop.buy("apple")
    time.sleep(0.05)
    assert len(records(req)) == n
    assert [r["value"] for r in recs] == ["(\n  ('apple', 1),\n  {'coupon': None}\n)"] * 3


def check_many_threads(ns):
    req = watch(ns, MOD, "slow", limits=40, expr="args[0]")
    started(req)
    done = []

    def work(k):
        for _ in range(10):
            slow(0)
        done.append(k)
    threads = [threading.Thread(target=work, args=(k,), name="t%d" % k) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events, last = req.join()
    assert last == ("end", None) and len(done) == 4
    names = sorted(r["thread"] for r in records(req))
    assert names == sorted(["t%d" % k for k in range(4)] * 10), names


def check_cancel_removes(ns):
    code = Shop.buy.__code__
    req = watch(ns, MOD, "Shop", "buy", limits=1000)
    started(req)
    Shop().buy("apple")
    req.wait_for(lambda ev: [e for e in ev if e["event"] == "record"], what="a record")
    req.cancel()
    events, last = req.join()
    assert last == ("end", None), last
    assert Shop.buy.__code__ is code


def check_session_end_removes(ns):
    code = Shop.buy.__code__
    module()
    req = ReqThread(ns, "watch", {"argv": [MOD, "Shop", "buy"], "limits": 1000}, session=9)
    started(req)
    ns["_fp_session_end"](9)
    ns["_link"].cancel(req.rid)  # the link is gone: the request sees it cancelled
    req.join()
    assert Shop.buy.__code__ is code


def check_two_sessions_each_get_records(ns):
    code = Shop.buy.__code__
    module()
    a = ReqThread(ns, "watch", {"argv": [MOD, "Shop", "buy"], "limits": 2, "expr": "1"},
                  session=1)
    b = ReqThread(ns, "watch", {"argv": [MOD, "Shop", "buy"], "limits": 3, "expr": "2"},
                  session=2)
    started(a)
    started(b)
    shop = Shop()
    until_records(b, 3, lambda: shop.buy("apple"))
    a.join()
    b.join()
    assert [r["value"] for r in records(a)] == ["1", "1"]
    assert [r["value"] for r in records(b)] == ["2", "2", "2"]
    assert Shop.buy.__code__ is code


def check_render_options(ns):
    class Node(object):
        def __init__(self):
            self.child = {"k": [1, 2, {"deep": "x" * 300}]}

        def __repr__(self):
            return "Node!"
    req = watch(ns, MOD, "slow", limits=3, expr="args[0]", expand=3, verbose=True)
    req2 = watch(ns, MOD, "slow", limits=3, expr="args[0]", raw=True)
    started(req)
    started(req2)
    node = Node()
    for _ in range(3):
        try:
            slow(node)
        except TypeError:
            pass
    req.join()
    req2.join()
    v = records(req)[0]["value"]
    assert "'deep': '" + "x" * 300 + "'" in v and v.count("\n") >= 4, v
    assert records(req)[0]["is_exp"] is True
    assert records(req2)[0]["value"] == "Node!"


def check_queue_full_drops(ns):
    """Records the request thread has not sent yet are capped: calls go on
    at full speed and the drops are reported."""
    req = watch(ns, MOD, "slow", limits=100000, expr="args")
    started(req)
    cap = ns["WATCH_QUEUE_MAX"]
    ns["_link"].cond.acquire()  # fpd does not read: the request thread blocks sending
    try:
        for _ in range(cap * 3):
            slow(0)
    finally:
        ns["_link"].cond.release()
    req.wait_for(lambda ev: [e for e in ev if e["event"] == "dropped"], what="a drop notice")
    req.cancel()
    req.join()
    dropped = sum(e["count"] for e in req.events("dropped"))
    assert dropped >= cap and dropped + len(records(req)) <= cap * 3, (dropped, len(records(req)))


def check_nested_method(ns):
    req = watch(ns, MOD, "Outer", "run", limits=1, nested="step", expr="target, args, return_obj")
    started(req)
    assert Outer().run(4) == 10
    req.join()
    (r,) = records(req)
    assert r["method"] == "checks.Outer.run.step" and r["value"] == "(\n  None,\n  (4,),\n  5\n)", r


def check_bad_input(ns):
    module()
    assert "module nosuch is not loaded" in fails(ns, ["nosuch", "f"], exit=1)
    assert "class Nope not found" in fails(ns, [MOD, "Nope", "buy"], exit=1)
    assert "has no method nope" in fails(ns, [MOD, "Shop", "nope"], exit=1)
    assert "defines no function nope" in fails(ns, [MOD, "Shop", "buy"], exit=1, nested="nope")
    msg = fails(ns, [MOD, "slow"], expr="args[")
    assert msg.startswith("watch: --expr args[: not a Python expression"), msg
    msg = fails(ns, [MOD, "slow"], filter="1 +")
    assert msg.startswith("watch: -f 1 +: not a Python expression"), msg
    assert "-x takes a whole number from 1 to 4" in fails(ns, [MOD, "slow"], expand=9)
    assert "-n takes a whole number from 1" in fails(ns, [MOD, "slow"], limits=0)
    assert "usage: watch module [class] method" in fails(ns, [MOD])
    assert slow.__code__.co_name == "slow" and "nosuch" not in sys.modules
    if sys.version_info < (3, 12):
        assert not ns["_instr_funcs"]
