"""The injector on its own (`fpd --inject-test PID LIB SOCK`), with a stand-in
helper (inject_probe.c) whose entry point connects to a socket this test
listens on and writes "ok <pid>".

Every interpreter in every thread state of targets/injectee.py: a first
injection loads the helper, a second re-triggers it (loaded: false); both
reach the entry point; the target's own checksums stay right, and no byte
of any executable mapping changes.  Also: a target in its own mount and pid
namespaces, 50 re-triggers in a row, the errors a user can cause, and the
watchdog on a dlopen that never returns.  The thread-stop times of the
module are printed at its end.

And through fpd and fpctl: one-shot helper commands back to back, where
each injection finds the previous session's helper thread on its way out.
"""

import ctypes
import hashlib
import json
import os
import queue
import socket
import statistics
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

import fpdtest
from fpdtest import TARGETS, build_dir, clean_env, spawn, stop

MODES = ["sleep", "cpu", "read", "threads8", "gil", "malloc", "sigalrm", "asyncio"]
SANITIZER_MARKS = fpdtest.SANITIZER_MARKS


@pytest.fixture(scope="module")
def fpd_bin():
    path = build_dir() / "fpd"
    if not os.access(str(path), os.X_OK):
        pytest.fail("%s is missing: build it first" % path, pytrace=False)
    return path


def build_probe(workdir, name, *defines):
    out = workdir / name
    if not out.exists():
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-pthread"]
                       + list(defines) + ["-o", str(out),
                                          str(Path(__file__).parent / "inject_probe.c")],
                       check=True)
    return out


@pytest.fixture(scope="module")
def probe(workdir):
    """The stand-in helper, built for this run."""
    return build_probe(workdir, "inject_probe.so")


@pytest.fixture(scope="module")
def stop_times(request):
    """Thread-stop times of every injection of the module, summed up at its end."""
    times = []
    yield times
    if times:
        times.sort()
        line = ("injector: %d injections, thread stopped median %.2f ms, p95 %.2f ms, max %.2f ms"
                % (len(times), statistics.median(times), times[int(len(times) * 0.95)], times[-1]))
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print("\n" + line)


class Injectee(object):
    """targets/injectee.py in one mode, under python (wrapped, maybe)."""

    count = 0

    def __init__(self, python, mode, wrapper=(), inline=False):
        self.mode = mode
        Injectee.count += 1
        self.stopfile = "/tmp/injectee-stop-%d-%d" % (os.getpid(), Injectee.count)
        self.stopfile_host = None
        script = TARGETS / "injectee.py"
        # A private /tmp hides the checkout's copy: the source then goes in by -c.
        prog = ["-c", script.read_text()] if inline else [str(script)]
        self.proc = spawn(list(wrapper) + [python] + prog + [mode, self.stopfile],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=clean_env())
        self.pid = None
        self.label = "%s %s" % (Path(python).name, mode)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace"))
        self.lines.put(None)

    def _line(self, timeout):
        """The next JSON line it prints."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("%s: no output in %ss" % (self.label, timeout))
            if line is None:
                raise AssertionError("%s exited (status %s): %s" % (
                    self.label, self.proc.wait(), self.proc.stderr.read().decode(errors="replace")))
            if line.startswith("{"):
                return json.loads(line)

    def ready(self, timeout=60):
        info = self._line(timeout)
        assert info.get("ready"), info
        self.nspid = info["pid"]
        self.pid = self.proc.pid if self.nspid == self.proc.pid else self._host_pid()
        return self

    def _host_pid(self):
        for pid in fpdtest.descendants(self.proc.pid):
            try:
                if fpdtest.ns_ids("/proc/%d/status" % pid)[-1] == self.nspid and \
                        os.readlink("/proc/%d/exe" % pid).find("python") >= 0:
                    return pid
            except (OSError, IndexError):
                pass
        raise AssertionError("%s: no descendant is pid %d inside" % (self.label, self.nspid))

    def alive(self):
        if self.proc.poll() is not None:
            raise AssertionError("%s exited (status %s): %s" % (
                self.label, self.proc.returncode, self.proc.stderr.read().decode(errors="replace")))

    def host_path(self, path):
        """A name for a file of the target's /tmp that outlives the target's
        /proc entry: ours, when the target shares our /tmp."""
        if os.stat("/tmp").st_dev == os.stat(self.root("/tmp")).st_dev:
            return path
        return self.root(path)

    def root(self, path):
        return "/proc/%d/root%s" % (self.pid, path)

    def finish(self, timeout=60):
        """Stops it; its result line."""
        self.alive()
        if self.mode == "read":
            self.proc.stdin.write(b"stop\n")
            self.proc.stdin.flush()
        else:
            self.stopfile_host = self.host_path(self.stopfile)
            open(self.stopfile_host, "w").close()
        try:
            return self._line(timeout)
        finally:
            self.kill()

    def kill(self):
        stop(self.proc)
        if self.stopfile_host:
            try:
                os.unlink(self.stopfile_host)
            except OSError:
                pass


class Listener(object):
    """The socket the probe connects to, bound where the target sees it."""

    def __init__(self, target):
        self.target = target
        self.path = "/tmp/fpd-inject-test-%d.sock" % target.pid
        self.host = target.host_path(self.path)
        if os.path.exists(self.host):
            os.unlink(self.host)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.host)
        self.sock.listen(64)
        self.sock.settimeout(30)

    def expect(self):
        """The probe's line; only the target itself may have written it."""
        conn, _ = self.sock.accept()
        with conn:
            cred = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid = struct.unpack("3i", cred)[0]
            assert pid == self.target.pid, "connection from pid %d, not the target %d" % (
                pid, self.target.pid)
            conn.settimeout(30)
            line = conn.makefile().readline().strip()
        assert line == "ok %d" % self.target.nspid, line

    def close(self):
        self.sock.close()
        try:
            os.unlink(self.host)
        except OSError:
            pass


def inject(fpd_bin, pid, lib, sock, timeout=60):
    """fpd --inject-test: its JSON report (with "ok")."""
    r = subprocess.run([str(fpd_bin), "--inject-test", str(pid), str(lib), sock],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       env=clean_env())
    err = r.stderr.decode(errors="replace")
    assert not any(m in err for m in SANITIZER_MARKS), err
    lines = r.stdout.decode().strip().splitlines()
    assert lines, "no report; stderr:\n" + err
    rep = json.loads(lines[-1])
    assert (r.returncode == 0) == rep["ok"], (r.returncode, rep, err)
    return rep


def code_hashes(pid):
    """SHA-256 of every executable file mapping, keyed by range and path."""
    out = {}
    with open("/proc/%d/maps" % pid) as f:
        maps = [line.split(None, 5) for line in f]
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as mem:
        for m in maps:
            if len(m) == 6 and "x" in m[1] and m[5].startswith("/"):
                start, end = (int(x, 16) for x in m[0].split("-"))
                mem.seek(start)
                out[(m[0], m[5].strip())] = hashlib.sha256(mem.read(end - start)).hexdigest()
    return out


def assert_code_unchanged(before, after):
    assert before, "no executable mapping seen"
    missing = set(before) - set(after)
    assert not missing, "executable mappings gone: %s" % sorted(missing)
    changed = [k for k in before if before[k] != after[k]]
    assert not changed, "code changed in %s" % changed


def inject_twice(fpd_bin, probe, target, stop_times):
    """Load, then re-trigger; both reach the entry point; the code is untouched."""
    target.alive()
    before = code_hashes(target.pid)
    listener = Listener(target)
    try:
        first = inject(fpd_bin, target.pid, probe, listener.path)
        assert first["ok"], "%s: %s" % (target.label, first["error"])
        assert first["loaded"] is True and first["method"] == "ptrace", first
        listener.expect()
        again = inject(fpd_bin, target.pid, probe, listener.path)
        assert again["ok"], "%s: %s" % (target.label, again["error"])
        assert again["loaded"] is False, again
        listener.expect()
    finally:
        listener.close()
    assert_code_unchanged(before, code_hashes(target.pid))
    stop_times += [first["stopped_ms"], again["stopped_ms"]]
    return first, again


def test_matrix(interp, fpd_bin, probe, stop_times):
    """Every thread state at once on one interpreter (the targets start together)."""
    targets = [Injectee(interp.python, mode) for mode in MODES]
    try:
        for t in targets:
            t.ready()
        for t in targets:
            inject_twice(fpd_bin, probe, t, stop_times)
        results = {t.mode: t.finish() for t in targets}
    finally:
        for t in targets:
            t.kill()
    bad = {m: r for m, r in results.items() if r["result"] != "ok"}
    assert not bad, bad


def test_namespaces(fpd_bin, probe, unshare, stop_times):
    """A target in its own pid and mount namespaces with a private /tmp: the
    library is copied in, the socket bound inside, the pid the helper sees is
    the namespace's."""
    python = fpdtest.INTERPRETERS[-1].python if fpdtest.INTERPRETERS else pytest.skip("no Python")
    wrapper = unshare + ["sh", "-c", 'mount -t tmpfs tmpfs /tmp && exec "$0" "$@"']
    t = Injectee(python, "sleep", wrapper=wrapper, inline=True)
    try:
        t.ready()
        assert t.nspid != t.pid
        assert os.stat("/tmp").st_dev != os.stat(t.root("/tmp")).st_dev, "/tmp is not private"
        inject_twice(fpd_bin, probe, t, stop_times)
        maps = Path("/proc/%d/maps" % t.pid).read_text()
        assert "/tmp/.fpd-" in maps and "libfpagent.so (deleted)" in maps, maps
        result = t.finish()
    finally:
        t.kill()
    assert result["result"] == "ok", result


def test_retrigger_50(fpd_bin, probe, stop_times):
    """50 re-triggers of a loaded helper on one target, each reaching the entry."""
    python = fpdtest.INTERPRETERS[0].python if fpdtest.INTERPRETERS else pytest.skip("no Python")
    t = Injectee(python, "sigalrm").ready()
    listener = Listener(t)
    try:
        before = code_hashes(t.pid)
        for i in range(51):
            rep = inject(fpd_bin, t.pid, probe, listener.path)
            assert rep["ok"], "injection %d: %s" % (i, rep["error"])
            assert rep["loaded"] is (i == 0), rep
            listener.expect()
            stop_times.append(rep["stopped_ms"])
        assert_code_unchanged(before, code_hashes(t.pid))
        result = t.finish()
    finally:
        listener.close()
        t.kill()
    assert result["result"] == "ok", result


@pytest.fixture
def sleeper():
    python = fpdtest.INTERPRETERS[-1].python if fpdtest.INTERPRETERS else pytest.skip("no Python")
    t = Injectee(python, "sleep").ready()
    yield t
    t.kill()


def test_not_python(fpd_bin, probe):
    proc = spawn(["sleep", "60"])
    try:
        rep = inject(fpd_bin, proc.pid, probe, "/tmp/nowhere.sock")
    finally:
        stop(proc)
    assert not rep["ok"] and "not a Python process" in rep["error"], rep


def test_no_process(fpd_bin, probe):
    proc = spawn(["true"])
    proc.wait()
    stop(proc)
    rep = inject(fpd_bin, proc.pid, probe, "/tmp/nowhere.sock")
    assert not rep["ok"] and "no process with pid %d" % proc.pid in rep["error"], rep


def test_bad_library(fpd_bin, workdir, sleeper):
    """dlopen's own reason comes back, and the target carries on unchanged."""
    bogus = workdir / "bogus.so"
    bogus.write_text("not an ELF file\n" * 512)
    before = code_hashes(sleeper.pid)
    rep = inject(fpd_bin, sleeper.pid, bogus, "/tmp/nowhere.sock")
    assert not rep["ok"], rep
    assert rep["error"].startswith("inject: dlopen: ") and "invalid ELF header" in rep["error"], rep
    assert "libfpagent" not in Path("/proc/%d/maps" % sleeper.pid).read_text()
    assert_code_unchanged(before, code_hashes(sleeper.pid))
    assert sleeper.finish()["result"] == "ok"


def test_missing_library(fpd_bin, workdir, sleeper):
    rep = inject(fpd_bin, sleeper.pid, workdir / "no-such.so", "/tmp/nowhere.sock")
    assert not rep["ok"] and rep["error"].startswith("inject: copy: "), rep
    assert "No such file" in rep["error"], rep
    assert sleeper.finish()["result"] == "ok"


def test_already_traced(fpd_bin, probe, sleeper):
    """Another tracer holds the target's thread: one line naming it, and the
    target left alone."""
    libc = ctypes.CDLL(None, use_errno=True)
    pid = sleeper.pid
    # PTRACE_SEIZE: traced without being stopped, as a debugger would hold it.
    assert libc.ptrace(ctypes.c_long(0x4206), ctypes.c_long(pid), None, None) == 0
    try:
        rep = inject(fpd_bin, pid, probe, "/tmp/nowhere.sock")
    finally:
        libc.ptrace(ctypes.c_long(0x4207), ctypes.c_long(pid), None, None)  # PTRACE_INTERRUPT
        os.waitpid(pid, 0x40000000)  # __WALL
        libc.ptrace(ctypes.c_long(17), ctypes.c_long(pid), None, None)  # PTRACE_DETACH
    assert not rep["ok"], rep
    want = "inject: attach: ptrace forbidden: thread %d is already traced by process %d" % (
        pid, os.getpid())
    assert rep["error"].startswith(want), rep
    assert sleeper.finish()["result"] == "ok"


def test_watchdog(fpd_bin, workdir, sleeper):
    """dlopen stuck in a constructor: after the timeout the thread is stopped
    where it waits and put back; the target sleeps and computes on (its sleep
    was in clock_nanosleep, whose restart block the stuck sleep replaced)."""
    hang = build_probe(workdir, "inject_hang.so", "-DPROBE_HANG")
    before = code_hashes(sleeper.pid)
    t0 = time.monotonic()
    rep = inject(fpd_bin, sleeper.pid, hang, "/tmp/nowhere.sock")
    assert not rep["ok"], rep
    assert rep["error"].startswith("inject: dlopen did not return within 5000 ms ("), rep
    assert "put back" in rep["error"], rep
    assert time.monotonic() - t0 < 30
    assert_code_unchanged(before, code_hashes(sleeper.pid))
    time.sleep(0.5)
    assert sleeper.finish()["result"] == "ok"


# The main thread holds the GIL in 20 ms slices: when a one-shot command ends,
# its helper's session thread waits for the GIL (blocked in futex, the kind of
# thread the injector prefers) to clean up and exit, just as the next
# command's injection looks for a thread.  It must not pick that one, or
# must pick another when it exits under it.
SPIN_MAIN = """
import sys
sys.setswitchinterval(0.02)
counter = 61
print("ready", flush=True)
n = 0
while True:
    n += 1
"""
BACK_TO_BACK = 200


@pytest.mark.parametrize("minor", [(3, 9), (3, 12)], ids=["3.9", "3.12"])
def test_back_to_back_helper_commands(fpctl, minor):
    """200 one-shot getglobal commands in a row, each answered."""
    python = next((i.python for i in fpdtest.INTERPRETERS if i.minor == minor), None)
    if python is None:
        pytest.skip("no Python %d.%d" % minor)
    proc = spawn([python, "-c", SPIN_MAIN], stdout=subprocess.PIPE, env=clean_env())
    try:
        assert proc.stdout.readline().strip() == b"ready"
        failures = []
        for i in range(BACK_TO_BACK):
            r = fpctl("attach", proc.pid, "getglobal", "__main__", "counter", check=False,
                      timeout=60)
            if r.rc != 0 or r.out.rstrip("\n").split("\n")[-1] != "VALUE: 61":
                failures.append("command %d: exit %d: %s%s" % (i, r.rc, r.out, r.err))
        assert proc.poll() is None, "the target died"
    finally:
        stop(proc)
    assert not failures, "%d of %d failed:\n%s" % (len(failures), BACK_TO_BACK,
                                                  "\n".join(failures[:5]))
