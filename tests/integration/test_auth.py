"""Authorization by the kernel's ptrace rule (SPEC §5, issue 10).

A non-root client may act on exactly the processes it could ptrace itself.
Two targets whose real uid is the client's but which the kernel keeps from
that client: a setuid-root program the user started (ruid = user, euid =
suid = 0) and a root service that read a secret and then dropped to the
user's uid for good (all ids the user's, not dumpable).  Comparing one uid
let the user into both: `console` as euid 0, and the secret through
getglobal.  Each command that touches a process is tried; each must be
refused with one line, reveal nothing, and leave the target running.  The
same user's plain process is still served, and root stays root."""

import json
import os
import re
import secrets
import subprocess
from pathlib import Path

import pytest

import fpdtest
from fpdtest import NOBODY, as_user

EXIT_ATTACH = 3

# Every request that names a process, as a non-root user would send it.
PROCESS_COMMANDS = [
    ["stack"],
    ["stack", "--native"],
    ["stack", "--locals"],
    ["perf", "-d", "1", "-f", "/dev/null"],
    ["gilstat", "off"],
    ["getglobal", "__main__", "SECRET"],
    ["vmtool", "-a", "forceGc"],
    ["module", "/etc/passwd"],
    ["watch", "fptarget", "serve", "-n", "1"],
    ["mem", "summary"],
]


def ids(pid):
    """(Uid line, Gid line) of /proc/PID/status, each four numbers."""
    out = {}
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("Uid", "Gid"):
            out[key] = [int(v) for v in value.split()]
    return out["Uid"], out["Gid"]


def refused(r, pid):
    assert r.rc == EXIT_ATTACH, "exit %d, expected %d\nstdout: %r\nstderr: %r" % (r.rc, EXIT_ATTACH, r.out, r.err)
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1, r.err
    assert re.search(r"permission denied", lines[0], re.I), lines[0]
    assert str(pid) in lines[0], lines[0]
    assert "Traceback" not in r.out and "EXPR" not in r.out, r.out


def ps_pids(fpctl, user):
    r = fpctl("--json", "ps", user=user)
    return {e["pid"] for e in map(json.loads, r.out.splitlines()) if e.get("event") == "process"}


@pytest.fixture(scope="module")
def setuid_exec(workdir):
    """setuid_exec.c built and installed setuid root in the (root-owned,
    0755) work directory."""
    exe = workdir / "setuid_exec"
    subprocess.run(["gcc", "-O1", "-o", str(exe), str(Path(__file__).parent / "setuid_exec.c")], check=True)
    os.chown(str(exe), 0, 0)
    os.chmod(str(exe), 0o4755)
    return exe


@pytest.fixture
def secret_file(workdir):
    """A root-only file holding a fresh secret, in a root-only directory."""
    d = workdir / ("secret-%s" % secrets.token_hex(4))
    d.mkdir(mode=0o700)
    f = d / "secret"
    value = "s3cret-%s" % secrets.token_hex(8)
    f.write_text(value)
    f.chmod(0o600)
    return f, value


def test_setuid_root_program_refused(fpctl, start_target, debian_python, setuid_exec):
    t = start_target(debian_python, "idle.py", wrapper=as_user(NOBODY, [setuid_exec]))
    uids, _ = ids(t.pid)
    # The shape of the hole: the real uid is the client's, the rest is root's.
    assert uids[0] == NOBODY and uids[1] == 0 and uids[2] == 0, uids
    for cmd in PROCESS_COMMANDS + [["console"]]:
        r = fpctl("attach", t.pid, *cmd, user=NOBODY, check=False, timeout=60)
        refused(r, t.pid)
    assert t.pid not in ps_pids(fpctl, NOBODY)
    r = fpctl("detach", t.pid, user=NOBODY, check=False)
    refused(r, t.pid)
    t.ping()
    # Root stays root.
    dump = fpdtest.parse_text(fpctl("attach", t.pid, "stack").out)
    assert "MainThread" in dump.names()
    assert t.pid in ps_pids(fpctl, None)


def test_dropped_privileges_refused(fpctl, start_target, debian_python, secret_file):
    path, value = secret_file
    t = start_target(debian_python, "dropper.py", str(path), str(NOBODY))
    uids, gids = ids(t.pid)
    # Every id is the client's: only dumpability tells the kernel to refuse.
    assert uids == [NOBODY] * 4 and gids == [NOBODY] * 4, (uids, gids)
    for cmd in PROCESS_COMMANDS:
        r = fpctl("attach", t.pid, *cmd, user=NOBODY, check=False, timeout=60)
        refused(r, t.pid)
        assert value not in r.out and value not in r.err
    # The console would read the root-only file the service kept open.
    p = subprocess.run(fpctl.command(["attach", t.pid, "console"], user=NOBODY),
                       input=b"print(os.read(SECRET_FD, 100))\n", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=fpctl.env(NOBODY), timeout=60)
    assert p.returncode == EXIT_ATTACH, p.stderr
    assert value.encode() not in p.stdout + p.stderr
    assert t.pid not in ps_pids(fpctl, NOBODY)
    t.ping()
    # Root may: the refusal above is the rule, not a helper that cannot work there.
    r = fpctl("attach", t.pid, "getglobal", "__main__", "SECRET")
    assert value in r.out
    fpctl("detach", t.pid)


def test_own_process_served(fpctl, start_target, debian_python, idle):
    mine = start_target(debian_python, "basic.py", wrapper=as_user(NOBODY, []))
    assert ids(mine.pid)[0] == [NOBODY] * 4
    dump = fpdtest.parse_text(fpctl("attach", mine.pid, "stack", user=NOBODY).out)
    assert dump.names() == sorted(mine.threads)
    r = fpctl("attach", mine.pid, "getglobal", "fptarget", "BIG", user=NOBODY)
    assert "1000000.0" in r.out, r.out
    fpctl("detach", mine.pid, user=NOBODY)
    listed = ps_pids(fpctl, NOBODY)
    assert mine.pid in listed and idle.pid not in listed
    mine.ping()


def test_stream_stops_when_target_gains_privileges(fpctl, start_target, debian_python, setuid_exec, workdir):
    """A command that streams stops once the kernel would refuse the client:
    here the user's process execs a setuid-root program mid-stream (same
    pid), and `top` must not show that program's stacks."""
    trigger = workdir / ("exec-%s" % secrets.token_hex(4))
    t = start_target(debian_python, "execer.py", str(trigger), str(setuid_exec), debian_python,
                     str(fpdtest.TARGETS / "spin.py"), wrapper=as_user(NOBODY, []))
    p = fpdtest.spawn(fpctl.command(["--timeout", "30", "attach", t.pid, "top"], user=NOBODY),
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=fpctl.env(NOBODY))
    try:
        first = p.stdout.readline()
        assert first, p.stderr.read()
        trigger.write_text("go")
        fpdtest.wait_for(lambda: ids(t.pid)[0][1] == 0, 30, "the target to become setuid root")
        out, err = p.communicate(timeout=30)
    finally:
        fpdtest.stop(p)
    assert p.returncode == EXIT_ATTACH, (p.returncode, err)
    assert re.search(r"changed credentials", err.decode()), err
    assert b"spin" not in out, out


IN_OPEN = 0x20
IN_ACCESS = 0x01


class Opens(object):
    """Counts the opens of one file (inotify sees root's too)."""

    def __init__(self, path):
        import ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        assert self.libc.inotify_add_watch(self.fd, str(path).encode(), IN_OPEN | IN_ACCESS) >= 0

    def count(self):
        n = 0
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return n
            n += len(buf) // 16  # struct inotify_event with no name: 16 bytes

    def close(self):
        os.close(self.fd)


def test_swapped_mapped_file_not_opened(fpctl, start_target, debian_python, workdir):
    """The user's process maps its interpreter from a directory the user
    owns; the user deletes it and puts a symlink to a root-only file at the
    name the kernel then shows in the maps ("python3 (deleted)"): fpd (root)
    must read the mapped file (map_files), never open the one the symlink
    names, and still answer."""
    home = workdir / ("swap-%s" % secrets.token_hex(4))
    home.mkdir()
    os.chown(str(home), NOBODY, NOBODY)
    exe = home / "python3"
    subprocess.run(["cp", debian_python, str(exe)], check=True)
    os.chown(str(exe), NOBODY, NOBODY)
    vault = workdir / ("vault-%s" % secrets.token_hex(4))
    vault.mkdir(mode=0o700)
    victim = vault / "secret.so"
    subprocess.run(["cp", os.path.realpath(debian_python), str(victim)], check=True)
    victim.chmod(0o600)
    t = start_target(str(exe), "idle.py", wrapper=as_user(NOBODY, []))
    os.unlink(str(exe))
    os.symlink(str(victim), str(exe) + " (deleted)")  # what the user can do in their own directory
    assert any(p.endswith(" (deleted)") for p in t.maps_paths())
    watch = Opens(victim)
    try:
        dump = fpdtest.parse_text(fpctl("attach", t.pid, "stack", user=NOBODY).out)
        assert "MainThread" in dump.names()
        r = fpctl("attach", t.pid, "getglobal", "fptarget", "BIG", user=NOBODY)
        assert "1000000.0" in r.out, r.out
        fpctl("detach", t.pid, user=NOBODY)
        assert watch.count() == 0, "fpd opened the file the swapped path names"
    finally:
        watch.close()
    t.ping()


def status_helpers(fpctl, user):
    r = fpctl("--json", "status", user=user)
    ev = [e for e in map(json.loads, r.out.splitlines()) if e.get("event") == "status"]
    assert len(ev) == 1, r.out
    return ev[0]["helpers"]


def test_status_lists_helpers_a_user_may_see(fpctl, start_target, debian_python):
    """`status` lists the live helper sessions, to each user only those on
    processes that user could ptrace."""
    rootp = start_target(debian_python, "idle.py")
    mine = start_target(debian_python, "idle.py", wrapper=as_user(NOBODY, []))
    # A watch of a function nobody calls keeps its session open until stopped.
    hold = [fpdtest.spawn(fpctl.command(["--timeout", "60", "attach", t.pid, "watch", "fptarget", "gettid"],
                                        user=user),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=fpctl.env(user))
            for t, user in ((rootp, None), (mine, NOBODY))]
    try:
        def both():
            return len(status_helpers(fpctl, None)) == 2
        fpdtest.wait_for(both, 30, "two helper sessions in fpd's status")
        as_root = status_helpers(fpctl, None)
        assert sorted(int(h.split()[0]) for h in as_root) == sorted([rootp.pid, mine.pid]), as_root
        assert all(re.match(r"^\d+ \(Python 3\.\d+\.\d+\)$", h) for h in as_root), as_root
        as_nobody = status_helpers(fpctl, NOBODY)
        assert [int(h.split()[0]) for h in as_nobody] == [mine.pid], as_nobody
        text = fpctl("status", user=NOBODY).out
        assert "helpers: %d (Python" % mine.pid in text and str(rootp.pid) not in text, text
    finally:
        for p in hold:
            fpdtest.stop(p)
    fpdtest.wait_for(lambda: status_helpers(fpctl, None) == [], 30, "the sessions to end")
