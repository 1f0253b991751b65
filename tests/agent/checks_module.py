"""Checks of `module FILEPATH` through the fake link, run under every
interpreter by checkrun.py."""
import importlib
import os
import sys
import tempfile

import harness


def run(ns, path):
    events, last = harness.run(ns, "module", {"argv": [path]})
    assert last == ("end", None), last
    assert len(events) == 1 and events[0]["event"] == "module", events
    return events[0]


def names(ev):
    return [m["name"] for m in ev["modules"]]


def eq(got, want):
    assert got == want, "got:\n%s\nwant:\n%s" % (got, want)


def _tree():
    """A temporary folder on sys.path with fpm_top.py and package
    fpm_pkg/{__init__,sub}.py imported, and fpm_unused.py not imported."""
    root = os.path.realpath(tempfile.mkdtemp())
    pkg = os.path.join(root, "fpm_pkg")
    os.mkdir(pkg)
    for path in (os.path.join(root, "fpm_top.py"), os.path.join(pkg, "__init__.py"),
                 os.path.join(pkg, "sub.py"), os.path.join(root, "fpm_unused.py")):
        with open(path, "w") as f:
            f.write("X = 1\n")
    for name in ("fpm_top", "fpm_pkg", "fpm_pkg.sub"):
        sys.modules.pop(name, None)
    importlib.invalidate_caches()
    sys.path.insert(0, root)
    importlib.import_module("fpm_top")
    importlib.import_module("fpm_pkg.sub")
    sys.path.remove(root)
    return root


def check_absolute_path(ns):
    root = _tree()
    ev = run(ns, os.path.join(root, "fpm_top.py"))
    eq(names(ev), ["fpm_top"])
    eq(ev["modules"][0]["file"], os.path.join(root, "fpm_top.py"))
    eq(ev["exists"], True)
    eq(names(run(ns, os.path.join(root, "fpm_pkg", "sub.py"))), ["fpm_pkg.sub"])
    eq(names(run(ns, os.path.join(root, "fpm_pkg", "__init__.py"))), ["fpm_pkg"])
    # A package's folder stands for its __init__.py.
    eq(names(run(ns, os.path.join(root, "fpm_pkg"))), ["fpm_pkg"])
    # Unnormalised spellings of the same path.
    eq(names(run(ns, root + "/fpm_pkg/../fpm_top.py")), ["fpm_top"])


def check_main_script(ns):
    main_file = sys.modules["__main__"].__file__
    assert "__main__" in names(run(ns, os.path.abspath(main_file))), main_file


def check_not_imported(ns):
    root = _tree()
    ev = run(ns, os.path.join(root, "fpm_unused.py"))
    eq((names(ev), ev["exists"]), ([], True))
    ev = run(ns, os.path.join(root, "no_such_file.py"))
    eq((names(ev), ev["exists"]), ([], False))
    eq(ev["path"], os.path.join(root, "no_such_file.py"))


def check_relative_to_cwd(ns):
    root = _tree()
    cwd = os.getcwd()
    os.chdir(os.path.join(root, "fpm_pkg"))
    try:
        ev = run(ns, "sub.py")
        eq(ev["cwd"], os.path.join(root, "fpm_pkg"))
    finally:
        os.chdir(cwd)
    eq(names(ev), ["fpm_pkg.sub"])
    eq(ev["file"], os.path.join(root, "fpm_pkg", "sub.py"))


def check_relative_suffix(ns):
    root = _tree()
    ev = run(ns, "fpm_pkg/sub.py")
    eq(names(ev), ["fpm_pkg.sub"])
    eq(ev["modules"][0]["file"], os.path.join(root, "fpm_pkg", "sub.py"))
    eq(names(run(ns, "fpm_pkg")), ["fpm_pkg"])
    eq(names(run(ns, "nowhere/fpm_top_not.py")), [])


def check_home(ns):
    root = _tree()
    old = os.environ.get("HOME")
    os.environ["HOME"] = root
    try:
        ev = run(ns, "~/fpm_top.py")
    finally:
        if old is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = old
    eq(names(ev), ["fpm_top"])
    eq(ev["file"], os.path.join(root, "fpm_top.py"))


def check_symlink(ns):
    root = _tree()
    link = os.path.join(tempfile.mkdtemp(), "alias.py")
    os.symlink(os.path.join(root, "fpm_top.py"), link)
    eq(names(run(ns, link)), ["fpm_top"])


def check_usage(ns):
    for argv in ([], ["a", "b"], [""], [3]):
        events, last = harness.run(ns, "module", {"argv": argv})
        eq(last[0], "error")
        eq((last[1]["exit"], last[1]["message"]), (2, "module: usage: module FILEPATH"))
    events, last = harness.run(ns, "module", {"argv": ["a\0b"]})
    eq((last[0], last[1]["exit"]), ("error", 2))
