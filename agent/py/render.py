# The object renderer shared by every helper command that shows values
# (getglobal, vmtool, later watch, tt): render(obj, expand, raw, verbose).
#
# Safety first: it runs inside someone else's process, on objects we know
# nothing about.  Without -r it never runs the application's code: no
# __repr__, __str__, __eq__, __hash__, __iter__, __getattr__ or property of
# an application class is called.  Builtin containers are read through the
# builtin types' own C methods (list.__iter__(obj), dict.items(obj)), other
# objects are shown by their attributes (__dict__ and __slots__ read through
# object's own descriptors), and only types whose repr is known to run no
# application code get repr()'d.  A __repr__ that raises or hangs therefore
# cannot touch the default rendering.
#
# With -r the user asked for repr(): it is called under guarded_call(), a
# watchdog that raises an exception in the rendering thread when the time
# budget runs out or fpctl cancels.  That interrupts Python code (a loop in a
# __repr__), not a C call that blocks (time.sleep(1e9) in a __repr__ ends
# only when the sleep does): that risk is the price of -r.
#
# Output is bounded: strings to 256 characters and containers to 100 items
# unless -v; the whole text to 1 MiB (4 MiB with -v) and 1 s of rendering
# (10 s with -v), after which a marker ends the text.  Cycles print as
# <cycle: TYPE at 0xADDR> naming the object already being printed.
import builtins
import sys
import time
import types

RENDER_STR_MAX = 256
RENDER_ITEMS_MAX = 100
RENDER_RAW_MAX = 4096
RENDER_EXPAND_MAX = 4
RENDER_BUDGET_S = 1.0
RENDER_BUDGET_VERBOSE_S = 10.0
RENDER_OUTPUT_MAX = 1 << 20
RENDER_OUTPUT_VERBOSE_MAX = 4 << 20
# Nested values below the expanded levels print on one line; objects show
# their attributes one level into that line and containers their items three
# levels, deeper ones are summarised so one line stays readable.
_RENDER_COMPACT_OBJ = 1
_RENDER_COMPACT_CONTAINER = 3


class RenderTimeout(BaseException):
    """Raised in the rendering thread by guarded_call's watchdog: a
    BaseException, so that the application's `except Exception` in a
    __repr__ does not swallow it."""


class RenderCancelled(BaseException):
    """Raised in the thread running guarded code when fpctl cancelled."""


def guarded_call(fn, budget_s=None, cancelled=None):
    """fn() with a watchdog thread that raises RenderTimeout (after budget_s
    seconds) or RenderCancelled (once cancelled() is true) in this thread.
    Only Python code is interrupted: the exception arrives at the next
    bytecode the thread runs."""
    import _thread
    me = _thread.get_ident()
    mutex = _thread.allocate_lock()
    finished = _thread.allocate_lock()
    finished.acquire()
    state = {"done": False, "fired": None}
    deadline = None if budget_s is None else time.monotonic() + budget_s

    def watchdog():
        while True:
            wait = 0.05
            if deadline is not None:
                wait = min(wait, max(0.001, deadline - time.monotonic()))
            if finished.acquire(True, wait):
                return
            why = None
            if cancelled is not None and cancelled():
                why = RenderCancelled
            elif deadline is not None and time.monotonic() >= deadline:
                why = RenderTimeout
            if why is not None:
                with mutex:
                    if not state["done"]:
                        state["fired"] = why
                        _fp_async_exc(me, why)
                return

    _thread.start_new_thread(watchdog, ())
    arrived = False
    try:
        return fn()
    except (RenderTimeout, RenderCancelled):
        arrived = True
        raise
    finally:
        with mutex:
            state["done"] = True
        finished.release()
        if state["fired"] is not None and not arrived:
            # Fired just as fn returned: the exception is pending and would
            # surface in whatever this thread runs next.  Take it here; a
            # loop's backward jump is where the interpreter delivers it.
            try:
                for _ in range(100000):
                    pass
            except (RenderTimeout, RenderCancelled):
                pass


def _render_descr_get(owner, name, obj, default=None):
    """owner.__dict__[name].__get__(obj): a C attribute of a builtin type,
    read without going through a class that may override lookup."""
    try:
        return owner.__dict__[name].__get__(obj, type(obj))
    except Exception:
        return default


def _render_type_parts(t):
    mod = _render_descr_get(type, "__module__", t)
    qual = _render_descr_get(type, "__qualname__", t)
    if type(qual) is not str:
        qual = "?"
    if type(mod) is not str:
        mod = None
    return mod, qual


def _render_type_label(t):
    mod, qual = _render_type_parts(t)
    if mod in (None, "builtins"):
        return qual
    return "%s.%s" % (mod, qual)


def type_name(obj):
    """The module-qualified name of obj's type (builtins unqualified)."""
    return _render_type_label(type(obj))


def exc_text(e):
    """`ExcType: message` of an exception, without trusting its __str__."""
    name = _render_type_label(type(e))
    try:
        msg = BaseException.__str__(e)
    except Exception:
        msg = "<unprintable>"
    return "%s: %s" % (name, msg) if msg else name


def _render_safe_types():
    """{id(type): how} for types rendered by repr() or by hand, among those
    of modules the application loaded (nothing is imported for this)."""
    safe = {}
    for t in (type(None), bool, float, complex, range, type(Ellipsis), type(NotImplemented)):
        safe[id(t)] = "repr"
    mods = sys.modules
    dt = mods.get("datetime")
    if dt is not None:
        for name in ("date", "time", "datetime", "timedelta", "timezone"):
            t = getattr(dt, name, None)
            if isinstance(t, type):
                safe[id(t)] = "datetime"
    for modname, names in (("decimal", ("Decimal",)), ("fractions", ("Fraction",)),
                           ("uuid", ("UUID",)), ("array", ("array",)),
                           ("pathlib", ("PurePath", "PurePosixPath", "PureWindowsPath",
                                        "Path", "PosixPath", "WindowsPath")),
                           ("zoneinfo", ("ZoneInfo",)), ("ipaddress",
                                                          ("IPv4Address", "IPv6Address",
                                                           "IPv4Network", "IPv6Network"))):
        m = mods.get(modname)
        if m is None:
            continue
        for name in names:
            t = getattr(m, name, None)
            if isinstance(t, type):
                safe[id(t)] = "repr"
    return safe


class _RenderState(object):
    def __init__(self, expand, verbose, budget_s, cancelled):
        self.expand = expand
        self.verbose = verbose
        self.deadline = time.monotonic() + budget_s
        self.cancelled = cancelled
        self.left = RENDER_OUTPUT_VERBOSE_MAX if verbose else RENDER_OUTPUT_MAX
        self.stopped = None
        self.marked = False  # the stop marker has been written
        self.path = set()
        self.ticks = 0
        self.safe = _render_safe_types()
        self.enum = None
        m = sys.modules.get("enum")
        if m is not None and isinstance(getattr(m, "Enum", None), type):
            self.enum = m.Enum
        m = sys.modules.get("collections")
        self.odict = getattr(m, "OrderedDict", None) if m is not None else None
        self.deque = getattr(m, "deque", None) if m is not None else None

    def check(self):
        """False once rendering must stop (time, size or cancel)."""
        if self.stopped is not None:
            return False
        self.ticks += 1
        if self.ticks & 15 == 0:
            if self.cancelled is not None and self.cancelled():
                self.stopped = "<cancelled>"
            elif time.monotonic() > self.deadline:
                self.stopped = "<render time budget exceeded>"
        if self.left <= 0:
            self.stopped = "<output limit reached%s>" % ("" if self.verbose else "; -v raises it")
        return self.stopped is None

    def text(self, s):
        self.left -= len(s)
        return s


def _render_cut(st, s, limit=RENDER_STR_MAX):
    """s cut to limit characters unless -v, saying how much is missing."""
    if st.verbose or len(s) <= limit:
        return s
    return "%s...(%d more chars)" % (s[:limit], len(s) - limit)


def _render_str(st, obj, base):
    """repr of a str/bytes/bytearray (or subclass) through the base type's
    own methods, cut before repr() so that a huge string costs nothing."""
    n = base.__len__(obj)
    more = 0
    if st.verbose or n <= RENDER_STR_MAX:
        s = base.__repr__(obj)
    else:
        s = base.__repr__(base.__getitem__(obj, slice(0, RENDER_STR_MAX)))
        more = n - RENDER_STR_MAX
    if more:
        s = "%s...(%d more %s)" % (s, more, "chars" if base is str else "bytes")
    if type(obj) is not base:
        s = "%s(%s)" % (_render_type_parts(type(obj))[1], s)
    return s


def _render_addr(obj):
    return "0x%x" % id(obj)


def _render_attrs(obj):
    """(name, value) of obj's instance attributes: its __dict__ and the
    __slots__ of its classes, read through object's descriptors."""
    out = []
    try:
        d = object.__getattribute__(obj, "__dict__")
    except Exception:
        d = None
    if type(d) is dict:
        out = list(dict.items(d))
    mro = _render_descr_get(type, "__mro__", type(obj), ())
    seen = set()
    for klass in mro:
        kd = _render_descr_get(type, "__dict__", klass)
        slots = kd.get("__slots__") if kd is not None else None
        if slots is None:
            continue
        if type(slots) is str:
            slots = (slots,)
        try:
            slots = list(slots)
        except Exception:
            continue
        cname = _render_descr_get(type, "__name__", klass, "")
        for name in slots:
            if type(name) is not str or name in ("__dict__", "__weakref__") or name in seen:
                continue
            seen.add(name)
            key = name
            if name.startswith("__") and not name.endswith("__"):
                key = "_%s%s" % (cname.lstrip("_"), name)
            descr = kd.get(key)
            if type(descr) is not types.MemberDescriptorType:
                continue
            try:
                out.append((name, descr.__get__(obj, type(obj))))
            except Exception:
                pass  # a slot never assigned
    return out


def _render_is_enum(st, t):
    return st.enum is not None and issubclass(t, st.enum)


def _render_leaf(st, obj, t):
    """The text of a value that has no parts to expand, or None."""
    how = st.safe.get(id(t))
    if how == "repr":
        return repr(obj)
    if how == "datetime":
        tz = getattr(obj, "tzinfo", None)
        if tz is None or st.safe.get(id(type(tz))) is not None:
            return repr(obj)
        return "<%s object at %s>" % (_render_type_label(t), _render_addr(obj))
    if t is int:
        try:
            return _render_cut(st, int.__repr__(obj))
        except ValueError:  # 3.11+: more digits than int_max_str_digits
            return "<int of %d bits>" % int.bit_length(obj)
    if issubclass(t, str):
        return _render_str(st, obj, str)
    if issubclass(t, bytes):
        return _render_str(st, obj, bytes)
    if issubclass(t, bytearray):
        return _render_str(st, obj, bytearray)
    if issubclass(t, type):
        return "<class '%s'>" % _render_type_label(obj)
    if t is types.FunctionType:
        return "<function %s at %s>" % (
            _render_descr_get(types.FunctionType, "__qualname__", obj, "?"), _render_addr(obj))
    if t is types.BuiltinFunctionType:
        return "<built-in function %s>" % _render_descr_get(t, "__name__", obj, "?")
    if t is types.MethodType:
        func, owner = obj.__func__, obj.__self__
        qual = func.__qualname__ if type(func) is types.FunctionType else "?"
        return "<bound method %s of <%s object at %s>>" % (qual, type_name(owner),
                                                           _render_addr(owner))
    if issubclass(t, types.ModuleType):
        try:
            d = object.__getattribute__(obj, "__dict__")
        except Exception:
            d = {}
        name, f = d.get("__name__"), d.get("__file__")
        name = name if type(name) is str else "?"
        if type(f) is str:
            return "<module '%s' from '%s'>" % (name, f)
        return "<module '%s'>" % name
    if t is types.CodeType:
        return "<code object %s at %s, file \"%s\", line %d>" % (
            obj.co_name, _render_addr(obj), obj.co_filename, obj.co_firstlineno)
    if t is memoryview:
        return "<memory at %s>" % _render_addr(obj)
    if issubclass(t, int):
        return "%s(%s)" % (_render_type_parts(t)[1], _render_cut(st, int.__repr__(obj)))
    if issubclass(t, float):
        return "%s(%s)" % (_render_type_parts(t)[1], float.__repr__(obj))
    return None


def _render_take(st, it, total):
    """The items of iterator it that are shown (all with -v), in one C call
    so that another thread cannot change the container halfway."""
    import itertools
    return list(it) if st.verbose else list(itertools.islice(it, RENDER_ITEMS_MAX)), total


def _render_parts(st, obj, t):
    """How obj's parts show: (kind, opening, closing, items, total) where
    kind is "seq" (items are values), "map" ((key, value) pairs), "attrs"
    ((name, value) pairs) or "args" (exception arguments, always on one
    line); None when obj has no parts to show."""
    name = _render_type_parts(t)[1]
    if issubclass(t, dict):
        if st.odict is not None and issubclass(t, st.odict):
            items, n = _render_take(st, iter(st.odict.items(obj)), dict.__len__(obj))
        else:
            items, n = _render_take(st, iter(dict.items(obj)), dict.__len__(obj))
        if t is dict:
            return "map", "{", "}", items, n
        return "map", "%s({" % name, "})", items, n
    if issubclass(t, list):
        items, n = _render_take(st, list.__iter__(obj), list.__len__(obj))
        if t is list:
            return "seq", "[", "]", items, n
        return "seq", "%s([" % name, "])", items, n
    if issubclass(t, tuple):
        items, n = _render_take(st, tuple.__iter__(obj), tuple.__len__(obj))
        if t is tuple:
            return "seq", "(", ",)" if n == 1 else ")", items, n
        fields = None
        for klass in _render_descr_get(type, "__mro__", t, ()):
            kd = _render_descr_get(type, "__dict__", klass)
            if kd is not None and "_fields" in kd:
                fields = kd["_fields"]
                break
        if type(fields) is tuple and len(fields) == n and all(type(f) is str for f in fields):
            return "attrs", "%s(" % name, ")", list(zip(fields, items)), n
        return "seq", "%s((" % name, "))", items, n
    if issubclass(t, (set, frozenset)):
        base = set if issubclass(t, set) else frozenset
        items, n = _render_take(st, base.__iter__(obj), base.__len__(obj))
        if not n:
            return "seq", "%s(" % name, ")", items, n
        if t is set:
            return "seq", "{", "}", items, n
        return "seq", "%s({" % name, "})", items, n
    if st.deque is not None and issubclass(t, st.deque):
        items, n = _render_take(st, st.deque.__iter__(obj), st.deque.__len__(obj))
        return "seq", "%s([" % name, "])", items, n
    if t is _RENDER_KEYS or t is _RENDER_VALUES or t is _RENDER_ITEMS:
        items, n = _render_take(st, iter(obj), len(obj))
        return "seq", "%s([" % name, "])", items, n
    if issubclass(t, BaseException):
        args = _render_descr_get(BaseException, "args", obj, ())
        args = list(args) if type(args) is tuple else []
        return "args", "%s(" % name, ")", args, len(args)
    attrs = _render_attrs(obj)
    if not attrs:
        return None
    if not st.verbose:
        return "attrs", "%s(" % name, ")", attrs[:RENDER_ITEMS_MAX], len(attrs)
    return "attrs", "%s(" % name, ")", attrs, len(attrs)


_RENDER_KEYS = type({}.keys())
_RENDER_VALUES = type({}.values())
_RENDER_ITEMS = type({}.items())


def _render_enum(st, obj, t, depth, ind):
    try:
        d = object.__getattribute__(obj, "__dict__")
    except Exception:
        d = {}
    name = d.get("_name_")
    label = _render_type_parts(t)[1]
    if type(name) is str:
        label = "%s.%s" % (label, name)
    if "_value_" not in d:
        return "<%s>" % label
    return "<%s: %s>" % (label, _render_node(st, d["_value_"], max(depth + 1, st.expand), ind))


def _render_node(st, obj, depth, ind):
    """obj as text; ind is the indentation of the line obj starts on, from
    which its later lines (when expanded) are indented."""
    t = type(obj)
    if _render_is_enum(st, t):
        return st.text(_render_enum(st, obj, t, depth, ind))
    try:
        leaf = _render_leaf(st, obj, t)
    except Exception as e:
        leaf = "<%s object at %s: %s>" % (_render_type_label(t), _render_addr(obj),
                                          exc_text(e))
    if leaf is not None:
        return st.text(leaf)
    key = id(obj)
    if key in st.path:
        return st.text("<cycle: %s at %s>" % (_render_type_label(t), _render_addr(obj)))
    try:
        parts = _render_parts(st, obj, t)
    except Exception as e:
        return st.text("<%s object at %s: %s>" % (_render_type_label(t), _render_addr(obj),
                                                  exc_text(e)))
    if parts is None:
        return st.text("<%s object at %s>" % (_render_type_label(t), _render_addr(obj)))
    kind, opening, closing, items, total = parts
    if not total:
        return st.text(opening + closing)
    is_object = kind == "attrs" and not issubclass(t, tuple)
    if depth - st.expand >= (_RENDER_COMPACT_OBJ if is_object else _RENDER_COMPACT_CONTAINER):
        if is_object:
            return st.text("<%s object at %s>" % (_render_type_label(t), _render_addr(obj)))
        return st.text("%s<%d item%s>%s" % (opening, total, "" if total == 1 else "s", closing))
    st.path.add(key)
    try:
        return _render_items(st, kind, opening, closing, items, total, depth, ind)
    finally:
        st.path.discard(key)


def _render_items(st, kind, opening, closing, items, total, depth, ind):
    expanded = depth < st.expand and kind != "args"
    inner = ind + "  "
    texts = []
    for item in items:
        if not st.check():
            break
        if kind == "map":
            k = _render_node(st, item[0], max(depth + 1, st.expand), inner)
            text = "%s: %s" % (k, _render_node(st, item[1], depth + 1, inner))
        elif kind == "attrs":
            k = item[0] if type(item[0]) is str else \
                _render_node(st, item[0], max(depth + 1, st.expand), inner)
            text = "%s=%s" % (k, _render_node(st, item[1], depth + 1, inner))
        else:
            text = _render_node(st, item, depth + 1, inner)
        texts.append(text)
    if st.stopped is not None:
        if not st.marked:
            texts.append(st.stopped)
            st.marked = True
    elif len(items) < total:
        texts.append("...(%d more items)" % (total - len(items)))
    if expanded:
        st.left -= (len(inner) + 2) * len(texts)
        return "%s\n%s%s\n%s%s" % (opening, inner, (",\n" + inner).join(texts), ind, closing)
    st.left -= 2 * len(texts)
    return "%s%s%s" % (opening, ", ".join(texts), closing)


def wire_text(s):
    """s safe for the JSON link: a lone surrogate (a file name that is not
    UTF-8, an odd attribute name) shown as \\udcXX, which fpd's JSON parser
    would otherwise reject."""
    return s.encode("utf-8", "backslashreplace").decode("utf-8")


def render(obj, expand=1, raw=False, verbose=False, cancelled=None):
    """obj as text for a user: expanded (one item per line) to `expand`
    levels, then on one line; with raw, repr(obj) under the watchdog; with
    verbose, nothing cut.  cancelled() true stops it early."""
    return wire_text(_render_text(obj, expand, raw, verbose, cancelled))


def _render_text(obj, expand, raw, verbose, cancelled):
    budget = RENDER_BUDGET_VERBOSE_S if verbose else RENDER_BUDGET_S
    if raw:
        try:
            text = guarded_call(lambda: repr(obj), budget, cancelled)
        except RenderTimeout:
            return "<render time budget exceeded: repr() ran for more than %g s>" % budget
        except Exception as e:
            return "<repr failed: %s>" % exc_text(e)
        if type(text) is not str:
            return "<repr failed: __repr__ returned %s>" % type_name(text)
        limit = RENDER_OUTPUT_VERBOSE_MAX if verbose else RENDER_RAW_MAX
        if len(text) > limit:
            return "%s...(%d more chars)" % (text[:limit], len(text) - limit)
        return text
    st = _RenderState(max(0, min(RENDER_EXPAND_MAX, int(expand))), verbose, budget, cancelled)
    text = _render_node(st, obj, 0, "")
    if st.stopped is not None and not st.marked:
        text = "%s %s" % (text, st.stopped)
    return text


def render_options(req):
    """-x, -r, -v of a request, checked again (fpctl checks them, but a
    request may come from another client)."""
    expand = req.arg("expand", 1)
    if type(expand) is not int or not 1 <= expand <= RENDER_EXPAND_MAX:
        raise CommandError("%s: -x takes a whole number from 1 to %d" % (
            req.cmd, RENDER_EXPAND_MAX), code="usage", exit=2)
    return {"expand": expand, "raw": req.arg("raw", False) is True,
            "verbose": req.arg("verbose", False) is True}


def render_fields(req, value, expr, opts):
    """The EXPR/TYPE/VALUE fields of an event that shows value ("type" is
    taken: fpd's frames carry their kind in it)."""
    return {"expr": expr, "value_type": type_name(value),
            "value": render(value, opts["expand"], opts["raw"], opts["verbose"],
                            req.cancelled)}


def eval_user_expr(req, expr, names):
    """The value of the user's expression expr with names bound (and the
    builtins, nothing else), interruptible by Ctrl-C where it runs Python
    code.  A syntax error is a usage error (exit 2), an exception it
    raises a command error (exit 1); the target is unaffected either way."""
    if type(expr) is not str:
        raise CommandError("%s: -e takes an expression" % req.cmd, code="usage", exit=2)
    try:
        code = compile(expr, "<expr>", "eval", dont_inherit=True)
    except SyntaxError as e:
        raise CommandError("%s: -e %s: not a Python expression (%s)" % (req.cmd, expr, e.msg),
                           code="bad_expression", exit=2)
    except ValueError as e:  # a NUL byte
        raise CommandError("%s: -e: not a Python expression (%s)" % (req.cmd, e),
                           code="bad_expression", exit=2)
    # The names go into the globals, so that comprehensions and lambdas of
    # the expression (their own scopes) see them too.
    scope = {"__builtins__": builtins}
    scope.update(names)
    try:
        return guarded_call(lambda: eval(code, scope), None, req.cancelled)
    except RenderCancelled:
        raise CommandError("%s: -e %s: interrupted" % (req.cmd, expr), code="cancelled")
    except Exception as e:
        raise CommandError("%s: -e %s failed: %s" % (req.cmd, expr, exc_text(e)),
                           code="expression_failed")
