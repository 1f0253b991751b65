"""`stack` while threads come and go, and right after one-shot helper
sessions, on every interpreter (issue 10, item 4).

The target (targets/churn.py) keeps short-lived named threads starting and
ending beside MainThread and three long-lived threads; each short-lived
thread logs its tid and name first thing.  Every dump, text and --json, must
show: MainThread and the long-lived threads, once each, with their own tids;
no tid that is 0, negative, duplicated, or neither a task of the process
around the read nor a logged short-lived thread; a short-lived thread under
the name it logged for that tid, or under the process's comm while it starts
or ends (threading does not list it then); no other name ("?" included).  A dump
that could not be read consistently must say so (a note for the whole dump,
an error for a thread), never hide it: a silent cut is what fails here.
"""

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import fpdtest

DUMPS = 160
PAIRS = 60
WORKERS = 3
LONG = ["MainThread", "long-0", "long-1", "long-2", "churner"]
NOTE = re.compile(r"^\(note: (.*)\)$")


@pytest.fixture(scope="module")
def churn(interp, workdir):
    log = Path(workdir) / ("churn-%s.log" % interp.id)
    t = fpdtest.Target(interp.python, "churn.py", (str(log),), logdir=workdir).ready()
    t.tidlog = log
    yield t
    t.kill()


def tasks(pid):
    return {int(d) for d in os.listdir("/proc/%d/task" % pid)}


def logged(target):
    """{tid: name} of the short-lived threads so far; a tid the kernel reused
    (they wrap at pid_max) names its latest thread."""
    out = {}
    for line in target.tidlog.read_text().splitlines():
        tid, name = line.split()
        out[int(tid)] = name
    return out


def number(name):
    m = re.match(r"^short-(\d+)$", name or "")
    return int(m.group(1)) if m else None


def logged_name(target, thread):
    """The name the short-lived thread with this tid logged, waiting a while
    for a thread seen before it logged; None when no thread logged it."""
    def look():
        name = logged(target).get(thread.tid)
        # An older thread's line for a reused tid: this one has not logged yet.
        if name is None or (number(thread.name) or 0) > (number(name) or 0):
            return None
        return name

    try:
        return fpdtest.wait_for(look, 2, "the churn log")
    except AssertionError:
        return None


def dump_note(fmt, out):
    """The note of the whole dump, or None."""
    if fmt == "json":
        for line in out.splitlines():
            ev = json.loads(line)
            if ev.get("event") == "process":
                return ev.get("note")
        return None
    notes = [m.group(1) for m in map(NOTE.match, out.splitlines()) if m]
    return notes[0] if notes else None


def strip_note(fmt, out):
    return out if fmt == "json" else "\n".join(l for l in out.splitlines() if not NOTE.match(l))


def stack_once(fpctl, target, fmt):
    """One dump, checked at once (tids wrap quickly under this churn):
    what is wrong with it, as readable lines."""
    before = tasks(target.pid)
    args = ["attach", target.pid, "stack"] + (["--json"] if fmt == "json" else [])
    out = fpctl(*args).out
    around = before | tasks(target.pid)
    p = problems(target, fmt, out, around)
    return "%s dump: %s" % (fmt, "; ".join(p)) if p else None


def problems(target, fmt, out, around):
    """What is wrong with one dump, as readable lines (empty when right)."""
    note = dump_note(fmt, out)
    try:
        dump = fpdtest.parse(fmt, strip_note(fmt, out))
    except fpdtest.ParseError as e:  # a negative tid, say
        return ["not in the stack format: %s" % str(e).splitlines()[0]]
    found = []
    comm = Path("/proc/%d/comm" % target.pid).read_text().strip()
    tids = [t.tid for t in dump.threads]
    if len(set(tids)) != len(tids):
        found.append("duplicate tids %s" % sorted(tids))
    for t in dump.threads:
        if t.tid <= 0:
            found.append("thread %r with tid %s" % (t.name, t.tid))
        elif t.name in LONG:
            pass  # below
        elif number(t.name) is not None:
            name = logged_name(target, t)
            if name != t.name:
                found.append("thread %s named %r, logged as %r" % (t.tid, t.name, name))
        elif t.name == comm:
            # Starting or ending (threading does not know it), or the helper's.
            if t.tid not in around and logged_name(target, t) is None:
                found.append("thread %r with tid %s: no such thread" % (t.name, t.tid))
        else:
            found.append("thread %s named %r" % (t.tid, t.name))
    for name in LONG:
        mine = [t for t in dump.threads if t.name == name]
        if len(mine) != 1:
            found.append("%d threads named %s" % (len(mine), name))
        elif mine[0].tid != target.threads[name].tid:
            found.append("%s has tid %s, not %s" % (name, mine[0].tid, target.threads[name].tid))
        elif mine[0].error:
            found.append("%s: %s" % (name, mine[0].error))
    if found:
        found.append("threads %s" % [(t.tid, t.name) for t in dump.threads])
    if found and note:
        found.append("(the dump said: %s)" % note)
    return found


def test_thread_churn(fpctl, churn):
    """Dumps in parallel while short-lived threads start and end."""
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda i: stack_once(fpctl, churn, ("text", "json")[i % 2]),
                                range(DUMPS)))
    bad = [r for r in results if r]
    assert not bad, "%d of %d dumps wrong:\n%s" % (len(bad), DUMPS, "\n".join(bad[:20]))
    # The churn did happen while the dumps were taken.
    assert len(logged(churn)) > DUMPS
    churn.ping()


def test_after_helper_sessions(fpctl, churn):
    """A one-shot helper command, then at once a dump, many times: the
    helper's threads end (their thread states go) while stack reads."""
    results = []
    for i in range(PAIRS):
        r = fpctl("attach", churn.pid, "getglobal", "__main__", "LONG")
        assert r.out.splitlines()[-1] == "VALUE: 3", r.out
        results.append(stack_once(fpctl, churn, ("text", "json")[i % 2]))
    bad = [r for r in results if r]
    assert not bad, "%d of %d dumps wrong:\n%s" % (len(bad), PAIRS, "\n".join(bad[:20]))
    churn.ping()


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_state_of_ended_thread(fpctl, interp, start_target, fmt):
    """A thread state whose thread ended (left by C code) is no thread of the
    process: not shown, and the dump says a state was left out."""
    target = start_target(interp.python, "leftover.py")
    args = ["attach", target.pid, "stack"] + (["--json"] if fmt == "json" else [])
    out = fpctl(*args).out
    dump = fpdtest.parse(fmt, strip_note(fmt, out))
    assert [(t.name, t.tid) for t in dump.threads] == \
        [(name, target.threads[name].tid) for name in ("MainThread", "sleeper")], out
    assert "1 thread state could not be tied to a live thread" in (dump_note(fmt, out) or ""), out
    target.ping()


COROUTINE_DUMPS = 150


def test_coroutine_suspending_mid_read(fpctl, interp, start_target):
    """A coroutine that suspends while its thread's stack is read: the walk
    may meet its frame just as it lost the link to its caller.  Every dump
    shows the loop thread down to its bottom frame (run_loop), or says that
    its stack could not be read whole; never a stack cut at a coroutine."""
    target = start_target(interp.python, "coro_churn.py")
    cut = []
    for i in range(COROUTINE_DUMPS):
        fmt = ("text", "json")[i % 2]
        args = ["attach", target.pid, "stack"] + (["--json"] if fmt == "json" else [])
        dump = fpdtest.parse(fmt, strip_note(fmt, fpctl(*args).out))
        loop = dump.by_name("loop-thread")
        funcs = [f.func for f in loop.python()]
        if loop.error is None and not any(f.endswith("run_loop") for f in funcs):
            cut.append("%s dump %d: %s" % (fmt, i, " <- ".join(reversed(funcs))))
    assert not cut, "%d of %d dumps cut the loop thread's stack without saying so:\n%s" % (
        len(cut), COROUTINE_DUMPS, "\n".join(cut[:10]))
    target.ping()
