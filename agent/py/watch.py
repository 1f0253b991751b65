# watch module [class] method [--expr E] [-f F] [-e] [-x N] [-n N] [-r] [-v]
# [-nm inner]: one record per call of the method (instrument.py observes it).
#
# The hook, in the application's thread, does only what cannot wait: the
# filter, the expression and its rendering (the values may change after the
# call).  The record then waits in a queue for the request's own thread,
# which formats the traceback and writes to fpd: an application thread never
# blocks on fpd, however slowly fpctl reads.  A full queue drops records
# (counted, reported) rather than slowing the application down.
import builtins
import itertools
import time

import _thread

WATCH_DEFAULT_EXPR = "args,kwargs"
WATCH_LIMIT_MAX = 1000000
# Records waiting for the request thread; more are dropped.
WATCH_QUEUE_MAX = 256
# How long the end waits for hooks still rendering a record.
WATCH_SETTLE_S = 2.0
# The request thread sends what has queued up every WATCH_SEND_S, or as soon
# as WATCH_SEND_BATCH records wait (or the last one the limit allows): a
# wake-up per record would cost the process more than the record itself.
WATCH_SEND_S = 0.05
WATCH_SEND_BATCH = 32


def _watch_compile(req, option, text):
    if type(text) is not str:
        raise CommandError("%s: %s takes an expression" % (req.cmd, option), code="usage",
                           exit=2)
    try:
        return compile(text, "<%s>" % option, "eval", dont_inherit=True)
    except SyntaxError as e:
        raise CommandError("%s: %s %s: not a Python expression (%s)" % (
            req.cmd, option, text, e.msg), code="bad_expression", exit=2)
    except ValueError as e:  # a NUL byte
        raise CommandError("%s: %s: not a Python expression (%s)" % (req.cmd, option, e),
                           code="bad_expression", exit=2)


def _watch_exc_text(e):
    """`Type: message` as Python prints it for builtin exceptions (KeyError
    quotes its key), exc_text's safe form for the application's own."""
    t = type(e)
    if _render_type_parts(t)[0] == "builtins":
        try:
            msg = t.__str__(e)
            return "%s: %s" % (t.__name__, msg) if msg else t.__name__
        except Exception:
            pass
    return exc_text(e)


def _watch_eval(code, scope):
    """(value, None) or (None, error text): the user's expression may raise
    anything, exit() included; only Ctrl-C of the application goes on."""
    try:
        return eval(code, scope), None
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        return None, _watch_exc_text(e)


class _WatchHooks(object):
    def __init__(self, req, opts, expr, filt, only_exc, limit):
        self.req = req
        self.opts = opts
        self.expr = expr
        self.expr_code = _watch_compile(req, "--expr", expr)
        self.filt = filt
        self.filt_code = None if filt is None else _watch_compile(req, "-f", filt)
        self.only_exc = only_exc
        self.limit = limit
        self.slots = itertools.count()
        self.drops = 0  # under drop_lock
        self.drop_lock = _thread.allocate_lock()
        self.queue = []  # list.append and pop(0) are atomic under the GIL
        self.inflight = {}  # thread ident -> True while its hook builds a record
        self.closed = False
        self.sent = 0
        self.wake = _thread.allocate_lock()
        self.wake.acquire()

    def on_exit(self, call, ret, exc):
        if self.closed or (self.only_exc and exc is None):
            return
        ident = call.thread
        self.inflight[ident] = True
        try:
            self._record(call, ret, exc)
        finally:
            del self.inflight[ident]

    def _record(self, call, ret, exc):
        scope = {"__builtins__": builtins, "target": call.target, "return_obj": ret,
                 "cost": call.cost_ms, "args": call.args, "kwargs": call.kwargs}
        filter_error = None
        if self.filt_code is not None:
            ok, filter_error = _watch_eval(self.filt_code, scope)
            if filter_error is None and not _watch_truth(ok):
                return
        if len(self.queue) >= WATCH_QUEUE_MAX:
            with self.drop_lock:
                self.drops += 1
            return
        slot = next(self.slots)
        if slot >= self.limit:
            return
        rec = {"method": call.label, "cost_ms": call.cost_ms, "is_exp": exc is not None,
               "thread": call.thread_name, "ident": call.thread,
               "ts": time.time() - call.cost_ms / 1000.0}
        if filter_error is not None:
            rec.update(filter=self.filt, filter_error=filter_error)
        else:
            value, err = _watch_eval(self.expr_code, scope)
            rec["expr"] = self.expr
            if err is not None:
                rec["expr_error"] = err
            else:
                try:
                    rec.update(render_fields(self.req, value, self.expr, self.opts))
                except (RenderCancelled, RenderTimeout):
                    return
        if exc is not None:
            # The traceback from the watched frame down, as it is now: it
            # grows (new head entries) while the exception travels on.
            rec["_exc"] = (exc, skip_instrument_frames(exc.__traceback__))
        self.queue.append(rec)
        due = len(self.queue) >= WATCH_SEND_BATCH or slot + 1 == self.limit
        if due and self.wake.locked():
            try:
                self.wake.release()
            except RuntimeError:
                pass  # another thread woke it meanwhile

    def flush(self):
        while self.queue and self.sent < self.limit:
            rec = self.queue.pop(0)
            exc = rec.pop("_exc", None)
            if exc is not None:
                rec["exception"] = _watch_traceback(*exc)
            self.req.emit("record", **rec)
            self.sent += 1

    def run(self):
        """Sends records until the limit or a cancel."""
        reported = 0
        while self.sent < self.limit and not self.req.cancelled():
            self.wake.acquire(True, WATCH_SEND_S)
            self.flush()
            drops = self.drops
            if drops > reported:
                self.req.emit("dropped", count=drops - reported)
                reported = drops

    def settle(self):
        """Waits (a while) for hooks still building records once closed."""
        deadline = time.monotonic() + WATCH_SETTLE_S
        while self.inflight and time.monotonic() < deadline:
            time.sleep(0.005)


def _watch_truth(value):
    try:
        return bool(value)
    except Exception:
        return False


def _watch_traceback(exc, tb):
    """The traceback text of a watched call's exception, without running the
    application's code (its __str__): frames as traceback prints them."""
    import traceback
    frames = "".join(traceback.format_list(traceback.extract_tb(tb)))
    return "Traceback (most recent call last):\n%s%s" % (frames, _watch_exc_text(exc))


@command("watch")
def _watch(req):
    module, cls, method = locate_args(req, "module [class] method")
    opts = render_options(req)
    limit = req.arg("limits", 10)
    if type(limit) is not int or not 1 <= limit <= WATCH_LIMIT_MAX:
        raise CommandError("%s: -n takes a whole number from 1 to %d" % (
            req.cmd, WATCH_LIMIT_MAX), code="usage", exit=2)
    nested = req.arg("nested")
    if nested is not None and (type(nested) is not str or not nested):
        raise CommandError("%s: -nm takes a function name" % req.cmd, code="usage", exit=2)
    hooks = _WatchHooks(req, opts, req.arg("expr", WATCH_DEFAULT_EXPR), req.arg("filter"),
                        req.arg("exception", False) is True, limit)
    inst = instrument(req, module, cls, method, nested, hooks)
    try:
        req.emit("watching", method=inst.label, limit=limit)
        hooks.run()
    finally:
        hooks.closed = True
        inst.remove()
        hooks.settle()
