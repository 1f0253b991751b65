"""mem summary / mem diff against real targets on every interpreter: the
helper is injected by fpd and the table is what a user sees (SPEC §3 mem)."""

import json
import re
import signal
import subprocess
import time

import pytest

import fpdtest


@pytest.fixture(scope="module")
def target(interp, workdir):
    t = fpdtest.Target(interp.python, "mem_target.py", logdir=workdir).ready()
    yield t
    t.kill()


def human(n):
    """The size as fpctl prints it (1024 steps, as pympler)."""
    if abs(n) < 1024:
        return "%d B" % n
    v, units = float(abs(n)), ["B", "KB", "MB", "GB", "TB"]
    u = 0
    while v >= 1024 and u + 1 < len(units):
        v /= 1024
        u += 1
    return "%s%.2f %s" % ("-" if n < 0 else "", v, units[u])


def bytes_of(text):
    num, unit = text.lstrip("+").split()
    return float(num) * 1024 ** ["B", "KB", "MB", "GB", "TB"].index(unit)


def table(out):
    """(header cells, rows as lists of cells, lines after the table)."""
    lines = out.rstrip("\n").split("\n")
    head = [c.strip() for c in lines[0].split(" | ")]
    assert re.match(r"^=+ \| =+ \| =+$", lines[1]), lines[:2]
    widths = [len(c) for c in lines[1].split(" | ")]
    rows, i = [], 2
    while i < len(lines) and lines[i].count(" | ") == 2:
        cells = lines[i].split(" | ")
        # right-aligned in columns as wide as the rule under the header
        assert [len(c) for c in cells] == widths, (lines[i], widths)
        rows.append([c.strip() for c in cells])
        i += 1
    return head, rows, lines[i:]


def test_summary(fpctl, target):
    r = fpctl("attach", target.pid, "mem", "summary", "--limit", "1000")
    head, rows, rest = table(r.out)
    assert head == ["types", "# objects", "total size"], r.out
    found = dict((row[0], row[1:]) for row in rows)
    size = target.extra["record_size"]
    assert found["__main__.LeakyRecord"] == ["2500", human(2500 * size)], found
    assert int(found["str"][0]) > 1000 and int(found["dict"][0]) > 100, found
    m = re.match(r"^(\d+) objects, [\d.]+ [KMG]?B in (\d+) types \(walked in [\d.]+ s\)$",
                 rest[0] if len(rest) == 1 else "")
    assert m, rest
    assert int(m.group(1)) >= sum(int(row[1]) for row in rows) and len(rows) == int(m.group(2))
    assert r.err == ""
    target.ping()


def test_limit_and_order(fpctl, target):
    r = fpctl("attach", target.pid, "mem", "summary")
    _, rows, _ = table(r.out)
    sizes = [bytes_of(row[2]) for row in rows]
    assert len(rows) == 10 and sizes == sorted(sizes, reverse=True), r.out
    r = fpctl("attach", target.pid, "mem", "summary", "--limit", "3", "--order", "ascending")
    _, rows, _ = table(r.out)
    sizes = [bytes_of(row[2]) for row in rows]
    assert len(rows) == 3 and sizes == sorted(sizes), r.out


def test_diff(fpctl, target):
    r = fpctl("attach", target.pid, "mem", "diff", "--interval", "1", "--limit", "1000")
    assert re.match(r"^First snapshot: \d+ objects, [\d.]+ [KMG]?B \([\d.]+ s\); the second in "
                    r"1 s \(Ctrl-C stops\)$", r.err.strip()), r.err
    head, rows, rest = table(r.out)
    assert head == ["types", "# objects", "total size"], r.out
    found = dict((row[0], row[1:]) for row in rows)
    count, size = found["__main__.Growing"]
    # one every 10 ms during about a second, and during the second walk
    assert count.startswith("+") and int(count) >= 20 and size.startswith("+"), found
    assert "__main__.LeakyRecord" not in found, found
    assert len(rest) == 1 and re.match(
        r"^After 1 s: \d+ objects \([+-]\d+\), [\d.]+ [KMG]?B \([+-]?[\d.]+ [KMG]?B\)$",
        rest[0]), rest
    target.ping()


def test_diff_ctrl_c_ends_promptly(fpctl, target):
    p = fpdtest.spawn(fpctl.command(["attach", target.pid, "mem", "diff", "--interval", "60"]),
                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                      env=fpctl.env())
    try:
        line = p.stderr.readline().decode()
        assert line.startswith("First snapshot:"), line
        start = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
        assert time.monotonic() - start < 3
        assert p.returncode == 128 + signal.SIGINT and out == b"", (p.returncode, out, err)
    finally:
        fpdtest.stop(p)
    target.ping()


def test_json(fpctl, target):
    r = fpctl("--json", "attach", target.pid, "mem", "summary", "--limit", "2")
    evs = [e for e in map(json.loads, r.out.splitlines()) if e.get("event") == "mem_summary"]
    assert len(evs) == 1 and len(evs[0]["rows"]) == 2, r.out
    row = evs[0]["rows"][0]
    assert set(row) == {"type", "count", "size"} and evs[0]["order"] == "descending", row


@pytest.mark.parametrize("args,message", [
    (["summary", "--order", "up"],
     "mem: --order takes descending or ascending, not 'up'"),
    (["summary", "--limit", "-3"],
     "mem: --limit takes a whole number from 1 to 1000000, not '-3'"),
    (["summary", "--limit", "x"],
     "mem: --limit takes a whole number from 1 to 1000000, not 'x'"),
    (["diff", "--interval", "0"],
     "mem: --interval takes a number from 0.1 to 3600 (seconds), not '0'"),
    (["diff", "--interval", "soon"],
     "mem: --interval takes a number from 0.1 to 3600 (seconds), not 'soon'"),
    (["summary", "--interval", "5"], "mem summary: --interval applies to mem diff only"),
    (["sideways"], "mem: the action is summary or diff, not 'sideways'"),
    ([], "mem: missing arguments (usage: mem summary|diff [--limit N] "
         "[--order descending|ascending] [--interval S])"),
])
def test_bad_input(fpctl, target, args, message):
    r = fpctl("attach", target.pid, "mem", *args, check=False)
    assert r.rc == 2 and r.out == "", r
    assert r.err == "fpctl: %s; see 'fpctl help mem'\n" % message, r.err
    target.ping()
