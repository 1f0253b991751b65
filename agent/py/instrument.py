# Instrumentation of one named function: the single mechanism behind watch,
# trace, tt and torch profile.
#
#   inst = instrument(req, module, cls, method, nested=None, hooks=None)
#
# finds `module [class] method` as locate.py does (never importing anything;
# with nested, the function of that name defined in method's body: -nm),
# installs the hooks, registers req.on_session_end(inst.remove) and returns
# the Instrumentation:
#   inst.label     "module.Class.method" ("...method.inner" with nested)
#   inst.remove()  idempotent; the function runs its original code again
#                  (the very code objects it had, by identity)
# A property instruments its fget/fset/fdel, all under one handle.
#
# hooks is any object with these methods, each optional:
#   on_enter(call)                  before the body runs
#   on_exit(call, return_obj, exc)  after it ended (exc: the exception or
#                                   None); call.cost_ms is set
#   on_suspend(call), on_resume(call)
#                                   a generator/coroutine call suspending at a
#                                   yield or await, and resuming (trace's [await])
# call is a Call: target (self or cls of a method; None for a function, a
# staticmethod or an -nm inner function; never in args), args (tuple),
# kwargs (dict: keyword-only parameters and **kwargs), thread (threading
# ident), thread_name, daemon, start (time.perf_counter() at entry), label,
# is_async (generator, coroutine or async generator), cost_ms, and data
# (None, free for the hooks).  Positional parameters are in args even when
# the caller passed them by keyword: the call is read from the parameters.
# A generator's or coroutine's call is its run: from its first resumption,
# when its body starts, to its end; return_obj is its return value (None for
# an async generator).
#
# skip_instrument_frames(tb) is tb without the trampoline frames at its head
# (an exception's traceback as the instrumented function raised it).  3.13
# closes a generator suspended outside any try block without running it: no
# event, so such a call gets no on_exit there (its entry is dropped once the
# generator is gone).
#
# Hooks run in the application thread that made the call, holding the GIL.
# An exception in a hook never reaches the application: the first is sent as
# a "hook_error" event of the instrumenting request, the others are counted
# (inst.errors).  A call made while a hook runs in that thread (an expression
# calling the watched function, a __repr__) is not observed.
#
# How:
# - 3.12+: sys.monitoring local events (PY_START, PY_RETURN and, for
#   generators and coroutines whose hooks want them, PY_YIELD/PY_RESUME) on
#   exactly the instrumented code objects, under a tool id that nobody uses
#   (3 or 4; the ids with a conventional owner are left to their owners),
#   freed with the last instrumentation.  An exception leaving a frame
#   (PY_UNWIND) and a throw() into one (PY_THROW) cannot be local events:
#   they are set globally while anything is instrumented, with callbacks in
#   C (agent/instrument.c) that pass on only those of instrumented code, so
#   that an exception elsewhere costs a few ns per frame it leaves, not a
#   Python call.  Arguments are read from the frame's parameters at PY_START.
# - 3.6-3.11: the function object stays (bound methods, decorators and
#   registries hold it) and its __code__ becomes a trampoline compiled with
#   the same signature and free variables, which calls the hooks and the
#   original code through a copy of the function.  For -nm the inner code is
#   a constant of the outer code: the outer function gets a copy of its code
#   with that constant swapped, and inner functions already created get the
#   trampoline as their __code__.  One trampoline per code however many
#   instrumentations share it (two sessions watching one function), so that
#   removing them in any order restores the original objects.  The caller
#   sees one more frame on the stack while the function is instrumented.
import sys
import time
import types

import _thread

_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08
_CO_NESTED = 0x10
_CO_GENERATOR = 0x20
_CO_COROUTINE = 0x80
_CO_ITERABLE_COROUTINE = 0x100
_CO_ASYNC_GENERATOR = 0x200
_CO_ASYNC_ANY = _CO_GENERATOR | _CO_COROUTINE | _CO_ITERABLE_COROUTINE | _CO_ASYNC_GENERATOR

_INSTR_MONITORING = sys.version_info >= (3, 12)
_instr_clock = time.perf_counter
_instr_ident = _thread.get_ident
# Install and remove change shared registries from several helper threads.
_instr_lock = _thread.RLock()
# Threads running hooks now (ident -> True): their calls are not observed.
_instr_busy = {}


class Call(object):
    """One observed call, as the hooks see it."""
    __slots__ = ("target", "args", "kwargs", "thread", "start", "label", "is_async", "cost_ms",
                 "data")

    def __init__(self, label, is_async, target, args, kwargs, thread):
        self.label = label
        self.is_async = is_async
        self.target = target
        self.args = args
        self.kwargs = kwargs
        self.thread = thread
        self.cost_ms = None
        self.data = None
        self.start = _instr_clock()

    def _thread_obj(self):
        # threading's own table, read only: current_thread() would register
        # a _DummyThread for a thread threading did not start.
        threading = sys.modules.get("threading")
        active = getattr(threading, "_active", None)
        return active.get(self.thread) if type(active) is dict else None

    @property
    def thread_name(self):
        t = self._thread_obj()
        name = getattr(t, "_name", None)
        return name if type(name) is str else "Thread-%d" % self.thread

    @property
    def daemon(self):
        return getattr(self._thread_obj(), "_daemonic", False) is True


class Instrumentation(object):
    """The handle instrument() returns."""

    def __init__(self, req, label, hooks, has_target):
        self.req = req
        self.label = label
        self.has_target = has_target
        self.removed = False
        self.errors = 0
        self._points = []
        self.on_enter = getattr(hooks, "on_enter", None)
        self.on_exit = getattr(hooks, "on_exit", None)
        self.on_suspend = getattr(hooks, "on_suspend", None)
        self.on_resume = getattr(hooks, "on_resume", None)

    def remove(self):
        with _instr_lock:
            if self.removed:
                return
            self.removed = True
            for point in self._points:
                point.detach(self)

    def _failed(self, e):
        self.errors += 1
        if self.errors > 1:
            return
        import traceback
        try:
            tb = "".join(traceback.format_tb(e.__traceback__))
            self.req.emit("hook_error", method=self.label, message=exc_text(e), traceback=tb)
        except Exception:
            pass  # fpd is gone: the session's end removes us


def _instr_start(point, entries, ident, a, k):
    """Runs the on_enter hooks of a call that starts; returns its
    [(instrumentation, Call)] for _instr_end."""
    calls = []
    _instr_busy[ident] = True
    try:
        for inst in entries:
            if inst.has_target and a:
                call = Call(inst.label, point.is_async, a[0], a[1:], k, ident)
            else:
                call = Call(inst.label, point.is_async, None, a, k, ident)
            calls.append((inst, call))
            fn = inst.on_enter
            if fn is not None and not inst.removed:
                try:
                    fn(call)
                except KeyboardInterrupt:
                    raise
                except BaseException as e:
                    inst._failed(e)
    finally:
        del _instr_busy[ident]
    return calls


def _instr_end(calls, ret, exc):
    end = _instr_clock()
    ident = _instr_ident()
    # A generator started outside a hook may end inside one (an expression
    # that consumes it): that thread stays busy then.
    outer = ident in _instr_busy
    _instr_busy[ident] = True
    try:
        for inst, call in calls:
            call.cost_ms = (end - call.start) * 1000.0
            fn = inst.on_exit
            if fn is not None and not inst.removed:
                try:
                    fn(call, ret, exc)
                except KeyboardInterrupt:
                    raise
                except BaseException as e:
                    inst._failed(e)
    finally:
        if not outer:
            del _instr_busy[ident]


def _instr_switch(calls, resuming):
    ident = _instr_ident()
    outer = ident in _instr_busy
    _instr_busy[ident] = True
    try:
        for inst, call in calls:
            fn = inst.on_resume if resuming else inst.on_suspend
            if fn is not None and not inst.removed:
                try:
                    fn(call)
                except KeyboardInterrupt:
                    raise
                except BaseException as e:
                    inst._failed(e)
    finally:
        if not outer:
            del _instr_busy[ident]


def _instr_wants_switch(entries):
    return any(i.on_suspend is not None or i.on_resume is not None for i in entries)


class _InstrSig(object):
    """The parameters of a code object, in co_varnames order."""

    def __init__(self, code):
        n, k = code.co_argcount, code.co_kwonlyargcount
        names = code.co_varnames
        self.posonly = getattr(code, "co_posonlyargcount", 0)
        self.pos = names[:n]
        self.kwonly = names[n:n + k]
        i = n + k
        self.varargs = self.varkw = None
        if code.co_flags & _CO_VARARGS:
            self.varargs = names[i]
            i += 1
        if code.co_flags & _CO_VARKEYWORDS:
            self.varkw = names[i]

    def names(self):
        return self.pos + self.kwonly + tuple(n for n in (self.varargs, self.varkw) if n)

    def from_locals(self, loc):
        """(positional values, keyword dict) of a frame's parameters."""
        a = tuple([loc[n] for n in self.pos])
        if self.varargs is not None:
            a += tuple(loc[self.varargs])
        k = {}
        for n in self.kwonly:
            k[n] = loc[n]
        if self.varkw is not None:
            k.update(loc[self.varkw])
        return a, k


class _InstrPoint(object):
    """One instrumented code object and the instrumentations attached to it
    (a tuple, replaced whole so that a call in another thread reads a
    consistent one)."""

    def __init__(self, code):
        self.code = code
        self.sig = _InstrSig(code)
        self.is_async = bool(code.co_flags & _CO_ASYNC_ANY)
        self.entries = ()

    def attach(self, inst):
        self.entries = self.entries + (inst,)
        inst._points.append(self)
        self.changed()

    def detach(self, inst):
        self.entries = tuple(e for e in self.entries if e is not inst)
        self.changed()


def _instr_args_text(sig):
    """Source of a call passing each parameter on as it was received."""
    out = list(sig.pos)
    if sig.varargs:
        out.append("*" + sig.varargs)
    out += ["%s=%s" % (n, n) for n in sig.kwonly]
    if sig.varkw:
        out.append("**" + sig.varkw)
    return ", ".join(out)


def _instr_params_text(sig):
    """Source of the parameter list, without defaults: the function object
    keeps its __defaults__ and __kwdefaults__, which apply to whatever code
    it runs."""
    out = list(sig.pos[:sig.posonly])
    if sig.posonly:
        out.append("/")
    out += sig.pos[sig.posonly:]
    if sig.varargs:
        out.append("*" + sig.varargs)
    elif sig.kwonly:
        out.append("*")
    out += sig.kwonly
    if sig.varkw:
        out.append("**" + sig.varkw)
    return ", ".join(out)


# Placeholders in the trampoline's source, replaced by objects in its
# co_consts (a constant can be any object; the trampoline then needs no
# global name, and the application's module gets none).
_INSTR_K_ENTER = 9176543210987650001
_INSTR_K_ORIG = 9176543210987650002
_INSTR_K_EXIT = 9176543210987650003
_INSTR_K_DRIVE = 9176543210987650004
_INSTR_K_FRESH = 9176543210987650005

_INSTR_BODY_PLAIN = """\
c = enter(ARGS)
if c is None:
    return orig(ARGS)
try:
    r = orig(ARGS)
except BaseException as e:
    exit(c, None, e)
    raise
exit(c, r, None)
return r
"""
_INSTR_BODY_GENERATOR = """\
c = enter(ARGS)
if c is None:
    return (yield from orig(ARGS))
try:
    r = yield from drive(c, orig(ARGS))
except BaseException as e:
    exit(c, None, e)
    raise
exit(c, r, None)
return r
"""
_INSTR_BODY_COROUTINE = """\
c = enter(ARGS)
if c is None:
    return await orig(ARGS)
try:
    r = await drive(c, orig(ARGS))
except BaseException as e:
    exit(c, None, e)
    raise
exit(c, r, None)
return r
"""
# An async generator cannot delegate with yield from: it forwards what its
# consumer sends, throws and closes by hand.
_INSTR_BODY_ASYNC_GENERATOR = """\
c = enter(ARGS)
g = orig(ARGS)
try:
    v = x = None
    while True:
        try:
            if x is None:
                y = await drive(c, g.asend(v))
            else:
                y = await drive(c, g.athrow(x))
        except StopAsyncIteration:
            break
        x = None
        try:
            v = yield y
        except GeneratorExit:
            await g.aclose()
            raise
        except BaseException as e:
            x = e
except BaseException as e:
    if c is not None:
        exit(c, None, e)
    raise
if c is not None:
    exit(c, None, None)
"""


def _instr_code_replace(code, **kw):
    if hasattr(code, "replace"):
        return code.replace(**kw)
    # 3.6/3.7: the constructor, in its argument order.
    names = ("co_argcount", "co_kwonlyargcount", "co_nlocals", "co_stacksize", "co_flags",
             "co_code", "co_consts", "co_names", "co_varnames", "co_filename", "co_name",
             "co_firstlineno", "co_lnotab", "co_freevars", "co_cellvars")
    return types.CodeType(*[kw[n] if n in kw else getattr(code, n) for n in names])


def _instr_trampoline(orig, fresh):
    """The trampoline code for code object orig, with its placeholders
    still in.  fresh: the original is called through
    a function made per call from the trampoline's own closure cells (an
    -nm inner function: each of its functions has its own cells), instead
    of a copy made once."""
    import ast
    import keyword
    sig = _InstrSig(orig)
    for n in sig.names() + orig.co_freevars:
        if not n.isidentifier() or keyword.iskeyword(n):
            raise ValueError("parameter or free variable %r cannot be written in Python" % n)
    taken = set(orig.co_varnames) | set(orig.co_freevars) | set(orig.co_cellvars)
    p = "_fp_"
    while any(n.startswith(p) for n in taken):
        p = "_" + p
    flags = orig.co_flags
    if flags & _CO_ASYNC_GENERATOR:
        body, head = _INSTR_BODY_ASYNC_GENERATOR, "async def"
    elif flags & _CO_COROUTINE:
        body, head = _INSTR_BODY_COROUTINE, "async def"
    elif flags & (_CO_GENERATOR | _CO_ITERABLE_COROUTINE):
        body, head = _INSTR_BODY_GENERATOR, "def"
    else:
        body, head = _INSTR_BODY_PLAIN, "def"
    import re
    delegates = "drive(" in body
    body = re.sub(r"\b(enter|orig|exit|drive|c|r|e|g|v|x|y)\b", lambda m: p + m.group(1), body)
    body = body.replace("ARGS", _instr_args_text(sig))
    free = orig.co_freevars
    pre = ["%senter = %d" % (p, _INSTR_K_ENTER), "%sexit = %d" % (p, _INSTR_K_EXIT)]
    if delegates:
        pre.append("%sdrive = %d" % (p, _INSTR_K_DRIVE))
    if fresh and free:
        pre += ["%sfresh = %d" % (p, _INSTR_K_FRESH),
                "%sorig = %sfresh((lambda: (%s,)).__closure__)" % (p, p, ", ".join(free))]
    else:
        pre.append("%sorig = %d" % (p, _INSTR_K_ORIG))
        if free:
            # Never run: makes the names free variables of the trampoline,
            # as many as the function's closure has cells.
            pre.append("if 0: (%s,)" % ", ".join(free))
    src = ["def %sfactory():" % p]
    if free:
        src.append("    %s = None" % " = ".join(free))
    src.append("    %s %st(%s):" % (head, p, _instr_params_text(sig)))
    src += ["        " + line for line in pre + body.splitlines()]
    src.append("    return %st" % p)
    tree = ast.parse("\n".join(src) + "\n")
    # Every line of the trampoline is the original's first line, without
    # columns: a traceback through it shows the function's def line.
    for node in ast.walk(tree.body[0].body[-2]):
        if hasattr(node, "lineno"):
            node.lineno = orig.co_firstlineno
            node.col_offset = -1
            if hasattr(node, "end_lineno"):
                node.end_lineno = orig.co_firstlineno
                node.end_col_offset = -1
    module = compile(tree, orig.co_filename, "exec", dont_inherit=True)
    factory = [c for c in module.co_consts if type(c) is types.CodeType][0]
    code = [c for c in factory.co_consts if type(c) is types.CodeType][0]
    if code.co_freevars != free:
        raise ValueError("free variables %r compile as %r" % (free, code.co_freevars))
    kw = {"co_name": orig.co_name,
          "co_flags": (code.co_flags & ~_CO_NESTED) |
          (orig.co_flags & (_CO_NESTED | _CO_ITERABLE_COROUTINE))}
    if hasattr(orig, "co_qualname"):
        kw["co_qualname"] = orig.co_qualname
    return _instr_code_replace(code, **kw)


def _instr_fill(code, objs):
    """code with its placeholder constants replaced by objs[placeholder]."""
    consts = tuple(objs.get(c, c) if type(c) is int else c for c in code.co_consts)
    return _instr_code_replace(code, co_consts=consts)


def _instr_enter_fn(point):
    """The trampoline's enter(): None when the call is not observed."""
    busy, ident, start = _instr_busy, _instr_ident, _instr_start

    def enter(*a, **k):
        entries = point.entries
        if not entries:
            return None
        t = ident()
        if t in busy:
            return None
        return start(point, entries, t, a, k)
    return enter


def _instr_drive(calls, it):
    """What the trampoline delegates to (yield from / await): it itself, or
    when a hook wants suspensions, a driver that tells them."""
    if not calls or not _instr_wants_switch([inst for inst, _ in calls]):
        return it
    return _InstrDriven(calls, it)


class _InstrDriven(object):
    def __init__(self, calls, it):
        self.calls = calls
        self.it = it

    def __iter__(self):
        return _instr_driver(self.calls, self.it)

    __await__ = __iter__


def _instr_driver(calls, it):
    """yield from it, with on_suspend/on_resume around each suspension."""
    value = thrown = None
    while True:
        try:
            if thrown is not None:
                e, thrown = thrown, None
                out = it.throw(e)
            else:
                out = it.send(value)
        except StopIteration as stop:
            return stop.value
        _instr_switch(calls, False)
        try:
            value = yield out
        except GeneratorExit:
            _instr_switch(calls, True)
            it.close()
            raise
        except BaseException as e:
            thrown = e
        _instr_switch(calls, True)


# ---- 3.6-3.11: trampolines ----

# id(function) -> _InstrFunc, for every function whose __code__ we changed.
_instr_funcs = {}
# id(trampoline code) -> trampoline code: frames to hide in tracebacks.
_instr_tramp_codes = {}


class _InstrFunc(object):
    """A function object whose __code__ we manage: its own trampoline and
    the -nm trampolines swapped into its code's constants."""

    def __init__(self, func):
        self.func = func
        self.orig = func.__code__
        self.installed = self.orig
        self.own = None
        self.inner = {}  # inner code -> _InstrTramp

    def refresh(self):
        """Puts into the function what its points need: the original code
        object itself once none has an instrumentation attached."""
        if self.func.__code__ is not self.installed:
            # Someone else (reload, the application) replaced our code: it
            # stays, and we let go of the function.
            self.forget()
            return
        active = dict((c, t.tramp) for c, t in self.inner.items() if t.entries)
        body = self.orig
        if active:
            body = _instr_code_replace(self.orig, co_consts=tuple(
                active.get(c, c) if type(c) is types.CodeType else c
                for c in self.orig.co_consts))
        code = body
        if self.own is not None and self.own.entries:
            self.own.copy.__code__ = body
            code = self.own.tramp
        self.func.__code__ = code
        self.installed = code
        if code is self.orig:
            self.forget()

    def forget(self):
        if _instr_funcs.get(id(self.func)) is self:
            del _instr_funcs[id(self.func)]


class _InstrTramp(_InstrPoint):
    """A code object instrumented through a trampoline: the code of rec's
    function, or (nested) an -nm inner code constant of it."""

    def __init__(self, code, rec, nested):
        _InstrPoint.__init__(self, code)
        self.rec = rec
        self.nested = nested
        self.copy = None
        self.patched = []  # weakrefs to inner functions that already existed
        globs = rec.func.__globals__
        tramp = _instr_trampoline(code, nested)
        objs = {_INSTR_K_ENTER: _instr_enter_fn(self), _INSTR_K_EXIT: _instr_end,
                _INSTR_K_DRIVE: _instr_drive}
        if nested and code.co_freevars:
            objs[_INSTR_K_FRESH] = self._fresh_fn(tramp, globs)
        elif nested:
            self.copy = types.FunctionType(code, globs, code.co_name)
            objs[_INSTR_K_ORIG] = self.copy
        else:
            self.copy = types.FunctionType(code, globs, rec.func.__name__, None,
                                           rec.func.__closure__)
            objs[_INSTR_K_ORIG] = self.copy
        self.tramp = _instr_fill(tramp, objs)
        _instr_tramp_codes[id(self.tramp)] = self.tramp

    def _fresh_fn(self, tramp, globs):
        """fresh(cells): the original inner function over the closure cells
        the trampoline received (the lambda's cells, in its order)."""
        lam = [c for c in tramp.co_consts if type(c) is types.CodeType][0]
        order = tuple(lam.co_freevars.index(n) for n in self.code.co_freevars)
        code, name, function = self.code, self.code.co_name, types.FunctionType

        def fresh(cells):
            return function(code, globs, name, None, tuple([cells[i] for i in order]))
        return fresh

    def changed(self):
        self.rec.refresh()
        if self.nested:
            self._patch_existing(bool(self.entries))
        if not self.entries:
            _instr_tramp_codes.pop(id(self.tramp), None)

    def _patch_existing(self, on):
        """Inner functions made before the constant was swapped run the
        original from their own __code__: they get (and lose) the
        trampoline too."""
        import gc
        import weakref
        if on and not self.patched:
            for f in gc.get_referrers(self.code):
                if type(f) is types.FunctionType and f.__code__ is self.code and \
                        f is not self.copy:
                    f.__code__ = self.tramp
                    self.patched.append(weakref.ref(f))
        elif not on:
            for ref in self.patched:
                f = ref()
                if f is not None and f.__code__ is self.tramp:
                    f.__code__ = self.code
            self.patched = []


def _instr_func(fn):
    """The _InstrFunc of function fn, made on first use (or anew when its
    __code__ changed behind our back)."""
    f = _instr_funcs.get(id(fn))
    if f is None or f.func is not fn or fn.__code__ is not f.installed:
        f = _instr_funcs[id(fn)] = _InstrFunc(fn)
    return f


def _instr_point_wrap(fn, inner_code):
    f = _instr_func(fn)
    if inner_code is None:
        if f.own is None or not f.own.entries:
            f.own = _InstrTramp(f.orig, f, False)
        return f.own
    t = f.inner.get(inner_code)
    if t is None or not t.entries:
        t = f.inner[inner_code] = _InstrTramp(inner_code, f, True)
    return t


# ---- 3.12+: sys.monitoring ----

# code -> _InstrMon for every code object with local events of ours.
_instr_mon_points = {}
_instr_mon_state = {"tool": None}
# Tool ids without a conventional owner (0 debugger, 1 coverage, 2 profiler,
# 5 optimizer): taking one of those could make the application's own
# use_tool_id fail later.
_INSTR_MON_TOOLS = (4, 3)


# Calls under way of one generator or coroutine code before their frames
# are checked for having gone away unseen (the limit doubles with them).
_INSTR_PRUNE_AT = 64


class _InstrMon(_InstrPoint):
    def __init__(self, code):
        _InstrPoint.__init__(self, code)
        self.active = {}  # frame -> [(instrumentation, Call)] of calls under way
        self.prune_at = _INSTR_PRUNE_AT

    def prune(self):
        """Forgets the calls whose frame only this table still holds: 3.13
        closes a generator suspended outside any try block without running
        it (no event), and its frame would stay here for good."""
        frames = list(self.active)
        frames.append(object())  # a probe: the count of "held by nothing but us"
        limit = None
        for f in reversed(frames):
            n = sys.getrefcount(f)
            if limit is None:
                limit = n + 1  # the probe is no key of the table
            elif n <= limit:
                self.active.pop(f, None)
        self.prune_at = max(_INSTR_PRUNE_AT, 2 * len(self.active))

    def changed(self):
        mon = sys.monitoring
        E = mon.events
        tool = _instr_mon_state["tool"]
        events = 0
        if self.entries:
            events = E.PY_START | E.PY_RETURN
            if self.is_async and _instr_wants_switch(self.entries):
                events |= E.PY_YIELD | E.PY_RESUME
        mon.set_local_events(tool, self.code, events)
        if not self.entries:
            self.active.clear()
            if _instr_mon_points.get(self.code) is self:
                del _instr_mon_points[self.code]
            if not _instr_mon_points:
                _instr_mon_release()
            else:
                _instr_mon_filter()


def _instr_mon_report(point, e):
    if point.entries:
        point.entries[0]._failed(e)


# The callbacks run in the instrumented frame's thread, called from that
# frame: sys._getframe(1) is it.  They never let an exception through.

def _instr_mon_start(code, offset):
    point = _instr_mon_points.get(code)
    if point is None or not point.entries:
        return
    ident = _instr_ident()
    if ident in _instr_busy:
        return
    try:
        frame = sys._getframe(1)
        if frame.f_code is code:
            if len(point.active) >= point.prune_at:
                point.prune()
            a, k = point.sig.from_locals(frame.f_locals)
            point.active[frame] = _instr_start(point, point.entries, ident, a, k)
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        _instr_mon_report(point, e)


def _instr_mon_return(code, offset, value):
    point = _instr_mon_points.get(code)
    if point is None or not point.active:
        return
    try:
        calls = point.active.pop(sys._getframe(1), None)
        if calls is not None:
            _instr_end(calls, value, None)
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        _instr_mon_report(point, e)


def _instr_mon_unwind(code, offset, exc):
    point = _instr_mon_points.get(code)
    if point is None or not point.active:
        return
    try:
        calls = point.active.pop(sys._getframe(1), None)
        if calls is not None:
            _instr_end(calls, None, exc)
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        _instr_mon_report(point, e)


def _instr_mon_switch(code, frame, resuming):
    point = _instr_mon_points.get(code)
    if point is None or not point.active:
        return
    try:
        calls = point.active.get(frame)
        if calls is not None:
            _instr_switch(calls, resuming)
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        _instr_mon_report(point, e)


def _instr_mon_yield(code, offset, value):
    _instr_mon_switch(code, sys._getframe(1), False)


def _instr_mon_resume(code, offset):
    _instr_mon_switch(code, sys._getframe(1), True)


def _instr_mon_throw(code, offset, exc):
    _instr_mon_switch(code, sys._getframe(1), True)


def _instr_mon_callbacks():
    E = sys.monitoring.events
    unwind, throw = _instr_mon_unwind, _instr_mon_throw
    if _instr_mon_c_filter():
        unwind, throw = _fp_instr_unwind, _fp_instr_throw
    return ((E.PY_START, _instr_mon_start), (E.PY_RETURN, _instr_mon_return),
            (E.PY_YIELD, _instr_mon_yield), (E.PY_RESUME, _instr_mon_resume),
            (E.PY_UNWIND, unwind), (E.PY_THROW, throw))


def _instr_mon_c_filter():
    """Whether libfpagent.so's C callbacks are there (not in the unit tests'
    pure-Python harness)."""
    return "_fp_instr_codes" in globals()


def _instr_mon_filter():
    """Tells the C callbacks which code objects are instrumented now."""
    if _instr_mon_c_filter():
        _fp_instr_codes(_instr_mon_unwind, _instr_mon_throw, *list(_instr_mon_points))


def _instr_mon_acquire(cmd):
    if _instr_mon_state["tool"] is not None:
        return
    mon = sys.monitoring
    free = [t for t in _INSTR_MON_TOOLS if mon.get_tool(t) is None]
    if not free:
        raise CommandError("%s: sys.monitoring has no free tool id for us: %s" % (cmd, ", ".join(
            "%d is used by %s" % (t, mon.get_tool(t)) for t in _INSTR_MON_TOOLS)))
    tool = free[0]
    _instr_mon_filter()  # before the C callbacks can run
    mon.use_tool_id(tool, "fpd")
    for event, fn in _instr_mon_callbacks():
        mon.register_callback(tool, event, fn)
    mon.set_events(tool, mon.events.PY_UNWIND | mon.events.PY_THROW)
    _instr_mon_state["tool"] = tool


def _instr_mon_release():
    mon = sys.monitoring
    tool = _instr_mon_state["tool"]
    _instr_mon_state["tool"] = None
    mon.set_events(tool, 0)
    for event, _ in _instr_mon_callbacks():
        mon.register_callback(tool, event, None)
    mon.free_tool_id(tool)
    _instr_mon_filter()


def _instr_point_mon(code, cmd):
    point = _instr_mon_points.get(code)
    if point is None:
        _instr_mon_acquire(cmd)
        point = _instr_mon_points[code] = _InstrMon(code)
        _instr_mon_filter()
    return point


# ---- locating and the entry point ----

def _instr_has_target(module, cls, method, nested, cmd):
    """Whether the first parameter is the call's target (self or cls)."""
    if cls is None or nested is not None:
        return False
    raw = lookup_static(locate_class(locate_module(module, cmd), cls, cmd), method)[1]
    return type(raw) is not staticmethod


def _instr_nested(fn, inner, cmd):
    """The -nm code in fn's original code, also when fn's __code__ is one
    of ours now (a trampoline, or the copy with swapped constants)."""
    rec = _instr_funcs.get(id(fn))
    if rec is not None and rec.func is fn and fn.__code__ is rec.installed:
        found = [c for c in rec.orig.co_consts
                 if type(c) is types.CodeType and c.co_name == inner]
        if found:
            return found[-1]
    return nested_code(fn, inner, cmd)


def skip_instrument_frames(tb):
    """tb without the trampoline frames at its head: a traceback as the
    instrumented function itself raised it."""
    while tb is not None and id(tb.tb_frame.f_code) in _instr_tramp_codes:
        tb = tb.tb_next
    return tb


def instrument(req, module, cls, method, nested=None, hooks=None):
    """See the top of this file."""
    cmd = req.cmd
    funcs, label, _ = locate_functions(module, cls, method, cmd)
    codes = []
    if nested is not None:
        missing = None
        for _, fn in funcs:
            try:
                codes.append((fn, _instr_nested(fn, nested, cmd)))
            except CommandError as e:
                missing = e
        if not codes:
            raise missing
        label = "%s.%s" % (label, nested)
    else:
        codes = [(fn, None) for _, fn in funcs]
    inst = Instrumentation(req, label, hooks, _instr_has_target(module, cls, method, nested, cmd))
    with _instr_lock:
        try:
            for fn, inner in codes:
                if _INSTR_MONITORING:
                    point = _instr_point_mon(inner if inner is not None else fn.__code__, cmd)
                else:
                    point = _instr_point_wrap(fn, inner)
                point.attach(inst)
        except ValueError as e:
            inst.remove()
            raise CommandError("%s: cannot instrument %s: %s" % (cmd, label, e))
        except BaseException:
            inst.remove()
            raise
    req.on_session_end(inst.remove)
    return inst
