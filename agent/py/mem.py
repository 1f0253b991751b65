# mem summary / mem diff: object counts and sizes (sys.getsizeof) per type.
#
# Why a heap walk instead of gc.get_objects(): that is one C call, and on a
# heap of 5 million objects it holds the GIL for 100-270 ms (3.6-3.13 here);
# so does gc.get_referents() of a container with millions of items.  The
# walk starts from sys.modules, gc.garbage and every thread's frames (the
# helper's own threads left out) and follows gc.get_referents() in batches
# of bounded size, huge lists/tuples/dicts/sets/deques in slices of their
# items, so that no single C call runs long, and it sleeps briefly every
# few milliseconds so that any thread waiting for the GIL gets it.
#
# What it counts: every object reachable from those roots, tracked by the
# GC or not (ints, strs and floats inside containers too), each once; not
# counted are objects that only C code holds (a C module's state included:
# see _mem_walk) and cyclic garbage the GC has not collected yet.  Objects
# are marked as seen in a sparse bitmap keyed by address (about 1/64 of the
# heap's address span) rather than a set of ids, which would cost tens of
# bytes per object in the target.  The heap keeps changing while it is
# walked, so a snapshot is approximate for the objects created or freed
# meanwhile.
import _thread
import gc
import sys
import time
from collections import deque as _mem_deque
from itertools import islice as _mem_islice

_MEM_SLICE_S = 0.005  # work between two GIL releases
_MEM_NAP_S = 0.0005  # long enough for a waiting thread to take the GIL
_MEM_BIG = 20000  # items: a container at least this large is walked in slices
_MEM_BATCH_REFS = 20000  # referents asked of one gc.get_referents() call, about
_MEM_CHUNK = 256  # objects taken off the stack at a time
_MEM_RETRIES = 3  # restarts of a container that changed size while sliced

_MEM_ORDERS = ("descending", "ascending")
# From 3.11 on the GC does not visit the locals of a frame that is running
# (the thread's stack is a root to it), so they are taken from f_locals.
_MEM_LOCALS = sys.version_info >= (3, 11)

# Container kinds whose items can be listed in slices; 0: anything else.
_MEM_K_PLAIN, _MEM_K_SEQ, _MEM_K_DICT, _MEM_K_SET, _MEM_K_DEQUE, _MEM_K_TYPE = 0, 1, 2, 3, 4, 5
_MEM_K_MODULE = 6
_MEM_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE
_MEM_MODULE_DICT = type(sys).__dict__["__dict__"].__get__  # its md_dict, no module code run


class _MemCancelled(Exception):
    pass


def _mem_kind(t):
    if issubclass(t, type):
        return _MEM_K_TYPE
    if issubclass(t, type(sys)):
        return _MEM_K_MODULE
    for base, kind in ((list, _MEM_K_SEQ), (tuple, _MEM_K_SEQ), (dict, _MEM_K_DICT),
                       (set, _MEM_K_SET), (frozenset, _MEM_K_SET), (_mem_deque, _MEM_K_DEQUE)):
        if issubclass(t, base):
            return kind
    return _MEM_K_PLAIN


def _mem_len(o, kind):
    # The base type's __len__: a subclass's own could run application code.
    if kind == _MEM_K_SEQ:
        return list.__len__(o) if isinstance(o, list) else tuple.__len__(o)
    if kind == _MEM_K_DICT:
        return dict.__len__(o)
    if kind == _MEM_K_SET:
        return set.__len__(o) if isinstance(o, set) else frozenset.__len__(o)
    return len(o)


def _mem_slices(o, kind):
    """Yields the items of a big container, at most _MEM_BIG at a time.  A
    dict, set or deque that changes size between two slices cannot be
    iterated on: it is walked again from the start (the bitmap skips what
    was seen), a few times at most."""
    if kind == _MEM_K_SEQ:
        getitem = list.__getitem__ if isinstance(o, list) else tuple.__getitem__
        i = 0
        while True:
            part = getitem(o, slice(i, i + _MEM_BIG))
            if not part:
                return
            yield part
            i += _MEM_BIG
    if kind == _MEM_K_DICT:
        passes = (dict.keys, dict.values)
    elif kind == _MEM_K_SET:
        passes = (set.__iter__ if isinstance(o, set) else frozenset.__iter__,)
    else:
        passes = (_mem_deque.__iter__,)
    for view in passes:
        for _ in range(_MEM_RETRIES + 1):
            it = iter(view(o))
            try:
                while True:
                    part = list(_mem_islice(it, _MEM_BIG))
                    if not part:
                        break
                    yield part
                break
            except RuntimeError:
                continue


def _mem_static_type(t):
    """What a type that is not a heap type holds: the GC does not know
    these types, so gc.get_referents() has nothing for them."""
    get = type.__dict__
    out = gc.get_referents(get["__dict__"].__get__(t))  # the dict under the mappingproxy
    out.append(get["__mro__"].__get__(t))
    out.append(get["__bases__"].__get__(t))
    return out


def _mem_extras(o, t):
    """What an instance of a subclass of a container holds besides its items."""
    out = [t]
    try:
        out.append(object.__getattribute__(o, "__dict__"))
    except Exception:
        pass
    factory = getattr(o, "default_factory", None) if isinstance(o, dict) else None
    if factory is not None:
        out.append(factory)
    return out


def _mem_roots():
    me = _thread.get_ident()
    ns = globals()
    roots = [sys.modules, gc.garbage]
    for ident, frame in sys._current_frames().items():
        if ident == me:
            continue
        # f_back, not the frame's referents: from 3.11 on a running frame's
        # caller is made into an object only when asked for.
        chain = []
        while frame is not None:
            chain.append(frame)
            frame = frame.f_back
        if chain and chain[-1].f_globals is ns:
            continue  # a thread of the helper
        roots.extend(chain)
        if _MEM_LOCALS:
            for frame in chain:
                try:
                    roots.extend(list(frame.f_locals.values()))
                except Exception:
                    pass
    return roots


class _MemSnapshot(object):
    def __init__(self):
        self.counts = {}  # type -> [objects, bytes]
        self.seconds = 0.0

    def objects(self):
        return sum(c[0] for c in self.counts.values())

    def size(self):
        return sum(c[1] for c in self.counts.values())


def _mem_walk(req):
    snap = _MemSnapshot()
    counts = snap.counts
    kinds = {}
    pages = {}  # address >> 16 -> bitmap of its 8-byte slots
    big = []  # generators of slices of big containers
    getsizeof = sys.getsizeof
    type_flags = type.__dict__["__flags__"].__get__
    get_referents = gc.get_referents
    clock = time.perf_counter
    start = clock()

    def mark(o):
        a = id(o)
        p = pages.get(a >> 16)
        if p is None:
            p = pages[a >> 16] = bytearray(1024)
        i = (a >> 3) & 8191
        p[i >> 3] |= 1 << (i & 7)

    # The helper's own state is not the application's heap.
    for own in (globals(), counts, kinds, pages, big, snap):
        mark(own)
    stack = _mem_roots()
    mark(stack)
    deadline = clock() + _MEM_SLICE_S
    while True:
        if not stack:
            if not big:
                break
            try:
                stack.extend(next(big[-1]))
            except StopIteration:
                big.pop()
            continue
        chunk = stack[-_MEM_CHUNK:]
        del stack[-_MEM_CHUNK:]
        batch = []
        refs = 0
        for o in chunk:
            a = id(o)
            p = pages.get(a >> 16)
            if p is None:
                p = pages[a >> 16] = bytearray(1024)
            i = (a >> 3) & 8191
            bit = 1 << (i & 7)
            i >>= 3
            if p[i] & bit:
                continue
            p[i] |= bit
            t = type(o)
            c = counts.get(t)
            if c is None:
                c = counts[t] = [0, 0]
                stack.append(t)
            c[0] += 1
            try:
                c[1] += getsizeof(o)
            except Exception:
                pass  # a __sizeof__ that fails: counted, without size
            kind = kinds.get(t)
            if kind is None:
                kind = kinds[t] = _mem_kind(t)
            if kind == _MEM_K_TYPE:
                if not type_flags(o) & _MEM_HEAPTYPE:
                    stack.extend(_mem_static_type(o))
                    continue
                refs += 32
            elif kind == _MEM_K_MODULE:
                # Never gc.get_referents() of a module: its traverse also
                # visits the C module's state, and there CPython 3.12.0-3.12.5's
                # _asyncio visits the freed iterators on its FutureIter free
                # list (CPython gh-122695).  A reference handed out to freed
                # memory and dropped again frees the iterator a second time,
                # onto the free list it is already on: the list turns into a
                # cycle, the next full collection (vmtool -a forceGc) loops
                # over it forever with the GIL held, and two awaits may share
                # one iterator.  Any extension's state may be built the same
                # way, so the walk takes a module's dict only.
                d = _MEM_MODULE_DICT(o)
                if d is not None:
                    stack.append(d)
                continue
            elif kind:
                n = _mem_len(o, kind)
                if n >= _MEM_BIG:
                    big.append(_mem_slices(o, kind))
                    if t not in (list, tuple, dict, set, frozenset):
                        stack.extend(_mem_extras(o, t))
                    continue
                refs += n + 1
            else:
                refs += 8
            batch.append(o)
            if refs >= _MEM_BATCH_REFS:
                stack.extend(get_referents(*batch))
                batch = []
                refs = 0
        if batch:
            stack.extend(get_referents(*batch))
        if clock() >= deadline:
            time.sleep(_MEM_NAP_S)
            if req.cancelled():
                raise _MemCancelled()
            deadline = clock() + _MEM_SLICE_S
    snap.seconds = clock() - start
    return snap


def _mem_type_name(t):
    try:
        name = type.__dict__["__qualname__"].__get__(t)
        module = type.__dict__["__module__"].__get__(t)
    except Exception:
        return type.__dict__["__name__"].__get__(t)
    if not isinstance(module, str) or module == "builtins":
        return name
    return "%s.%s" % (module, name)


def _mem_options(req, diff):
    argv = req.arg("argv", [])
    limit = req.arg("limit", 10)
    order = req.arg("order", "descending")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise CommandError("mem: --limit takes a whole number from 1, not '%s'" % (limit,), exit=2)
    if order not in _MEM_ORDERS:
        raise CommandError("mem: --order takes descending or ascending, not '%s'" % (order,),
                           exit=2)
    interval = req.arg("interval", 15)
    if not diff and req.args.get("interval") is not None:
        raise CommandError("mem summary: --interval applies to mem diff only", exit=2)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or \
            not 0.1 <= interval <= 3600:
        raise CommandError("mem diff: --interval takes a number of seconds from 0.1 to 3600, "
                           "not '%s'" % (interval,), exit=2)
    if len(argv) > 1:
        raise CommandError("mem: unexpected argument '%s'" % argv[1], exit=2)
    return limit, order, float(interval)


def _mem_rows(items, order, limit):
    """items: (name, count, size); largest size first for descending."""
    items.sort(key=lambda r: (r[2], r[1], r[0]), reverse=order == "descending")
    return [{"type": n, "count": c, "size": s} for n, c, s in items[:limit]]


def _mem_summary(req, limit, order):
    snap = _mem_walk(req)
    items = [(_mem_type_name(t), c[0], c[1]) for t, c in snap.counts.items()]
    req.emit("mem_summary", rows=_mem_rows(items, order, limit), order=order,
             objects=snap.objects(), size=snap.size(), types=len(snap.counts),
             seconds=round(snap.seconds, 3))


def _mem_diff(req, limit, order, interval):
    before = _mem_walk(req)
    req.emit("mem_snapshot", objects=before.objects(), size=before.size(),
             seconds=round(before.seconds, 3), interval=interval)
    deadline = time.time() + interval
    while True:
        left = deadline - time.time()
        if left <= 0:
            break
        if req.recv(left) == "cancel":
            raise _MemCancelled()
    after = _mem_walk(req)
    items = []
    for t in set(before.counts) | set(after.counts):
        b = before.counts.get(t, (0, 0))
        a = after.counts.get(t, (0, 0))
        if a[0] != b[0] or a[1] != b[1]:
            items.append((_mem_type_name(t), a[0] - b[0], a[1] - b[1]))
    req.emit("mem_diff", rows=_mem_rows(items, order, limit), order=order, interval=interval,
             before={"objects": before.objects(), "size": before.size()},
             after={"objects": after.objects(), "size": after.size()},
             seconds=round(after.seconds, 3))


@command("mem")
def _mem(req):
    argv = req.arg("argv", [])
    action = argv[0] if argv else ""
    if action not in ("summary", "diff"):
        raise CommandError("mem: unknown action '%s' (usage: mem summary|diff [--limit N] "
                           "[--order descending|ascending] [--interval S])" % action, exit=2)
    limit, order, interval = _mem_options(req, action == "diff")
    try:
        if action == "summary":
            _mem_summary(req, limit, order)
        else:
            _mem_diff(req, limit, order, interval)
    except _MemCancelled:
        pass
