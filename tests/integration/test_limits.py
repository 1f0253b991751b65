"""A hostile local user cannot lock others out of fpd: per-uid and global
connection caps (root always admitted), deadlines for hello and for a frame
once started, and request pids that are refused instead of truncated."""

import json
import os
import re
import select
import socket
import struct
import subprocess
import sys
import time

import pytest

import fpdtest
from fpdtest import NOBODY, as_user, spawn, stop, wait_for

EXIT_USAGE = 2
EXIT_ATTACH = 3
PER_USER = 16  # fpd's defaults (daemon/limits.h)
GLOBAL = 256
DEADLINE_S = 5
# The request the flooder's half and trickle connections send (its REQUEST).
REQUEST_LEN = len(fpdtest.frame({"type": "request", "id": 7, "cmd": "status"}))

# The flooding client, run as the hostile user.  argv: socket path, then a
# JSON plan: how many connections of each kind to open, in this order:
#   silent   connect and never send a byte
#   idle     hello, then nothing (legitimate: an interactive shell waiting)
#   half     hello, then the first half of a request frame
#   trickle  hello, then a request frame one byte a second
#   extra    hello, expecting to be refused
# It reports one JSON line once everything is open ("ready"), one per
# connection fpd closes ("closed", with the seconds since that connection's
# last phase began: connect for silent, the frame's first byte otherwise),
# and answers "probe" on stdin by sending a status request on every idle
# connection.  It runs until stdin closes.
FLOODER = r'''
import json, os, select, socket, struct, sys, time

sock_path, plan = sys.argv[1], json.loads(sys.argv[2])

def frame(obj):
    b = json.dumps(obj).encode()
    return struct.pack(">I", len(b)) + b

def recv_frame(s, timeout):
    s.settimeout(timeout)
    buf = b""
    try:
        while len(buf) < 4:
            chunk = s.recv(4 - len(buf))
            if not chunk:
                return None
            buf += chunk
        n = struct.unpack(">I", buf)[0]
        body = b""
        while len(body) < n:
            chunk = s.recv(n - len(body))
            if not chunk:
                return None
            body += chunk
        return json.loads(body.decode())
    except (socket.timeout, OSError):
        return None
    finally:
        s.settimeout(None)

def out(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()

HELLO = frame({"type": "hello", "v": 1, "client": "flooder"})
REQUEST = frame({"type": "request", "id": 7, "cmd": "status"})
conns = []  # [kind, socket, phase start, bytes of REQUEST sent]
refusals = {}
unexpected = []

def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    return s

for kind in ("silent", "idle", "half", "trickle", "extra"):
    for _ in range(plan.get(kind, 0)):
        s = connect()
        if kind == "silent":
            conns.append([kind, s, time.monotonic(), 0])
            continue
        try:
            s.sendall(HELLO)
        except OSError:
            pass  # refused and closed before the hello went out: its answer is still there
        ans = recv_frame(s, 30)
        if kind == "extra":
            key = json.dumps([ans.get("type"), ans.get("code"), ans.get("exit"),
                              ans.get("message")] if ans else None)
            refusals[key] = refusals.get(key, 0) + 1
            s.close()
            continue
        if not ans or ans.get("type") != "hello":
            unexpected.append([kind, ans])
            s.close()
            continue
        conns.append([kind, s, time.monotonic(), 0])

# A refusal is sent at accept: a silent connection that was refused has its
# answer waiting by now (every later connection was answered).
for c in conns:
    if c[0] == "silent" and select.select([c[1]], [], [], 0)[0]:
        ans = recv_frame(c[1], 1)
        unexpected.append(["silent", ans])
        c[1].close()
conns = [c for c in conns if not (c[0] == "silent" and c[1].fileno() < 0)]
admitted = {}
for c in conns:
    admitted[c[0]] = admitted.get(c[0], 0) + 1
out(phase="ready", admitted=admitted,
    refusals=[[json.loads(k), n] for k, n in refusals.items()], unexpected=unexpected)

for c in conns:
    if c[0] == "half":
        c[1].sendall(REQUEST[:len(REQUEST) // 2])
        c[2] = time.monotonic()
    elif c[0] == "trickle":
        c[1].sendall(REQUEST[:1])
        c[2], c[3] = time.monotonic(), 1

next_trickle = time.monotonic() + 1
while True:
    live = [c for c in conns if c[1].fileno() >= 0]
    r, _, _ = select.select([sys.stdin] + [c[1] for c in live], [], [],
                            max(0, next_trickle - time.monotonic()))
    if sys.stdin in r:
        line = sys.stdin.readline()
        if not line:
            break
        answers = []
        for c in live:
            if c[0] == "idle":
                c[1].sendall(REQUEST)
                ans = recv_frame(c[1], 30)
                answers.append(ans.get("event") if ans else None)
                recv_frame(c[1], 30)  # the end frame
        out(phase="probe", answers=answers)
    for c in live:
        if c[1] in r:
            try:
                data = c[1].recv(4096)
            except OSError:
                data = b""
            if not data:
                out(phase="closed", kind=c[0], after_s=time.monotonic() - c[2], sent=c[3])
                c[1].close()
    if time.monotonic() >= next_trickle:
        next_trickle += 1
        for c in live:
            if c[0] == "trickle" and c[1].fileno() >= 0 and c[3] < len(REQUEST):
                try:
                    c[1].sendall(REQUEST[c[3]:c[3] + 1])
                    c[3] += 1
                except OSError:
                    pass  # closed: the read side reports it
'''


class Flooder(object):
    def __init__(self, python, sock, uid, plan, logdir):
        self.uid = uid
        self.proc = spawn(as_user(uid, [python, "-c", FLOODER, sock, json.dumps(plan)]),
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=open(str(logdir / ("flooder-%d.log" % uid)), "wb"))
        self.buf = b""

    def line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("flooder uid %d: no report within %ss" % (self.uid, timeout))
            if select.select([self.proc.stdout], [], [], left)[0]:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("flooder uid %d exited (status %s)"
                                         % (self.uid, self.proc.wait()))
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line.decode())

    def expect(self, phase, timeout=120):
        while True:
            msg = self.line(timeout)
            if msg["phase"] == phase:
                return msg

    def probe(self):
        self.proc.stdin.write(b"probe\n")
        self.proc.stdin.flush()
        return self.expect("probe")["answers"]

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        stop(self.proc)


@pytest.fixture
def flooders(debian_python, workdir):
    started = []

    def start(sock, uid, plan):
        f = Flooder(debian_python, sock, uid, plan, workdir)
        started.append(f)
        return f

    yield start
    for f in started:
        f.close()


def wait_idle(fpctl, clients=1):
    """Until fpd counts no connection but the status call asking."""
    def quiet():
        r = fpctl("--json", "status")
        return json.loads(r.out.splitlines()[0])["clients"] <= clients
    wait_for(quiet, 60, "fpd to release the flood's connections", interval=0.2)


def served(fpctl, target):
    """What root must always get: status and a stack of its own target."""
    r = fpctl("status")
    assert "max_clients_per_user: %d" % PER_USER in r.out, r.out
    r = fpctl("attach", target.pid, "stack")
    assert "MainThread" in r.out, r.out


def busy_refusals(report):
    """{message: count} of the flooder's refused connections; anything else fails."""
    got = {}
    for (kind, code, status, message), n in ((r[0] or [None] * 4, r[1]) for r in report["refusals"]):
        assert (kind, code, status) == ("error", "busy", EXIT_ATTACH), report
        got[message] = got.get(message, 0) + n
    return got


def test_flooding_user_cannot_keep_root_out(fpd, fpctl, idle, flooders):
    wait_idle(fpctl)
    flood = flooders(fpd.socket, NOBODY,
                     {"silent": 4, "idle": 4, "half": 4, "trickle": 4, "extra": 300})
    ready = flood.expect("ready")
    assert ready["unexpected"] == [], ready
    assert ready["admitted"] == {"silent": 4, "idle": 4, "half": 4, "trickle": 4}, ready
    refusals = busy_refusals(ready)
    assert sum(refusals.values()) == 300, ready
    (message,) = refusals
    assert "%d connections of uid %d" % (PER_USER, NOBODY) in message, message
    assert "--max-clients-per-user" in message, message

    # The flood holds all it may: root is served, the flooding user is told why not.
    served(fpctl, idle)
    r = fpctl("status", user=NOBODY, check=False)
    assert r.rc == EXIT_ATTACH, r
    assert "uid %d" % NOBODY in r.err and "--max-clients-per-user" in r.err, r.err

    # Silent, half-frame and trickling connections are closed after their
    # deadline (never before it); the idle ones stay and are still served.
    closed = [flood.expect("closed") for _ in range(12)]
    by_kind = {}
    for c in closed:
        by_kind.setdefault(c["kind"], []).append(c)
    assert sorted(by_kind) == ["half", "silent", "trickle"], closed
    assert all(len(v) == 4 for v in by_kind.values()), closed
    for c in closed:
        assert c["after_s"] >= DEADLINE_S - 0.05, c
    for c in by_kind["trickle"]:
        assert c["sent"] < REQUEST_LEN, c  # the request never completed
    assert flood.probe() == ["status"] * 4
    log = fpd.log.read_text(errors="replace")
    assert re.search(r"uid %d\): no hello within %d s" % (NOBODY, DEADLINE_S), log), log[-3000:]
    assert re.search(r"uid %d\): a frame not complete %d s after its first byte" % (NOBODY, DEADLINE_S),
                     log), log[-3000:]
    assert "refused client" in log
    # The closed connections went back to the user's quota.
    fpctl("status", user=NOBODY)
    flood.close()
    wait_idle(fpctl)


def test_many_users_cannot_keep_root_out(fpd, fpctl, idle, flooders):
    """Users with a uid each (or one user with many subuids) fill the global cap."""
    wait_idle(fpctl)
    uids = [60001 + i for i in range(GLOBAL // PER_USER)]
    for uid in uids:
        ready = flooders(fpd.socket, uid, {"idle": PER_USER}).expect("ready")
        assert ready["admitted"] == {"idle": PER_USER} and ready["unexpected"] == [], ready
    late = flooders(fpd.socket, NOBODY, {"extra": 20}).expect("ready")
    (message,) = busy_refusals(late)
    assert "%d connections of users other than root" % GLOBAL in message, message
    assert "--max-clients" in message and "root is always served" in message, message

    served(fpctl, idle)
    r = fpctl("--json", "status")
    status = json.loads(r.out.splitlines()[0])
    assert status["clients"] >= GLOBAL + 1 and status["refused_clients"] >= 20, status
    assert status["max_clients"] == GLOBAL, status


def test_limit_flags(build, workdir, flooders):
    r = subprocess.run([str(build / "fpd"), "--help"], stdout=subprocess.PIPE, timeout=30)
    assert b"--max-clients-per-user N" in r.stdout and b"--max-clients N" in r.stdout
    for bad in ("0", "-3", "x", "70000"):
        r = subprocess.run([str(build / "fpd"), "--max-clients", bad], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        assert r.returncode == EXIT_USAGE, r
        assert r.stderr.decode().count("\n") == 1 and "--max-clients takes" in r.stderr.decode(), r

    daemon = fpdtest.Daemon(build / "fpd", workdir)
    daemon.socket = str(workdir / "fpd-flags.sock")
    daemon.log = workdir / "fpd-flags.log"
    daemon.binary = build / "fpd"
    with open(str(daemon.log), "wb") as log:
        daemon.proc = spawn([build / "fpd", "--socket", daemon.socket, "--max-clients-per-user", "2",
                             "--max-clients", "3"], stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, env=fpdtest.clean_env())
    try:
        wait_for(lambda: os.path.exists(daemon.socket), 60, "the second fpd to listen")
        first = flooders(daemon.socket, NOBODY, {"idle": 2, "extra": 1}).expect("ready")
        assert first["admitted"] == {"idle": 2}, first
        (message,) = busy_refusals(first)
        assert "2 connections of uid %d" % NOBODY in message, message
        second = flooders(daemon.socket, 60001, {"idle": 1, "extra": 1}).expect("ready")
        assert second["admitted"] == {"idle": 1}, second
        (message,) = busy_refusals(second)
        assert "3 connections of users other than root" in message, message
    finally:
        problem = daemon.stop()
    assert problem is None, problem


def request(sock_path, req):
    """Every frame fpd answers one raw request with, up to its end or error."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(sock_path)
    try:
        s.sendall(fpdtest.frame({"type": "hello", "v": 1, "client": "test"}))
        assert fpdtest.recv_frame(s)["type"] == "hello"
        s.sendall(fpdtest.frame(dict(req, type="request", id=1)))
        frames = []
        while True:
            f = fpdtest.recv_frame(s)
            assert f is not None, "fpd closed the connection after %r" % frames
            frames.append(f)
            if f["type"] in ("end", "error"):
                return frames
    finally:
        s.close()


def test_out_of_range_pids_refused(fpd, fpctl, idle):
    pid = idle.pid
    pid_max = int(open("/proc/sys/kernel/pid_max").read())
    for bad in (2 ** 32 + pid, 2 ** 64 // 2 - 1, 2 ** 31 + pid, -(2 ** 32) + pid, -1, 0, pid_max + 1):
        frames = request(fpd.socket, {"cmd": "stack", "pid": bad, "args": {"native": True}})
        assert len(frames) == 1, frames
        (err,) = frames
        assert (err["code"], err["exit"]) == ("bad_pid", EXIT_USAGE), err
        assert str(bad) in err["message"] and "pid_max" in err["message"], err
    for bad in ("abc", str(pid), 1.5, None, [pid]):
        (err,) = request(fpd.socket, {"cmd": "stack", "pid": bad})
        assert (err["code"], err["exit"]) == ("bad_pid", EXIT_USAGE), err
        assert "must be an integer process id" in err["message"], err
    # Commands without a target refuse a bad pid too rather than ignore it.
    (err,) = request(fpd.socket, {"cmd": "status", "pid": 2 ** 32})
    assert err["code"] == "bad_pid", err
    # The pid itself is served, and nothing of the refused requests reached it.
    frames = request(fpd.socket, {"cmd": "stack", "pid": pid})
    assert frames[-1]["type"] == "end", frames
    assert not any("fpagent" in p for p in idle.maps_paths())
    assert fpdtest.proc_stat_state(pid) in ("S", "R")
    idle.ping()

    # fpctl refuses them before asking fpd, with the same exit status.
    for bad in (str(2 ** 32 + pid), "-1", "abc"):
        r = fpctl("attach", bad, "stack", check=False)
        assert r.rc == EXIT_USAGE, r
        lines = [line for line in r.err.splitlines() if line.strip()]
        assert len(lines) == 1 and "not a process id" in lines[0], r.err
        assert r.out == ""
