# tt, the time tunnel: calls of one method recorded under indices from
# 1000 (tt -t), listed (-l), shown (-i), replayed (-i IDX -p) and deleted
# (-d, -da).
#
# The store belongs to the helper, not to a session: it lives as long as
# the process, so records taken by one fpctl session are there for the
# next (instrumentation ends with its session, records do not).  It is
# capped by count and by an estimate of the bytes its snapshots hold,
# oldest records dropped first.
#
# A record never holds a live reference to the application's data: the
# target, the arguments (at entry, before the body can change them) and
# the return value or exception (at exit) are deep-copied one by one, so
# that a later mutation does not rewrite history.  What deepcopy refuses
# (locks, sockets, generators...) or what is too big to copy within the
# budget is kept as text rendered at the call, marked as such.  The
# target's live object is remembered only through a weak reference, for
# replay.
#
# Application threads only snapshot and queue a finished record (no lock:
# a lock taken there could be re-entered by a __del__ or a signal handler
# calling the recorded method); the helper thread of the tt -t request
# numbers records, stores them and streams their rows.
import _thread
import builtins
import copy as _tt_copy
import gc
import sys
import time
import types
import weakref
from collections import OrderedDict as _TTOrderedDict
from collections import deque as _tt_deque
from itertools import count as _tt_count

TT_FIRST_INDEX = 1000
TT_LIMIT_DEFAULT = 50
TT_MAX_RECORDS = 1000
TT_MAX_BYTES = 64 << 20
# Per record: what a snapshot may cost the calling thread.  The graph of
# each value is walked first (gc.get_referents, sizes by sys.getsizeof);
# only one within budget is deep-copied, else its text is kept.
TT_SNAP_OBJECTS = 20000
TT_SNAP_BYTES = 4 << 20
TT_SNAP_WALK_S = 0.02
TT_TEXT_S = 0.01  # rendering the text of a value that is not copied
TT_TEXT_CHARS = 4096
TT_TRACEBACK_CHARS = 16384
TT_RECORD_OVERHEAD = 512  # the record's own objects, in the byte estimate
_TT_POLL_S = 0.05  # how often tt -t streams what the calls queued

# Values deepcopy shares rather than copies: neither walked nor counted.
_TT_SHARED = (type(None), bool, type(Ellipsis), type(NotImplemented), types.FunctionType,
              types.BuiltinFunctionType, types.CodeType, types.ModuleType, weakref.ref,
              property)
# Values whose graph is not worth walking: deepcopy refuses them, or only
# their own __deepcopy__ knows what copying them means.
_TT_OPAQUE = (types.FrameType, types.GeneratorType, types.CoroutineType,
              types.AsyncGeneratorType, types.TracebackType)
_TT_CONTAINERS = (list, tuple, dict, set, frozenset)


class _TTText(object):
    """A value kept as its text at call time (the value itself is not
    kept): deepcopy refused it, or it was over the snapshot budget."""
    __slots__ = ("type_label", "text", "reason")

    def __init__(self, type_label, text, reason):
        self.type_label = type_label
        self.text = text
        self.reason = reason

    def __repr__(self):
        return "<not copied (%s): %s>" % (self.reason, self.text)


class _TTSnap(object):
    """The budget of one record's snapshots, shared by its values; memo
    and seen are per phase (entry, exit): a value returned at exit must be
    copied as it is then, not served from the entry's copies."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.objects = 0
        self.bytes = 0
        self.notes = []  # (path, why) of every value kept as text
        self.phase()

    def phase(self):
        self.memo = {}
        self.seen = set()
        self.deadline = time.monotonic() + TT_SNAP_WALK_S


def _tt_len(obj):
    t = type(obj)  # not isinstance: that may ask obj for its __class__
    for base in _TT_CONTAINERS:
        if issubclass(t, base):
            return base.__len__(obj)
    return 0


def _tt_walk(snap, obj):
    """Charges obj's graph (what deepcopy would copy) to snap's budget;
    False, charging nothing, once over it.  Objects already charged in
    this phase are free: values that share parts pay for them once."""
    new = set()
    objects, nbytes = snap.objects, snap.bytes
    stack = [obj]
    while stack:
        o = stack.pop()
        t = type(o)
        if id(o) in snap.seen or id(o) in new or t in _TT_SHARED or issubclass(t, type):
            continue
        new.add(id(o))
        objects += 1
        try:
            nbytes += sys.getsizeof(o, 64)
        except Exception:  # a __sizeof__ of the application's that raises
            nbytes += 64
        # A container is sized before gc.get_referents lists it: that one C
        # call on millions of items would hold the GIL for long.
        if objects + _tt_len(o) > TT_SNAP_OBJECTS or nbytes > snap.max_bytes:
            return False
        if objects & 255 == 0 and time.monotonic() > snap.deadline:
            return False
        if t in _TT_OPAQUE or t in (str, bytes, int, float, complex):
            continue
        stack.extend(gc.get_referents(o))
    snap.seen |= new
    snap.objects, snap.bytes = objects, nbytes
    return True


def _tt_text(obj, reason):
    """obj as the text a record keeps instead of it, rendered without the
    application's code (render.py) within a short time budget."""
    deadline = time.monotonic() + TT_TEXT_S
    text = render(obj, 1, False, False, lambda: time.monotonic() > deadline)
    text = text.replace("<cancelled>", "<text cut: time budget>")
    if len(text) > TT_TEXT_CHARS:
        text = "%s...(%d more chars)" % (text[:TT_TEXT_CHARS], len(text) - TT_TEXT_CHARS)
    return _TTText(type_name(obj), text, reason)


def _tt_as_text(snap, obj, path, why):
    snap.notes.append((path, why))
    kept = _tt_text(obj, why)
    snap.bytes += sys.getsizeof(kept.text) + 64
    return kept


def _tt_snapshot(snap, obj, path):
    """A deep copy of obj within snap's budget; else, for a list, tuple or
    dict, a copy of it whose items are snapshots one by one; else obj's
    text.  Every value kept as text is noted with its path."""
    if not _tt_walk(snap, obj):
        return _tt_as_text(snap, obj, path, "over the snapshot budget (%d objects, %d KiB, "
                           "%g ms)" % (TT_SNAP_OBJECTS, snap.max_bytes >> 10,
                                       TT_SNAP_WALK_S * 1000))
    saved = dict(snap.memo)
    try:
        return _tt_copy.deepcopy(obj, snap.memo)
    except Exception as e:
        # A failed deepcopy leaves half-built copies in the memo.
        snap.memo.clear()
        snap.memo.update(saved)
        why = "not copyable: %s" % exc_text(e)
    t = type(obj)
    if t is list or t is tuple:
        items = [_tt_snapshot(snap, v, "%s[%d]" % (path, i)) for i, v in enumerate(obj)]
        return items if t is list else tuple(items)
    if t is dict:
        return dict((_tt_snapshot(snap, k, "%s key" % path),
                     _tt_snapshot(snap, v, "%s[%s]" % (path, _tt_key_text(k))))
                    for k, v in list(dict.items(obj)))
    return _tt_as_text(snap, obj, path, why)


def _tt_key_text(k):
    """A dict key in a path, without running the application's __repr__."""
    return repr(k) if type(k) in (str, int, float, bool, bytes) else "<%s>" % type_name(k)


def _tt_is_class(obj):
    return issubclass(type(obj), type)  # isinstance may ask obj for its __class__


def _tt_weak(obj):
    try:
        return weakref.ref(obj)
    except TypeError:
        return None


class _TTRecord(object):
    __slots__ = ("index", "time", "cost_ms", "is_ret", "is_exp", "module", "qualname",
                 "method", "cls", "nested", "is_async", "thread", "thread_id", "daemon",
                 "target", "target_ref", "has_target", "args", "kwargs", "ret", "exc",
                 "traceback", "notes", "size", "replay_of")

    def label(self):
        return "%s.%s" % (self.module, self.qualname)

    def row(self):
        return {"index": self.index, "timestamp": _tt_timestamp(self.time),
                "cost_ms": round(self.cost_ms, 4), "is_ret": self.is_ret,
                "is_exp": self.is_exp, "module": self.module, "method": self.qualname,
                "thread": self.thread, "replay_of": self.replay_of}


def _tt_timestamp(t):
    return "%s.%03d" % (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)),
                        int(t * 1000) % 1000)


def _tt_qualname(cls, method, nested):
    qual = "%s.%s" % (cls, method) if cls else method
    return "%s.<locals>.%s" % (qual, nested) if nested else qual


def _tt_entry(snap, rec, target, has_target, args, kwargs):
    """The entry half of a record: target and arguments as they are when
    the call starts."""
    rec.has_target = has_target
    rec.target = _tt_snapshot(snap, target, "target") if has_target else None
    rec.target_ref = _tt_weak(target) if has_target and not _tt_is_class(target) else None
    rec.args = tuple(_tt_snapshot(snap, a, "args[%d]" % i) for i, a in enumerate(args))
    rec.kwargs = dict((k, _tt_snapshot(snap, v, "kwargs[%r]" % k)) for k, v in kwargs.items())


def _tt_exit(snap, rec, return_obj, exc, cost_ms):
    """The exit half: the result or the exception, as they are when the
    call ends; then the record's size."""
    snap.phase()
    rec.cost_ms = cost_ms
    rec.is_exp = exc is not None
    rec.is_ret = not rec.is_exp
    rec.ret = _tt_snapshot(snap, return_obj, "return_obj") if rec.is_ret else None
    rec.exc = _tt_snapshot(snap, exc, "exception") if rec.is_exp else None
    rec.traceback = _tt_traceback(exc) if rec.is_exp else None
    rec.notes = snap.notes
    rec.size = snap.bytes + TT_RECORD_OVERHEAD + len(rec.traceback or "")


def _tt_own_tb(tb):
    """tb from the recorded function's frame on: without the frames of the
    instrumentation's trampolines, nor (for a replay) the helper's own."""
    while True:
        tb = skip_instrument_frames(tb)
        if tb is None or not tb.tb_frame.f_code.co_filename.startswith("<fpagent>/"):
            return tb
        tb = tb.tb_next


def _tt_traceback(exc):
    import traceback
    try:
        lines = traceback.format_tb(_tt_own_tb(exc.__traceback__))
    except Exception as e:
        lines = ["(no traceback: %s)\n" % exc_text(e)]
    text = "Traceback (most recent call last):\n%s%s" % ("".join(lines), exc_text(exc))
    if len(text) > TT_TRACEBACK_CHARS:
        text = "...(%d chars cut)\n%s" % (len(text) - TT_TRACEBACK_CHARS,
                                          text[-TT_TRACEBACK_CHARS:])
    return text


class _TTStore(object):
    """Records by index, oldest first.  Touched by helper threads only;
    evicted records are freed by the caller after the lock is released,
    since freeing copies can run the application's __del__."""

    def __init__(self):
        self.lock = _thread.allocate_lock()
        self.records = _TTOrderedDict()
        self.next_index = TT_FIRST_INDEX
        self.bytes = 0
        self.max_records = TT_MAX_RECORDS
        self.max_bytes = TT_MAX_BYTES
        self.evicted = 0

    def snapshot_bytes(self):
        """The bytes one record's snapshots may take: the store must be
        able to hold it."""
        return max(1 << 10, min(TT_SNAP_BYTES, self.max_bytes - TT_RECORD_OVERHEAD))

    def _evict(self):
        out = []
        while self.records and (len(self.records) > self.max_records or
                                (self.bytes > self.max_bytes and len(self.records) > 1)):
            out.append(self.records.popitem(last=False)[1])
            self.bytes -= out[-1].size
            self.evicted += 1
        return out

    def add(self, rec):
        """Numbers and stores rec; returns the records it pushed out."""
        with self.lock:
            rec.index = self.next_index
            self.next_index += 1
            self.records[rec.index] = rec
            self.bytes += rec.size
            return self._evict()

    def set_caps(self, max_records, max_bytes):
        with self.lock:
            if max_records is not None:
                self.max_records = max_records
            if max_bytes is not None:
                self.max_bytes = max_bytes
            return self._evict()

    def get(self, index, cmd):
        rec = self.records.get(index)
        if rec is None:
            raise CommandError(self.missing(index, cmd))
        return rec

    def missing(self, index, cmd):
        with self.lock:
            indices = list(self.records)
            issued = TT_FIRST_INDEX <= index < self.next_index
        if issued:
            why = "was deleted, or dropped when the store was full"
        else:
            why = "does not exist"
        if indices:
            held = "the store holds %d record%s, %d to %d; tt -l lists them" % (
                len(indices), "" if len(indices) == 1 else "s", indices[0], indices[-1])
        else:
            held = "the store is empty"
        return "%s: record %d %s (%s)" % (cmd, index, why, held)

    def delete(self, index, cmd):
        with self.lock:
            rec = self.records.pop(index, None)
            if rec is not None:
                self.bytes -= rec.size
        if rec is None:
            raise CommandError(self.missing(index, cmd))
        return rec

    def clear(self):
        with self.lock:
            out = list(self.records.values())
            self.records.clear()
            self.bytes = 0
        return out

    def listing(self):
        with self.lock:
            return list(self.records.values())

    def caps(self):
        with self.lock:
            return {"records": len(self.records), "bytes": self.bytes,
                    "max_records": self.max_records, "max_bytes": self.max_bytes,
                    "evicted": self.evicted}


_TT_STORE = _TTStore()


def _tt_compile_filter(req):
    flt = req.arg("filter")
    if flt is None:
        return None
    if type(flt) is not str:
        raise CommandError("tt: -f takes an expression", code="usage", exit=2)
    try:
        return compile(flt, "<filter>", "eval", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        raise CommandError("tt: -f %s: not a Python expression (%s)" % (
            flt, getattr(e, "msg", e)), code="bad_expression", exit=2)


def _tt_filter_names(target, args, kwargs, return_obj, exc, cost):
    return {"__builtins__": builtins, "target": target, "args": args, "kwargs": kwargs,
            "return_obj": return_obj, "exception": exc, "cost": cost}


class _TTRecorder(object):
    """The hooks of one tt -t: snapshots in the calling thread, records
    queued for the request's thread.  -n is enforced here with an atomic
    counter so that no more than N calls are ever recorded."""

    def __init__(self, module, cls, method, nested, limit, filter_code):
        self.module = module
        self.cls = cls
        self.method = method
        self.nested = nested
        self.qualname = _tt_qualname(cls, method, nested)
        self.limit = limit
        self.filter_code = filter_code
        self.taken = _tt_count()
        self.done = False
        self.queue = _tt_deque()  # finished records; a str for a call that failed
        self.filter_error = None

    def on_enter(self, call):
        if self.done:
            return
        start = time.perf_counter()
        try:
            rec = _TTRecord()
            rec.time = time.time()
            rec.replay_of = None
            snap = _TTSnap(_TT_STORE.snapshot_bytes())
            _tt_entry(snap, rec, call.target, call.target is not None, call.args, call.kwargs)
            # call.cost_ms counts from before this hook: the snapshot's
            # time is taken off again at exit.
            rec.cost_ms = (time.perf_counter() - start) * 1000.0
            call.data = (snap, rec)
        except Exception as e:
            call.data = "snapshot at entry failed: %s" % exc_text(e)

    def on_exit(self, call, return_obj, exc):
        got = call.data
        if got is None or self.done:
            return
        if self.filter_code is not None and not self._matches(call, return_obj, exc):
            return
        n = next(self.taken)
        if n >= self.limit:
            return
        if n == self.limit - 1:
            self.done = True
        if type(got) is str:
            self.queue.append(got)
            return
        snap, rec = got
        try:
            rec.module, rec.cls, rec.method, rec.nested = (self.module, self.cls, self.method,
                                                           self.nested)
            rec.qualname = self.qualname
            rec.is_async = call.is_async
            rec.thread = call.thread_name
            rec.thread_id = call.thread
            rec.daemon = call.daemon
            _tt_exit(snap, rec, return_obj, exc, max(0.0, call.cost_ms - rec.cost_ms))
            self.queue.append(rec)
        except Exception as e:
            self.queue.append("snapshot at exit failed: %s" % exc_text(e))

    def _matches(self, call, return_obj, exc):
        """-f over the live values at exit, as watch evaluates it; an
        expression that raises does not match (its first error is told)."""
        cost = call.cost_ms
        if type(call.data) is tuple:
            cost = max(0.0, cost - call.data[1].cost_ms)  # the entry snapshot's time
        names = _tt_filter_names(call.target, tuple(call.args), dict(call.kwargs), return_obj,
                                 exc, cost)
        try:
            return bool(eval(self.filter_code, names))
        except Exception as e:
            if self.filter_error is None:
                self.filter_error = exc_text(e)
            return False


def _tt_record(req):
    module, cls, method = locate_args(req, "-t module [class] method")
    limit = req.arg("limits", TT_LIMIT_DEFAULT)
    if type(limit) is not int or limit < 1:
        raise CommandError("tt: -n takes a whole number of at least 1", code="usage", exit=2)
    nested = req.arg("nested")
    if nested is not None and (type(nested) is not str or not nested):
        raise CommandError("tt: -nm takes a function name", code="usage", exit=2)
    rec = _TTRecorder(module, cls, method, nested, limit, _tt_compile_filter(req))
    inst = instrument(req, module, cls, method, nested=nested, hooks=rec)
    req.emit("tt_start", module=module, method=rec.qualname, limit=limit,
             module_width=len(module))
    stored = taken = 0
    reason, told = "limit", False
    try:
        while taken < limit:
            n, k = _tt_drain(req, rec)
            stored, taken = stored + n, taken + k
            if rec.filter_error is not None and not told:
                told = True
                req.emit("tt_notice", text="tt: -f raised %s; calls where it raises are "
                         "not recorded" % rec.filter_error)
            if taken >= limit:
                break
            got = req.recv(_TT_POLL_S)
            if got == "cancel" or req.cancelled():
                reason = "cancelled"
                break
    finally:
        rec.done = True
        inst.remove()
    # Calls that ended before the instrumentation was gone.
    stored += _tt_drain(req, rec)[0]
    req.emit("tt_end", recorded=stored, reason=reason, **_TT_STORE.caps())


def _tt_drain(req, rec):
    """Stores what the calls queued and streams their rows: (records
    stored, calls taken off the -n budget)."""
    stored = taken = 0
    while rec.queue:
        item = rec.queue.popleft()
        taken += 1
        if type(item) is str:
            req.emit("tt_notice", text="tt: a call was not recorded: %s" % item)
            continue
        _TT_STORE.add(item)
        stored += 1
        req.emit("tt_row", module_width=len(item.module), **item.row())
    return stored, taken


def _tt_index(req, key, flag):
    v = req.arg(key)
    if type(v) is not int:
        raise CommandError("tt: %s takes a record index (a whole number)" % flag, code="usage",
                           exit=2)
    return v


def _tt_value_fields(req, expr, value, opts):
    if type(value) is _TTText:
        return {"expr": expr, "value_type": value.type_label, "value": value.text,
                "note": "not a copy: text taken at the call (%s)" % value.reason}
    return render_fields(req, value, expr, opts)


def _tt_show(req, rec, opts):
    values = []
    if rec.has_target:
        values.append(_tt_value_fields(req, "target", rec.target, opts))
    for i, a in enumerate(rec.args):
        values.append(_tt_value_fields(req, "args[%d]" % i, a, opts))
    for k, v in rec.kwargs.items():
        values.append(_tt_value_fields(req, "kwargs[%r]" % k, v, opts))
    if rec.is_ret:
        values.append(_tt_value_fields(req, "return_obj", rec.ret, opts))
    else:
        fields = _tt_value_fields(req, "exception", rec.exc, opts)
        fields["traceback"] = rec.traceback
        values.append(fields)
    # Values kept as text carry their note; the record's notes list those
    # inside a copied value (an item of a list that was copied).
    shown = set(v["expr"] for v in values)
    fields = rec.row()
    fields.update(thread_id=rec.thread_id, daemon=rec.daemon, is_async=rec.is_async,
                  size=rec.size, values=values,
                  notes=["%s: %s" % n for n in rec.notes if n[0] not in shown])
    req.emit("tt_record", **fields)


def _tt_list(req):
    method = req.arg("method")
    if method is not None and type(method) is not str:
        raise CommandError("tt: -m takes module.Class.method", code="usage", exit=2)
    code = _tt_compile_filter(req)
    recs = _TT_STORE.listing()
    if method is not None:
        recs = [r for r in recs if method in _tt_labels(r)]
    if code is not None:
        recs = _tt_filtered(req, recs, code)
    width = max([len(r.module) for r in recs] + [6])
    if recs:
        req.emit("tt_header", module_width=width)
    for r in recs:
        req.emit("tt_row", module_width=width, **r.row())
    req.emit("tt_list_end", shown=len(recs), **_TT_STORE.caps())


def _tt_filtered(req, recs, code):
    """The records -f is true of, Ctrl-C interrupting the expression; one
    notice for the records where it raised."""
    failed = []

    def run():
        out = []
        for r in recs:
            names = _tt_filter_names(r.target, r.args, r.kwargs, r.ret, r.exc, r.cost_ms)
            try:
                if eval(code, names):
                    out.append(r)
            except Exception as e:
                failed.append((r.index, exc_text(e)))
        return out

    try:
        out = guarded_call(run, None, req.cancelled)
    except RenderCancelled:
        raise CommandError("tt: -f %s: interrupted" % req.arg("filter"), code="cancelled")
    if failed:
        req.emit("tt_notice", text="tt: -f raised %s on record %d%s; records where it raises "
                 "are not listed" % (failed[0][1], failed[0][0], " and %d more" % (
                     len(failed) - 1) if len(failed) > 1 else ""))
    return out


def _tt_labels(rec):
    """The names -m accepts for rec: module.Class.method, and
    module.None.method for a function (the reference tool's spelling)."""
    out = set([rec.label()])
    if rec.nested:
        out.add("%s.%s" % (rec.module, rec.qualname.replace(".<locals>.", ".")))
    if rec.cls is None and not rec.nested:
        out.add("%s.None.%s" % (rec.module, rec.method))
    return out


def _tt_callable(rec, cmd):
    """What replaying rec calls, and how its target was found: the method
    looked up again (it may have been reloaded since), on the live target
    while it exists, else on the target's copy."""
    prefix = "%s: record %d cannot be replayed: " % (cmd, rec.index)
    if rec.nested:
        raise CommandError(prefix + "%s is a nested function, which exists only while %s "
                           "runs" % (rec.qualname, rec.method))
    mod = locate_module(rec.module, cmd)
    if rec.cls is None:
        owner, how = mod, "module %s" % rec.module
        raw = (namespace_of(mod) or {}).get(rec.method)
    else:
        cls = locate_class(mod, rec.cls, cmd)
        raw = lookup_static(cls, rec.method)[1]
        owner, how = cls, "class %s" % rec.cls
        if type(raw) is property:
            raise CommandError(prefix + "%s is a property" % rec.label())
        if rec.has_target and type(raw) is not staticmethod:
            owner, how = _tt_replay_target(rec, prefix)
    if raw is None:
        raise CommandError(prefix + "%s no longer exists" % rec.label())
    try:
        return getattr(owner, rec.method), how
    except Exception as e:
        raise CommandError(prefix + "%s: %s" % (rec.label(), exc_text(e)))


def _tt_replay_target(rec, prefix):
    live = rec.target_ref() if rec.target_ref is not None else None
    if live is not None:
        return live, "the live target"
    if _tt_is_class(rec.target):
        return rec.target, "class %s" % rec.cls
    if type(rec.target) is _TTText:
        raise CommandError(prefix + "the target object is gone and was not copyable at the "
                           "call (%s)" % rec.target.reason)
    if any(p.startswith("target") for p, _ in rec.notes):
        raise CommandError(prefix + "the target object is gone and was copied only in part")
    return _tt_copy.deepcopy(rec.target), "a copy of the recorded target (the live one is gone)"


def _tt_replay(req, rec, opts):
    fn, how = _tt_callable(rec, req.cmd)
    lost = [p for p, _ in rec.notes if p.startswith("args") or p.startswith("kwargs")]
    if lost:
        raise CommandError("%s: record %d cannot be replayed: %s %s kept only as text at the "
                           "call (tt -i %d shows why)" % (
                               req.cmd, rec.index, ", ".join(lost),
                               "was" if len(lost) == 1 else "were", rec.index))
    # Copies of the record's copies: the call may mutate them, the record
    # must not change.
    args = _tt_copy.deepcopy(rec.args)
    kwargs = _tt_copy.deepcopy(rec.kwargs)
    new = _TTRecord()
    new.module, new.cls, new.method, new.nested = rec.module, rec.cls, rec.method, None
    new.qualname = rec.qualname
    new.replay_of = rec.index
    new.is_async = rec.is_async
    new.thread = "fpd helper, tt -p"
    new.thread_id = _thread.get_ident()
    new.daemon = True
    snap = _TTSnap(_TT_STORE.snapshot_bytes())
    target = getattr(fn, "__self__", None) if rec.has_target else None
    _tt_entry(snap, new, target, rec.has_target, args, kwargs)
    new.time = time.time()
    start = time.perf_counter()
    ret = exc = None
    try:
        ret = guarded_call(lambda: _tt_run(fn, args, kwargs, rec.is_async), None,
                           req.cancelled)
    except RenderCancelled:
        raise CommandError("%s: replay of record %d interrupted" % (req.cmd, rec.index),
                           code="cancelled")
    except BaseException as e:  # what the method raised is the replay's result
        exc = e
    _tt_exit(snap, new, ret, exc, (time.perf_counter() - start) * 1000.0)
    _TT_STORE.add(new)
    req.emit("tt_replayed", index=rec.index, new_index=new.index, target=how)
    _tt_show(req, new, opts)


def _tt_run(fn, args, kwargs, is_async):
    """fn(*args, **kwargs), run to its end as the recorded call was: a
    generator is exhausted and a coroutine or async generator runs on a
    private event loop in this thread; the result is what the recording
    saw as return_obj."""
    result = fn(*args, **kwargs)
    if not is_async:
        return result
    if type(result) is types.GeneratorType:
        while True:
            try:
                next(result)
            except StopIteration as stop:
                return stop.value
    if type(result) is types.AsyncGeneratorType:
        result = _tt_drain_async(result)
    elif type(result) is not types.CoroutineType:
        return result
    import asyncio
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(result)
    finally:
        loop.close()


async def _tt_drain_async(agen):
    async for _ in agen:
        pass


def _tt_caps(req):
    """--max-records / --max-mb, applied before the action."""
    n, mb = req.arg("max_records"), req.arg("max_mb")
    if n is not None and (type(n) is not int or n < 1):
        raise CommandError("tt: --max-records takes a whole number of at least 1",
                           code="usage", exit=2)
    if mb is not None and (type(mb) is not int or mb < 1):
        raise CommandError("tt: --max-mb takes a whole number of MiB, at least 1",
                           code="usage", exit=2)
    if n is None and mb is None:
        return False
    _TT_STORE.set_caps(n, None if mb is None else mb << 20)
    return True


_TT_ACTIONS = (("record", "-t"), ("list", "-l"), ("index", "-i"), ("delete", "-d"),
               ("delete_all", "-da"))


@command("tt")
def _tt(req):
    # `is`, not ==: -i 0 is an index given (and an unknown one).
    actions = [flag for key, flag in _TT_ACTIONS
               if req.args.get(key) is not None and req.args.get(key) is not False]
    if len(actions) > 1:
        raise CommandError("tt: %s cannot be combined" % " and ".join(actions), code="usage",
                           exit=2)
    if req.arg("play") and actions != ["-i"]:
        raise CommandError("tt: -p replays a record: tt -i IDX -p", code="usage", exit=2)
    caps_set = _tt_caps(req)
    if not actions:
        if not caps_set:
            raise CommandError("tt: one of -t, -l, -i, -d, -da (or --max-records/--max-mb) "
                               "is needed", code="usage", exit=2)
        req.emit("tt_caps", **_TT_STORE.caps())
        return
    action = actions[0]
    if action == "-t":
        _tt_record(req)
    elif action == "-l":
        _tt_list(req)
    elif action == "-i":
        opts = render_options(req)
        rec = _TT_STORE.get(_tt_index(req, "index", "-i"), req.cmd)
        if req.arg("play"):
            _tt_replay(req, rec, opts)
        else:
            _tt_show(req, rec, opts)
    elif action == "-d":
        rec = _TT_STORE.delete(_tt_index(req, "delete", "-d"), req.cmd)
        req.emit("tt_deleted", count=1, index=rec.index)
    else:
        req.emit("tt_deleted", count=len(_TT_STORE.clear()))
