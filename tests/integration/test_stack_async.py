"""stack -a against real targets on every interpreter: asyncio tasks per
event loop with their await chains, as a user sees them (SPEC §3 stack -a).
The target's loop runs on a thread of its own while the main thread waits
in read(): a process whose only thread sits in epoll_wait offers the
injector no safe point (research/inject-notes.md)."""

import json
import re

import pytest

import fpdtest

SCRIPT = fpdtest.TARGETS / "async_target.py"


@pytest.fixture(scope="module")
def target(interp, workdir):
    t = fpdtest.Target(interp.python, "async_target.py", logdir=workdir).ready()
    yield t
    t.kill()


def normalize(text):
    """Addresses as 0x?, and asyncio.sleep's own frame (its line and code
    differ by version) as one line."""
    text = re.sub(r"0x[0-9a-f]+", "0x?", text)
    return re.sub(r'    \(Python\) File "[^"]*/asyncio/tasks\.py", line \d+, in sleep\n        .*\n',
                  "    (Python) asyncio.sleep\n", text)


def expected(interp, target):
    loop = target.threads["loop-thread"]
    if interp.minor >= (3, 8):
        where = "running in thread %d (loop-thread)" % loop.tid

        def task(name):
            return 'Task "%s"' % name
    else:
        where = "running in thread loop-thread (Python ident %d)" % loop.ident

        def task(name):
            return "Task at 0x?"

    def frame(marker, func):
        return ['    (Python) File "%s", line %d, in %s' % (SCRIPT, fpdtest.marker_line(SCRIPT, marker),
                                                          func),
                "        " + fpdtest.source_line(SCRIPT, fpdtest.marker_line(SCRIPT, marker))]

    lines = ["Event loop _UnixSelectorEventLoop at 0x?, %s: 4 tasks" % where, ""]
    lines += ["%s [pending] coroutine server (most recent await last):" % task("server")]
    lines += frame("server_gather", "server")
    lines += ["    awaiting gather of %s, %s" % (task("handler-1"), task("handler-2")), ""]
    lines += ["%s [pending] coroutine handle, awaited by %s (most recent await last):"
              % (task("handler-1"), task("server"))]
    lines += frame("handle_await", "handle")
    lines += ["    awaiting %s" % task("fetcher"), ""]
    lines += ["%s [pending] coroutine fetch, awaited by %s (most recent await last):"
              % (task("fetcher"), task("handler-1"))]
    lines += frame("fetch_sleep", "fetch")
    lines += ["    (Python) asyncio.sleep", "    awaiting Future [pending]", ""]
    lines += ["%s [pending] coroutine handle, awaited by %s (most recent await last):"
              % (task("handler-2"), task("server"))]
    lines += frame("handle_sleep", "handle")
    lines += ["    (Python) asyncio.sleep", "    awaiting Future [pending]"]
    return "\n".join(lines) + "\n"


def test_tasks_and_await_chains(fpctl, interp, target):
    r = fpctl("attach", target.pid, "stack", "-a")
    assert normalize(r.out) == expected(interp, target), r.out
    assert r.err == ""
    # nothing ran on the loop: asking again finds it exactly as it was
    r2 = fpctl("attach", target.pid, "stack", "--async")
    assert r2.out == r.out
    target.ping()


def test_file(fpctl, interp, target, tmp_path):
    out = tmp_path / "tasks.txt"
    r = fpctl("attach", target.pid, "stack", "-a", "-f", str(out))
    assert r.out == "Write stack to %s successfully!\n" % out
    assert normalize(out.read_text()) == expected(interp, target)


def test_json(fpctl, interp, target):
    r = fpctl("--json", "attach", target.pid, "stack", "-a")
    loops = [e for e in map(json.loads, r.out.splitlines()) if e.get("event") == "async_loop"]
    assert len(loops) == 1, r.out
    loop = loops[0]
    assert (loop["thread_name"], loop["running"], len(loop["tasks"])) == ("loop-thread", True, 4)
    tasks = dict((t["coro"], t) for t in loop["tasks"] if t["coro"] != "handle")
    assert tasks["server"]["waiting"]["kind"] == "gather", tasks
    assert [f["func"] for f in tasks["fetch"]["frames"]] == ["fetch", "sleep"], tasks


def test_no_asyncio(fpctl, idle):
    r = fpctl("attach", idle.pid, "stack", "-a")
    assert r.out == "asyncio is not imported in this process.\n" and r.err == "", r
    idle.ping()


def test_bad_combination(fpctl, target):
    r = fpctl("attach", target.pid, "stack", "-a", "--native", check=False)
    assert r.rc == 2 and r.out == "" and r.err == (
        "fpctl: stack: -a lists asyncio tasks; --native and --locals apply to thread stacks "
        "only\n"), r
