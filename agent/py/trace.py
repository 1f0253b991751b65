# trace module [class] method [-i MS] [-et MS] [-d N] [-n N] [-f F] [-nm inner]:
# for each call of the method, the tree of the Python and C calls made inside
# it with their cost (instrument.py finds the calls, agent/trace.c times what
# happens inside them).
#
# The C side (see the top of agent/trace.c) follows only the thread running
# a traced call and only while it runs, and folds the calls into a tree as
# they happen; what is left for the end of the call is cheap: the tree is
# pruned (-i or -d) in C and handed over as a list.  In the application's
# thread the hooks only start and stop the C side and decide whether the
# call is kept (-et, -f, -n); naming the nodes and writing to fpd happen in
# the request's own thread, so the application never waits on fpd.
#
# Event sources: PyEval_SetProfile on CPython 3.6-3.11 (per thread, chained
# to the application's own profile function, which is restored exactly), and
# sys.monitoring on 3.12+ under a tool id of our own (the application's
# profilers are other tools and stay untouched).  With sys.monitoring the
# events are enabled for every thread while traced calls run and until none
# has for 0.1 s: the other threads then pay a C callback per call for that
# time.  When no tool id is free there, PyEval_SetProfile is used on 3.12+
# too.
import builtins
import os
import sys
import time

import _thread

TRACE_LIMIT_MAX = 1000000
TRACE_DEPTH_MAX = 1000
TRACE_INTERVAL_DEFAULT_MS = 0.1
# Lines of one tree; the rest is counted.
TRACE_NODES_MAX = 2000
# Traced calls waiting for the request thread; more are dropped (counted).
TRACE_QUEUE_MAX = 64
# How long the end waits for hooks still stopping a trace.
TRACE_SETTLE_S = 2.0
# Frames above a hook in which instrument.py's trampoline or the traced frame
# itself is looked for.
_TRACE_FRAMES_UP = 16
# Tool ids without a conventional owner; instrument.py takes one of them.
_TRACE_MON_TOOLS = (3, 4)
_TRACE_MON_EVENTS = ("PY_START", "PY_RESUME", "PY_THROW", "PY_RETURN", "PY_YIELD",
                     "PY_UNWIND", "CALL", "C_RETURN", "C_RAISE")
_TRACE_CO_ASYNC = 0x80 | 0x100 | 0x200  # coroutine, iterable coroutine, async generator
_TRACE_CO_RESUMABLE = _TRACE_CO_ASYNC | 0x20  # and generator

# The sys.monitoring tool shared by every trace of the process: its id, the
# traces using it, the traced calls running now, whether its events are on
# and since when no traced call runs.  The events go on with a traced call
# and off once none has run for _TRACE_MON_IDLE_S: each switch makes every
# thread re-instrument the code it runs next (tens of us for a traced call's
# code alone), too much to pay per call for a method called back to back,
# while events left on for the whole command would cost every other thread
# a callback per call for as long as the trace waits for calls.
_TRACE_MON_IDLE_S = 0.1
_trace_mon = {"tool": None, "users": 0, "running": 0, "on": False, "idle_since": 0.0}
_trace_mon_lock = _thread.allocate_lock()


def _trace_mon_acquire():
    """Takes our sys.monitoring tool id (once per process); False when no
    id is free."""
    with _trace_mon_lock:
        if _trace_mon["tool"] is None:
            mon = sys.monitoring
            free = [t for t in _TRACE_MON_TOOLS if mon.get_tool(t) is None]
            if not free:
                return False
            tool = free[0]
            mon.use_tool_id(tool, "fpd trace")
            for name, fn in _fp_trace_monitor_callbacks().items():
                mon.register_callback(tool, getattr(mon.events, name), fn)
            _trace_mon["tool"] = tool
        _trace_mon["users"] += 1
        return True


def _trace_mon_release():
    with _trace_mon_lock:
        _trace_mon["users"] -= 1
        if _trace_mon["users"] or _trace_mon["tool"] is None:
            return
        mon = sys.monitoring
        tool = _trace_mon["tool"]
        _trace_mon.update(tool=None, running=0, on=False)
        mon.set_events(tool, 0)
        for name in _TRACE_MON_EVENTS:
            mon.register_callback(tool, getattr(mon.events, name), None)
        mon.free_tool_id(tool)


def _trace_mon_events(delta):
    """A traced call starts (+1) or ends (-1)."""
    with _trace_mon_lock:
        _trace_mon["running"] += delta
        if delta > 0 and not _trace_mon["on"] and _trace_mon["tool"] is not None:
            mon = sys.monitoring
            mask = 0
            for name in _TRACE_MON_EVENTS:
                mask |= getattr(mon.events, name)
            mon.set_events(_trace_mon["tool"], mask)
            _trace_mon["on"] = True
        if not _trace_mon["running"]:
            _trace_mon["idle_since"] = time.monotonic()


def _trace_mon_idle():
    """Turns the events off once no traced call has run for a while (the
    request threads ask every 0.1 s)."""
    with _trace_mon_lock:
        if _trace_mon["on"] and not _trace_mon["running"] and \
                time.monotonic() - _trace_mon["idle_since"] >= _TRACE_MON_IDLE_S:
            sys.monitoring.set_events(_trace_mon["tool"], 0)
            _trace_mon["on"] = False


def _trace_compile(req, text):
    if type(text) is not str:
        raise CommandError("%s: -f takes an expression" % req.cmd, code="usage", exit=2)
    try:
        return compile(text, "<-f>", "eval", dont_inherit=True)
    except SyntaxError as e:
        raise CommandError("%s: -f %s: not a Python expression (%s)" % (req.cmd, text, e.msg),
                           code="bad_expression", exit=2)
    except ValueError as e:  # a NUL byte
        raise CommandError("%s: -f: not a Python expression (%s)" % (req.cmd, e),
                           code="bad_expression", exit=2)


def _trace_number(req, key, option, lo, hi, default, integer):
    v = req.arg(key, default)
    if v is None:
        return None
    ok = type(v) is int if integer else type(v) in (int, float)
    if not ok or not lo <= v <= hi:
        raise CommandError("%s: %s takes %s from %s to %s" % (
            req.cmd, option, "a whole number" if integer else "a number", lo, hi),
            code="usage", exit=2)
    return v


class _TraceHooks(object):
    def __init__(self, req, monitor, interval_ms, depth, entrance_ms, filt, limit):
        self.req = req
        self.monitor = monitor
        self.min_ns = 0 if depth else int(interval_ms * 1e6)
        self.depth = depth or 0
        self.entrance_ms = entrance_ms
        self.filt = filt
        self.filt_code = None if filt is None else _trace_compile(req, filt)
        # A filter that needs neither the result nor the cost is decided
        # before the call, and a call it rejects is not traced at all.
        names = set(self.filt_code.co_names) if self.filt_code is not None else set()
        self.filter_early = not names & set(("return_obj", "cost"))
        self.limit = limit
        self.codes, self.tramps = {}, {}
        self.kept = 0  # calls taken toward -n (under the GIL)
        self.drops = 0
        self.filter_errors = 0
        self.queue = []
        self.inflight = {}
        self.active = {}  # id(call) -> trace handle, of calls being traced
        self.closed = False
        self.sent = 0
        self.wake = _thread.allocate_lock()
        self.wake.acquire()

    def bind(self, inst):
        """Learns the code objects a traced call runs, by id: instrument.py's
        trampolines (3.6-3.11) lead to the original code; with sys.monitoring
        the hook runs inside the original's frame.  Until then no call is
        traced."""
        codes, tramps = {}, {}
        for p in inst._points:
            codes[id(p.code)] = p.code
            tramp = getattr(p, "tramp", None)
            if tramp is not None:
                tramps[id(tramp)] = p.code
        self.codes, self.tramps = codes, tramps

    # ---- in the application's thread ----

    def _anchor(self):
        """(code, frame) of the traced call: frame is its running frame when
        the hook runs inside it (sys.monitoring), else None."""
        f = sys._getframe(2)
        for _ in range(_TRACE_FRAMES_UP):
            if f is None:
                break
            code = f.f_code
            if self.codes.get(id(code)) is code:
                return code, f
            orig = self.tramps.get(id(code))
            if orig is not None:
                return orig, None
            f = f.f_back
        return None, None

    def _passes(self, call, ret):
        scope = {"__builtins__": builtins, "target": call.target, "args": call.args,
                 "kwargs": call.kwargs, "return_obj": ret, "cost": call.cost_ms}
        try:
            return bool(eval(self.filt_code, scope))
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            self.filter_errors += 1
            if self.filter_errors == 1:
                self.queue.append({"event": "filter_error", "filter": self.filt,
                                   "message": exc_text(e)})
                self._wake()
            return False

    def on_enter(self, call):
        if self.closed or self.kept >= self.limit:
            return
        if self.filt_code is not None and self.filter_early and not self._passes(call, None):
            return
        code, frame = self._anchor()
        if code is None:
            return
        if self.monitor:
            _trace_mon_events(1)
        # instrument.py's trampolines (3.6-3.11; its registry of them) are
        # seen through: a call of an instrumented function inside the traced
        # one shows as that function.
        try:
            h = _fp_trace_start(code, frame, self.monitor, self.depth,
                                None if self.monitor else sys.getprofile(),
                                None if self.monitor else tuple(_instr_tramp_codes.values()))
        except BaseException:
            if self.monitor:
                _trace_mon_events(-1)
            raise
        if h is None:  # a call inside another traced call: it is in that tree
            if self.monitor:
                _trace_mon_events(-1)
            return
        call.data = h
        self.active[id(call)] = h
        # The end may have come meanwhile (another thread ran): then nobody
        # calls on_exit, and whoever takes the handle out of active lets go.
        if self.closed and self.active.pop(id(call), None) is not None:
            self._release(h)

    def on_suspend(self, call):
        if id(call) in self.active:
            _fp_trace_pause(call.data)

    def on_resume(self, call):
        if id(call) in self.active:
            _fp_trace_resume(call.data, self.monitor)

    def on_exit(self, call, ret, exc):
        h = self.active.pop(id(call), None)
        if h is None:
            return
        ident = call.thread
        self.inflight[ident] = True
        try:
            if _fp_trace_stop(h):
                self._keep(call, ret, h)
        finally:
            self._release(h)
            del self.inflight[ident]

    def _release(self, h):
        """Lets go of trace h (see _fp_trace_release in trace.c)."""
        _fp_trace_release(h)
        if self.monitor:
            _trace_mon_events(-1)

    def release(self):
        """Lets go of the traces of calls still running once the
        instrumentation is gone (their on_exit never comes)."""
        for key in list(self.active):
            h = self.active.pop(key, None)
            if h is not None:
                self._release(h)

    def _keep(self, call, ret, h):
        """Collects the tree of a call that passes -et, -f and -n."""
        keep = not self.closed and self.kept < self.limit
        if keep and self.entrance_ms is not None and call.cost_ms < self.entrance_ms:
            keep = False
        if keep and self.filt_code is not None and not self.filter_early:
            keep = self._passes(call, ret)
        if keep and len(self.queue) >= TRACE_QUEUE_MAX:
            self.drops += 1
            keep = False
        if not keep:
            return
        self.kept += 1
        tree = _fp_trace_collect(h, self.min_ns, self.depth, TRACE_NODES_MAX)
        self.queue.append({"event": "trace", "tree": tree, "method": call.label,
                           "ts": time.time() - call.cost_ms / 1000.0,
                           "thread": call.thread_name, "ident": call.thread,
                           "daemon": call.daemon, "cost_ms": call.cost_ms})
        self._wake()

    def _wake(self):
        try:
            self.wake.release()
        except RuntimeError:
            pass  # already awake

    # ---- in the request's thread ----

    def flush(self, names):
        while self.queue and self.sent < self.limit:
            rec = self.queue.pop(0)
            kind = rec.pop("event")
            if kind == "trace":
                rec.update(_trace_tree_fields(rec.pop("tree"), names))
                # threading knows no thread it did not start, nor the main
                # thread of a program that never imported it.
                if rec["thread"] == "Thread-%d" % rec["ident"] and rec["tid"] == os.getpid():
                    rec["thread"] = "MainThread"
                rec["timestamp"] = _trace_timestamp(rec.pop("ts"))
                self.sent += 1
            self.req.emit(kind, **rec)

    def run(self):
        """Sends traced calls until the limit or a cancel."""
        names = _TraceNames()
        reported = 0
        while self.sent < self.limit and not self.req.cancelled():
            self.wake.acquire(True, 0.1)
            if self.monitor:
                _trace_mon_idle()
            self.flush(names)
            drops = self.drops
            if drops > reported:
                self.req.emit("dropped", count=drops - reported)
                reported = drops

    def settle(self):
        deadline = time.monotonic() + TRACE_SETTLE_S
        while self.inflight and time.monotonic() < deadline:
            time.sleep(0.005)


def _trace_timestamp(t):
    return "%s.%03d" % (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)),
                        int(t * 1000) % 1000)


class _TraceNames(object):
    """Names, files and lines of the nodes, computed once per function for
    the whole command: (name, file, line)."""

    def __init__(self):
        self.cache = {}
        self.roots = sorted(set(p for p in sys.path if type(p) is str and len(p) > 1),
                            key=len, reverse=True)

    def short(self, path):
        """path relative to the sys.path entry it is under (the module's
        import path), as tracebacks of installed packages read best."""
        for root in self.roots:
            if path.startswith(root) and path[len(root):len(root) + 1] == "/":
                return path[len(root) + 1:]
        return path

    def code(self, code):
        got = self.cache.get(id(code))
        if got is None or got[0] is not code:
            name = getattr(code, "co_qualname", code.co_name)
            got = (code, (name, self.short(code.co_filename), code.co_firstlineno))
            self.cache[id(code)] = got
        return got[1]

    def cfunc(self, owner, name):
        if owner is None or (type(owner) is str and owner == "builtins"):
            return name
        if type(owner) is str:
            return "%s.%s" % (owner, name)
        if is_class(owner):
            label = class_label(owner)
            if label.startswith("builtins."):
                label = label[len("builtins."):]
            return "%s.%s" % (label, name)
        return name


def _trace_tree_fields(tree, names):
    nodes, paths, dropped, hidden, cut, interrupted, tid = tree
    out = []
    for depth, kind, ref, name, count, total_ns in nodes:
        node = {"depth": depth, "ms": total_ns / 1e6, "count": count}
        if kind == 0:
            node["name"], node["file"], node["line"] = names.code(ref)
            if ref.co_flags & _TRACE_CO_RESUMABLE:
                node["resumable"] = True
        elif kind == 1:
            node["name"] = names.cfunc(ref, name if type(name) is str else "?")
            node["file"] = "<built-in>"
        else:
            node["name"] = "[await]" if nodes[0][2].co_flags & _TRACE_CO_ASYNC else "[yield]"
        out.append(node)
    return {"nodes": out, "paths": paths, "dropped": dropped, "hidden": hidden, "cut": cut,
            "interrupted": bool(interrupted), "tid": tid}


def _trace_source(req):
    """Whether sys.monitoring (True) or PyEval_SetProfile (False) brings the
    events here; a CommandError when neither can."""
    if sys.version_info >= (3, 12) and _trace_mon_acquire():
        return True
    why = _fp_trace_selftest()
    if why is not None:
        raise CommandError("%s: not supported on Python %s: %s" % (
            req.cmd, sys.version.split()[0], why), code="unsupported")
    return False


@command("trace")
def _trace(req):
    module, cls, method = locate_args(req, "module [class] method")
    limit = _trace_number(req, "limits", "-n", 1, TRACE_LIMIT_MAX, 10, True)
    depth = _trace_number(req, "depth", "-d", 1, TRACE_DEPTH_MAX, None, True)
    interval = _trace_number(req, "interval", "-i", 0, 1e9, TRACE_INTERVAL_DEFAULT_MS, False)
    entrance = _trace_number(req, "entrance_time", "-et", 0, 1e9, None, False)
    nested = req.arg("nested")
    if nested is not None and (type(nested) is not str or not nested):
        raise CommandError("%s: -nm takes a function name" % req.cmd, code="usage", exit=2)
    filt = req.arg("filter")
    if filt is not None:
        _trace_compile(req, filt)
    monitor = _trace_source(req)
    try:
        hooks = _TraceHooks(req, monitor, interval, depth, entrance, filt, limit)
        inst = instrument(req, module, cls, method, nested, hooks)
        try:
            hooks.bind(inst)
            req.emit("tracing", method=inst.label, limit=limit, interval=interval, depth=depth,
                     entrance_time=entrance)
            hooks.run()
        finally:
            hooks.closed = True
            inst.remove()
            hooks.settle()
            hooks.release()
    finally:
        if monitor:
            _trace_mon_release()
