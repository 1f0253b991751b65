"""`top`: the full-screen view driven through a real terminal (tmux send-keys
and capture-pane) and the text fallback on a pipe, first against a fake fpd
that speaks the protocol (the UI alone, no BPF needed), then against the real
fpd sampling a spinning target."""

import json
import os
import shlex
import shutil
import socket
import struct
import subprocess
import threading
import time

import pytest

import fpdtest
from fpdtest import wait_for

FAKE_PID = 4242


class FakeFpd(object):
    """A Unix-socket server that answers hello, `ps` (one process) and `top`
    (a profile event every `interval` seconds: MainThread in hot_a, worker in
    hot_b -> leaf) until cancelled; it records the requests it got."""

    def __init__(self, path, interval=0.3, exit_after=None):
        self.path, self.interval, self.exit_after = str(path), interval, exit_after
        self.requests, self.cancels = [], []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        self.done = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.done.set()
        self.sock.close()

    def _accept(self):
        while not self.done.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def profile(second):
        frames = [{"kind": "python", "func": "<module>", "file": "/srv/app.py", "line": 40, "library": None},
                  {"kind": "python", "func": "hot_a", "file": "/srv/app.py", "line": 12, "library": None},
                  {"kind": "python", "func": "hot_b", "file": "/srv/app.py", "line": 20, "library": None},
                  {"kind": "python", "func": "leaf", "file": "/srv/app.py", "line": 30, "library": None}]
        stacks = [{"frames": [0, 1], "count": 60, "thread": "MainThread", "tid": 1},
                  {"frames": [0, 2, 3], "count": 30 + second % 2, "thread": "worker", "tid": 2},
                  {"frames": [0, 2], "count": 10, "thread": "worker", "tid": 2}]
        return {"event": "profile", "samples": sum(s["count"] for s in stacks), "lost": 1, "faulted": 0,
                "dropped": 0, "duration_s": 1.0, "rate": 100, "exited": False, "frames": frames,
                "stacks": stacks}

    def _serve(self, conn):
        send_lock = threading.Lock()

        def send(msg):
            with send_lock:
                conn.sendall(fpdtest.frame(msg))

        active = {}
        try:
            hello = fpdtest.recv_frame(conn)
            assert hello and hello["type"] == "hello"
            send({"type": "hello", "v": hello["v"], "server": "fpd", "pid": os.getpid()})
            while True:
                msg = fpdtest.recv_frame(conn)
                if msg is None:
                    break
                if msg["type"] == "cancel":
                    self.cancels.append(msg["id"])
                    stop = active.pop(msg["id"], None)
                    if stop:
                        stop.set()
                    continue
                self.requests.append(msg)
                rid = msg["id"]
                if msg["cmd"] == "ps":
                    send({"type": "event", "id": rid, "event": "process", "pid": FAKE_PID, "user": "root",
                          "uid": 0, "version": "3.12.1", "build": "shared", "exe": "/usr/bin/python3",
                          "helper": False})
                    send({"type": "end", "id": rid})
                elif msg["cmd"] == "top":
                    stop = active[rid] = threading.Event()
                    threading.Thread(target=self._top, args=(send, rid, stop), daemon=True).start()
                else:
                    send({"type": "error", "id": rid, "code": "usage", "exit": 2, "message": "fake fpd"})
        except (OSError, AssertionError, ValueError):
            pass
        finally:
            for stop in active.values():
                stop.set()
            time.sleep(0.05)
            conn.close()

    def _top(self, send, rid, stop):
        second = 0
        try:
            while not stop.wait(self.interval):
                exited = self.exit_after is not None and second + 1 >= self.exit_after
                send(dict(self.profile(second), type="event", id=rid, exited=exited))
                second += 1
                if exited:
                    break
            send({"type": "end", "id": rid})
        except OSError:
            pass


@pytest.fixture
def fake_fpd(tmp_path):
    server = FakeFpd(tmp_path / "fake.sock")
    yield server
    server.close()


class Tmux(object):
    """One tmux server on a private socket running one command in a 120x30 pane."""

    def __init__(self, workdir, command, env):
        if not shutil.which("tmux"):
            pytest.skip("tmux is not installed (apt-get install tmux)")
        self.socket = str(workdir / "tmux.sock")
        self.status = workdir / "status"
        # The pane stays after the command ends so that its exit status can be read.
        shell = "%s; echo $? > %s; sleep 600" % (" ".join(shlex.quote(str(c)) for c in command),
                                                shlex.quote(str(self.status)))
        self.run("new-session", "-d", "-x", "120", "-y", "30", "-s", "top", shell, env=env)

    def run(self, *args, env=None):
        return subprocess.run(["tmux", "-S", self.socket] + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=30, env=env).stdout.decode(errors="replace")

    def screen(self):
        return self.run("capture-pane", "-p", "-t", "top")

    def keys(self, *keys):
        self.run("send-keys", "-t", "top", *keys)

    def wait_screen(self, cond, what, timeout=20):
        last = [""]

        def check():
            last[0] = self.screen()
            return cond(last[0])

        try:
            wait_for(check, timeout, what, interval=0.1)
            return last[0]
        except AssertionError as e:
            raise AssertionError("%s; screen:\n%s" % (e, last[0]))

    def exit_status(self, timeout=10):
        wait_for(lambda: self.status.exists() and self.status.read_text().strip(), timeout,
                 "the command in tmux to exit; screen:\n%s" % self.screen())
        return int(self.status.read_text())

    def kill(self):
        self.run("kill-server")


def rows(screen):
    """{function: (%own, %total)} of the table's rows."""
    out = {}
    for line in screen.splitlines():
        cols = line.split()
        if len(cols) >= 5 and cols[0].endswith("%") and cols[1].endswith("%"):
            out[cols[4]] = (float(cols[0][:-1]), float(cols[1][:-1]))
    return out


def order(screen):
    return [line.split()[4] for line in screen.splitlines()
            if len(line.split()) >= 5 and line.split()[0].endswith("%")]


def fpctl_cmd(build, socket_path, *args):
    return [str(build / "fpctl"), "--socket", str(socket_path)] + [str(a) for a in args]


def test_screen_keys_and_quit(build, fake_fpd, tmp_path):
    env = fpdtest.clean_env(TERM="xterm", HOME=str(tmp_path))
    tmux = Tmux(tmp_path, fpctl_cmd(build, fake_fpd.path, "attach", FAKE_PID, "top", "-r", "250"), env)
    try:
        screen = tmux.wait_screen(lambda s: "hot_a" in s and "leaf" in s, "the table")
        assert "pid %d, Python 3.12.1" % FAKE_PID in screen, screen
        assert "2 threads" in screen and "1 lost" in screen
        got = rows(screen)
        assert got["hot_a"][0] == pytest.approx(60.0, abs=1) and got["hot_a"][1] == pytest.approx(60.0, abs=1)
        assert got["hot_b"][0] == pytest.approx(10.0, abs=1)
        assert got["hot_b"][1] == pytest.approx(40.0, abs=1)
        assert got["<module>"] == (0.0, 100.0)
        assert "hot_a (/srv/app.py:12)" in screen
        assert order(screen)[0] == "hot_a"  # default: OwnTime
        # 4: by TotalTime, <module> (every sample) first; 2: by %Total too.
        tmux.keys("4")
        tmux.wait_screen(lambda s: order(s)[:2] == ["<module>", "hot_a"] and "Sorted by TotalTime" in s,
                         "the table sorted by TotalTime")
        tmux.keys("2")
        tmux.wait_screen(lambda s: "Sorted by %Total" in s, "the table sorted by %Total")
        tmux.keys("q")
        assert tmux.exit_status() == 0
        wait_for(lambda: fake_fpd.cancels, 5, "the cancel of the top request")
    finally:
        tmux.kill()
    top = [r for r in fake_fpd.requests if r["cmd"] == "top"]
    assert top and top[0]["pid"] == FAKE_PID and top[0]["args"] == {"rate": 250}
    assert fake_fpd.cancels == [top[0]["id"]]


def test_ctrl_c_quits(build, fake_fpd, tmp_path):
    env = fpdtest.clean_env(TERM="xterm", HOME=str(tmp_path))
    tmux = Tmux(tmp_path, fpctl_cmd(build, fake_fpd.path, "attach", FAKE_PID, "top"), env)
    try:
        tmux.wait_screen(lambda s: "hot_a" in s, "the table")
        tmux.keys("C-c")
        assert tmux.exit_status() == 0
        wait_for(lambda: fake_fpd.cancels, 5, "the cancel of the top request")
    finally:
        tmux.kill()


def test_text_fallback(build, fake_fpd, tmp_path):
    r = subprocess.run(fpctl_cmd(build, fake_fpd.path, "attach", "--timeout", "1.5", FAKE_PID, "top"),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                       env=fpdtest.clean_env(HOME=str(tmp_path)))
    out = r.stdout.decode()
    assert r.returncode == 1, r.stderr.decode()
    assert r.stderr.decode() == "fpctl: top: timed out after 1.5 s\n"
    tables = [t for t in out.split("\n\n") if t.strip()]
    assert len(tables) >= 3, out
    for t in tables:
        lines = t.splitlines()
        assert " top: pid %d, Python 3.12.1: " % FAKE_PID in lines[0], t
        assert lines[1].split()[:5] == ["%Own", "%Total", "OwnTime", "TotalTime", "Function"]
        assert "\x1b" not in t  # no terminal control codes on a pipe
    own, total = rows(tables[-1])["hot_a"]
    assert own == total == pytest.approx(60.0, abs=1)
    assert fake_fpd.cancels


def test_target_exits(build, tmp_path):
    """fpd's last event says the target exited, then the request ends: fpctl says so and exits 0."""
    server = FakeFpd(tmp_path / "fake.sock", interval=0.1, exit_after=3)
    try:
        r = subprocess.run(fpctl_cmd(build, server.path, "attach", FAKE_PID, "top"), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                           env=fpdtest.clean_env(HOME=str(tmp_path)))
    finally:
        server.close()
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    assert out.count(" top: pid %d" % FAKE_PID) == 3
    assert "(process exited)" in out.split("\n\n")[-2]
    assert out.endswith("top: process %d exited\n" % FAKE_PID)
    assert not server.cancels


def test_json_events(build, fake_fpd, tmp_path):
    r = subprocess.run(fpctl_cmd(build, fake_fpd.path, "--json", "attach", "--timeout", "1", FAKE_PID, "top"),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                       env=fpdtest.clean_env(HOME=str(tmp_path)))
    assert r.returncode == 1, r.stderr.decode()
    events = [json.loads(line) for line in r.stdout.decode().splitlines()]
    assert events[-1]["type"] == "error" and events[-1]["code"] == "timeout", events[-1]
    events.pop()
    assert events and all(e["event"] == "profile" for e in events)
    # --json needs no version, so no ps request.
    assert [q["cmd"] for q in fake_fpd.requests] == ["top"]


def test_usage_errors(fpctl):
    r = fpctl("attach", "1", "top", "-r", "0", check=False)
    assert r.rc == 2
    assert r.err.strip().splitlines() == [
        "fpctl: top: the rate must be a whole number of samples per second from 1 to 10000, not '0'; "
        "see 'fpctl help top'"]


def test_real_fpd(build, fpd, debian_python, start_target, tmp_path):
    """The real sampler on a thread spinning in `spin`: it tops the table with
    a large share, q ends fpctl cleanly, and the target runs on."""
    target = start_target(debian_python, "spin.py")
    env = fpdtest.clean_env(TERM="xterm", HOME=str(tmp_path))
    tmux = Tmux(tmp_path, fpctl_cmd(build, fpd.socket, "attach", target.pid, "top"), env)
    try:
        screen = tmux.wait_screen(lambda s: "spin (" in s and "Python %s" % target.version in s, "spin in the table",
                                  timeout=30)
        own, total = rows(screen)["spin"]
        assert total >= 50.0, screen
        assert order(screen)[0] == "spin", screen
        tmux.keys("q")
        assert tmux.exit_status() == 0
    finally:
        tmux.kill()
    fpd.check_alive()
    target.ping()
