"""Checks of getglobal and of locate.py (module [class] name lookups),
through the fake link, run under every interpreter by checkrun.py."""
import os
import sys
import tempfile
import types

import harness


def ok(ns, cmd, args):
    events, last = harness.run(ns, cmd, args)
    assert last == ("end", None), last
    return events


def fails(ns, cmd, args, exit=1):
    events, last = harness.run(ns, cmd, args)
    assert last is not None and last[0] == "error", (events, last)
    assert last[1]["exit"] == exit, last
    assert "\n" not in last[1]["message"], last
    return last[1]["message"]


def eq(got, want):
    assert got == want, "got:\n%s\nwant:\n%s" % (got, want)


class Base(object):
    inherited = "from base"


class Config(Base):
    VERSION = "2.1.0"
    FEATURES = {"caching": False, "metrics": True}

    class Inner(object):
        DEPTH = 2

    @property
    def prop(self):
        raise RuntimeError("a property ran")

    def __init__(self):
        self.instance_only = 1


def _module():
    """A module of known globals, registered in sys.modules."""
    mod = types.ModuleType("fpcheck_mod")
    mod.g_list = [1, 2, {"a": 1}]
    mod.counter = 61
    mod.text = "x" * 300
    mod.Config = Config
    mod.not_a_class = 5
    sys.modules["fpcheck_mod"] = mod
    return mod


def check_module_global(ns):
    _module()
    ev = ok(ns, "getglobal", {"argv": ["fpcheck_mod", "g_list"]})
    eq(len(ev), 1)
    eq(ev[0]["event"], "value")
    eq(ev[0]["expr"], "target")
    eq(ev[0]["value_type"], "list")
    eq(ev[0]["value"], "[\n  1,\n  2,\n  {'a': 1}\n]")
    eq(ev[0]["field"], "fpcheck_mod.g_list")
    ev = ok(ns, "getglobal", {"argv": ["fpcheck_mod", "counter"]})
    eq((ev[0]["value_type"], ev[0]["value"]), ("int", "61"))


def check_main_module(ns):
    sys.modules["__main__"].fp_main_value = {"k": "v"}
    ev = ok(ns, "getglobal", {"argv": ["__main__", "fp_main_value"]})
    eq(ev[0]["value"], "{\n  'k': 'v'\n}")


def check_class_attribute(ns):
    _module()
    ev = ok(ns, "getglobal", {"argv": ["fpcheck_mod", "Config", "VERSION"]})
    eq((ev[0]["value_type"], ev[0]["value"], ev[0]["field"]),
       ("str", "'2.1.0'", "fpcheck_mod.Config.VERSION"))
    ev = ok(ns, "getglobal", {"argv": ["fpcheck_mod", "Config", "inherited"]})
    eq(ev[0]["value"], "'from base'")
    ev = ok(ns, "getglobal", {"argv": ["fpcheck_mod", "Config.Inner", "DEPTH"]})
    eq(ev[0]["value"], "2")
    # A property is shown, not run.
    ev = ok(ns, "getglobal", {"argv": ["fpcheck_mod", "Config", "prop"]})
    eq(ev[0]["value_type"], "property")


def check_module_not_loaded_is_never_imported(ns):
    d = tempfile.mkdtemp()
    marker = os.path.join(d, "ran")
    with open(os.path.join(d, "fpcheck_unloaded.py"), "w") as f:
        f.write("open(%r, 'w').close()\nx = 1\n" % marker)
    sys.path.insert(0, d)
    try:
        msg = fails(ns, "getglobal", {"argv": ["fpcheck_unloaded", "x"]})
    finally:
        sys.path.remove(d)
    assert msg.startswith("getglobal: module fpcheck_unloaded is not loaded in the target; "
                          "loaded modules matching fpcheck_unloaded: "), msg
    assert "fpcheck_unloaded" not in sys.modules
    assert not os.path.exists(marker)


def check_close_matches(ns):
    _module()
    msg = fails(ns, "getglobal", {"argv": ["fpcheck", "x"]})
    assert "loaded modules matching fpcheck: fpcheck_mod" in msg, msg
    msg = fails(ns, "getglobal", {"argv": ["fpcheck_mdo", "x"]})
    assert "fpcheck_mod" in msg, msg
    msg = fails(ns, "getglobal", {"argv": ["fpcheck_mod", "g_lst"]})
    eq(msg, "getglobal: module fpcheck_mod has no global g_lst; globals matching g_lst: g_list")
    msg = fails(ns, "getglobal", {"argv": ["zzqqxx_none", "x"]})
    assert msg.endswith("loaded modules matching zzqqxx_none: none"), msg


def check_missing_class_and_field(ns):
    _module()
    msg = fails(ns, "getglobal", {"argv": ["fpcheck_mod", "Confg", "VERSION"]})
    eq(msg, "getglobal: class Confg not found in module fpcheck_mod; classes matching Confg: "
            "Config")
    msg = fails(ns, "getglobal", {"argv": ["fpcheck_mod", "Config", "VERSON"]})
    assert msg.startswith("getglobal: class checks.Config has no attribute VERSON; attributes "
                          "matching VERSON: VERSION"), msg
    msg = fails(ns, "getglobal", {"argv": ["fpcheck_mod", "Config", "instance_only"]})
    assert "vmtool -a getInstances -c \"fpcheck_mod Config\" -e instances[0].instance_only" \
        in msg, msg
    msg = fails(ns, "getglobal", {"argv": ["fpcheck_mod", "not_a_class", "x"]})
    eq(msg, "getglobal: not_a_class in module fpcheck_mod is int, not a class")
    msg = fails(ns, "getglobal", {"argv": ["fpcheck_mod", "Config.Nope", "x"]})
    assert msg.startswith("getglobal: class Config.Nope not found in class checks.Config"), msg


def check_expression(ns):
    _module()
    ev = ok(ns, "getglobal", {"argv": ["fpcheck_mod", "g_list"], "expr": "len(target)"})
    eq((ev[0]["expr"], ev[0]["value_type"], ev[0]["value"]), ("len(target)", "int", "3"))
    ev = ok(ns, "getglobal", {"argv": ["fpcheck_mod", "Config", "FEATURES"],
                              "expr": "[k for k in target if target[k]]"})
    eq(ev[0]["value"], "[\n  'metrics'\n]")
    ev = ok(ns, "getglobal", {"argv": ["fpcheck_mod", "g_list"], "expr": "target[2]['a']"})
    eq(ev[0]["value"], "1")


def check_bad_expression(ns):
    mod = _module()
    msg = fails(ns, "getglobal", {"argv": ["fpcheck_mod", "g_list"], "expr": "target["}, exit=2)
    assert msg.startswith("getglobal: -e target[: not a Python expression ("), msg
    msg = fails(ns, "getglobal", {"argv": ["fpcheck_mod", "g_list"], "expr": "x = 1"}, exit=2)
    assert "not a Python expression" in msg, msg
    msg = fails(ns, "getglobal", {"argv": ["fpcheck_mod", "g_list"], "expr": "target.nope"})
    eq(msg, "getglobal: -e target.nope failed: AttributeError: 'list' object has no "
            "attribute 'nope'")
    msg = fails(ns, "getglobal", {"argv": ["fpcheck_mod", "g_list"], "expr": "target[1/0]"})
    eq(msg, "getglobal: -e target[1/0] failed: ZeroDivisionError: division by zero")
    msg = fails(ns, "getglobal", {"argv": ["fpcheck_mod", "g_list"], "expr": "\0"}, exit=2)
    assert "not a Python expression" in msg, msg
    eq(mod.g_list, [1, 2, {"a": 1}])


def check_expression_cancelled(ns):
    _module()
    ns["_link"].cancelled.add(harness._next_id[0] + 1)
    msg = fails(ns, "getglobal", {"argv": ["fpcheck_mod", "g_list"],
                                  "expr": "sum(1 for _ in iter(int, 1))"})
    eq(msg, "getglobal: -e sum(1 for _ in iter(int, 1)): interrupted")


def check_raw_and_verbose(ns):
    _module()
    ev = ok(ns, "getglobal", {"argv": ["fpcheck_mod", "g_list"], "raw": True})
    eq(ev[0]["value"], "[1, 2, {'a': 1}]")
    ev = ok(ns, "getglobal", {"argv": ["fpcheck_mod", "text"]})
    assert ev[0]["value"].endswith("...(44 more chars)"), ev[0]["value"]
    ev = ok(ns, "getglobal", {"argv": ["fpcheck_mod", "text"], "verbose": True})
    eq(ev[0]["value"], repr("x" * 300))
    ev = ok(ns, "getglobal", {"argv": ["fpcheck_mod", "Config", "FEATURES"], "expand": 2})
    eq(ev[0]["value"], "{\n  'caching': False,\n  'metrics': True\n}")


def check_bad_options(ns):
    _module()
    for bad in (0, 5, "2", True):
        msg = fails(ns, "getglobal", {"argv": ["fpcheck_mod", "g_list"], "expand": bad}, exit=2)
        eq(msg, "getglobal: -x takes a whole number from 1 to 4")
    for argv in ([], ["fpcheck_mod"], ["a", "b", "c", "d"], ["fpcheck_mod", ""], "x"):
        msg = fails(ns, "getglobal", {"argv": argv}, exit=2)
        eq(msg, "getglobal: usage: getglobal module [class] field")
    msg = fails(ns, "getglobal", {"argv": ["fpcheck_mod", "g_list"], "expr": 3}, exit=2)
    eq(msg, "getglobal: -e takes an expression")


def check_locate_functions(ns):
    _module()
    loc = ns["locate_functions"]
    funcs, label, owner = loc("fpcheck_mod", "Config", "__init__", "x")
    eq([r for r, f in funcs], ["function"])
    eq(label, "checks.Config.__init__")
    funcs, label, owner = loc("fpcheck_mod", "Config", "prop", "x")
    eq([r for r, f in funcs], ["fget"])
    try:
        loc("fpcheck_mod", "Config", "VERSION", "x")
    except ns["CommandError"] as e:
        eq(e.message, "x: checks.Config.VERSION is str, not a Python function")
    else:
        raise AssertionError("a str located as a function")


def check_nested_code(ns):
    def outer():
        def inner():
            return 1
        return inner
    code = ns["nested_code"](outer, "inner", "watch")
    eq(code.co_name, "inner")
    try:
        ns["nested_code"](outer, "innr", "watch")
    except ns["CommandError"] as e:
        assert e.message.startswith("watch: ") and "defines no function innr" in e.message and \
            "nested functions matching innr: inner" in e.message, e.message
    else:
        raise AssertionError("a missing nested function was found")
