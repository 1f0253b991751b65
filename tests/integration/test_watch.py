"""watch end to end: fpd injects the helper into watch_target.py (code shaped
like an application's, called periodically by its own threads) and fpctl
prints one record per call, on every interpreter.

Covers SPEC §3 watch and issue 5: arguments, return values, cost and
exceptions of methods, classmethods, staticmethods, properties, -nm inner
functions, decorated methods, a coroutine on an event loop thread, a
generator and a function called from three threads; --expr and -f with
target, return_obj, cost, args and kwargs; an expression error inside the
record; -e with tracebacks; -n 3 stopping and the function restored (code
objects compared by identity, sys.monitoring tool ids freed, call time back
to its baseline); Ctrl-C/--timeout, detach and two sessions at once; bad
input answered with one line and the target unharmed."""

import json
import re
import subprocess
import time

import pytest

import fpdtest

HEADER = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) method=(\S+) cost=(\d+\.\d{6})ms "
                    r"is_exp=(True|False) result=\{$")
FIELD = re.compile(r"^  (EXPR|TYPE|VALUE|ERROR|FILTER|EXCEPTION):( +)(.*)$")


def parse(out):
    """Records of watch's text output: dicts with time, method, cost, is_exp
    and a key per field (its lines joined, the indentation removed).
    Strict: a line that fits nowhere fails."""
    recs, rec, field, indent = [], None, None, 0
    for line in out.splitlines():
        if rec is None:
            if line == "-" * 60:
                continue
            m = HEADER.match(line)
            assert m, "unexpected line %r in:\n%s" % (line, out)
            rec = {"time": m.group(1), "method": m.group(2), "cost": float(m.group(3)),
                   "is_exp": m.group(4) == "True"}
            continue
        if line == "}":
            recs.append(rec)
            rec = field = None
            continue
        m = FIELD.match(line)
        if m:
            field = m.group(1)
            indent = 2 + len(field) + 1 + len(m.group(2))
            rec[field] = m.group(3)
            continue
        assert field and line.startswith(" " * indent), "unexpected line %r in:\n%s" % (line, out)
        rec[field] += "\n" + line[indent:]
    assert rec is None, "unterminated record in:\n%s" % out
    return recs


@pytest.fixture(scope="module")
def target(interp, workdir):
    t = fpdtest.Target(interp.python, "watch_target.py", logdir=workdir).ready()
    yield t
    t.kill()


def watch(fpctl, target, *args, **kw):
    r = fpctl("attach", target.pid, "watch", *args, **kw)
    return r, parse(r.out)


def value(fpctl, target, name, expr):
    r = fpctl("attach", target.pid, "getglobal", "__main__", name, "-e", expr)
    m = re.search(r"^VALUE: (.*)$", r.out, re.M | re.S)
    assert m, r.out
    return m.group(1).rstrip("\n")


def restored(fpctl, target):
    """The target's own account (watch_target.instrumented): [] when every
    function has its original code object and no tool id is taken."""
    return value(fpctl, target, "instrumented", "target()")


def call_time(fpctl, target):
    """Seconds for 2000 calls of add, the best of 5, measured in the target."""
    return float(value(fpctl, target, "add", "min(__import__('timeit').repeat("
                       "lambda: target(1, 2), number=2000, repeat=5))"))


def test_method_record(fpctl, target):
    r, recs = watch(fpctl, target, "__main__", "Service", "handle", "-n", "2")
    assert r.err.startswith("fpctl: watching __main__.Service.handle: at most 2 records"), r.err
    assert len(recs) == 2, r.out
    for rec in recs:
        assert rec["method"] == "__main__.Service.handle" and not rec["is_exp"], rec
        assert rec["EXPR"] == "args,kwargs" and rec["TYPE"] == "tuple", rec
        assert re.match(r"^\(\n  \(\{'id': \d+, 'query': '(hello|bye)'\},\),\n"
                        r"  \{'retries': 2, 'timeout': None\}\n\)$", rec["VALUE"]), rec["VALUE"]
        assert 0 <= rec["cost"] < 1000
        assert abs(time.mktime(time.strptime(rec["time"][:19], "%Y-%m-%d %H:%M:%S")) -
                   time.time()) < 120, rec
    target.ping()


@pytest.mark.parametrize("where,expr,want", [
    (["Service", "create"], "target, args, return_obj.name",
     r"\(\n  <class '__main__.Service'>,\n  \('svc-\d+',\),\n  'svc-\d+'\n\)"),
    (["Service", "checksum"], "target, args, return_obj",
     r"\(\n  None,\n  \(\[\d+, \d+, \d+\],\),\n  \d+\n\)"),
    (["Service", "size"], "target.name, args, return_obj", r"\(\n  'main',\n  \(\),\n  4\n\)"),
    (["Service", "outer", "-nm", "inner"], "target, args, return_obj",
     r"\(\n  None,\n  \(\d+, 2\),\n  \d+\n\)"),
    (["Service", "audited"], "target.name, args, kwargs, return_obj",
     r"\(\n  'main',\n  \('user\d', 'read'\),\n  \{\},\n  'user\d:read'\n\)"),
    (["fetch"], "args[0] * 2 == return_obj and cost >= 1", r"True"),
    (["numbers"], "args, return_obj", r"\(\n  \(3,\),\n  3\n\)"),
], ids=["classmethod", "staticmethod", "property", "nested", "decorated", "coroutine",
        "generator"])
def test_kinds(fpctl, target, where, expr, want):
    r, recs = watch(fpctl, target, "__main__", *where, "--expr", expr, "-n", "1")
    assert len(recs) == 1, r.out
    assert re.match("^%s$" % want, recs[0]["VALUE"]), recs[0]["VALUE"]
    assert not recs[0]["is_exp"]


def test_threads(fpctl, target):
    r = fpctl("--json", "attach", target.pid, "watch", "__main__", "add", "-n", "30",
              "--expr", "return_obj == args[0] + args[1]")
    recs = [e for e in map(json.loads, r.out.splitlines()) if e.get("event") == "record"]
    assert len(recs) == 30 and all(rec["value"] == "True" for rec in recs), r.out
    assert set(rec["thread"] for rec in recs) == {"adder-0", "adder-1", "adder-2"}, recs


def test_filter_and_names(fpctl, target):
    r, recs = watch(fpctl, target, "__main__", "Service", "handle", "-n", "2",
                    "-f", "args[0]['query'] == 'hello' and kwargs['retries'] == 2 and cost >= 0 "
                          "and return_obj['ok'] and target.name == 'main'",
                    "--expr", "target.handled > 0, return_obj['echo']['query'], cost")
    assert len(recs) == 2, r.out
    for rec in recs:
        m = re.match(r"^\(\n  True,\n  'hello',\n  (\S+)\n\)$", rec["VALUE"])
        assert m and abs(float(m.group(1)) - rec["cost"]) < 1e-5, rec


def test_expression_error_in_record(fpctl, target):
    before = value(fpctl, target, "CALLS", "target['handle']")
    r, recs = watch(fpctl, target, "__main__", "Service", "handle", "--expr", "args[9]", "-n", "1")
    assert recs[0]["EXPR"] == "args[9]" and recs[0]["ERROR"] == \
        "IndexError: tuple index out of range", recs
    r, recs = watch(fpctl, target, "__main__", "Service", "handle", "-f", "kwargs['x']",
                    "-n", "1")
    assert recs[0]["FILTER"] == "kwargs['x']" and recs[0]["ERROR"] == "KeyError: 'x'", recs
    assert int(value(fpctl, target, "CALLS", "target['handle']")) > int(before)
    target.ping()


def test_exceptions(fpctl, target):
    r, recs = watch(fpctl, target, "__main__", "Service", "fail", "-e", "-n", "1")
    (rec,) = recs
    assert rec["is_exp"] and rec["method"] == "__main__.Service.fail", rec
    tb = rec["EXCEPTION"].splitlines()
    assert tb[0] == "Traceback (most recent call last):", tb
    assert re.match(r'^  File ".*watch_target\.py", line \d+, in fail$', tb[1]), tb
    assert tb[2] == '    raise ValueError("bad value %d" % n)', tb
    assert re.match(r"^ValueError: bad value \d+$", tb[3]) and len(tb) == 4, tb
    r, recs = watch(fpctl, target, "__main__", "Service", "safe", "--expr", "return_obj",
                    "-n", "1")
    assert recs[0]["VALUE"] == "-1" and not recs[0]["is_exp"], recs


def test_limit_stops_and_restores(fpctl, target):
    assert restored(fpctl, target) == "[]"
    base = call_time(fpctl, target)
    t0 = time.monotonic()
    r, recs = watch(fpctl, target, "__main__", "add", "-n", "3")
    assert r.rc == 0 and len(recs) == 3, r.out
    assert time.monotonic() - t0 < 30
    assert restored(fpctl, target) == "[]"
    after = call_time(fpctl, target)
    # A function still instrumented costs several times more per call.
    assert after < 3 * base + 0.0005, (base, after)
    r, recs = watch(fpctl, target, "__main__", "Service", "outer", "-nm", "inner", "-n", "3")
    assert len(recs) == 3
    assert restored(fpctl, target) == "[]"


def test_timeout_stops_cleanly(fpctl, target):
    t0 = time.monotonic()
    r = fpctl("--timeout", "1", "attach", target.pid, "watch", "__main__", "Service", "handle",
              "-f", "False", check=False)
    assert r.rc == 1 and r.out == "" and r.err.endswith("\nfpctl: watch: timed out after 1 s\n"), r
    assert time.monotonic() - t0 < 20
    assert restored(fpctl, target) == "[]"


def test_ctrl_c_and_detach(fpctl, target):
    cmd = fpctl.command(["attach", target.pid, "watch", "__main__", "fetch", "-n", "100000"])
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=fpctl.env())
    line = p.stdout.readline()
    assert line.startswith(b"-" * 60), (line, p.stderr.read())
    p.send_signal(2)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, (out, err)
    assert restored(fpctl, target) == "[]"
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=fpctl.env())
    p.stdout.readline()
    fpctl("detach", target.pid)
    p.communicate(timeout=30)
    assert restored(fpctl, target) == "[]"
    target.ping()


def test_two_sessions(fpctl, target):
    cmds = [fpctl.command(["attach", target.pid, "watch", "__main__", "Service", "handle",
                           "--expr", expr, "-n", n]) for expr, n in (("'A'", "3"), ("'B'", "5"))]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=fpctl.env()) for c in cmds]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    a, b = parse(outs[0][0].decode()), parse(outs[1][0].decode())
    assert [r["VALUE"] for r in a] == ["'A'"] * 3 and [r["VALUE"] for r in b] == ["'B'"] * 5
    assert restored(fpctl, target) == "[]"


@pytest.mark.parametrize("args,rc,msg", [
    (["nosuch", "f"], 1, "watch: module nosuch is not loaded in the target"),
    (["__main__", "Nope", "handle"], 1, "watch: class Nope not found in module __main__"),
    (["__main__", "Service", "nope"], 1, "watch: class __main__.Service has no method nope"),
    (["__main__", "nope"], 1, "watch: module __main__ has no function nope"),
    (["__main__", "Service", "outer", "-nm", "nope"], 1,
     "watch: Service.outer defines no function nope"),
    (["__main__", "add", "--expr", "args["], 2,
     "watch: --expr args[: not a Python expression"),
    (["__main__", "add", "-f", "1 +"], 2, "watch: -f 1 +: not a Python expression"),
    (["__main__", "add", "-x", "9"], 2, "watch: --expand takes a whole number from 1 to 4"),
    (["__main__", "add", "-n", "0"], 2, "watch: --limits takes a whole number from 1 to"),
    (["__main__"], 2, "watch: missing arguments (usage: watch module [class] method)"),
])
def test_bad_input(fpctl, target, args, rc, msg):
    r = fpctl("attach", target.pid, "watch", *args, check=False)
    assert r.rc == rc and r.out == "", r
    assert msg in r.err and len(r.err.strip().splitlines()) <= 2, r.err
    assert restored(fpctl, target) == "[]"
    assert value(fpctl, target, "sys", "'nosuch' in target.modules") == "False"
    target.ping()
