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


def load_agent(link=None):
    """The agent namespace, executed the way libfpagent.so does: core.py
    first, then the other files in name order, in one private dict."""
    link = link or FakeLink()
    ns = {"__name__": "_fpagent", "__builtins__": __builtins__,
          "_fp_send": link.send, "_fp_recv": link.recv,
          "_fp_cancelled": lambda rid: rid in link.cancelled,
          "_fp_async_exc": _async_exc}
    files = sorted(glob.glob(os.path.join(AGENT_PY, "*.py")))
    files.sort(key=lambda f: (os.path.basename(f) != "core.py", os.path.basename(f)))
    for f in files:
        with open(f) as fh:
            code = compile(fh.read(), "<fpagent>/" + os.path.basename(f), "exec")
        exec(code, ns)
    ns["_link"] = link
    return ns


def _async_exc(ident, exc):
    import ctypes
    # None clears a pending exception, as in libfpagent.so (NULL to the C API)
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), None if exc is None else ctypes.py_object(exc))


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
