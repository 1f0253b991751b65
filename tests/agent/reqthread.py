"""A helper request run on a thread of its own, as libfpagent.so runs each
request, so that a check can send it input (console), cancel it, and watch
its events while it runs.  Used by the checks_*.py files (CPython 3.6+)."""
import json
import threading
import time

OP_EVENT, OP_END, OP_ERROR = 17, 18, 19
_ids = [10000]


class ReqThread(object):
    def __init__(self, ns, cmd, args=None, session=1):
        self.link = ns["_link"]
        _ids[0] += 1
        self.rid = _ids[0]
        payload = json.dumps({"cmd": cmd, "args": args or {}})
        self.thread = threading.Thread(target=ns["_fp_handle"], args=(session, self.rid, payload))
        self.thread.daemon = True
        self.thread.start()

    def frames(self):
        with self.link.cond:
            return [(op, p) for op, r, p in self.link.frames if r == self.rid]

    def events(self, name=None):
        return [p for op, p in self.frames()
                if op == OP_EVENT and (name is None or p.get("event") == name)]

    def last(self):
        """("end", None), ("error", payload) or None while it runs."""
        for op, p in self.frames():
            if op == OP_END:
                return ("end", None)
            if op == OP_ERROR:
                return ("error", p)
        return None

    def wait_for(self, pred, timeout=30, what="an event"):
        """Polls pred(events) until true; returns its value."""
        deadline = time.time() + timeout
        while True:
            got = pred(self.events())
            if got:
                return got
            if time.time() > deadline:
                raise AssertionError("timed out after %ss waiting for %s; events: %r; last: %r"
                                     % (timeout, what, self.events(), self.last()))
            time.sleep(0.005)

    def send(self, obj):
        self.link.push_input(self.rid, obj)

    def cancel(self):
        self.link.cancel(self.rid)

    def join(self, timeout=60):
        """Waits for the request to end; returns (events, last)."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "request %d still runs after %ss; events: %r" % (
            self.rid, timeout, self.events())
        return self.events(), self.last()
