# module FILEPATH: the name(s) under which a source file is loaded.
#
# The path is resolved inside the target, in its view of the filesystem (a
# container's, if it runs in one): `~` is the home of the target's user
# ($HOME of the target's environment), and a relative path is tried against
# the target's working directory first; when that names no loaded module,
# the path is matched as a suffix of every loaded module's file, so that
# `module app/models.py` works from wherever the user stands.
import os
import sys


def _module_file(mod):
    """The source file a loaded module came from (absolute), or None."""
    d = namespace_of(mod) or {}
    f = d.get("__file__")
    if type(f) is not str:
        spec = d.get("__spec__")
        f = getattr(spec, "origin", None) if spec is not None else None
        if type(f) is not str or f in ("built-in", "frozen"):
            return None
    if f.endswith((".pyc", ".pyo")):
        spec = d.get("__spec__")
        origin = getattr(spec, "origin", None) if spec is not None else None
        if type(origin) is str and origin.endswith(".py"):
            f = origin
    return os.path.abspath(f)


def modules_of_file(path):
    """([(name, file)] of the loaded modules whose source file is path, the
    absolute path looked for)."""
    want = os.path.expanduser(path)
    relative = not os.path.isabs(want)
    want = os.path.abspath(want)
    if os.path.isdir(want):
        want = os.path.join(want, "__init__.py")
    real = os.path.realpath(want)
    try:
        st = os.stat(want)
        ident = (st.st_dev, st.st_ino)
    except OSError:
        ident = None
    files = []
    for name, mod in list(sys.modules.items()):
        if mod is None or type(name) is not str:
            continue
        f = _module_file(mod)
        if f is not None:
            files.append((name, f))
    found = []
    for name, f in files:
        if f == want or os.path.realpath(f) == real:
            found.append((name, f))
        elif ident is not None and os.path.basename(f) == os.path.basename(want):
            try:
                st = os.stat(f)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == ident:
                found.append((name, f))
    if not found and relative:
        tail = os.sep + os.path.normpath(os.path.expanduser(path)).lstrip(os.sep)
        if not tail.endswith(".py") and not tail.endswith(os.sep + "__init__.py"):
            tail_pkg = tail + os.sep + "__init__.py"
        else:
            tail_pkg = None
        for name, f in files:
            if f.endswith(tail) or (tail_pkg and f.endswith(tail_pkg)):
                found.append((name, f))
    found.sort(key=lambda m: (m[0] != "__main__", m))
    return found, want


@command("module")
def _module(req):
    argv = req.arg("argv", [])
    if type(argv) is not list or len(argv) != 1 or type(argv[0]) is not str or not argv[0]:
        raise CommandError("module: usage: module FILEPATH", code="usage", exit=2)
    path = argv[0]
    try:
        found, resolved = modules_of_file(path)
        cwd = os.getcwd()
    except ValueError as e:  # a NUL byte
        raise CommandError("module: %s: %s" % (path, e), code="usage", exit=2)
    except OSError as e:  # the target's working directory was removed
        raise CommandError("module: %s: %s" % (path, e))
    req.emit("module", path=path, file=wire_text(resolved),
             modules=[{"name": n, "file": wire_text(f)} for n, f in found],
             exists=os.path.exists(resolved), cwd=wire_text(cwd))
