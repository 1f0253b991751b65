"""fpctl's own commands (ps, status, help), on-demand fpd, the interactive
shell through a terminal, and fpd's robustness against bad frames."""

import os
import re
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

import fpdtest
from fpdtest import INTERPRETERS, NOBODY, as_user, frame, recv_frame, wait_for

# Every command of SPEC §3.
SPEC_COMMANDS = ["help", "stack", "watch", "trace", "tt", "getglobal", "vmtool", "module", "reload",
                 "perf", "top", "console", "mem", "gilstat", "torch", "gpu", "history", "cls", "quit"]
FP_MAX_FRAME = 16 << 20


# --------------------------------------------------------------------------
# ps

def elf_sections(path):
    """Section names of a 64-bit little-endian ELF file."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, path
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    strtab_off = headers[shstrndx][4]
    names = set()
    for h in headers:
        start = strtab_off + h[0]
        names.add(data[start:data.index(b"\0", start)].decode())
    return names


def expected_build(target):
    """{shared|static, stripped|symbols, [dtrace]} from the ELF that holds the runtime."""
    libs = [p for p in target.maps_paths() if re.search(r"/libpython3\.\d+[^/]*\.so", p)]
    elf = libs[0] if libs else target.exe()
    sections = elf_sections(elf)
    flags = {"shared" if libs else "static", "symbols" if ".symtab" in sections else "stripped"}
    if ".note.stapsdt" in sections:
        flags.add("dtrace")
    return flags


def ps_table(text):
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0].split() == ["PID", "USER", "VERSION", "BUILD", "EXECUTABLE", "HELPER"], lines[0]
    rows = {}
    for line in lines[1:]:
        cols = line.split()
        assert len(cols) == 6, line
        rows[int(cols[0])] = dict(zip(["pid", "user", "version", "build", "exe", "helper"], cols))
    return rows


def test_ps(fpctl, target_pool):
    if not INTERPRETERS:
        pytest.skip("no interpreter found")
    for i in INTERPRETERS:
        target_pool.spawn(i.id, i.python, "idle.py")
    sleeper = fpdtest.spawn(["sleep", "1000"])
    try:
        targets = {i.id: target_pool.get(i.id) for i in INTERPRETERS}
        rows = ps_table(fpctl("ps").out)
        for name, t in targets.items():
            assert t.pid in rows, "%s (pid %d) not listed" % (name, t.pid)
            row = rows[t.pid]
            assert row["user"] == "root"
            assert row["version"] == t.version, name
            assert set(row["build"].split(",")) == expected_build(t), name
            assert row["exe"] == t.exe(), name
            assert row["helper"].lower() in ("no", "-", "none"), name
            if name.startswith("debian-"):
                assert set(row["build"].split(",")) == {"static", "stripped", "dtrace"}
        assert sleeper.pid not in rows
    finally:
        fpdtest.stop(sleeper)


def test_status(fpd, fpctl):
    lines = [line for line in fpctl("status").out.splitlines() if line.strip()]
    for line in lines:
        assert re.match(r"^\S[^:]*: \S", line), line
    status = dict(line.split(": ", 1) for line in lines)
    assert status.get("pid") == str(fpd.proc.pid), status
    assert status.get("socket") == fpd.socket, status


# --------------------------------------------------------------------------
# help

def test_help_lists_every_command(fpctl):
    out = fpctl("help").out
    listed = {line.split()[0] for line in out.splitlines() if line.strip()}
    missing = [c for c in SPEC_COMMANDS if c not in listed]
    assert not missing, "not in `fpctl help`: %s\n%s" % (missing, out)


@pytest.mark.parametrize("command", SPEC_COMMANDS)
def test_help_command_sections(fpctl, command):
    out = fpctl("help", command).out
    for section in ("USAGE", "SUMMARY", "EXAMPLES", "OPTIONS"):
        assert re.search(r"^\s*%s\b" % section, out, re.M), "%s: no %s section:\n%s" % (command, section, out)


def test_help_stack_options(fpctl):
    out = fpctl("help", "stack").out
    for option in ("-f", "--native", "--async", "--locals"):
        assert re.search(r"(^|[\s,\[])%s\b" % re.escape(option), out), option


# --------------------------------------------------------------------------
# Where the socket is named

@pytest.fixture(scope="module")
def nobodys(debian_python, workdir):
    """An idle target of user nobody: fpctl run as nobody can attach to it,
    and cannot start an fpd of its own, so success proves which socket it used."""
    target = fpdtest.Target(debian_python, "idle.py", wrapper=as_user(NOBODY, []), logdir=workdir).ready()
    yield target
    target.kill()


@pytest.mark.parametrize("where", ["before-attach", "after-attach", "env"])
def test_socket_option_positions(fpd, fpctl, nobodys, where):
    pid = nobodys.pid
    if where == "before-attach":
        r = fpctl("--socket", fpd.socket, "attach", pid, "stack", socket=False, user=NOBODY)
    elif where == "after-attach":
        r = fpctl("attach", "--socket", fpd.socket, pid, "stack", socket=False, user=NOBODY)
    else:
        r = fpctl("attach", pid, "stack", socket=False, user=NOBODY,
                  env=fpctl.env(NOBODY, FPD_SOCKET=fpd.socket))
    assert fpdtest.parse_text(r.out).names() == ["MainThread"]
    nobodys.ping()


# --------------------------------------------------------------------------
# fpd on demand

def fpd_processes_with(path):
    """Processes that mention `path` in their command line or environment."""
    found = set(fpdtest.pids_with_arg(path))
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if path.encode() in (d / "environ").read_bytes():
                    found.add(int(d.name))
            except OSError:
                pass
    return found - {os.getpid()}


def test_starts_fpd_when_none_listens(fpctl, idle, tmp_path):
    """fpctl as root with nothing on its socket starts an fpd for the call
    and leaves none behind."""
    sock = str(tmp_path / "nobody-here.sock")
    r = fpctl("--socket", sock, "attach", idle.pid, "stack", socket=False)
    dump = fpdtest.parse_text(r.out)
    assert dump.names() == ["MainThread"]
    wait_for(lambda: not fpd_processes_with(sock), 20, "the on-demand fpd to exit")
    idle.ping()


def test_concurrent_calls_share_the_started_fpd(fpd, idle, tmp_path):
    """Several root fpctl calls at once on a socket nobody listens on: the
    first starts an fpd, the others use it; none loses its connection when
    the one that started it exits first, --native requests do not collide
    as each other's tracers, and no fpd is left afterwards."""
    sock = str(tmp_path / "shared.sock")
    cmd = [str(fpdtest.build_dir() / "fpctl"), "--socket", sock, "attach", str(idle.pid),
           "stack", "--native"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode(errors="replace")
        dump = fpdtest.parse_text(out.decode(errors="replace"))
        assert dump.names() == ["MainThread"]
    wait_for(lambda: not fpd_processes_with(sock), 20, "the on-demand fpd to exit")
    idle.ping()


# --------------------------------------------------------------------------
# interactive shell

# A prompt: the text ends with a line (no newline yet) ending in one of these.
PROMPT = re.compile(r"(^|\n)[^\n]*[>$#%:] ?$")


def test_shell(fpctl, idle, workdir):
    env = fpctl.env(TERM="dumb")
    sh = fpdtest.attach_shell(fpctl, idle.pid, PROMPT, env)
    try:
        sh.send("help\n")
        out = sh.expect(lambda t: "watch" in t and "stack" in t and PROMPT.search(t), 60, "help")
        assert "gilstat" in out
        sh.send("stack\n")
        out = sh.expect(lambda t: "Traceback for thread" in t and PROMPT.search(t), 60, "stack")
        assert "(MainThread)" in out
        assert 'in serve' in out
        sh.send("quit\n")
        assert sh.wait(30) == 0
    finally:
        sh.close()
    history = Path(env["HOME"]) / ".fpctl_history"
    assert history.exists() and "stack" in history.read_text(errors="replace")
    idle.ping()


def test_shell_ctrl_c_and_ctrl_d(fpctl, idle):
    """Ctrl-C drops the line typed so far; Ctrl-D the moment the prompt shows leaves."""
    sh = fpdtest.attach_shell(fpctl, idle.pid, PROMPT, fpctl.env(TERM="dumb"))
    try:
        sh.send("stack")
        time.sleep(0.2)
        sh.send("\x03")
        sh.expect(lambda t: PROMPT.search(t), 30, "a fresh prompt")
        sh.send("\n")
        out = sh.expect(lambda t: PROMPT.search(t), 30, "the prompt after an empty line")
        assert "Traceback for thread" not in out, out
        # no pause: a Ctrl-D sent as soon as the prompt appears must still be end of input
        sh.send("\x04")
        assert sh.wait(30) == 0
    finally:
        sh.close()
    idle.ping()


# --------------------------------------------------------------------------
# fpd's socket: bad frames close that connection only

HELLO = {"type": "hello", "v": 1, "client": "fpctl"}

BAD_FRAMES = {
    "not-json": frame(b"not json"),
    "empty": frame(b""),
    "truncated-json": frame(b'{"type": "req'),
    "array": frame(b"[1, 2]"),
    "no-type": frame(b'{"v": 1}'),
    "type-not-string": frame(b'{"type": 5}'),
    "binary": frame(b"\xff\xfe\x00\x01"),
    "oversized": struct.pack(">I", FP_MAX_FRAME + 1) + b"{",
    "length-4G": struct.pack(">I", 0xFFFFFFFF),
}


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    return s


def hello(s):
    s.sendall(frame(HELLO))
    reply = recv_frame(s)
    assert reply and reply["type"] == "hello" and reply.get("server") == "fpd", reply
    return reply


def request(s, rid, pid):
    s.sendall(frame({"type": "request", "id": rid, "cmd": "stack", "pid": pid, "args": {}}))
    events = []
    while True:
        f = recv_frame(s)
        assert f is not None, "fpd closed a good connection"
        assert f.get("id") == rid, f
        if f["type"] in ("end", "error"):
            return f, events
        events.append(f)


@pytest.mark.parametrize("data", list(BAD_FRAMES.values()), ids=list(BAD_FRAMES))
def test_bad_frame_closes_only_that_connection(fpd, fpctl, idle, data):
    good = connect(fpd.socket)
    bad = connect(fpd.socket)
    try:
        hello(good)
        hello(bad)
        bad.sendall(data)
        # fpd may say why in an error frame, then it must close.
        while True:
            try:
                f = recv_frame(bad)
            except socket.timeout:
                pytest.fail("fpd kept the connection open after a bad frame")
            except ConnectionResetError:
                break
            if f is None:
                break
            assert f["type"] == "error", f
        end, events = request(good, 7, idle.pid)
        assert end["type"] == "end", end
        assert [e for e in events if e.get("event") == "thread"]
    finally:
        good.close()
        bad.close()
    assert fpdtest.parse_text(fpctl("attach", idle.pid, "stack").out).names() == ["MainThread"]
    idle.ping()


def test_client_vanishing_mid_frame(fpd, fpctl, idle):
    s = connect(fpd.socket)
    hello(s)
    s.sendall(struct.pack(">I", 100) + b'{"type":')
    s.close()
    assert fpdtest.parse_text(fpctl("attach", idle.pid, "stack").out).names() == ["MainThread"]


# --------------------------------------------------------------------------
# Whom fpctl talks to, and which pids it accepts

# A stand-in fpd: answers hello, then `ps` with one process and the end;
# says on stdout when a connection came and when a hello did.
FAKE_FPD = r"""
import json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
s.listen(4)
print("listening", flush=True)
def recv(c):
    head = c.recv(4, socket.MSG_WAITALL)
    if len(head) < 4:
        return None
    n = struct.unpack(">I", head)[0]
    return json.loads(c.recv(n, socket.MSG_WAITALL))
def send(c, m):
    data = json.dumps(m).encode()
    c.sendall(struct.pack(">I", len(data)) + data)
while True:
    c, _ = s.accept()
    print("served", flush=True)
    h = recv(c)
    if h:
        print("hello", flush=True)
        send(c, {"type": "hello", "v": h["v"], "server": "fpd"})
        req = recv(c)
        if req:
            send(c, {"type": "event", "id": req["id"], "event": "process", "pid": 4242,
                     "user": "mallory", "version": "3.12.1", "build": "shared",
                     "executable": "/usr/bin/python3", "helper": False})
            send(c, {"type": "end", "id": req["id"]})
    c.close()
"""


@pytest.fixture
def nobodys_fpd(debian_python, workdir):
    """The stand-in fpd, run by nobody on a socket in a directory of theirs."""
    d = workdir / "nobodys-fpd"
    d.mkdir()
    os.chown(str(d), NOBODY, NOBODY)
    sock = d / "fake.sock"
    p = fpdtest.spawn(as_user(NOBODY, [debian_python, "-c", FAKE_FPD, str(sock)]),
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"listening\n", p.stderr.read()
        yield sock, p
    finally:
        fpdtest.stop(p)
        shutil.rmtree(str(d), ignore_errors=True)


def test_socket_of_another_user_refused(fpctl, nobodys_fpd):
    sock, server = nobodys_fpd
    r = fpctl("--socket", sock, "ps", socket=False, check=False)
    assert r.rc == 3 and r.out == "", r
    assert r.err == ("fpctl: the server on %s runs as uid %d, neither root nor you: refusing to talk to "
                     "it; pass --trust-socket if you trust that user\n" % (sock, NOBODY)), r.err
    r = fpctl("--socket", sock, "--trust-socket", "ps", socket=False)
    assert "4242" in r.out and "mallory" in r.out, r
    # The refused call sent nothing at all, not even its hello.
    assert [server.stdout.readline() for _ in range(3)] == [b"served\n", b"served\n", b"hello\n"]
    # nobody may talk to an fpd of their own.
    r = fpctl("--socket", sock, "ps", socket=False, user=NOBODY)
    assert "4242" in r.out, r
    # --trust-socket goes before the command, like the other global options.
    r = fpctl("--socket", sock, "attach", "4242", "stack", "--trust-socket", socket=False, check=False)
    assert r.rc == 2 and "--trust-socket is fpctl's own option and goes before the command" in r.err, r


def test_root_fpd_is_trusted_by_every_user(fpctl, nobodys):
    r = fpctl("attach", nobodys.pid, "stack", user=NOBODY)
    assert fpdtest.parse_text(r.out).names() == ["MainThread"]


@pytest.mark.parametrize("args", [
    ["attach", "4294967297", "stack"],
    ["attach", "4294967297"],
    ["detach", "4294967297"],
    ["attach", "0", "stack"],
    ["attach", "2147483648", "stack"],
    ["attach", "1", "stack", "4294967297"],
    ["attach", "1", "perf", "4294967297"],
], ids="_".join)
def test_pid_out_of_range(fpctl, args):
    r = fpctl(*args, check=False)
    assert r.rc == 2 and r.out == "", r
    lines = r.err.splitlines()
    bad = [a for a in args if a not in ("1", "attach", "detach", "stack", "perf")][0]
    assert len(lines) == 1 and "'%s' is not a process id" % bad in lines[0], r.err
