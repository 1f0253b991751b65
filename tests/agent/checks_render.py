"""Checks of agent/py/render.py, run under every interpreter by
checkrun.py (CPython 3.6+ syntax only).  Each check gets a fresh helper
namespace ns."""
import collections
import enum
import sys
import threading
import time


class Probe(object):
    """An object every hook of which would record that it ran (and raise):
    rendering it without -r must call none of them."""
    calls = []

    def __init__(self):
        self.a = 1
        self.b = "two"

    def _hit(self, what):
        Probe.calls.append(what)
        raise RuntimeError("application code ran: " + what)

    def __repr__(self):
        return self._hit("__repr__")

    def __str__(self):
        return self._hit("__str__")

    def __eq__(self, other):
        return self._hit("__eq__")

    def __hash__(self):
        return self._hit("__hash__")

    def __getattr__(self, name):
        return self._hit("__getattr__ " + name)

    def __len__(self):
        return self._hit("__len__")

    def __iter__(self):
        return self._hit("__iter__")

    @property
    def prop(self):
        return self._hit("prop")


class HostileList(list):
    def __iter__(self):
        Probe.calls.append("HostileList.__iter__")
        raise RuntimeError("__iter__ ran")

    def __len__(self):
        Probe.calls.append("HostileList.__len__")
        return 0

    def __repr__(self):
        Probe.calls.append("HostileList.__repr__")
        return "no"


class HostileDict(dict):
    def items(self):
        Probe.calls.append("HostileDict.items")
        return []

    def __iter__(self):
        Probe.calls.append("HostileDict.__iter__")
        return iter(())


class Raising(object):
    def __init__(self):
        self.x = 1

    def __repr__(self):
        raise ValueError("boom")


class Spinning(object):
    def __repr__(self):
        while True:
            pass


class Napping(object):
    def __repr__(self):
        while True:
            time.sleep(0.01)


class Slotted(object):
    __slots__ = ("a", "__hidden", "unset")

    def __init__(self):
        self.a = 1
        self.__hidden = 2


class Node(object):
    def __init__(self, name):
        self.name = name
        self.next = None


class Color(enum.Enum):
    RED = 1


class Shade(str, enum.Enum):
    DARK = "dark"


Point = collections.namedtuple("Point", "x y")


def eq(got, want):
    assert got == want, "got:\n%s\nwant:\n%s" % (got, want)


def check_scalars(ns):
    r = ns["render"]
    eq(r(None), "None")
    eq(r(True), "True")
    eq(r(42), "42")
    eq(r(-1.5), "-1.5")
    eq(r(1j), "1j")
    eq(r("it's"), repr("it's"))
    eq(r(b"\x00ab"), repr(b"\x00ab"))
    eq(r(bytearray(b"xy")), "bytearray(b'xy')")
    eq(r(range(3)), "range(0, 3)")
    eq(r(Color.RED), "<Color.RED: 1>")
    eq(r(Shade.DARK), "<Shade.DARK: 'dark'>")
    eq(r(int), "<class 'int'>")
    eq(r(Node), "<class 'checks.Node'>")
    assert r(sys).startswith("<module 'sys'"), r(sys)
    assert r(check_scalars).startswith("<function check_scalars at 0x"), r(check_scalars)
    assert r(len) == "<built-in function len>", r(len)
    eq(r(ValueError("bad", 3)), "ValueError('bad', 3)")


def check_type_name(ns):
    tn = ns["type_name"]
    eq(tn(1), "int")
    eq(tn(Node("n")), "checks.Node")
    eq(tn(collections.OrderedDict()), "collections.OrderedDict")
    eq(tn(Color.RED), "checks.Color")


def check_string_truncation(ns):
    r = ns["render"]
    s = "x" * 300
    eq(r(s), repr("x" * 256) + "...(44 more chars)")
    eq(r(s, verbose=True), repr(s))
    eq(r(b"y" * 260), repr(b"y" * 256) + "...(4 more bytes)")
    big = 10 ** 400
    text = r(big)
    assert text.endswith("more chars)") or text.startswith("<int of"), text
    assert len(r(big, verbose=True)) > 300 or r(big).startswith("<int of")


def check_container_truncation(ns):
    r = ns["render"]
    lines = r(list(range(150))).splitlines()
    eq(lines[0], "[")
    eq(lines[1], "  0,")
    eq(lines[100], "  99,")
    eq(lines[101], "  ...(50 more items)")
    eq(lines[-1], "]")
    eq(len(r(list(range(150)), verbose=True).splitlines()), 152)
    d = dict(("k%03d" % i, i) for i in range(120))
    text = r(d)
    assert "'k099': 99" in text and "'k100'" not in text and "...(20 more items)" in text, text
    assert "'k119': 119" in r(d, verbose=True)
    nested = {"inner": list(range(120))}
    assert "99, ...(20 more items)]" in r(nested), r(nested)


def check_layout(ns):
    r = ns["render"]
    value = {"a": 1, "b": [1, 2, {"c": (3,)}], "e": {}, "f": [], "g": ()}
    eq(r(value, expand=1),
       "{\n  'a': 1,\n  'b': [1, 2, {'c': (3,)}],\n  'e': {},\n  'f': [],\n  'g': ()\n}")
    eq(r(value, expand=2),
       "{\n  'a': 1,\n  'b': [\n    1,\n    2,\n    {'c': (3,)}\n  ],\n  'e': {},\n  'f': [],\n"
       "  'g': ()\n}")
    eq(r(value, expand=3),
       "{\n  'a': 1,\n  'b': [\n    1,\n    2,\n    {\n      'c': (3,)\n    }\n  ],\n  'e': {},\n"
       "  'f': [],\n  'g': ()\n}")
    eq(r([1, 2], expand=0), "[1, 2]")


def check_depth_limits(ns):
    r = ns["render"]
    deep = [[[[[[1]]]]]]
    # Below the expanded levels, containers show three more levels on one line.
    eq(r(deep, expand=1), "[\n  [[[[<1 item>]]]]\n]")
    eq(r(deep, expand=4),
       "[\n  [\n    [\n      [\n        [[1]]\n      ]\n    ]\n  ]\n]")
    # -x is capped at 4.
    eq(r(deep, expand=9), r(deep, expand=4))
    root = Node("root")
    root.next = Node("child")
    root.next.next = Node("grandchild")
    text = r(root, expand=1)
    lines = text.splitlines()
    eq(lines[0], "Node(")
    eq(lines[1], "  name='root',")
    assert lines[2].startswith("  next=Node(name='child', next=<checks.Node object at 0x"), text
    eq(lines[3], ")")
    text = r(root, expand=2)
    assert "    next=Node(name='grandchild', next=None)" in text, text


def check_objects_and_slots(ns):
    r = ns["render"]
    eq(r(Slotted(), expand=0), "Slotted(a=1, __hidden=2)")
    assert r(object()).startswith("<object object at 0x"), r(object())
    lock = threading.Lock()
    assert r(lock).startswith("<_thread.lock object at 0x"), r(lock)
    eq(r(Point(1, 2), expand=0), "Point(x=1, y=2)")
    eq(r(Point(1, 2)), "Point(\n  x=1,\n  y=2\n)")


def check_builtin_subclasses(ns):
    r = ns["render"]
    od = collections.OrderedDict([("a", 1), ("b", 2)])
    od.move_to_end("a")
    eq(r(od, expand=0), "OrderedDict({'b': 2, 'a': 1})")
    dd = collections.defaultdict(list)
    dd["k"].append(1)
    eq(r(dd, expand=0), "defaultdict({'k': [1]})")
    eq(r(collections.deque([1, 2]), expand=0), "deque([1, 2])")
    eq(r({1}, expand=0), "{1}")
    eq(r(set()), "set()")
    eq(r(frozenset([2]), expand=0), "frozenset({2})")
    eq(r((1,), expand=0), "(1,)")
    eq(r({"a": 1}.keys(), expand=0), "dict_keys(['a'])")


def check_no_application_code(ns):
    r = ns["render"]
    Probe.calls[:] = []
    hl = HostileList([1, 2])
    hd = HostileDict(a=1)
    value = {"probe": Probe(), "list": hl, "dict": hd, "nested": [Probe()]}
    for expand in (0, 1, 4):
        text = r(value, expand=expand)
        assert "HostileList([" in text and "HostileDict({" in text, text
        if expand:
            assert "Probe(" in text and "a=1" in text and "b='two'" in text, text
    eq(Probe.calls, [])


def check_cycles(ns):
    r = ns["render"]
    lst = [1]
    lst.append(lst)
    text = r(lst, expand=0)
    assert text.startswith("[1, <cycle: list at 0x"), text
    d = {}
    d["self"] = d
    assert "<cycle: dict at 0x" in r(d), r(d)
    a, b = Node("a"), Node("b")
    a.next, b.next = b, a
    text = r(a, expand=4)
    assert "<cycle: checks.Node at 0x%x>" % id(a) in text, text
    # A shared value that is not a cycle prints twice.
    shared = [1]
    eq(r([shared, shared], expand=0), "[[1], [1]]")


def check_raising_repr(ns):
    r = ns["render"]
    eq(r(Raising(), raw=True), "<repr failed: ValueError: boom>")
    eq(r(Raising(), expand=0), "Raising(x=1)")
    eq(r([1, "a"], raw=True), "[1, 'a']")
    eq(r(Probe(), raw=True), "<repr failed: RuntimeError: application code ran: __repr__>")


def check_hanging_repr(ns):
    r = ns["render"]
    ns["RENDER_BUDGET_S"] = 0.2  # the budget is read at each render; 1 s by default
    for cls in (Spinning, Napping):
        start = time.time()
        text = r(cls(), raw=True)
        took = time.time() - start
        assert text.startswith("<render time budget exceeded"), text
        assert took < 5, took
    # The thread goes on normally: no exception left pending for later code.
    total = 0
    for i in range(200000):
        total += i
    eq(total, 19999900000)


def check_raw_truncation(ns):
    r = ns["render"]
    text = r(list(range(5000)), raw=True)
    assert text.endswith("more chars)") and len(text) < 4200, text[-60:]
    eq(r(list(range(5000)), raw=True, verbose=True), repr(list(range(5000))))


def check_output_limit(ns):
    r = ns["render"]
    ns["RENDER_OUTPUT_MAX"] = 1 << 16  # read at each render; 1 MiB by default
    row = list(range(100))
    wide = [[row] * 100] * 100
    text = r(wide, expand=4)
    eq(text.count("<output limit reached; -v raises it>"), 1)
    assert (1 << 16) < len(text) < (1 << 16) + 4096, len(text)
    # Every container opened is closed after the marker.
    eq(text.splitlines()[-1], "]")


def check_time_budget(ns):
    r = ns["render"]
    ns["RENDER_BUDGET_S"] = 0.05
    ns["RENDER_OUTPUT_MAX"] = 1 << 30
    row = list(range(100))
    wide = [[row] * 100] * 100
    start = time.time()
    text = r(wide, expand=4)
    assert time.time() - start < 3, time.time() - start
    eq(text.count("<render time budget exceeded>"), 1)


def check_cancel(ns):
    r = ns["render"]
    text = r(list(range(100)) * 5, expand=1, cancelled=lambda: True)
    assert "<cancelled>" in text, text
    assert len(text.splitlines()) < 40, text


def check_guarded_call(ns):
    guarded = ns["guarded_call"]
    eq(guarded(lambda: 7, 1.0), 7)
    try:
        guarded(lambda: 1 / 0, 1.0)
    except ZeroDivisionError:
        pass
    else:
        raise AssertionError("the exception of fn did not propagate")
    flag = {"at": time.time() + 0.2}

    def spin():
        while True:
            pass

    try:
        guarded(spin, None, lambda: time.time() > flag["at"])
    except ns["RenderCancelled"]:
        pass
    else:
        raise AssertionError("not cancelled")
    # Deadlines that expire while fn is returning must not leak the
    # exception into the caller's later code.
    timeouts = 0
    for i in range(80):
        try:
            guarded(lambda: sum(range(2000 + 37 * (i % 50))), 0.0005)
        except ns["RenderTimeout"]:
            timeouts += 1
        n = 0
        for j in range(20000):
            n += j
        eq(n, 199990000)


def check_wire_text(ns):
    r = ns["render"]
    import json
    odd = Node("n")
    setattr(odd, "bad\udc80", 1)
    text = r(odd, expand=0)
    eq(text, "Node(name='n', next=None, bad\\udc80=1)")
    text.encode("utf-8")
    json.loads(json.dumps(text))
