"""The pytest side of the helper's unit tests: each checks_*.py file runs in
one subprocess per interpreter (tests/agent/checkrun.py) and every check in
it becomes one test, so that the helper's Python is tested on every CPython
it must run on without pytest installed in any of them."""
import ast
import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
_cache = {}


def check_names(checks_file):
    """The check_* functions of a checks file, in file order."""
    with open(os.path.join(HERE, checks_file)) as f:
        tree = ast.parse(f.read())
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and
            n.name.startswith("check_")]


def _start(python, checks_file):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.Popen([python, os.path.join(HERE, "checkrun.py"), checks_file],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=HERE, env=env)


def results(interp, checks_file, timeout=300):
    """{check: None or traceback} of checks_file run by interp.  The first
    call for a file starts it under every interpreter at once (the checks
    of a file take seconds, mostly waiting on timeouts)."""
    key = (interp.python, checks_file)
    if key not in _cache:
        import fpdtest
        procs = dict((i.python, _start(i.python, checks_file)) for i in fpdtest.INTERPRETERS
                     if (i.python, checks_file) not in _cache)
        procs.setdefault(interp.python, _start(interp.python, checks_file))
        for python, p in procs.items():
            try:
                out, err = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            lines = out.decode(errors="replace").strip().splitlines()
            if p.returncode != 0 or not lines:
                _cache[(python, checks_file)] = AssertionError(
                    "%s checkrun.py %s: exit %s\n%s" % (python, checks_file, p.returncode,
                                                       err.decode(errors="replace")))
            else:
                _cache[(python, checks_file)] = json.loads(lines[-1])["results"]
    res = _cache[key]
    if isinstance(res, Exception):
        raise res
    return res


def assert_check(interp, checks_file, name):
    res = results(interp, checks_file)
    assert name in res, "%s did not run %s" % (interp.python, name)
    if res[name] is not None:
        raise AssertionError("%s under %s:\n%s" % (name, interp.python, res[name]))
