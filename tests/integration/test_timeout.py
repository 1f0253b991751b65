"""fpctl's --timeout: one behaviour for every command.

When S seconds pass before a command ended by itself, fpctl stops it the way
Ctrl-C does (fpd cancels it; a helper command's instrumentation goes; perf
still writes what it sampled), prints `fpctl: CMD: timed out after S s` and
exits with status 1, like timeout(1) reporting that it had to stop the
command.  The end comes at S s also when the target's GIL is held and the
helper cannot answer (it used to take S+2 s and say `cancelled`), and when fpd
itself never answers.

The time bounds below only catch a hang; what tells the new behaviour from
the old one is the message and the status."""

import re
import socket
import subprocess
import threading
import time

import pytest

import fpdtest

# Generous: a loaded 2-core machine; a hang shows as far more.
BOUND = 15


def last_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def timed(fpctl, *args, **kw):
    t0 = time.monotonic()
    r = fpctl(*args, check=False, **kw)
    return r, time.monotonic() - t0


@pytest.fixture(scope="module")
def hog(debian_python, workdir):
    """A thread in a C loop holding the GIL forever (no ping: nobody could answer)."""
    t = fpdtest.Target(debian_python, "gilhog.py", logdir=workdir).ready()
    yield t
    t.kill()


@pytest.fixture(scope="module")
def target(debian_python, workdir):
    t = fpdtest.Target(debian_python, "watch_target.py", logdir=workdir).ready()
    yield t
    t.kill()


def instrumented(fpctl, target):
    """watch_target's own account: [] when no function is instrumented."""
    r = fpctl("attach", target.pid, "getglobal", "__main__", "instrumented", "-e", "target()")
    m = re.search(r"^VALUE: (.*)$", r.out, re.M | re.S)
    assert m, r.out
    return m.group(1).rstrip("\n")


# --------------------------------------------------------------------------
# The GIL held forever: the helper never runs the command.

@pytest.mark.parametrize("cmd", [
    ["getglobal", "__main__", "sys"],
    ["watch", "__main__", "nap"],
    ["trace", "__main__", "nap"],
    ["tt", "-t", "__main__", "nap"],
], ids=lambda c: c[0])
def test_gil_held(fpctl, hog, cmd):
    r, secs = timed(fpctl, "--timeout", "1", "attach", hog.pid, *cmd)
    assert r.rc == 1, r
    assert last_line(r.err) == "fpctl: %s: timed out after 1 s" % cmd[0], r.err
    assert "cancelled" not in r.err, r.err
    assert "waiting for the GIL, held by thread %d (hog)" % hog.threads["hog"].tid in r.err, r.err
    assert secs < BOUND, secs
    assert hog.alive()


# --------------------------------------------------------------------------
# Commands that run until stopped, on a target that runs normally.

def test_watch(fpctl, target):
    r, secs = timed(fpctl, "--timeout", "1", "attach", target.pid, "watch", "__main__", "Service",
                    "handle", "-f", "False")
    assert (r.rc, r.out) == (1, ""), r
    assert last_line(r.err) == "fpctl: watch: timed out after 1 s", r.err
    assert secs < BOUND, secs
    # fpctl left only once the helper had confirmed the stop.
    assert instrumented(fpctl, target) == "[]"
    target.ping()


def test_trace_keeps_what_it_printed(fpctl, target):
    r, secs = timed(fpctl, "--timeout", "1.5", "attach", target.pid, "trace", "__main__", "add",
                    "-n", "1000000")
    assert r.rc == 1, r
    assert re.search(r"^\S+ \S+ thread=adder-\d tid=\d+ daemon=True cost=", r.out, re.M), r.out
    assert last_line(r.err) == "fpctl: trace: timed out after 1.5 s", r.err
    assert secs < BOUND, secs
    assert instrumented(fpctl, target) == "[]"


def test_perf_still_writes_the_profile(fpctl, target, tmp_path):
    tmp_path.chmod(0o777)
    r, secs = timed(fpctl, "--timeout", "1", "attach", target.pid, "perf", "--idle", "--format", "collapsed",
                    cwd=str(tmp_path))
    assert r.rc == 1, r
    m = re.match(r"^Wrote (\d+) samples to profile\.collapsed", r.out)
    assert m and int(m.group(1)) > 0, r.out
    assert (tmp_path / "profile.collapsed").read_text().strip()
    assert r.err == "fpctl: perf: timed out after 1 s\n", r.err
    assert secs < BOUND, secs


def test_perf_duration_is_the_normal_end(fpctl, target, tmp_path):
    tmp_path.chmod(0o777)
    r = fpctl("--timeout", "30", "attach", target.pid, "perf", "-d", "1", "--format", "collapsed",
              cwd=str(tmp_path))
    assert r.rc == 0 and r.err == "", r


def test_top_on_a_pipe(fpctl, target):
    r, secs = timed(fpctl, "--timeout", "2", "attach", target.pid, "top")
    assert r.rc == 1, r
    assert "%Own" in r.out, r.out
    assert r.err == "fpctl: top: timed out after 2 s\n", r.err
    assert secs < BOUND, secs


def test_gilstat(fpctl, target):
    r, secs = timed(fpctl, "--timeout", "1.5", "attach", target.pid, "gilstat", "on", "5", "5", "1")
    assert r.rc == 1, r
    assert "GIL probes placed" in r.out, r.out
    assert r.err == "fpctl: gilstat: timed out after 1.5 s\n", r.err
    assert secs < BOUND, secs


def test_console_waiting_for_input(fpctl, target):
    """The deadline counts while the console waits for a line that never comes."""
    cmd = fpctl.command(["--timeout", "2", "attach", target.pid, "console"])
    p = fpdtest.spawn(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                      env=fpctl.env())
    try:
        p.stdin.write(b"print(6 * 7)\n")
        p.stdin.flush()
        p.wait(BOUND * 2)  # stdin stays open: no end of input
        out, err = p.stdout.read(), p.stderr.read()
    finally:
        p.stdin.close()
        fpdtest.stop(p)
    assert p.returncode == 1, (out, err)
    assert out.decode() == "42\n", (out, err)
    assert err.decode() == "fpctl: console: timed out after 2 s\n", err


def test_one_shot_command_that_ends_in_time(fpctl, target):
    r = fpctl("--timeout", "60", "attach", target.pid, "getglobal", "__main__", "PERIOD")
    assert r.rc == 0 and "VALUE:" in r.out and r.err == "", r


# --------------------------------------------------------------------------
# An fpd that never answers a request (nor its cancel).

class SilentFpd(object):
    """Answers hello, then records requests and cancels and answers nothing."""

    def __init__(self, path):
        self.path = str(path)
        self.frames = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(4)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            hello = fpdtest.recv_frame(conn)
            conn.sendall(fpdtest.frame({"type": "hello", "v": hello["v"], "server": "fpd"}))
            while True:
                f = fpdtest.recv_frame(conn)
                if f is None:
                    return
                self.frames.append(f)

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("cmd", [["stack"], ["stack", "--native"], ["getglobal", "m", "x"]],
                         ids=" ".join)
def test_silent_fpd(build, tmp_path, cmd):
    fake = SilentFpd(tmp_path / "silent.sock")
    try:
        t0 = time.monotonic()
        r = subprocess.run([str(build / "fpctl"), "--socket", fake.path, "--timeout", "1", "attach", "4242"]
                           + cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60, env=fpdtest.clean_env())
        secs = time.monotonic() - t0
    finally:
        fake.close()
    assert r.returncode == 1, r
    assert r.stderr.decode() == "fpctl: %s: timed out after 1 s\n" % cmd[0], r.stderr
    assert secs < BOUND, secs
    fpdtest.wait_for(lambda: [f["type"] for f in fake.frames] == ["request", "cancel"], 10,
                     "the request and its cancel; got %r" % fake.frames)
