"""The test helpers themselves: the output parsers agree with the contract's
examples, and every target marker is unique.  No fpd needed."""

import json

import pytest

import fpdtest
from fpdtest import TARGETS, ParseError, parse_json, parse_text

TEXT = '''Process 42: /usr/bin/python3.11
Python v3.11.2 (/usr/bin/python3.11)

Traceback for thread 43 (worker-1) [sleeping] (most recent call last):
    ... 7 older frames not shown (stack deeper than 4096 frames)
    (C) File "???", line 0, in _start (python3.11)
    (Python) File "/t/a.py", line 3, in Worker.run
        self.idle()
        Locals:
            self = <Worker at 0x7f00>
            n = 3
    (C) File "../sysdeps/unix/sysv/linux/clock_nanosleep.c", line 78, in clock_nanosleep (libc.so.6)

Traceback for thread 42 (MainThread) [idle] (most recent call last):
    (Python) File "/t/a.py", line 9, in <module>
    (error: the stack kept changing while it was read)
'''

JSON = "\n".join(json.dumps(o) for o in [
    {"type": "event", "id": 1, "event": "process", "pid": 42, "version": "3.11.2",
     "exe": "/usr/bin/python3.11", "binary": "/usr/bin/python3.11"},
    {"type": "event", "id": 1, "event": "thread", "tid": 43, "name": "worker-1", "state": "sleeping",
     "truncated": 7, "error": None, "frames": [
         {"kind": "native", "file": None, "line": 0, "func": "_start", "library": "python3.11", "pc": "0x1000"},
         {"kind": "python", "file": "/t/a.py", "line": 3, "func": "Worker.run", "source": "self.idle()",
          "locals": [{"name": "self", "repr": "<Worker at 0x7f00>"}, {"name": "n", "repr": "3"}]},
         {"kind": "native", "file": "../sysdeps/unix/sysv/linux/clock_nanosleep.c", "line": 78,
          "func": "clock_nanosleep", "library": "libc.so.6", "pc": "0x7f0000001234"}]},
    {"type": "event", "id": 1, "event": "thread", "tid": 42, "name": "MainThread", "state": "idle",
     "truncated": 0, "error": "the stack kept changing while it was read", "frames": [
         {"kind": "python", "file": "/t/a.py", "line": 9, "func": "<module>", "source": None}]},
    {"type": "end", "id": 1},
])


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_parsers_agree(fmt):
    dump = parse_text(TEXT) if fmt == "text" else parse_json(JSON)
    assert (dump.pid, dump.exe, dump.version, dump.binary) == (
        42, "/usr/bin/python3.11", "3.11.2", "/usr/bin/python3.11")
    assert dump.names() == ["MainThread", "worker-1"]
    w = dump.by_name("worker-1")
    assert (w.tid, w.state, w.truncated, w.error) == (43, "sleeping", 7, None)
    assert [f.kind for f in w.frames] == ["native", "python", "native"]
    py = w.python()[0]
    assert (py.file, py.line, py.func, py.source) == ("/t/a.py", 3, "Worker.run", "self.idle()")
    assert py.locals == {"self": "<Worker at 0x7f00>", "n": "3"}
    assert (w.frames[0].line, w.frames[2].line, w.frames[2].library) == (None, 78, "libc.so.6")
    m = dump.by_name("MainThread")
    assert m.error == "the stack kept changing while it was read"
    assert m.python_keys() == [fpdtest.PyFrame("/t/a.py", 9, "<module>")]


@pytest.mark.parametrize("bad", [
    "Traceback for thread x (a) [idle] (most recent call last):",
    "Process 1: /x\n    (Python) File \"a\", line 1, in f",
    "Traceback for thread 1 (a) [idle] (most recent call last):\n  File \"a\", line 1, in f",
])
def test_text_parser_is_strict(bad):
    with pytest.raises(ParseError):
        parse_text(bad)


def test_markers_unique_and_present():
    for path in TARGETS.glob("*.py"):
        fpdtest.markers(path)  # asserts uniqueness
    assert {"inner_sleep", "call_outer", "call_inner", "idle_sleep"} <= set(fpdtest.markers(TARGETS / "basic.py"))
    assert "serve" in fpdtest.markers(TARGETS / "fptarget.py")
