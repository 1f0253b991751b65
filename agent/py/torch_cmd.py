# torch profile module [class] method [-nm inner]: the next call of the
# method runs under torch.profiler; torch memory -s: a CUDA memory snapshot;
# torch memory -r module [class] method: allocation history recorded during
# the next call.
#
# torch is only ever taken from sys.modules: importing it into a process
# that does not use it would load hundreds of MB and start its threads, the
# opposite of "nothing changed in the target".
#
# The profiler starts and stops in the application's thread (on_enter and
# on_exit of that one call: torch's profiler state belongs to the thread
# that enabled it); everything slow (the export, reading it, sending it) is
# done by the request's own thread afterwards.  The output travels as base64
# events of at most TORCH_CHUNK bytes, written by fpctl (SPEC §5): the
# helper keeps a temporary file only for as long as export_chrome_trace
# needs one.
import base64
import inspect
import os
import pickle
import sys
import tempfile
import time

import _thread

# Raw bytes per "chunk" event: 1 MiB once in base64, far below a frame's cap.
TORCH_CHUNK = 768 * 1024
# How long a cancelled request waits for a call already under the profiler
# to end by itself before stopping the profiler from the helper's thread.
TORCH_CANCEL_WAIT_S = 5.0
# Matches the 2.1+ default: enough for a call's allocations, bounded memory.
TORCH_MEMORY_MAX_ENTRIES = 100000


def _torch_loaded(req):
    torch = sys.modules.get("torch")
    # A half-imported torch (another thread inside `import torch`) has no
    # profiler or cuda attribute yet: as good as not loaded.
    if torch is None or getattr(torch, "cuda", None) is None:
        raise CommandError("torch is not loaded in process %d; torch commands work on "
                           "processes that use PyTorch" % os.getpid(), code="no_torch")
    return torch


def _torch_need_cuda(req, torch):
    try:
        ok = torch.cuda.is_available()
    except Exception:
        ok = False
    if not ok:
        raise CommandError("%s: CUDA is not available in process %d (torch %s); memory "
                           "snapshots and records are of CUDA memory"
                           % (req.cmd, os.getpid(), getattr(torch, "__version__", "?")),
                           code="no_cuda")


def _torch_history_fn(torch):
    mem = getattr(torch.cuda, "memory", None)
    fn = getattr(mem, "_record_memory_history", None)
    snap = getattr(mem, "_snapshot", None)
    if fn is None or snap is None:
        return None, None
    return fn, snap


def _torch_history_args(fn, on):
    """The arguments that turn recording on or off for the installed torch:
    2.1+ takes enabled="all"/None, 2.0 enabled=True/False with
    trace_alloc_* options, 1.13 only enabled."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    if "context" in params or "stacks" in params:
        if on:
            return (), {"enabled": "all", "max_entries": TORCH_MEMORY_MAX_ENTRIES}
        return (), {"enabled": None}
    if "trace_alloc_max_entries" in params:
        if on:
            return (), {"enabled": True, "trace_alloc_max_entries": TORCH_MEMORY_MAX_ENTRIES,
                        "trace_alloc_record_context": True}
        return (), {"enabled": False}
    return (on,), {}


class _TorchOnce(object):
    """Hooks that run start() at the entry of the first call to begin and
    stop() at its exit: the other calls, before and after, run untouched."""

    def __init__(self, start, stop):
        self.start = start
        self.stop = stop
        self.lock = _thread.allocate_lock()
        self.call = None
        self.closed = False
        self.finished = False
        self.error = None
        self.result = None
        self.exc = None
        self.cost_ms = None
        self.done = _thread.allocate_lock()
        self.done.acquire()

    def on_enter(self, call):
        with self.lock:
            if self.closed or self.call is not None:
                return
            self.call = call
        try:
            self.start()
        except Exception as e:
            self.error = ("start", e)
            self._finish()

    def on_exit(self, call, ret, exc):
        if call is not self.call or self.finished:
            return
        self.exc = exc
        self.cost_ms = call.cost_ms
        self._stop("stop")

    def _stop(self, where):
        try:
            self.result = self.stop()
        except Exception as e:
            self.error = (where, e)
        self._finish()

    def _finish(self):
        with self.lock:
            if self.finished:
                return
            self.finished = True
        self.done.release()

    def wait(self, req):
        """True once the call ended (or starting failed); False when the
        request was cancelled first.  A call still under way then gets its
        stop() here, after a grace period, so that nothing keeps running."""
        while not self.done.acquire(True, 0.1):
            if not req.cancelled():
                continue
            with self.lock:
                self.closed = True
                started = self.call is not None
            if not started:
                return False
            if self.done.acquire(True, TORCH_CANCEL_WAIT_S):
                return False
            with self.lock:
                if self.finished:
                    return False
            self._stop("stop after cancel")
            return False
        return True


def _torch_send(req, data, path=None):
    """Sends data (bytes), or the file at path, as chunk events; returns the
    byte count."""
    total = 0
    f = open(path, "rb") if path is not None else None
    try:
        pos = 0
        while True:
            if f is not None:
                piece = f.read(TORCH_CHUNK)
            else:
                piece = data[pos:pos + TORCH_CHUNK]
                pos += TORCH_CHUNK
            if not piece:
                return total
            if req.cancelled():
                raise CommandError("%s: cancelled while sending the output" % req.cmd,
                                   code="cancelled")
            req.emit("chunk", data=base64.b64encode(piece).decode("ascii"))
            total += len(piece)
    finally:
        if f is not None:
            f.close()


def _torch_call_fields(hooks):
    fields = {"cost_ms": hooks.cost_ms}
    if hooks.exc is not None:
        fields["exception"] = "%s: %s" % (type(hooks.exc).__name__, hooks.exc)
    return fields


def _torch_next_call(req, start, stop):
    """Instruments the method of the request, runs start/stop around its
    next call, removes the instrumentation; returns the hooks, or None when
    cancelled before the call ended."""
    module, cls, method = locate_args(req, "module [class] method")
    nested = req.arg("nested")
    if nested is not None and (type(nested) is not str or not nested):
        raise CommandError("%s: -nm takes a function name" % req.cmd, code="usage", exit=2)
    hooks = _TorchOnce(start, stop)
    inst = instrument(req, module, cls, method, nested, hooks)
    try:
        req.emit("waiting", method=inst.label)
        ended = hooks.wait(req)
    finally:
        inst.remove()
    if hooks.error is not None:
        where, e = hooks.error
        raise CommandError("%s: torch failed to %s: %s: %s" % (req.cmd, where,
                                                             type(e).__name__, e),
                           code="torch_error")
    return hooks if ended else None


def _torch_profile(req, torch):
    profiler = getattr(torch, "profiler", None)
    if profiler is None or getattr(profiler, "profile", None) is None:
        raise CommandError("%s: torch %s in process %d has no torch.profiler" % (
            req.cmd, getattr(torch, "__version__", "?"), os.getpid()), code="no_profiler")
    acts = [profiler.ProfilerActivity.CPU]
    try:
        cuda = torch.cuda.is_available()
    except Exception:
        cuda = False
    if cuda:
        acts.append(profiler.ProfilerActivity.CUDA)
    prof = profiler.profile(activities=acts)
    hooks = _torch_next_call(req, prof.start, prof.stop)
    if hooks is None:
        return
    fd, path = tempfile.mkstemp(prefix="fpd-torch-", suffix=".json")
    os.close(fd)
    try:
        t0 = time.time()
        prof.export_chrome_trace(path)
        export_ms = (time.time() - t0) * 1000.0
        size = _torch_send(req, None, path)
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    req.emit("done", what="profile", bytes=size, method=hooks.call.label,
             cuda=cuda, export_ms=export_ms, **_torch_call_fields(hooks))


def _torch_snapshot(req, torch):
    _torch_need_cuda(req, torch)
    snap = _torch_history_fn(torch)[1]
    if snap is None:
        raise CommandError("%s: torch %s has no torch.cuda.memory._snapshot" % (
            req.cmd, getattr(torch, "__version__", "?")), code="no_snapshot")
    if not torch.cuda.is_initialized():
        raise CommandError("%s: process %d has not used CUDA yet: there is no CUDA memory "
                           "to snapshot" % (req.cmd, os.getpid()), code="no_cuda")
    data = pickle.dumps(snap())
    size = _torch_send(req, data)
    req.emit("done", what="snapshot", bytes=size)


def _torch_record(req, torch):
    _torch_need_cuda(req, torch)
    fn, snap = _torch_history_fn(torch)
    if fn is None:
        raise CommandError("%s: torch %s cannot record CUDA memory history" % (
            req.cmd, getattr(torch, "__version__", "?")), code="no_snapshot")
    on_a, on_k = _torch_history_args(fn, True)
    off_a, off_k = _torch_history_args(fn, False)

    def stop():
        # The snapshot before turning recording off: 2.1+ drops the
        # history with it.
        try:
            return snap()
        finally:
            fn(*off_a, **off_k)

    hooks = _torch_next_call(req, lambda: fn(*on_a, **on_k), stop)
    if hooks is None:
        return
    size = _torch_send(req, pickle.dumps(hooks.result))
    req.emit("done", what="record", bytes=size, method=hooks.call.label,
             **_torch_call_fields(hooks))


@command("torch")
def _torch(req):
    argv = req.arg("argv", [])
    action = req.arg("action")
    if action not in ("profile", "snapshot", "record") or type(argv) is not list:
        raise CommandError("torch: usage: torch profile|memory ...", code="usage", exit=2)
    req.cmd = "torch profile" if action == "profile" else "torch memory"
    torch = _torch_loaded(req)
    if action == "profile":
        _torch_profile(req, torch)
    elif action == "snapshot":
        _torch_snapshot(req, torch)
    else:
        _torch_record(req, torch)
