"""Runs the helper's embedded Python (agent/py/*.py) inside this interpreter,
without fpd or injection, with a fake link: the unit tests of each helper
command use it on every CPython found (python -m pytest under that version,
or plain `python harness.py` self-check).

    ns = load_agent()
    events, end = run(ns, "getglobal", {"argv": ["__main__", "x"]})
"""
import glob
import json
import os
import subprocess
import sys
import threading

AGENT_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "agent", "py")


class FakeLink(object):
    def __init__(self):
        self.frames = []          # (op, rid, payload dict or None)
        self.inputs = {}          # rid -> list of ("input", payload) / ("cancel", "")
        self.cancelled = set()
        self.cond = threading.Condition()

    def send(self, op, rid, payload):
        with self.cond:
            self.frames.append((op, rid, json.loads(payload) if payload else None))
            self.cond.notify_all()

    def recv(self, rid, timeout):
        with self.cond:
            q = self.inputs.setdefault(rid, [])
            if not q:
                self.cond.wait(timeout)
            return q.pop(0) if q else None

    def push_input(self, rid, obj):
        with self.cond:
            self.inputs.setdefault(rid, []).append(("input", json.dumps(obj)))
            self.cond.notify_all()

    def cancel(self, rid):
        with self.cond:
            self.cancelled.add(rid)
            self.inputs.setdefault(rid, []).append(("cancel", ""))
            self.cond.notify_all()


_MANIFEST = []


def _manifest(files):
    """The manifest libfpagent.so embeds (tools/embed_py.py), computed by a
    Python recent enough for the analysis (the harness also runs on 3.6)."""
    if not _MANIFEST:
        tool = os.path.join(AGENT_PY, "..", "..", "tools", "embed_py.py")
        py = sys.executable if sys.version_info >= (3, 8) else "/usr/bin/python3"
        out = subprocess.check_output([py, tool, "--manifest"] + files)
        _MANIFEST.append(out.decode("utf-8"))
    return _MANIFEST[0]


def load_agent(link=None, lazy=False):
    """The agent namespace, built the way libfpagent.so builds it: core.py
    and the manifest, then the other files through core's _fp_load -- all
    of them, unless lazy (then each command loads its files on first use,
    as in a target)."""
    link = link or FakeLink()
    files = sorted(glob.glob(os.path.join(AGENT_PY, "*.py")))
    texts = {}
    for f in files:
        with open(f) as fh:
            texts[os.path.basename(f)] = fh.read()
    ns = {"__name__": "_fpagent", "__builtins__": __builtins__,
          "_fp_source": texts.get,
          "_fp_send": link.send, "_fp_recv": link.recv,
          "_fp_cancelled": lambda rid: rid in link.cancelled,
          "_fp_async_exc": _async_exc}
    exec(compile(texts["core.py"], "<fpagent>/core.py", "exec"), ns)
    exec(compile(_manifest(files), "<fpagent>/_manifest.py", "exec"), ns)
    if not lazy:
        for name in sorted(texts):
            ns["_fp_load"](name[:-3])
    ns["_link"] = link
    return ns


def _async_exc(ident, exc):
    import ctypes
    # None is refused, as in libfpagent.so: clearing leaves the interpreter's
    # async-exception signal on (see agent/agent.c)
    if exc is None:
        raise RuntimeError("_fp_async_exc: an exception to raise is required")
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exc))


_next_id = [100]


def run(ns, cmd, args, session=1):
    """Runs one request synchronously; returns (events, last frame) where the
    last frame is ("end", None) or ("error", {code, exit, message})."""
    link = ns["_link"]
    _next_id[0] += 1
    rid = _next_id[0]
    ns["_fp_handle"](session, rid, json.dumps({"cmd": cmd, "args": args}))
    events, last = [], None
    for op, r, payload in link.frames:
        if r != rid:
            continue
        if op == 17:
            events.append(payload)
        elif op == 18:
            last = ("end", None)
        elif op == 19:
            last = ("error", payload)
    return events, last


if __name__ == "__main__":
    ns = load_agent()
    ev, last = run(ns, "hello", {})
    assert last == ("end", None) and ev[0]["event"] == "hello", (ev, last)
    print("ok", ev[0]["python"])
