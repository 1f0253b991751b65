"""tt (the time tunnel) end to end on every interpreter: fpd injects the
helper into tt_target.py, whose worker calls Shop.place (raising for every
third order) and add every 20 ms and changes each order after the call.

Checked: -t prints one row per call with indices from 1000 and stops
after -n, the method running its original code again; records outlive the
session that took them; -l with -m and -f; -i shows target, arguments,
keyword arguments, return value or exception with its traceback, as they
were at the call (the order's later change is not in the record); -i -p
replays under a new index; -d, -da and the errors after them; the caps;
bad input
(SPEC §5: one line, nothing changed, the target unharmed)."""

import re
import subprocess
import time
from collections import namedtuple

import pytest

import fpdtest

Row = namedtuple("Row", "index timestamp cost is_ret is_exp module method replay_of")
ROW = re.compile(r"^(\d+) +(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) +(\d+\.\d{3}) +(true|false) +"
                 r"(true|false) +(\S+) +(\S+)(?:  \(replay of (\d+)\))?$")
HEADER = re.compile(r"^INDEX +TIMESTAMP +COST\(ms\) +IS-RET +IS-EXP +MODULE +METHOD$")


def rows(out):
    found = []
    for line in out.splitlines():
        m = ROW.match(line)
        if m:
            g = m.groups()
            found.append(Row(int(g[0]), g[1], float(g[2]), g[3] == "true", g[4] == "true", g[5],
                             g[6], int(g[7]) if g[7] else None))
    return found


def field(out, name):
    m = re.search(r"^%s +(.*)$" % re.escape(name), out, re.M)
    assert m, "no %s line in:\n%s" % (name, out)
    return m.group(1)


def block(out, expr):
    """The EXPR/TYPE/VALUE (NOTE, TRACE) block of expr in a record view."""
    m = re.search(r"^EXPR:  %s\n(.*?)(?=\n\nEXPR:|\Z)" % re.escape(expr), out, re.M | re.S)
    assert m, "no block %s in:\n%s" % (expr, out)
    return m.group(1)


@pytest.fixture(scope="module")
def target(interp, workdir):
    t = fpdtest.Target(interp.python, "tt_target.py", logdir=workdir).ready()
    yield t
    t.kill()


@pytest.fixture(scope="module")
def tt(fpctl, target):
    def run(*args, **kw):
        return fpctl("attach", target.pid, "tt", *args, **kw)
    return run


CODE_STATE = ("[id(__import__('__main__').Shop.__dict__['place'].__code__), "
              "id(__import__('__main__').add.__code__), "
              "[getattr(__import__('sys'), 'monitoring', None) and "
              "__import__('sys').monitoring.get_tool(i) for i in (3, 4)]]")


def code_state(fpctl, target):
    """What instrumenting Shop.place or add changes: their code objects
    (3.6-3.11 swap in a trampoline), the sys.monitoring tools in use (3.12+)."""
    return fpctl("attach", target.pid, "getglobal", "__main__", "SHOP", "-e", CODE_STATE).out


def test_record_rows_and_limit(tt, fpctl, target):
    before = code_state(fpctl, target)
    r = tt("-t", "__main__", "Shop", "place", "-n", "6")
    lines = r.out.splitlines()
    assert HEADER.match(lines[0]), r.out
    got = rows(r.out)
    assert [x.index for x in got] == list(range(1000, 1006)), r.out
    assert all(x.module == "__main__" and x.method == "Shop.place" for x in got), r.out
    # Every third order raises: two of six consecutive calls.
    assert sum(x.is_exp for x in got) == 2 and all(x.is_ret != x.is_exp for x in got), r.out
    assert "6 calls recorded (the -n limit)" in r.err, r.err
    # Stopped: nothing more is recorded, the method is as it was.
    time.sleep(0.3)
    assert [x.index for x in rows(tt("-l").out)] == list(range(1000, 1006))
    assert code_state(fpctl, target) == before
    target.ping()


def test_records_outlive_the_session(tt, fpctl, target):
    p = subprocess.run(fpctl.command(["attach", target.pid]), env=fpctl.env(), timeout=60,
                       input=b"tt -t __main__ add -n 2\nquit\n", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    assert p.returncode == 0, p.stderr
    taken = [x.index for x in rows(p.stdout.decode())]
    assert len(taken) == 2, p.stdout
    listed = rows(tt("-l", "-m", "__main__.add").out)
    assert [x.index for x in listed] == taken and all(x.method == "add" for x in listed)


def test_list_filters(tt):
    out = tt("-l").out
    assert HEADER.match(out.splitlines()[0]), out
    assert re.search(r"^\d+ records; the store holds \d+ records, [\d.]+ (B|KiB|MiB) "
                     r"\(at most 1000 records, 64\.0 MiB\)\.$", out, re.M), out
    place = rows(tt("-l", "-m", "__main__.Shop.place").out)
    assert [x.index for x in place] == list(range(1000, 1006))
    failed = rows(tt("-l", "-m", "__main__.Shop.place", "-f", "exception is not None").out)
    assert [x.index for x in failed] == [x.index for x in place if x.is_exp]
    totals = rows(tt("-l", "-f", "return_obj['total'] == 20 and cost >= 0 and "
                     "args[0]['price'] == 10 and kwargs['coupon'] == 'SAVE'").out)
    assert [x.index for x in totals] == [x.index for x in place if x.is_ret]
    r = tt("-l", "-m", "__main__.nothing")
    assert rows(r.out) == [] and r.out.startswith("No records;"), r.out


def test_show_record_as_at_the_call(tt):
    place = rows(tt("-l", "-m", "__main__.Shop.place").out)
    ok = [x for x in place if x.is_ret][0]
    out = tt("-i", ok.index, "-x", "2").out
    assert field(out, "INDEX") == str(ok.index) and field(out, "METHOD") == "Shop.place"
    assert field(out, "IS-RET") == "true" and field(out, "IS-EXP") == "false"
    assert field(out, "THREAD").startswith("worker (ident "), out
    target = block(out, "target")
    assert "TYPE:  __main__.Shop" in target and "NOTE:  not a copy: text taken at the call " \
        "(not copyable: TypeError:" in target, target
    order = block(out, "args[0]")
    n = re.search(r"'n': (\d+)", order).group(1)
    # The worker set price to 0 and added 'shipped' after the call.
    assert "'price': 10" in order and "'new'" in order and "shipped" not in order, order
    assert "VALUE: 'SAVE'" in block(out, "kwargs['coupon']"), out
    ret = block(out, "return_obj")
    assert "'total': 20" in ret and "'order': %s" % n in ret, ret
    bad = [x for x in place if x.is_exp][0]
    out = tt("-i", bad.index).out
    exc = block(out, "exception")
    assert "TYPE:  ValueError" in exc and "refused" in exc, exc
    assert re.search(r"TRACE: Traceback \(most recent call last\):\n.*in place\n.*"
                     r"ValueError: order \d+ refused$", exc, re.S), exc
    assert "return_obj" not in out


def test_replay(tt, target):
    place = rows(tt("-l", "-m", "__main__.Shop.place").out)
    ok = [x for x in place if x.is_ret][0]
    before = rows(tt("-l").out)[-1].index
    out = tt("-i", ok.index, "-p").out
    m = re.match(r"Replayed record %d as (\d+), on the live target\.\n" % ok.index, out)
    assert m, out
    new = int(m.group(1))
    assert new == before + 1, (before, out)
    assert field(out, "INDEX") == str(new) and field(out, "REPLAY-OF") == str(ok.index)
    assert field(out, "THREAD").startswith("fpd helper, tt -p"), out
    assert "'total': 20" in block(out, "return_obj"), out
    listed = [x for x in rows(tt("-l").out) if x.index == new]
    assert listed and listed[0].replay_of == ok.index, listed
    # A call that raises raises again, recorded as such.
    bad = [x for x in place if x.is_exp][0]
    out = tt("-i", bad.index, "-p").out
    assert field(out, "IS-EXP") == "true" and "refused" in block(out, "exception"), out
    target.ping()


def test_delete(tt, target):
    first = rows(tt("-l").out)[0].index
    assert tt("-d", first).out == "Deleted record %d.\n" % first
    for args in (("-i", first), ("-i", first, "-p"), ("-d", first)):
        r = tt(*args, check=False)
        assert r.rc == 1 and r.out == "", r
        assert r.err.strip().endswith("tt: record %d was deleted, or dropped when the store "
                                      "was full (the store holds %d records, %d to %d; tt -l "
                                      "lists them)" % ((first,) + _held(tt))), r.err
        assert len(r.err.strip().splitlines()) == 1, r.err
    n = len(rows(tt("-l").out))
    assert tt("-da").out == "Deleted %d records.\n" % n
    assert tt("-l").out.startswith("No records;")
    r = tt("-i", first, check=False)
    assert r.rc == 1 and r.err.strip().endswith("(the store is empty)"), r
    target.ping()


def _held(tt):
    idx = [x.index for x in rows(tt("-l").out)]
    return len(idx), idx[0], idx[-1]


def test_caps(tt):
    """--max-records with -t: the store keeps the newest; alone: caps set."""
    r = tt("-t", "__main__", "add", "-n", "5", "--max-records", "3")
    taken = [x.index for x in rows(r.out)]
    assert len(taken) == 5, r.out
    assert [x.index for x in rows(tt("-l").out)] == taken[2:]
    out = tt("--max-records", "1000", "--max-mb", "32").out
    assert re.match(r"Caps set: the store holds 3 records, [\d.]+ (B|KiB|MiB) \(at most 1000 "
                    r"records, 32\.0 MiB\)\.\n\Z", out), out
    tt("--max-mb", "64")


def test_cancel_restores(fpctl, target):
    """A recording stopped by fpctl's --timeout (as by Ctrl-C) records
    nothing more and leaves the method as it was."""
    before = code_state(fpctl, target)
    r = fpctl("--timeout", "1", "attach", target.pid, "tt", "-t", "__main__", "add", "-f",
              "args[0] < 0", check=False)
    assert HEADER.match(r.out.splitlines()[0]) and rows(r.out) == [], r
    assert "timed out" in r.err, r.err
    fpdtest.wait_for(lambda: code_state(fpctl, target) == before, 10,
                     "the instrumentation to go")
    target.ping()


@pytest.mark.parametrize("args,rc,message", [
    (["-t", "nosuch", "f"], 1, "tt: module nosuch is not loaded in the target"),
    (["-t", "__main__", "Nope", "place"], 1, "tt: class Nope not found in module __main__"),
    (["-t", "__main__", "Shop", "nope"], 1, "tt: class __main__.Shop has no method nope"),
    (["-t", "__main__", "nope"], 1, "tt: module __main__ has no function nope"),
    (["-t", "__main__", "add", "-n", "0"], 2, "tt: --limits takes a whole number from 1"),
    (["-i", "1000", "-x", "9"], 2, "tt: --expand takes a whole number from 1 to 4"),
    (["-t", "__main__", "add", "-l"], 2, "tt: -t and -l cannot be combined"),
    (["-l", "-p"], 2, "tt: -p replays a record: tt -i IDX -p"),
    (["-t", "__main__", "add", "-x", "2"], 2, "tt: -x does not apply to -t"),
    (["-t", "__main__", "add", "-f", "1 +"], 2, "tt: -f 1 +: not a Python expression"),
    (["-i", "99999"], 1, "tt: record 99999 does not exist"),
    ([], 2, "tt: one of -t module [class] method, -l, -i IDX, -d IDX or -da is needed"),
])
def test_bad_input(tt, target, args, rc, message):
    r = tt(*args, check=False)
    assert r.rc == rc and r.out == "", r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.err
    target.ping()
