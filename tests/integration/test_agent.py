"""Helper sessions end to end: fpd injects libfpagent.so into real targets
and fpctl talks to it (getglobal as the probe command).

Covers the session life cycle of SPEC §5 and issue 3: first attach loads the
helper, later ones re-trigger it (never a second copy), detach, a GIL held
forever (a clear message naming the holder, Ctrl-C/timeout cancels, target
unharmed), 50 sessions in a row, two targets at once, a target in its own
pid + mount namespace, a target that exits mid-command, another user's
process refused, a non-Python process refused."""

import json
import re
import subprocess
import threading
import time

import pytest

import fpdtest
from fpdtest import NOBODY, wait_for


def agent_maps(pid):
    """The helper's mappings in pid, by path (one path per loaded copy)."""
    paths = set()
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            if "libfpagent" in line:
                paths.add(line.split(None, 5)[5].strip())
    return paths


def agent_events(out):
    return [e for e in map(json.loads, out.splitlines()) if e.get("event") == "agent"]


def counts(fpctl, pid):
    r = fpctl("attach", pid, "getglobal", "__main__", "COUNTS", "--json")
    values = [e for e in map(json.loads, r.out.splitlines()) if e.get("event") != "agent"]
    text = json.dumps(values)
    m = re.search(r"'checksums': (\d+).*'wrong': (\d+)", text)
    assert m, text
    return int(m.group(1)), int(m.group(2))


@pytest.fixture(scope="module")
def target(interp, workdir):
    t = fpdtest.Target(interp.python, "agent_target.py", logdir=workdir).ready()
    yield t
    t.kill()


def test_first_attach_then_retrigger(fpctl, target):
    assert not agent_maps(target.pid)
    r = fpctl("attach", target.pid, "getglobal", "__main__", "MAGIC")
    assert "fpd-magic-4242" in r.out
    assert len(agent_maps(target.pid)) == 1
    r = fpctl("--json", "attach", target.pid, "getglobal", "__main__", "MAGIC")
    ev = agent_events(r.out)
    assert len(ev) == 1 and ev[0]["loaded"] is False, r.out
    assert "fpd-magic-4242" in r.out
    # The copy fpd put into the target's /tmp is gone: only the mapping stays.
    assert all(p.endswith("(deleted)") for p in agent_maps(target.pid)), agent_maps(target.pid)
    assert len(agent_maps(target.pid)) == 1
    target.ping()


def test_shell_session_and_detach(fpctl, target):
    cmd = fpctl.command(["attach", target.pid])
    p = subprocess.run(cmd, input=b"getglobal __main__ MAGIC\ngetglobal __main__ MAGIC\nquit\n",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                       env=fpctl.env())
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode().count("fpd-magic-4242") == 2
    r = fpctl("detach", target.pid)
    assert re.search(r"(no helper session was attached|detached \d+ helper session)", r.out), r.out
    ok, wrong = counts(fpctl, target.pid)
    assert ok > 0 and wrong == 0
    target.ping()


def test_fifty_sessions(fpctl, target):
    before, _ = counts(fpctl, target.pid)
    for _ in range(50):
        r = fpctl("attach", target.pid, "getglobal", "__main__", "MAGIC")
        assert "fpd-magic-4242" in r.out
    after, wrong = counts(fpctl, target.pid)
    assert after > before and wrong == 0
    assert len(agent_maps(target.pid)) == 1
    # Idle helper: no thread of its own is left once every session ended.
    wait_for(lambda: len(list_threads(target.pid)) == 2, 10, "helper threads to end")
    target.ping()


def list_threads(pid):
    import os
    return os.listdir("/proc/%d/task" % pid)


def test_other_user_refused(fpctl, target):
    r = fpctl("attach", target.pid, "getglobal", "__main__", "MAGIC", user=NOBODY, check=False)
    assert r.rc == 3, r
    assert "permission" in r.err.lower() or "not allowed" in r.err.lower(), r.err
    target.ping()


def test_gil_held_forever(fpctl, interp, start_target):
    hog = start_target(interp.python, "gilhog.py")
    t0 = time.monotonic()
    r = fpctl("--timeout", "3", "attach", hog.pid, "getglobal", "__main__", "sys", check=False)
    assert time.monotonic() - t0 < 20
    assert r.rc != 0
    holder = hog.threads["hog"].tid
    assert "waiting for the GIL, held by thread %d (hog)" % holder in r.err, r.err
    assert hog.alive()


def test_two_targets_at_once(fpctl, interp, start_target):
    a = start_target(interp.python, "agent_target.py")
    b = start_target(interp.python, "agent_target.py")
    results = {}

    def run(t):
        results[t.pid] = fpctl("attach", t.pid, "getglobal", "__main__", "MAGIC", check=False)

    threads = [threading.Thread(target=run, args=(t,)) for t in (a, b)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    for t in (a, b):
        assert results[t.pid].rc == 0 and "fpd-magic-4242" in results[t.pid].out, results[t.pid]
        t.ping()


def test_target_in_namespaces(fpctl, interp, start_target, unshare):
    t = start_target(interp.python, "agent_target.py", wrapper=unshare)
    r = fpctl("attach", t.pid, "getglobal", "__main__", "MAGIC")
    assert "fpd-magic-4242" in r.out
    t.ping()


def test_target_exits_mid_command(fpctl, interp, start_target):
    t = start_target(interp.python, "agent_target.py")
    cmd = fpctl.command(["attach", t.pid, "getglobal", "__main__", "MAGIC", "-e",
                         "__import__('time').sleep(60)"])
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=fpctl.env())
    time.sleep(2)
    t.kill()
    out, err = p.communicate(timeout=30)
    assert p.returncode == 1, (out, err)
    assert b"exited" in err, err


def test_not_python(fpctl):
    p = subprocess.Popen(["sleep", "60"])
    try:
        r = fpctl("attach", p.pid, "getglobal", "__main__", "x", check=False)
        assert r.rc == 3 and "not a Python process" in r.err, r
    finally:
        p.kill()
        p.wait()


def test_py36_single_thread(fpctl, interp):
    """CPython 3.6 creates its GIL only with a second thread (or ctypes, which
    the usual targets import): the helper asks the main thread to create it
    from a pending call, which runs when that thread next executes Python
    code (here: when a line arrives on its stdin)."""
    if interp.minor != (3, 6):
        pytest.skip("only CPython 3.6 starts without a GIL")
    code = ("import sys\nMAGIC = 'single-' + 'thread'\nprint('ready', flush=True)\n"
            "while sys.stdin.readline():\n    print('pong', flush=True)\n")
    t = subprocess.Popen([interp.python, "-c", code], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=fpdtest.clean_env())
    try:
        assert t.stdout.readline() == b"ready\n"
        cmd = fpctl.command(["attach", t.pid, "getglobal", "__main__", "MAGIC"])
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=fpctl.env())
        time.sleep(1.5)
        assert p.poll() is None, p.communicate()
        t.stdin.write(b"ping\n")
        t.stdin.flush()
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, (out, err)
        assert b"waiting for the interpreter" in err, err
        assert b"single-thread" in out, out
        assert t.stdout.readline() == b"pong\n"
    finally:
        t.kill()
        t.wait()
