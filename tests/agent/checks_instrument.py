"""Checks of agent/py/instrument.py, run under every interpreter by
checkrun.py (CPython 3.6+ syntax only): each kind of function, the
target/args split, threads, two instrumentations on one function removed
in either order, exact restoration (code object identity; on 3.12+ the
sys.monitoring tool id freed), hooks that raise, reentrancy, session end,
bad input."""
import asyncio
import functools
import sys
import threading
import types

import harness

MONITORING = sys.version_info >= (3, 12)
MOD = "fpcheck_instr"


class Log(object):
    """Hooks that record what they see."""

    def __init__(self, switches=False):
        self.events = []
        if switches:
            self.on_suspend = lambda call: self.events.append(("suspend", call.label))
            self.on_resume = lambda call: self.events.append(("resume", call.label))

    def on_enter(self, call):
        self.events.append(("enter", call.target, call.args, call.kwargs, call.is_async))

    def on_exit(self, call, ret, exc):
        assert call.cost_ms is not None and call.cost_ms >= 0
        self.events.append(("exit", ret, exc))

    def kinds(self):
        return [e[0] for e in self.events]


class Service(object):
    def __init__(self, name):
        self.name = name

    def handle(self, request, *extra, retries=1, **options):
        return (request, extra, retries, options)

    @classmethod
    def create(cls, name):
        return cls(name)

    @staticmethod
    def checksum(data, mod=251):
        return sum(data) % mod

    @property
    def size(self):
        return len(self.name)

    def outer(self, x):
        base = 100

        def inner(y, scale=2):
            return base + y * scale
        return inner(x)

    def plain_inner(self, x):
        def twice(v):
            return v * 2
        return twice(x)

    def make_inner(self):
        seen = []

        def kept(v):
            seen.append(v)
            return len(seen)
        return kept

    def uses_super(self):
        return super().__repr__()[:1]


def deco(fn):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        return fn(*a, **k)
    return wrapper


def opaque(fn):
    """A decorator that keeps no __wrapped__: the function is in its closure."""
    def wrapper(*a, **k):
        return fn(*a, **k)
    return wrapper


def add(a, b=10):
    return a + b


def fail(n):
    raise ValueError("bad %d" % n)


def numbers(n):
    for i in range(n):
        yield i
    return "done"


async def fetch(i):
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    return i * 2


async def ticks(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i


@deco
def decorated(a, b):
    return a * b


@opaque
def hidden(a):
    return -a


def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)


def module():
    mod = types.ModuleType(MOD)
    for name, value in list(globals().items()):
        if isinstance(value, (type, types.FunctionType)) and not name.startswith("_"):
            setattr(mod, name, value)
    sys.modules[MOD] = mod
    return mod


class Req(object):
    """The helper's Request over the fake link, for instrument()'s req."""
    _next = [500]

    def __init__(self, ns, session=1):
        Req._next[0] += 1
        self.req = ns["Request"](session, Req._next[0], "watch", {})
        self.link = ns["_link"]

    def events(self, name):
        return [p for op, rid, p in self.link.frames
                if rid == self.req.id and op == 17 and p.get("event") == name]


def instrument(ns, cls, method, nested=None, hooks=None, session=1):
    module()
    r = Req(ns, session)
    return ns["instrument"](r.req, MOD, cls, method, nested, hooks), r


def run(coro):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def tool_free(ns):
    """No sys.monitoring tool id of ours is left (3.12+)."""
    if MONITORING:
        assert ns["_instr_mon_state"]["tool"] is None
        assert all(sys.monitoring.get_tool(t) != "fpd" for t in range(6)), \
            [sys.monitoring.get_tool(t) for t in range(6)]
        assert not ns["_instr_mon_points"]
    else:
        assert not ns["_instr_funcs"]


def check_function_args_and_restore(ns):
    code = add.__code__
    log = Log()
    inst, _ = instrument(ns, None, "add", hooks=log)
    assert inst.label == MOD + ".add", inst.label
    assert add(1) == 11 and add(1, b=5) == 6
    assert log.events == [("enter", None, (1, 10), {}, False), ("exit", 11, None),
                          ("enter", None, (1, 5), {}, False), ("exit", 6, None)], log.events
    if not MONITORING:
        assert add.__code__ is not code
    inst.remove()
    inst.remove()
    assert add.__code__ is code
    assert add(2) == 12 and len(log.events) == 4
    tool_free(ns)


def check_method_target_split(ns):
    log = Log()
    inst, _ = instrument(ns, "Service", "handle", hooks=log)
    s = Service("a")
    assert s.handle(1, 2, 3, retries=4, x=5) == (1, (2, 3), 4, {"x": 5})
    assert Service.handle(s, request=7) == (7, (), 1, {})
    inst.remove()
    assert log.events == [
        ("enter", s, (1, 2, 3), {"retries": 4, "x": 5}, False),
        ("exit", (1, (2, 3), 4, {"x": 5}), None),
        ("enter", s, (7,), {"retries": 1}, False),
        ("exit", (7, (), 1, {}), None)], log.events
    tool_free(ns)


def check_classmethod_staticmethod_property(ns):
    log = Log()
    insts = [instrument(ns, "Service", m, hooks=log)[0] for m in ("create", "checksum", "size")]
    s = Service.create("abc")
    assert Service.checksum([250, 3]) == 2 and s.checksum([1], mod=2) == 1
    assert s.size == 3
    for inst in insts:
        inst.remove()
    ev = log.events
    assert ev[0] == ("enter", Service, ("abc",), {}, False), ev
    assert ev[2] == ("enter", None, ([250, 3], 251), {}, False), ev
    assert ev[4] == ("enter", None, ([1], 2), {}, False), ev
    assert ev[6] == ("enter", s, (), {}, False) and ev[7] == ("exit", 3, None), ev
    assert Service.__dict__["create"].__func__.__code__.co_name == "create"
    tool_free(ns)


def check_super_and_closure_cells(ns):
    code = Service.uses_super.__code__
    log = Log()
    inst, _ = instrument(ns, "Service", "uses_super", hooks=log)
    assert Service("x").uses_super() == "<"
    inst.remove()
    assert Service.uses_super.__code__ is code and log.kinds() == ["enter", "exit"]
    tool_free(ns)


def check_defaults_changed_at_run_time(ns):
    """The trampoline keeps no defaults of its own: the function's apply."""
    log = Log()
    inst, _ = instrument(ns, None, "add", hooks=log)
    old = add.__defaults__
    try:
        add.__defaults__ = (100,)
        assert add(1) == 101
    finally:
        add.__defaults__ = old
        inst.remove()
    assert log.events[0][2] == (1, 100), log.events
    tool_free(ns)


def check_positional_only(ns):
    if sys.version_info < (3, 8):
        return
    g = {}
    exec("def po(a, b=2, /, c=3, *, d=4):\n    return (a, b, c, d)\n", g)
    mod = module()
    mod.po = g["po"]
    log = Log()
    r = Req(ns)
    inst = ns["instrument"](r.req, MOD, None, "po", None, log)
    assert mod.po(1, c=5) == (1, 2, 5, 4)
    inst.remove()
    assert log.events[0] == ("enter", None, (1, 2, 5), {"d": 4}, False), log.events
    tool_free(ns)


def check_exception_passes_through(ns):
    log = Log()
    inst, _ = instrument(ns, None, "fail", hooks=log)
    try:
        fail(3)
        raise AssertionError("no exception")
    except ValueError as e:
        assert str(e) == "bad 3"
        tb = ns["skip_instrument_frames"](e.__traceback__.tb_next)
        assert tb.tb_frame.f_code.co_name == "fail", tb.tb_frame.f_code
        assert tb.tb_next is None
    inst.remove()
    kind, ret, exc = log.events[1]
    assert kind == "exit" and ret is None and type(exc) is ValueError, log.events
    tool_free(ns)


def check_generator(ns):
    log = Log(switches=True)
    inst, _ = instrument(ns, None, "numbers", hooks=log)
    g = numbers(2)
    assert log.events == []  # the body has not started
    assert list(g) == [0, 1]
    g2 = numbers(5)
    next(g2)
    g2.close()
    inst.remove()
    ev = log.events
    assert ev[0] == ("enter", None, (2,), {}, True) and ev[5] == ("exit", "done", None), ev
    closed = ["enter", "suspend", "resume", "exit"]
    if sys.version_info >= (3, 13):
        # 3.13 closes a generator suspended outside a try block without
        # resuming it: no event tells that its call ended.
        closed = ["enter", "suspend"]
    assert log.kinds() == ["enter", "suspend", "resume", "suspend", "resume", "exit"] + closed, ev
    if closed[-1] == "exit":
        assert type(ev[-1][2]) is GeneratorExit, ev
    tool_free(ns)


def check_abandoned_generators_forgotten(ns):
    """Generators dropped half-way leave nothing behind in the helper."""
    log = Log()
    inst, _ = instrument(ns, None, "numbers", hooks=log)
    for _ in range(300):
        g = numbers(3)
        next(g)
        del g
    kept = [numbers(3) for _ in range(100)]
    for g in kept:
        next(g)
    if MONITORING:
        point = ns["_instr_mon_points"][numbers.__code__]
        assert 100 <= len(point.active) < 300, len(point.active)
    for g in kept:
        assert list(g) == [1, 2]
    if MONITORING:
        assert len(point.active) < 200, len(point.active)
    inst.remove()
    assert log.kinds().count("enter") == 400
    assert log.events.count(("exit", "done", None)) == 100
    tool_free(ns)


def check_coroutine(ns):
    log = Log(switches=True)
    inst, _ = instrument(ns, None, "fetch", hooks=log)
    assert run(fetch(4)) == 8
    inst.remove()
    assert run(fetch(1)) == 2
    ev = log.events
    assert ev[0] == ("enter", None, (4,), {}, True) and ev[-1] == ("exit", 8, None), ev
    assert [e[0] for e in ev[1:-1]] == ["suspend", "resume"] * 2, ev
    assert asyncio.iscoroutinefunction(fetch)
    tool_free(ns)


def check_coroutine_cancelled(ns):
    log = Log()
    inst, _ = instrument(ns, None, "fetch", hooks=log)

    async def main():
        t = asyncio.ensure_future(fetch(1))
        await asyncio.sleep(0)
        t.cancel()
        try:
            await t
        except asyncio.CancelledError:
            return "cancelled"
    assert run(main()) == "cancelled"
    inst.remove()
    assert log.kinds() == ["enter", "exit"], log.events
    assert isinstance(log.events[1][2], asyncio.CancelledError), log.events
    tool_free(ns)


def check_async_generator(ns):
    log = Log()
    inst, _ = instrument(ns, None, "ticks", hooks=log)

    async def consume(n):
        out = []
        async for i in ticks(n):
            out.append(i)
        return out

    async def early():
        g = ticks(10)
        first = await g.__anext__()
        await g.aclose()
        return first
    assert run(consume(3)) == [0, 1, 2]
    assert run(early()) == 0
    inst.remove()
    ev = log.events
    assert ev[0] == ("enter", None, (3,), {}, True) and ev[1] == ("exit", None, None), ev
    assert ev[2][0] == "enter" and type(ev[3][2]) is GeneratorExit, ev
    tool_free(ns)


def check_nested_inner(ns):
    outer_code = Service.outer.__code__
    kept_code = Service.make_inner.__code__
    s = Service("n")
    kept = s.make_inner()  # made before the instrumentation: must be seen too
    log = Log()
    inst, _ = instrument(ns, "Service", "outer", nested="inner", hooks=log)
    inst2, _ = instrument(ns, "Service", "make_inner", nested="kept", hooks=log)
    inst3, _ = instrument(ns, "Service", "plain_inner", nested="twice", hooks=log)
    assert inst.label == "checks.Service.outer.inner", inst.label
    assert s.outer(3) == 106
    assert kept("a") == 1 and s.make_inner()("b") == 1
    assert s.plain_inner(5) == 10
    inner_code = [c for c in outer_code.co_consts if getattr(c, "co_name", "") == "inner"][0]
    kept_inner = [c for c in kept_code.co_consts if getattr(c, "co_name", "") == "kept"][0]
    inst.remove()
    inst2.remove()
    inst3.remove()
    assert Service.outer.__code__ is outer_code and Service.make_inner.__code__ is kept_code
    assert kept.__code__ is kept_inner
    assert s.outer(1) == 102
    ev = log.events
    assert ev[0] == ("enter", None, (3, 2), {}, False) and ev[1] == ("exit", 106, None), ev
    assert ev[2] == ("enter", None, ("a",), {}, False) and ev[4][2] == ("b",), ev
    assert ev[6] == ("enter", None, (5,), {}, False) and ev[7] == ("exit", 10, None), ev
    assert len(ev) == 8, ev
    assert s.outer.__code__.co_consts.count(inner_code) == 1
    tool_free(ns)


def check_outer_and_inner_together(ns):
    """The function itself and its -nm inner function, by two sessions,
    removed in both orders."""
    outer_code = Service.outer.__code__
    for first in (0, 1):
        a, b = Log(), Log()
        insts = [instrument(ns, "Service", "outer", hooks=a, session=1)[0],
                 instrument(ns, "Service", "outer", nested="inner", hooks=b, session=2)[0]]
        assert Service("x").outer(2) == 104
        insts[first].remove()
        assert Service("x").outer(2) == 104
        insts[1 - first].remove()
        assert Service.outer.__code__ is outer_code
        assert a.kinds() == ["enter", "exit"] * (1 + first), (first, a.events)
        assert b.kinds() == ["enter", "exit"] * (2 - first), (first, b.events)
    tool_free(ns)


def check_decorated(ns):
    log = Log()
    inner_code = decorated.__wrapped__.__code__
    wrapper_code = decorated.__code__
    inst, _ = instrument(ns, None, "decorated", hooks=log)
    inst2, _ = instrument(ns, None, "hidden", hooks=log)
    assert decorated(3, 4) == 12 and hidden(5) == -5
    inst.remove()
    inst2.remove()
    assert decorated.__code__ is wrapper_code and decorated.__wrapped__.__code__ is inner_code
    assert log.events == [("enter", None, (3, 4), {}, False), ("exit", 12, None),
                          ("enter", None, (5,), {}, False), ("exit", -5, None)], log.events
    tool_free(ns)


def check_threads(ns):
    seen = []
    lock = threading.Lock()

    class Hooks(object):
        def on_exit(self, call, ret, exc):
            with lock:
                seen.append((call.thread, call.thread_name, call.args, ret))

    inst, _ = instrument(ns, None, "add", hooks=Hooks())
    results = {}

    def work(k):
        results[k] = [add(k, i) for i in range(200)]
    threads = [threading.Thread(target=work, args=(k,), name="w%d" % k) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    inst.remove()
    assert len(seen) == 800, len(seen)
    idents = dict((t.name, t.ident) for t in threads)
    for ident, name, args, ret in seen:
        assert idents[name] == ident and ret == args[0] + args[1], (ident, name, args, ret)
        assert name == "w%d" % args[0]
    for k in range(4):
        assert results[k] == [k + i for i in range(200)]
    tool_free(ns)


def check_two_instrumentations_any_order(ns):
    code = add.__code__
    for order in ((0, 1), (1, 0)):
        logs = [Log(), Log()]
        insts = [instrument(ns, None, "add", hooks=logs[i], session=i + 1)[0] for i in (0, 1)]
        assert add(1, 2) == 3
        insts[order[0]].remove()
        assert add(2, 2) == 4
        if not MONITORING:
            assert add.__code__ is not code
        insts[order[1]].remove()
        assert add.__code__ is code
        assert add(3, 3) == 6
        assert len(logs[order[0]].events) == 2 and len(logs[order[1]].events) == 4
    tool_free(ns)


def check_hook_exception_contained(ns):
    class Bad(object):
        def on_enter(self, call):
            raise RuntimeError("enter broke")

        def on_exit(self, call, ret, exc):
            raise SystemExit("exit broke")

    inst, r = instrument(ns, None, "add", hooks=Bad())
    assert [add(i, 1) for i in range(5)] == [1, 2, 3, 4, 5]
    try:
        fail(1)
    except ValueError:
        pass
    inst.remove()
    errors = r.events("hook_error")
    assert len(errors) == 1 and "RuntimeError: enter broke" in errors[0]["message"], errors
    assert errors[0]["method"] == MOD + ".add"
    assert inst.errors == 10, inst.errors
    tool_free(ns)


def check_reentrant_hook_not_observed(ns):
    class Recurse(object):
        def __init__(self):
            self.n = 0

        def on_exit(self, call, ret, exc):
            self.n += 1
            add(100, 100)  # the watched function, from its own hook

    h = Recurse()
    inst, _ = instrument(ns, None, "add", hooks=h)
    assert add(1, 1) == 2
    inst.remove()
    assert h.n == 1
    tool_free(ns)


def check_recursion(ns):
    log = Log()
    inst, _ = instrument(ns, None, "fact", hooks=log)
    assert fact(4) == 24
    inst.remove()
    assert [(e[0], e[2] if e[0] == "enter" else e[1]) for e in log.events] == [
        ("enter", (4,)), ("enter", (3,)), ("enter", (2,)), ("enter", (1,)),
        ("exit", 1), ("exit", 2), ("exit", 6), ("exit", 24)], log.events
    tool_free(ns)


def check_removed_during_call(ns):
    """A hook that removes the instrumentation (as -n does): the call in
    progress ends untouched and no later hook runs."""
    log = Log()
    holder = []

    class Stop(object):
        def on_enter(self, call):
            holder[0].remove()

        def on_exit(self, call, ret, exc):
            log.events.append("exit after remove")

    holder.append(instrument(ns, None, "add", hooks=Stop())[0])
    assert add(1, 1) == 2 and add(2, 2) == 4
    assert log.events == []
    tool_free(ns)


def check_session_end_removes(ns):
    code = add.__code__
    log = Log()
    instrument(ns, None, "add", hooks=log, session=7)
    instrument(ns, "Service", "outer", nested="inner", hooks=log, session=7)
    assert add(1, 1) == 2
    ns["_fp_session_end"](7)
    assert add.__code__ is code and Service.outer(Service("x"), 1) == 102
    assert len(log.events) == 2
    tool_free(ns)


def check_module_unchanged(ns):
    mod = module()
    before = dict(vars(mod))
    classes = dict(vars(Service))
    inst, _ = instrument(ns, "Service", "handle", hooks=Log())
    inst2, _ = instrument(ns, None, "add", hooks=Log())
    assert dict(vars(mod)) == before and dict(vars(Service)) == classes
    inst.remove()
    inst2.remove()
    assert dict(vars(mod)) == before and dict(vars(Service)) == classes
    tool_free(ns)


def check_monitoring_tool_ids(ns):
    """3.12+: a tool id the application holds is never taken, and without a
    free one instrument() says so."""
    if not MONITORING:
        return
    mon = sys.monitoring
    mon.use_tool_id(4, "app")
    try:
        inst, _ = instrument(ns, None, "add", hooks=Log())
        assert mon.get_tool(3) == "fpd" and mon.get_tool(4) == "app"
        inst.remove()
        assert mon.get_tool(3) is None
        mon.use_tool_id(3, "app2")
        try:
            try:
                instrument(ns, None, "add", hooks=Log())
                raise AssertionError("no error")
            except ns["CommandError"] as e:
                assert "no free tool id" in e.message and "app2" in e.message, e.message
        finally:
            mon.free_tool_id(3)
    finally:
        mon.free_tool_id(4)
    tool_free(ns)


def check_bad_input(ns):
    module()
    r = Req(ns)
    CommandError = ns["CommandError"]
    cases = [(("no_such_mod", None, "f"), "module no_such_mod is not loaded"),
             ((MOD, "Nope", "f"), "class Nope not found"),
             ((MOD, "Service", "nope"), "class checks.Service has no method nope"),
             ((MOD, None, "nope"), "module %s has no function nope" % MOD),
             ((MOD, None, "Service"), "not a Python function")]
    for (m, c, f), want in cases:
        try:
            ns["instrument"](r.req, m, c, f, None, Log())
            raise AssertionError("no error for %r" % ((m, c, f),))
        except CommandError as e:
            assert want in e.message, (e.message, want)
    try:
        ns["instrument"](r.req, MOD, "Service", "outer", "nope", Log())
        raise AssertionError("no error for -nm nope")
    except CommandError as e:
        assert "Service.outer defines no function nope" in e.message, e.message
    assert "no_such_mod" not in sys.modules
    tool_free(ns)
