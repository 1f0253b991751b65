"""The real helper in this interpreter: build/libfpagent.so loaded with ctypes
and driven over its link as fpd would drive it (a fake fpd on a private Unix
socket).  For checks of what only the C side does (trace's profile hook),
which the Python-only harness (harness.py) cannot run.

    agent = InProc()                       # once per process: one library
    rid = agent.request("trace", {...})
    agent.wait_event(rid, "tracing")
    ... make calls ...
    frames = agent.wait(rid)               # [(op, payload)] once it ended

FPD_BUILD names the build folder as for the integration tests (default
<repo>/build).
"""
import ctypes
import json
import os
import shutil
import socket
import struct
import tempfile
import threading
import time

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OP_REQUEST, OP_CANCEL, OP_HELLO, OP_EVENT, OP_END, OP_ERROR = 1, 2, 16, 17, 18, 19


def library():
    build = os.environ.get("FPD_BUILD", "build")
    if not os.path.isabs(build):
        build = os.path.join(REPO, build)
    return os.path.join(build, "libfpagent.so")


class InProc(object):
    _lib = None

    def __init__(self, timeout=10):
        path = library()
        if not os.path.exists(path):
            raise AssertionError("%s is missing: run make" % path)
        tmp = tempfile.mkdtemp(prefix="fp-inproc-")
        sock_path = os.path.join(tmp, "s")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(sock_path)
        srv.listen(1)
        srv.settimeout(timeout)
        if InProc._lib is None:
            InProc._lib = ctypes.CDLL(path)
        assert InProc._lib.fpagent_start(sock_path.encode()) == 0
        try:
            self.conn, _ = srv.accept()
        finally:
            srv.close()
            shutil.rmtree(tmp, ignore_errors=True)  # connected: the path has served
        self.frames = {}
        self.cond = threading.Condition()
        self.next = 1
        op, _, payload = self._recv()
        assert op == OP_HELLO, (op, payload)
        self.hello = json.loads(payload)
        assert "error" not in self.hello, self.hello
        self.reader = threading.Thread(target=self._reader)
        self.reader.daemon = True
        self.reader.start()

    def _recv_exact(self, n):
        b = b""
        while len(b) < n:
            c = self.conn.recv(n - len(b))
            if not c:
                raise EOFError
            b += c
        return b

    def _recv(self):
        (n,) = struct.unpack(">I", self._recv_exact(4))
        body = self._recv_exact(n)
        op, rid = struct.unpack(">BI", body[:5])
        return op, rid, body[5:].decode()

    def _reader(self):
        try:
            while True:
                op, rid, payload = self._recv()
                with self.cond:
                    self.frames.setdefault(rid, []).append(
                        (op, json.loads(payload) if payload else None))
                    self.cond.notify_all()
        except (EOFError, OSError):
            pass

    def _send(self, op, rid, payload=b""):
        self.conn.sendall(struct.pack(">IBI", len(payload) + 5, op, rid) + payload)

    def request(self, cmd, args):
        rid = self.next
        self.next += 1
        self._send(OP_REQUEST, rid, json.dumps({"cmd": cmd, "args": args}).encode())
        return rid

    def cancel(self, rid):
        self._send(OP_CANCEL, rid)

    def wait(self, rid, timeout=30, until=None):
        """The frames of rid once it ended (END or ERROR), or once
        until(frames) is true."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                fr = list(self.frames.get(rid, []))
                if any(op in (OP_END, OP_ERROR) for op, _ in fr) or (until and until(fr)):
                    return fr
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("request %d: no end within %ss: %r" % (rid, timeout, fr))
                self.cond.wait(left)

    def wait_event(self, rid, event, timeout=30):
        fr = self.wait(rid, timeout, lambda fr: any(
            p and p.get("event") == event for op, p in fr if op == OP_EVENT))
        errors = [p for op, p in fr if op == OP_ERROR]
        assert not errors, errors
        return fr

    def close(self):
        """Ends the session as fpd going away would."""
        self.conn.shutdown(socket.SHUT_RDWR)
        self.conn.close()
        self.reader.join(10)


def events(frames, name):
    return [p for op, p in frames if op == OP_EVENT and p.get("event") == name]


def error(frames):
    errs = [p for op, p in frames if op == OP_ERROR]
    return errs[0] if errs else None
