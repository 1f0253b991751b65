"""`fpctl attach PID stack` against real targets, once per interpreter.

What is compared: each target reports the stack each of its threads will be
blocked in, as the thread itself sees it (sys._getframe), and the line it
blocks at through a `# LINE:` marker; /proc then confirms the thread is
there.  fpctl must show exactly those Python frames: files, current lines,
function names (co_qualname on 3.11+), outermost first.  States are checked
only where they are deterministic.  After every command the target must
still answer on its main thread.

Thread ids: fpctl shows host tids (what `ps -L`, `top -H` and /proc on the
host show, consistent with the host pid given to attach), also for a target
in its own pid namespace.
"""

import os
from pathlib import Path

import pytest

import fpdtest
from fpdtest import TARGETS, marker_line, parse, source_line

FORMATS = ["text", "json"]
SLEEPING = {"sleeping", "idle"}
ON_CPU = {"running", "holding GIL"}
EVAL_LOOP = "_PyEval_EvalFrameDefault"
MAX_FRAMES = 4096


@pytest.fixture(scope="module")
def pool(interp, workdir):
    """The quiet targets of one interpreter, spawned together; the ones that
    burn CPU (spin, gilhog) are spawned by their tests."""
    p = fpdtest.TargetPool(workdir)
    p.spawn("basic", interp.python, "basic.py")
    p.spawn("locals", interp.python, "locals_target.py")
    p.spawn("deep", interp.python, "deep.py", 900)
    p.spawn("deeper", interp.python, "deep.py", 5000)
    p.spawn("many", interp.python, "many.py")
    yield p
    p.close()


def stack(fpctl, target, fmt="text", *opts):
    args = ["attach", target.pid, "stack"] + list(opts)
    if fmt == "json":
        args.append("--json")
    return parse(fmt, fpctl(*args).out)


def check_thread(out, expected, check_source=True):
    """Python frames of one thread in fpctl's output == what the thread reported."""
    assert not out.error, "thread %s: %s" % (out.name, out.error)
    assert out.tid == expected.tid, "thread %s: tid %s, expected %s" % (out.name, out.tid, expected.tid)
    assert out.python_keys() == expected.frames, "thread %s" % out.name
    if check_source:
        for f in out.python():
            want = source_line(f.file, f.line)
            if want:
                assert f.source == want, "%s:%s" % (f.file, f.line)


def check_dump(dump, target):
    """Every thread of the target, and nothing else."""
    assert dump.names() == sorted(target.threads)
    for name, expected in target.threads.items():
        check_thread(dump.by_name(name), expected)


def in_file(thread, path):
    return [(f.func, f.line) for f in thread.python() if f.file == str(path)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_threads_functions_lines(interp, pool, fpctl, fmt):
    target = pool.get("basic")
    dump = stack(fpctl, target, fmt)

    assert dump.pid == target.pid
    assert dump.version == target.version
    assert dump.exe in (target.exe(), target.info["executable"])
    assert dump.binary == target.exe() or dump.binary in target.maps_paths()
    check_dump(dump, target)

    # The same, spelt out from the markers of basic.py.
    basic = TARGETS / "basic.py"
    line = lambda name: marker_line(basic, name)  # noqa: E731
    assert in_file(dump.by_name("worker-1"), basic) == [
        ("worker_main", line("call_outer")),
        ("outer", line("call_inner")),
        (interp.qualname("outer.<locals>.inner", "inner"), line("inner_sleep")),
    ]
    assert in_file(dump.by_name("worker-2"), basic) == [
        (interp.qualname("Worker.run", "run"), line("call_idle")),
        (interp.qualname("Worker.idle", "idle"), line("idle_sleep")),
    ]
    main = dump.by_name("MainThread")
    assert in_file(main, basic) == [("<module>", line("call_main")), ("main", line("call_serve"))]
    serve = main.python()[-1]
    assert (serve.file, serve.func) == (str(TARGETS / "fptarget.py"), "serve")
    assert serve.line == marker_line(TARGETS / "fptarget.py", "serve")
    assert serve.source == "line = sys.stdin.readline()  # LINE:serve"
    assert all(f.kind == "python" for t in dump.threads for f in t.frames)
    target.ping()


def test_states(interp, pool, fpctl, target_pool):
    dump = stack(fpctl, pool.get("basic"))
    for name in ("worker-1", "worker-2", "MainThread"):
        assert dump.by_name(name).state in SLEEPING, name

    spin = target_pool.spawn("spin", interp.python, "spin.py").ready()
    dump = stack(fpctl, spin, "json")
    assert dump.by_name("spinner").state in ON_CPU
    assert dump.by_name("MainThread").state in SLEEPING
    check_dump(dump, spin)
    spin.ping()


@pytest.mark.parametrize("fmt", FORMATS)
def test_gil_held_forever(interp, fpctl, target_pool, fmt):
    """A thread in a C call that never drops the GIL; stack must still work."""
    hog = target_pool.spawn("gilhog", interp.python, "gilhog.py").ready()
    dump = stack(fpctl, hog, fmt)
    check_dump(dump, hog)
    assert dump.by_name("hog").state == "holding GIL"
    assert dump.by_name("waiter").state == "waiting for GIL"
    assert dump.by_name("MainThread").state in SLEEPING
    # Unchanged: the hog still runs its C loop, the spinner still waits.
    assert hog.alive()
    hog.settle()


def test_gil_states_after_native(interp, fpctl, target_pool):
    """--native stops the target for a moment; the states shown afterwards
    must be the same as before (the target is unchanged)."""
    hog = target_pool.spawn("gilhog", interp.python, "gilhog.py").ready()
    states = lambda dump: {t.name: t.state for t in dump.threads}  # noqa: E731
    before = states(stack(fpctl, hog))
    assert before["waiter"] == "waiting for GIL"
    stack(fpctl, hog, "text", "--native")
    hog.settle()
    assert states(stack(fpctl, hog)) == before


@pytest.mark.parametrize("fmt", FORMATS)
def test_native(interp, pool, fpctl, fmt):
    target = pool.get("basic")
    dump = stack(fpctl, target, fmt, "--native")
    assert dump.names() == sorted(target.threads)
    for name, expected in target.threads.items():
        thread = dump.by_name(name)
        check_thread(thread, expected)
        frames = thread.frames
        assert frames[0].kind == "native", "%s: outermost frame %r" % (name, frames[0])
        evals = [f for f in frames if f.kind == "native" and f.func == EVAL_LOOP]
        assert not evals, "%s: eval-loop frames not replaced: %r" % (name, evals)
        # The innermost Python frame comes before (above) the C frames of the
        # blocking call, which end in libc.
        last_py = max(i for i, f in enumerate(frames) if f.kind == "python")
        below = frames[last_py + 1:]
        assert below, "%s: no C frames below %r" % (name, frames[last_py])
        assert all(f.kind == "native" for f in below)
        assert any((f.library or "").startswith("libc") for f in below), "%s: %r" % (name, below)
        if fmt == "json":
            for f in thread.frames:
                if f.kind == "native":
                    assert isinstance(f.pc, int) and f.pc > 0, f
    # --native stops the target for a moment: it must be exactly as before.
    target.ping()
    check_dump(stack(fpctl, target), target)


@pytest.mark.parametrize("fmt", FORMATS)
def test_locals(interp, pool, fpctl, fmt):
    target = pool.get("locals")
    dump = stack(fpctl, target, fmt, "--locals")
    check_dump(dump, target)
    frame = dump.by_name("locals").python()[-1]
    got = dict(frame.locals or {})
    long_str = got.pop("a_long_str", None)
    a_list = got.pop("a_list", None)
    assert got == {
        "an_int": "42",
        "a_float": "2.5",
        "a_str": "'hello'",
        "a_bytes": "b'ab\\x00'",
        "a_true": "True",
        "a_none": "None",
    }
    # The brief's form, or the real repr of a short container: both are exact.
    assert a_list in ("<list at 0x%x>" % target.extra["list_id"], "[1, 2, 3]")
    assert long_str is not None and long_str.startswith("'xxxxxxxx") and len(long_str) < 1000
    target.ping()


def test_write_file(interp, pool, fpctl, tmp_path):
    target = pool.get("basic")
    r = fpctl("attach", target.pid, "stack", "-f", "out.txt", cwd=str(tmp_path))
    assert r.out.strip() == "Write stack to out.txt successfully!"
    out = tmp_path / "out.txt"
    assert out.stat().st_uid == os.getuid()
    dump = fpdtest.parse_text(out.read_text())
    assert dump.pid == target.pid
    check_dump(dump, target)
    target.ping()


def test_hundred_threads(interp, pool, fpctl):
    target = pool.get("many")
    dump = stack(fpctl, target)
    assert len(dump.threads) == 101
    check_dump(dump, target)
    assert len({t.tid for t in dump.threads}) == 101
    target.ping()


def test_depth_900_fully_shown(interp, pool, fpctl):
    target = pool.get("deep")
    assert target.extra["depth"] == 900
    dump = stack(fpctl, target)
    deep = dump.by_name("deep")
    assert deep.truncated == 0
    assert len(target.threads["deep"].frames) > 900
    check_dump(dump, target)
    target.ping()


@pytest.mark.parametrize("fmt", FORMATS)
def test_deeper_than_limit_truncated(interp, pool, fpctl, fmt):
    target = pool.get("deeper")
    expected = target.threads["deep"]
    assert len(expected.frames) > MAX_FRAMES
    dump = stack(fpctl, target, fmt)
    deep = dump.by_name("deep")
    assert deep.truncated == len(expected.frames) - MAX_FRAMES
    if fmt == "text":
        assert deep.limit == MAX_FRAMES
    check_thread(deep, expected._replace(frames=expected.frames[-MAX_FRAMES:]), check_source=False)
    check_thread(dump.by_name("MainThread"), target.threads["MainThread"])
    target.ping()


def test_pid_namespace(interp, fpctl, target_pool, unshare):
    """A target that is pid 1 of its own pid namespace, attached by host pid.
    Thread ids shown are host tids."""
    target = target_pool.spawn("ns", interp.python, "basic.py", wrapper=unshare).ready()
    assert target.pid != target.info["pid"]  # really in another namespace
    for fmt in FORMATS:
        dump = stack(fpctl, target, fmt)
        assert dump.pid == target.pid
        check_dump(dump, target)
        host_tids = {int(p.name) for p in Path("/proc/%d/task" % target.pid).iterdir()}
        assert {t.tid for t in dump.threads} <= host_tids
    target.ping()
