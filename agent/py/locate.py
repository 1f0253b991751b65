# Finding what a command names, `module [class] name` as SPEC §2 says,
# without side effects: a module that is not loaded is never imported, and
# lookups read __dict__s (a module's, then each class of the MRO) instead of
# getattr, so no module __getattr__, metaclass or descriptor of the
# application runs.  Every failure is one CommandError line that names what
# is missing and the close matches that exist.
import difflib
import sys
import types

_LOCATE_MATCHES_MAX = 8


def close_matches(name, candidates):
    """Up to 8 candidates that look like name: those containing it (case
    insensitive), then difflib's close ones."""
    cands = sorted(set(c for c in candidates if type(c) is str))
    low = name.lower()
    out = [c for c in cands if low in c.lower()]
    out.sort(key=lambda c: (c.lower() != low, len(c), c))
    for c in difflib.get_close_matches(name, cands, n=_LOCATE_MATCHES_MAX, cutoff=0.6):
        if c not in out:
            out.append(c)
    return out[:_LOCATE_MATCHES_MAX]


def _locate_matching(what, name, candidates):
    return "; %s matching %s: %s" % (what, name, ", ".join(close_matches(name, candidates)) or
                                     "none")


def is_class(obj):
    """isinstance(obj, type) without asking obj for its __class__."""
    return issubclass(type(obj), type)


_LOCATE_PROXY = type(type.__dict__)


def namespace_of(obj):
    """obj.__dict__ (a class's read-only view of it for a class) through
    the builtin descriptors, or None."""
    try:
        if is_class(obj):
            d = type.__dict__["__dict__"].__get__(obj, type(obj))
        else:
            d = object.__getattribute__(obj, "__dict__")
    except Exception:
        return None
    return d if type(d) is dict or type(d) is _LOCATE_PROXY else None


def _locate_mro(cls):
    try:
        return type.__dict__["__mro__"].__get__(cls, type(cls))
    except Exception:
        return (cls,)


def class_label(cls):
    mod = namespace_of(cls) or {}
    mod = mod.get("__module__")
    try:
        qual = type.__dict__["__qualname__"].__get__(cls, type(cls))
    except Exception:
        qual = "?"
    return "%s.%s" % (mod, qual) if type(mod) is str else qual


def locate_module(name, cmd):
    """The loaded module called name (sys.modules), never importing it."""
    mod = sys.modules.get(name)
    if issubclass(type(mod), types.ModuleType):
        return mod
    names = [k for k, v in list(sys.modules.items()) if v is not None]
    raise CommandError("%s: module %s is not loaded in the target%s" % (
        cmd, name, _locate_matching("loaded modules", name, names)))


def locate_class(mod, path, cmd):
    """The class that path ("Cls" or "Outer.Inner") names in module mod."""
    owner, owner_label = namespace_of(mod) or {}, "module %s" % mod.__name__
    cls = None
    for i, part in enumerate(path.split(".")):
        if part not in owner:
            classes = [k for k, v in list(owner.items()) if is_class(v)]
            raise CommandError("%s: class %s not found in %s%s" % (
                cmd, ".".join(path.split(".")[:i + 1]), owner_label,
                _locate_matching("classes", part, classes)))
        cls = owner[part]
        if not is_class(cls):
            raise CommandError("%s: %s in %s is %s, not a class" % (
                cmd, part, owner_label, type_name(cls)))
        owner, owner_label = namespace_of(cls) or {}, "class %s" % class_label(cls)
    return cls


def lookup_static(cls, name):
    """(defining class, value) of the class attribute name found along
    cls's MRO in the classes' own __dict__s (no descriptor is called), or
    (None, None)."""
    for klass in _locate_mro(cls):
        d = namespace_of(klass)
        if d is not None and name in d:
            return klass, d[name]
    return None, None


def class_attr_names(cls):
    names = set()
    for klass in _locate_mro(cls):
        names.update(k for k in (namespace_of(klass) or {}) if type(k) is str)
    return names


def locate_field(module_name, class_path, field, cmd):
    """The value of a module global (class_path None) or class attribute.
    Returns (value, label) with label like "__main__.A.x"."""
    mod = locate_module(module_name, cmd)
    if class_path is None:
        d = namespace_of(mod) or {}
        if field not in d:
            raise CommandError("%s: module %s has no global %s%s" % (
                cmd, module_name, field, _locate_matching("globals", field, list(d))))
        return d[field], "%s.%s" % (module_name, field)
    cls = locate_class(mod, class_path, cmd)
    owner, value = lookup_static(cls, field)
    if owner is None:
        raise CommandError("%s: class %s has no attribute %s%s (instance attributes are "
                           "on instances: vmtool -a getInstances -c \"%s %s\" -e "
                           "instances[0].%s)" % (
                               cmd, class_label(cls), field,
                               _locate_matching("attributes", field, class_attr_names(cls)),
                               module_name, class_path, field))
    return value, "%s.%s.%s" % (module_name, class_path, field)


def unwrap_function(obj, name):
    """The plain function behind what a class or module stores under name:
    through staticmethod/classmethod/bound methods, functools.wraps chains
    (__wrapped__, also on lru_cache and similar wrappers) and, for a
    decorator that kept no __wrapped__, a function of that name held in the
    wrapper's closure.  None if there is none."""
    seen = set()
    while id(obj) not in seen:
        seen.add(id(obj))
        t = type(obj)
        if t in (staticmethod, classmethod, types.MethodType):
            obj = obj.__func__
            continue
        d = namespace_of(obj)
        if d is not None and "__wrapped__" in d:
            if t is types.FunctionType and obj.__code__.co_name == name:
                return obj
            obj = d["__wrapped__"]
            continue
        if t is not types.FunctionType:
            return None
        if obj.__code__.co_name == name or not obj.__closure__:
            return obj
        for cell in obj.__closure__:
            try:
                inner = cell.cell_contents
            except ValueError:
                continue
            if type(inner) is types.FunctionType and inner.__code__.co_name == name:
                return inner
        return obj
    return None


def locate_functions(module_name, class_path, name, cmd):
    """The functions `module [class] name` designates, as a list of
    (role, function) with role "function" or, for a property, "fget",
    "fset", "fdel".  Returns (functions, label, defining class or None)."""
    mod = locate_module(module_name, cmd)
    if class_path is None:
        d = namespace_of(mod) or {}
        if name not in d:
            funcs = [k for k, v in list(d.items()) if callable(v) and not is_class(v)]
            raise CommandError("%s: module %s has no function %s%s" % (
                cmd, module_name, name, _locate_matching("functions", name, funcs)))
        raw, owner, label = d[name], None, "%s.%s" % (module_name, name)
    else:
        cls = locate_class(mod, class_path, cmd)
        owner, raw = lookup_static(cls, name)
        if owner is None:
            raise CommandError("%s: class %s has no method %s%s" % (
                cmd, class_label(cls), name,
                _locate_matching("attributes", name, class_attr_names(cls))))
        label = "%s.%s" % (class_label(owner), name)
    if type(raw) is property:
        out = [(role, unwrap_function(getattr(raw, role), name))
               for role in ("fget", "fset", "fdel") if getattr(raw, role) is not None]
        out = [(role, f) for role, f in out if f is not None]
    else:
        f = unwrap_function(raw, name)
        out = [("function", f)] if f is not None else []
    if not out:
        raise CommandError("%s: %s is %s, not a Python function" % (cmd, label, type_name(raw)))
    return out, label, owner


def nested_code(func, inner, cmd):
    """The code object of the function `inner` defined in func's body (one
    level, as -nm selects it): functions defined inside another exist only
    while it runs, their code is a constant of the outer code."""
    found = [c for c in func.__code__.co_consts
             if type(c) is types.CodeType and c.co_name == inner]
    if not found:
        names = [c.co_name for c in func.__code__.co_consts if type(c) is types.CodeType]
        raise CommandError("%s: %s defines no function %s%s" % (
            cmd, func.__qualname__, inner, _locate_matching("nested functions", inner, names)))
    return found[-1]


def locate_args(req, usage):
    """The request's positional words `module [class] name` as (module,
    class or None, name)."""
    argv = req.arg("argv", [])
    if type(argv) is not list or not 2 <= len(argv) <= 3 or \
            not all(type(a) is str and a for a in argv):
        raise CommandError("%s: usage: %s %s" % (req.cmd, req.cmd, usage), code="usage", exit=2)
    if len(argv) == 2:
        return argv[0], None, argv[1]
    return argv[0], argv[1], argv[2]
