"""Checks of vmtool (getInstances, forceGc) through the fake link, run under
every interpreter by checkrun.py."""
import gc
import sys
import types

import harness


def ok(ns, args):
    events, last = harness.run(ns, "vmtool", args)
    assert last == ("end", None), last
    assert len(events) == 1, events
    return events[0]


def fails(ns, args, exit=1):
    events, last = harness.run(ns, "vmtool", args)
    assert last is not None and last[0] == "error", (events, last)
    assert last[1]["exit"] == exit, last
    assert "\n" not in last[1]["message"], last
    return last[1]["message"]


def eq(got, want):
    assert got == want, "got:\n%s\nwant:\n%s" % (got, want)


class Conn(object):
    def __init__(self, host, port):
        self.host = host
        self.port = port


class TlsConn(Conn):
    pass


class Lonely(object):
    pass


def _module():
    mod = types.ModuleType("fpvm_mod")
    mod.Conn = Conn
    mod.TlsConn = TlsConn
    mod.Lonely = Lonely
    mod.conns = [Conn("db", 5432), Conn("cache", 6379), TlsConn("api", 443)]
    mod.conns += [Conn("pool", 7000 + i) for i in range(12)]
    sys.modules["fpvm_mod"] = mod
    return mod


def check_instances(ns):
    mod = _module()
    ev = ok(ns, {"argv": [], "action": "getInstances", "class": "fpvm_mod Conn", "limits": -1})
    eq(ev["event"], "instances")
    eq(ev["class"], "checks.Conn")
    eq((ev["total"], ev["count"]), (15, 15))
    eq((ev["expr"], ev["value_type"]), ("instances", "list"))
    for c in mod.conns:
        assert "%s(host=%r, port=%d)" % (type(c).__name__, c.host, c.port) in ev["value"], \
            ev["value"]


def check_default_limit(ns):
    _module()
    ev = ok(ns, {"argv": [], "action": "getInstances", "class": "fpvm_mod Conn"})
    eq((ev["total"], ev["count"]), (15, 10))
    eq(ev["value"].count("Conn(host="), 10)
    ev = ok(ns, {"argv": [], "action": "getInstances", "class": "fpvm_mod Conn", "limits": 2,
                 "expr": "len(instances)"})
    eq((ev["total"], ev["count"], ev["value"]), (15, 2, "2"))


def check_expression(ns):
    _module()
    ev = ok(ns, {"argv": [], "action": "getInstances", "class": "fpvm_mod Conn", "limits": -1,
                 "expr": "sorted(i.port for i in instances if i.port < 7000)"})
    eq(ev["value"], "[\n  443,\n  5432,\n  6379\n]")
    eq(ev["expr"], "sorted(i.port for i in instances if i.port < 7000)")
    msg = fails(ns, {"argv": [], "action": "getInstances", "class": "fpvm_mod Conn",
                     "expr": "instances[99]"})
    eq(msg, "vmtool: -e instances[99] failed: IndexError: list index out of range")
    msg = fails(ns, {"argv": [], "action": "getInstances", "class": "fpvm_mod Conn",
                     "expr": "instances["}, exit=2)
    assert "not a Python expression" in msg, msg


def check_class_as_two_words(ns):
    _module()
    ev = ok(ns, {"argv": ["TlsConn"], "action": "getInstances", "class": "fpvm_mod"})
    eq((ev["class"], ev["total"]), ("checks.TlsConn", 1))
    ev = ok(ns, {"argv": [], "action": "getInstances", "class": "fpvm_mod Lonely"})
    eq((ev["total"], ev["value"]), (0, "[]"))


def check_force_gc(ns):
    gc.collect()
    for _ in range(50):
        a, b = Lonely(), Lonely()
        a.other, b.other = b, a
    del a, b
    ev = ok(ns, {"argv": [], "action": "forceGc"})
    eq(ev["event"], "gc")
    assert ev["collected"] >= 100, ev
    eq(ev["uncollectable"], 0)


def check_bad_input(ns):
    _module()
    cases = [
        ({"argv": []}, 2, "vmtool: -a takes getInstances or forceGc, not None"),
        ({"argv": [], "action": "getinstance"}, 2,
         "vmtool: -a takes getInstances or forceGc, not getinstance"),
        ({"argv": [], "action": "getInstances"}, 2,
         "vmtool: getInstances needs -c \"module class\""),
        ({"argv": [], "action": "getInstances", "class": "fpvm_mod"}, 2,
         "vmtool: -c takes \"module class\" (two words), not \"fpvm_mod\""),
        ({"argv": [], "action": "getInstances", "class": "a b c"}, 2,
         "vmtool: -c takes \"module class\" (two words), not \"a b c\""),
        ({"argv": ["x"], "action": "getInstances", "class": "a b"}, 2,
         "vmtool: unexpected argument x"),
        ({"argv": [], "action": "getInstances", "class": "fpvm_mod Conn", "limits": 0}, 2,
         "vmtool: -n takes a positive number, or -1 for all"),
        ({"argv": [], "action": "getInstances", "class": "fpvm_mod Conn", "expand": 9}, 2,
         "vmtool: -x takes a whole number from 1 to 4"),
        ({"argv": [], "action": "forceGc", "class": "fpvm_mod Conn"}, 2,
         "vmtool: -a forceGc takes no other option"),
        ({"argv": [], "action": "getInstances", "class": "fpvm_mod Con"}, 1,
         "vmtool: class Con not found in module fpvm_mod; classes matching Con: Conn, TlsConn"),
        ({"argv": [], "action": "getInstances", "class": "fpvm_nope Conn"}, 1, None),
        ({"argv": [], "action": "getInstances", "class": "fpvm_mod conns"}, 1,
         "vmtool: conns in module fpvm_mod is list, not a class"),
    ]
    for args, exit, want in cases:
        msg = fails(ns, args, exit)
        if want is None:
            assert msg.startswith("vmtool: module fpvm_nope is not loaded in the target; "), msg
        else:
            eq(msg, want)


def check_scan_is_chunked_and_cancellable(ns):
    _module()
    ns["_VMTOOL_CHUNK"] = 1000
    ev = ok(ns, {"argv": [], "action": "getInstances", "class": "fpvm_mod Conn", "limits": -1})
    eq(ev["total"], 15)
    ns["_link"].cancelled.add(harness._next_id[0] + 1)
    msg = fails(ns, {"argv": [], "action": "getInstances", "class": "fpvm_mod Conn"})
    eq(msg, "vmtool: cancelled")
