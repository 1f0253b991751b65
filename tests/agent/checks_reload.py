"""Checks of reload through the fake link, run under every interpreter by
checkrun.py: each check imports a fresh module from a temporary file,
edits the file, reloads, and calls the live objects."""
import importlib
import os
import sys
import tempfile

import harness

SOURCE = '''import functools
import os


def deco(f):
    @functools.wraps(f)
    def wrapper(*a, **k):
        return f(*a, **k)
    return wrapper


def plain(f):
    def wrapper(*a, **k):
        return f(*a, **k)
    return wrapper


def compute(x, y=1):
    return x + y


def with_default(x, sep=os.sep):
    return sep


class Base(object):
    def hello(self):
        return "base"


class Calc(Base):
    factor = 2

    def mul(self, x):
        return x * self.factor

    @classmethod
    def cm(cls):
        return "cm"

    @staticmethod
    def sm():
        return "sm"

    @deco
    def wrapped(self):
        return "wrapped"

    @plain
    def closure_wrapped(self):
        return "closure"

    @functools.lru_cache(maxsize=None)
    def cached(self):
        return "cached"

    def hello(self):
        return "calc " + super(Calc, self).hello()

    def no_super(self):
        return "plain"

    @property
    def prop(self):
        return "getter"

    @prop.setter
    def prop(self, v):
        self.seen = v

    def gen(self):
        yield 1

    class Inner(object):
        def deep(self):
            return "deep"


def outer():
    def inner():
        return "inner"
    return inner


exec_made = None
exec("def from_string():\\n    return 1\\n")
'''

_count = [0]


def load():
    """A fresh module (unique name) of SOURCE, imported from a temp file."""
    _count[0] += 1
    name = "fprl_mod%d" % _count[0]
    d = tempfile.mkdtemp()
    path = os.path.join(d, name + ".py")
    with open(path, "w") as f:
        f.write(SOURCE)
    sys.path.insert(0, d)
    importlib.invalidate_caches()
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(d)


def edit(mod, *pairs):
    with open(mod.__file__) as f:
        text = f.read()
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new)
    with open(mod.__file__, "w") as f:
        f.write(text)


def reload_ok(ns, argv, verbose=False):
    args = {"argv": argv}
    if verbose:
        args["verbose"] = True
    events, last = harness.run(ns, "reload", args)
    assert last == ("end", None), last
    assert events and all(e["event"] == "reload" for e in events), events
    return events


def reload_fails(ns, argv, exit=1):
    events, last = harness.run(ns, "reload", {"argv": argv})
    assert last is not None and last[0] == "error", (events, last)
    assert last[1]["exit"] == exit, last
    assert "\n" not in last[1]["message"], last
    return last[1]["message"]


def eq(got, want):
    assert got == want, "got:\n%s\nwant:\n%s" % (got, want)


def check_function(ns):
    mod = load()
    func = mod.compute
    edit(mod, ("return x + y", "return x * 100 + y"))
    ev = reload_ok(ns, [mod.__name__, "compute"])
    eq(len(ev), 1)
    e = ev[0]
    eq((e["target"], e["role"], e["file"]), (mod.__name__ + ".compute", "function", mod.__file__))
    eq((e["first_line"], e["last_line"], e["old_first_line"]), (18, 19, 18))
    assert "source" not in e
    assert mod.compute is func
    eq(func(2), 201)


def check_methods(ns):
    mod = load()
    obj = mod.Calc()
    bound = obj.mul
    edit(mod, ("return x * self.factor", "return x * self.factor * 10"),
         ('return "cm"', 'return "CM"'), ('return "sm"', 'return "SM"'),
         ('return "wrapped"', 'return "WRAPPED"'), ('return "closure"', 'return "CLOSURE"'),
         ('return "cached"', 'return "CACHED"'), ('return "deep"', 'return "DEEP"'),
         ('yield 1', 'yield 2'))
    for argv in (["Calc", "mul"], ["Calc", "cm"], ["Calc", "sm"], ["Calc", "wrapped"],
                 ["Calc", "closure_wrapped"], ["Calc", "cached"], ["Calc.Inner", "deep"],
                 ["Calc", "gen"]):
        reload_ok(ns, [mod.__name__] + argv)
    eq(bound(3), 60)
    eq((mod.Calc.cm(), mod.Calc.sm(), obj.wrapped(), obj.closure_wrapped(), obj.cached()),
       ("CM", "SM", "WRAPPED", "CLOSURE", "CACHED"))
    eq((mod.Calc.Inner().deep(), list(obj.gen())), ("DEEP", [2]))


def check_inherited_and_super(ns):
    mod = load()
    edit(mod, ('return "base"', 'return "BASE"'), ('return "calc " +', 'return "CALC " +'))
    ev = reload_ok(ns, [mod.__name__, "Calc", "hello"])
    eq(ev[0]["target"], mod.__name__ + ".Calc.hello")
    # Calc.hello is found on Calc; Base.hello is reached through the MRO of
    # a class that does not define it.
    edit(mod, ('class Calc(Base):', 'class Calc2(Base):\n    pass\n\n\nclass Calc(Base):'))
    ev = reload_ok(ns, [mod.__name__, "Calc", "hello"])
    eq(mod.Calc().hello(), "CALC base")


def check_inherited_lookup(ns):
    mod = load()
    edit(mod, ('return "base"', 'return "BASE"'))
    mod.Sub = type("Sub", (mod.Base,), {})
    ev = reload_ok(ns, [mod.__name__, "Sub", "hello"])
    eq(ev[0]["target"], mod.__name__ + ".Base.hello")
    eq(mod.Base().hello(), "BASE")


def check_property(ns):
    mod = load()
    obj = mod.Calc()
    edit(mod, ('return "getter"', 'return "GETTER"'), ("self.seen = v", "self.seen = v * 2"))
    ev = reload_ok(ns, [mod.__name__, "Calc", "prop"])
    eq([e["role"] for e in ev], ["fget", "fset"])
    obj.prop = 4
    eq((obj.prop, obj.seen), ("GETTER", 8))
    # Only the setter changed: only it is reported.
    edit(mod, ("self.seen = v * 2", "self.seen = v * 3"))
    ev = reload_ok(ns, [mod.__name__, "Calc", "prop"])
    eq([e["role"] for e in ev], ["fset"])


def check_verbose_and_names(ns):
    mod = load()
    edit(mod, ("    return x + y\n", "    return x + y + len(os.sep)\n"))
    ev = reload_ok(ns, [mod.__name__, "compute"], verbose=True)
    eq(ev[0]["source"], "def compute(x, y=1):\n    return x + y + len(os.sep)")
    eq((ev[0]["names_added"], ev[0]["names_removed"]), (["len", "os", "sep"], []))
    edit(mod, ('return "wrapped"', 'return "WRAPPED"'))
    ev = reload_ok(ns, [mod.__name__, "Calc", "wrapped"], verbose=True)
    eq(ev[0]["source"], '    @deco\n    def wrapped(self):\n        return "WRAPPED"')


def check_unchanged(ns):
    mod = load()
    msg = reload_fails(ns, [mod.__name__, "compute"])
    eq(msg, "reload: %s.compute in %s compiles to the code already running; nothing to reload "
            "(save the file first?)" % (mod.__name__, mod.__file__))


def check_moved_lines(ns):
    mod = load()
    edit(mod, ("import functools\n", "import functools\n\n\n\n"))
    ev = reload_ok(ns, [mod.__name__, "compute"])
    eq((ev[0]["first_line"], ev[0]["old_first_line"]), (21, 18))
    eq(ev[0]["notes"], ["only line numbers changed"])
    eq(mod.compute.__code__.co_firstlineno, 21)


def check_defaults(ns):
    mod = load()
    edit(mod, ("def compute(x, y=1):", "def compute(x, y=5, *, z=-2):"),
         ("return x + y", "return x + y + z"))
    ev = reload_ok(ns, [mod.__name__, "compute"])
    eq(ev[0]["notes"], ["default values updated"])
    eq(mod.compute(1), 4)
    # A non-literal default, parameters unchanged: the running value is kept.
    edit(mod, ("return sep", "return sep * 2"))
    ev = reload_ok(ns, [mod.__name__, "with_default"])
    assert ev[0]["notes"][0].startswith("default values kept"), ev
    eq(mod.with_default(1), os.sep * 2)
    # ...but new parameters with non-literal defaults cannot be loaded.
    edit(mod, ("def with_default(x, sep=os.sep):", "def with_default(x, sep=os.sep, n=len('')):"))
    msg = reload_fails(ns, [mod.__name__, "with_default"])
    assert "changed and their default values are not all literals" in msg, msg
    eq(mod.with_default(1), os.sep * 2)


def check_syntax_error_changes_nothing(ns):
    mod = load()
    edit(mod, ("return x + y", "return x +"))
    msg = reload_fails(ns, [mod.__name__, "compute"])
    eq(msg, "reload: %s:19: SyntaxError: invalid syntax; nothing was changed" % mod.__file__)
    eq(mod.compute(1), 2)


def check_new_free_variables_refused(ns):
    mod = load()
    edit(mod, ('return "plain"', 'return super().hello()'))
    msg = reload_fails(ns, [mod.__name__, "Calc", "no_super"])
    eq(msg, "reload: the new code of %s.Calc.no_super uses variables of enclosing scopes "
            "(__class__) that the running function does not have (none); restart the process "
            "to load this change" % mod.__name__)
    eq(mod.Calc().no_super(), "plain")


def check_refusals(ns):
    mod = load()
    msg = reload_fails(ns, [mod.__name__, "from_string"])
    eq(msg, "reload: %s.from_string was not compiled from a file (<string>); there is no "
            "source to reload it from" % mod.__name__)
    mod.inner = mod.outer()
    msg = reload_fails(ns, [mod.__name__, "inner"])
    assert "is defined inside another function (outer.<locals>.inner)" in msg, msg
    msg = reload_fails(ns, [mod.__name__, "Calc", "factor"])
    eq(msg, "reload: %s.Calc.factor is int, not a Python function" % mod.__name__)
    msg = reload_fails(ns, [mod.__name__, "Calc", "mull"])
    assert msg.startswith("reload: class %s.Calc has no method mull; attributes matching "
                          "mull: mul" % mod.__name__), msg
    msg = reload_fails(ns, [mod.__name__, "comput"])
    eq(msg, "reload: module %s has no function comput; functions matching comput: compute"
            % mod.__name__)
    msg = reload_fails(ns, ["fprl_not_loaded", "f"])
    assert msg.startswith("reload: module fprl_not_loaded is not loaded in the target"), msg
    edit(mod, ("def compute(x, y=1):\n    return x + y\n", ""))
    msg = reload_fails(ns, [mod.__name__, "compute"])
    eq(msg, "reload: compute is no longer defined in %s; nothing was changed" % mod.__file__)
    for argv in ([], ["only"], ["a", "b", "c", "d"]):
        msg = reload_fails(ns, argv, exit=2)
        eq(msg, "reload: usage: reload module [class] method")


def check_unreadable_file(ns):
    mod = load()
    os.unlink(mod.__file__)
    msg = reload_fails(ns, [mod.__name__, "compute"])
    assert msg.startswith("reload: cannot read %s: " % mod.__file__), msg
