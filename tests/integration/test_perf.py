"""`fpctl attach PID perf` (and the daemon side of `top`) against real targets.

The target (targets/hotpair.py) runs thread hot-a spinning in hot_a and
thread hot-b calling leaf from hot_b; both are CPU-bound and take turns on
the GIL.  For every interpreter the collapsed output must hold those stacks,
outermost first, with roughly equal shares, and the four formats written
from one target must each parse and hold the total fpctl printed.  Bad
input gets one clear line and leaves no file behind; a target that exits
in the middle of a profile still gets its partial profile written.
"""

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

import fpdtest
from fpdtest import NOBODY, TARGETS, frame, marker_line, recv_frame

PAIR = TARGETS / "hotpair.py"
WROTE = re.compile(r"^Wrote (\d+) samples to (.+?)(?:, .*?)?(?: \(the process exited\))?$")
FRAME = re.compile(r"^(.*) \((.*):(\d+)\)$")
ROOT = os.geteuid() == 0


@pytest.fixture(autouse=True)
def needs_root():
    if not ROOT:
        pytest.skip("perf needs fpd to load BPF programs: run the suite as root")


@pytest.fixture(scope="module")
def pair(interp, workdir):
    target = fpdtest.Target(interp.python, "hotpair.py", logdir=workdir).ready()
    yield target
    target.kill()


@pytest.fixture(scope="module")
def dpair(debian_python, workdir):
    """The same target on one interpreter, for what does not depend on the version."""
    target = fpdtest.Target(debian_python, "hotpair.py", logdir=workdir).ready()
    yield target
    target.kill()


@pytest.fixture
def out(workdir):
    """A fresh folder for fpctl's output files."""
    d = Path(workdir) / ("perf-%d" % time.monotonic_ns())
    d.mkdir()
    return d


def perf(fpctl, target, cwd, *opts, check=True):
    r = fpctl("attach", target.pid, "perf", *[str(o) for o in opts], cwd=str(cwd), check=check)
    return r


def wrote(r):
    lines = r.out.strip().splitlines()
    assert len(lines) == 1, r.out
    m = WROTE.match(lines[0])
    assert m, r.out
    return int(m.group(1)), m.group(2)


def parse_collapsed(text):
    """{thread: Counter(tuple of (func, file, line), outermost first)}"""
    stacks = {}
    for line in text.splitlines():
        key, count = line.rsplit(" ", 1)
        parts = key.split(";")
        frames = []
        for p in parts[1:]:
            m = FRAME.match(p)
            assert m, "bad frame %r in %r" % (p, line)
            frames.append((m.group(1), m.group(2), int(m.group(3))))
        stacks.setdefault(parts[0], Counter())[tuple(frames)] += int(count)
    return stacks


def funcs(stack):
    return [f[0] for f in stack]


def test_collapsed_stacks_and_shares(fpctl, pair, out):
    n, path = wrote(perf(fpctl, pair, out, "-d", 3, "--format", "collapsed"))
    assert path == "profile.collapsed"
    stacks = parse_collapsed((out / path).read_text())
    assert sum(sum(c.values()) for c in stacks.values()) == n
    # Busy CI machines give the target less than a CPU: a floor, not the full 300.
    assert n >= 30, "3 s at 100 Hz of two busy threads gave %d samples" % n
    script = str(PAIR)
    a, b = stacks.get("hot-a", Counter()), stacks.get("hot-b", Counter())
    na, nb = sum(a.values()), sum(b.values())
    # They take turns on the GIL: each gets a fair part of the samples.
    assert na >= 0.2 * n and nb >= 0.2 * n, (na, nb, n)
    # hot-a: innermost frame hot_a on its marked line, under the thread's bootstrap.
    line_a = marker_line(script, "hot_a")
    on_line = sum(c for s, c in a.items() if s and s[-1] == ("hot_a", script, line_a))
    assert on_line >= 0.8 * na, a
    for s in a:
        assert "hot_a" in funcs(s) and funcs(s).index("hot_a") == len(s) - 1, s
    # hot-b: leaf called from hot_b, in that order; most samples in leaf.
    in_leaf = sum(c for s, c in b.items() if funcs(s)[-2:] == ["hot_b", "leaf"])
    assert in_leaf >= 0.5 * nb, b
    leaf_line = marker_line(script, "leaf")
    for s in b:
        f = funcs(s)
        assert "hot_b" in f, s
        if "leaf" in f:
            assert f.index("hot_b") == f.index("leaf") - 1, s
    assert any(s[-1] == ("leaf", script, leaf_line) for s in b), b
    # The main thread waits in read(2): off-CPU, so not sampled without --idle.
    assert "MainThread" not in stacks or sum(stacks["MainThread"].values()) <= 0.05 * n
    assert pair.alive()
    pair.ping()


def svg_total(path):
    root = ET.parse(str(path)).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    tops = [g for g in root.iter(ns + "g") if g.get("data-d") == "0"]
    assert len(tops) == 1, "one root frame in %s" % path
    return int(tops[0].get("data-n"))


def speedscope_total(path):
    doc = json.loads(Path(path).read_text())
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    nframes = len(doc["shared"]["frames"])
    total = 0
    for p in doc["profiles"]:
        assert p["type"] == "sampled"
        assert len(p["samples"]) == len(p["weights"])
        assert all(0 <= i < nframes for s in p["samples"] for i in s)
        assert sum(p["weights"]) == p["endValue"]
        total += p["endValue"]
    names = {f["name"] for f in doc["shared"]["frames"]}
    assert {"hot_a", "hot_b", "leaf"} <= names
    return total


def pprof_total(path):
    """Decoded by protoc itself, independent of the protobuf-c code that wrote it."""
    raw = gzip.decompress(Path(path).read_bytes())
    proto = Path(__file__).resolve().parents[2] / "cli" / "profile.proto"
    r = subprocess.run(["protoc", "--decode=perftools.profiles.Profile",
                        "--proto_path=%s" % proto.parent, str(proto)],
                       input=raw, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    text = r.stdout.decode()
    for name in ("hot_a", "hot_b", "leaf", "samples", "count", "cpu", "nanoseconds"):
        assert 'string_table: "%s"' % name in text
    # Each sample's values: samples/count first, then cpu/nanoseconds.
    values = [int(v) for v in re.findall(r"^  value: (-?\d+)$", text, re.M)]
    assert len(values) % 2 == 0
    return sum(values[0::2])


@pytest.mark.parametrize("fmt", ["svg", "collapsed", "speedscope", "pprof"])
def test_formats_hold_the_total(fpctl, dpair, out, fmt):
    default = {"svg": "flamegraph.svg", "collapsed": "profile.collapsed",
               "speedscope": "profile.speedscope.json", "pprof": "profile.pb.gz"}[fmt]
    args = ["-d", 1] + (["--format", fmt] if fmt != "svg" else [])
    n, path = wrote(perf(fpctl, dpair, out, *args))
    assert path == default
    assert n > 0
    f = out / path
    if fmt == "svg":
        assert svg_total(f) == n
    elif fmt == "collapsed":
        assert sum(int(l.rsplit(" ", 1)[1]) for l in f.read_text().splitlines()) == n
    elif fmt == "speedscope":
        assert speedscope_total(f) == n
    else:
        assert pprof_total(f) == n
    # -f names the file whatever the format.
    n2, path2 = wrote(perf(fpctl, dpair, out, "-d", 0.5, "--format", fmt, "-f", "sub.out"))
    assert path2 == "sub.out" and (out / "sub.out").stat().st_size > 0


def test_json_prints_the_profile_event(fpctl, dpair, out):
    r = perf(fpctl, dpair, out, "-d", 1, "--json", "--format", "collapsed")
    lines = r.out.strip().splitlines()
    assert len(lines) == 1
    ev = json.loads(lines[0])
    assert ev["event"] == "profile" and ev["rate"] == 100
    assert ev["samples"] == sum(s["count"] for s in ev["stacks"]) > 0
    for s in ev["stacks"]:
        assert all(0 <= i < len(ev["frames"]) for i in s["frames"])
        assert s["thread"] and s["tid"] > 0
    for f in ev["frames"]:
        assert f["kind"] in ("python", "native")
        assert set(f) == {"kind", "func", "file", "line", "library"}
    assert 0.9 <= ev["duration_s"] <= 3
    assert (out / "profile.collapsed").exists()


def test_idle_and_native(fpctl, dpair, out):
    """--idle adds the main thread, blocked in read(2); --native adds C frames
    around the same Python frames."""
    r = perf(fpctl, dpair, out, "-d", 1, "--idle", "--json", "--format", "collapsed")
    ev = json.loads(r.out)
    assert "MainThread" in {s["thread"] for s in ev["stacks"]}
    r = perf(fpctl, dpair, out, "-d", 1, "--native", "--json", "--format", "collapsed")
    ev = json.loads(r.out)
    kinds = Counter(f["kind"] for f in ev["frames"])
    assert kinds["native"] > 0 and kinds["python"] > 0, kinds
    for f in ev["frames"]:
        if f["kind"] == "native":
            assert f["library"], f
    hot_b = [s for s in ev["stacks"] if s["thread"] == "hot-b"]
    assert hot_b
    for s in hot_b:
        py = [ev["frames"][i]["func"] for i in s["frames"] if ev["frames"][i]["kind"] == "python"]
        if "leaf" in py:
            assert py.index("leaf") == py.index("hot_b") + 1, py


def test_ctrl_c_writes_the_profile(fpctl, dpair, out):
    cmd = fpctl.command(["attach", dpair.pid, "perf", "--format", "collapsed"])
    p = subprocess.Popen(cmd, cwd=str(out), env=fpctl.env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    o, e = p.communicate(timeout=30)
    assert p.returncode == 0, e.decode()
    m = WROTE.match(o.decode().strip())
    assert m and int(m.group(1)) > 0, o
    assert (out / "profile.collapsed").read_text()


class SlowFpd(object):
    """A fake fpd that takes one perf request and, once asked to stop it,
    never sends the profile: what a daemon stuck after the stop looks like."""

    def __init__(self, path):
        self.path = str(path)
        self.request, self.cancelled = threading.Event(), threading.Event()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.sock.accept()
        with conn:
            hello = recv_frame(conn)
            conn.sendall(frame({"type": "hello", "v": hello["v"], "server": "fpd", "pid": os.getpid()}))
            while True:
                msg = recv_frame(conn)
                if msg is None:
                    return
                if msg["type"] == "request" and msg["cmd"] == "perf":
                    self.request.set()
                elif msg["type"] == "cancel":
                    self.cancelled.set()

    def close(self):
        self.sock.close()


def test_second_ctrl_c_abandons_the_wait(build, tmp_path):
    """The first Ctrl-C asks fpd to stop and send the profile; a second one
    gives up waiting for it at once, writes nothing and says so."""
    fake = SlowFpd(tmp_path / "slow.sock")
    p = subprocess.Popen([str(build / "fpctl"), "--socket", fake.path, "attach", str(os.getpid()),
                          "perf", "--format", "collapsed"], cwd=str(tmp_path), env=fpdtest.clean_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert fake.request.wait(10), "fpctl sent no perf request"
        p.send_signal(signal.SIGINT)
        assert fake.cancelled.wait(10), "the first Ctrl-C sent no cancel"
        time.sleep(0.5)
        assert p.poll() is None, "fpctl gave up after the first Ctrl-C"
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        o, e = p.communicate(timeout=10)
        assert time.monotonic() - t0 < 1, "the second Ctrl-C took %.1f s" % (time.monotonic() - t0)
    finally:
        fpdtest.stop(p)
        fake.close()
    assert p.returncode == 128 + signal.SIGINT, (p.returncode, e)
    assert e.decode() == "fpctl: perf: interrupted; no profile written\n" and o == b"", (o, e)
    assert not (tmp_path / "profile.collapsed").exists()


def test_timeout_stops_like_ctrl_c(fpctl, dpair, out):
    t0 = time.monotonic()
    r = fpctl("--timeout", 1, "attach", dpair.pid, "perf", "--format", "collapsed", cwd=str(out),
              check=False)
    assert time.monotonic() - t0 < 10
    assert r.rc == 1 and r.err == "fpctl: perf: timed out after 1 s\n", r
    n, _ = wrote(r)
    assert n > 0


def test_target_exits_mid_profile(fpctl, interp, out, workdir):
    target = fpdtest.Target(interp.python, "hotpair.py", ["exit", 3], logdir=workdir).ready()
    try:
        t0 = time.monotonic()
        r = perf(fpctl, target, out, "-d", 60, "--format", "collapsed")
        assert time.monotonic() - t0 < 20, "perf went on after the target exited"
        assert "(the process exited)" in r.out
        n, path = wrote(r)
        assert n > 0
        assert "hot-a;" in (out / path).read_text()
    finally:
        target.kill()


def one_line_error(r, rc):
    assert r.rc == rc, r
    assert r.out == "" and len(r.err.strip().splitlines()) == 1, r
    assert r.err.startswith("fpctl: ")


@pytest.mark.parametrize("opts,rc,text", [
    (["-r", 0], 2, "rate must be a whole number of samples per second from 1 to 10000, not '0'"),
    (["-r", 100000], 2, "not '100000'"),
    (["--format", "png"], 2, "unknown format 'png'"),
    (["-f", "/nonexistent/dir/x.svg"], 1, "cannot write /nonexistent/dir/x.svg"),
])
def test_bad_input(fpctl, idle, out, opts, rc, text):
    r = fpctl("attach", idle.pid, "perf", "-d", 1, *opts, cwd=str(out), check=False)
    one_line_error(r, rc)
    assert text in r.err
    assert list(out.iterdir()) == [], "a failed perf left a file"


def test_unwritable_as_user(fpctl, idle, out):
    """fpctl writes as the user who runs it: a root-owned folder is not writable."""
    r = fpctl("attach", idle.pid, "perf", "-d", 1, "-f", str(out / "x.svg"), user=NOBODY,
              check=False)
    one_line_error(r, 1)
    assert "Permission denied" in r.err


def test_not_python(fpctl, out):
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        r = fpctl("attach", sleeper.pid, "perf", "-d", 1, cwd=str(out), check=False)
        one_line_error(r, 3)
        assert list(out.iterdir()) == []
    finally:
        sleeper.kill()
        sleeper.wait()


# ---- the protocol directly: the daemon validates too, and `top`'s stream

def session(fpd):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(fpd.socket)
    s.sendall(frame({"type": "hello", "v": 1, "client": "test"}))
    assert recv_frame(s)["type"] == "hello"
    return s


def until_end(s, rid):
    events = []
    while True:
        f = recv_frame(s)
        assert f is not None and f["id"] == rid, f
        if f["type"] in ("end", "error"):
            return f, events
        events.append(f)


BAD_ARGS = [{"rate": 0}, {"rate": 100000}, {"rate": "fast"}, {"rate": 1.5}]


@pytest.mark.parametrize("cmd,args", [("perf", a) for a in BAD_ARGS + [{"duration": -1}]]
                         + [("top", a) for a in BAD_ARGS])
def test_daemon_validates(fpd, idle, cmd, args):
    s = session(fpd)
    s.sendall(frame({"type": "request", "id": 1, "cmd": cmd, "pid": idle.pid, "args": args}))
    end, events = until_end(s, 1)
    s.close()
    assert events == []
    assert end["type"] == "error" and end["exit"] == 2, end
    assert "\n" not in end["message"] and end["message"].startswith(cmd + ": "), end


def test_top_streams_a_profile_every_second(fpd, dpair):
    s = session(fpd)
    s.sendall(frame({"type": "request", "id": 5, "cmd": "top", "pid": dpair.pid,
                     "args": {"rate": 200}}))
    got = []
    t0 = time.monotonic()
    while len(got) < 3:
        f = recv_frame(s)
        assert f["type"] == "event" and f["event"] == "profile", f
        got.append((time.monotonic() - t0, f))
    s.sendall(frame({"type": "cancel", "id": 5}))
    end, _ = until_end(s, 5)
    s.close()
    assert end["type"] == "end", end
    for _, ev in got:
        assert ev["rate"] == 200
        assert 0.5 <= ev["duration_s"] <= 1.5
        assert ev["samples"] == sum(st["count"] for st in ev["stacks"]) > 0
    threads = {st["thread"] for _, ev in got for st in ev["stacks"]}
    assert {"hot-a", "hot-b"} <= threads, threads
    # One second apart: three events take about two seconds after the first.
    assert 1.5 <= got[2][0] - got[0][0] <= 3.5, [t for t, _ in got]
