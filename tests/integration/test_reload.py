"""reload against real targets on every interpreter (SPEC §3 reload): the
target's worker thread calls fp_reload_mod's functions through references
it took at start; after an edit of the file and a reload, those very
references run the new code."""

import json
import os
import re
import tempfile

import pytest

import fpdtest
from fpdtest import wait_for

MODULE = '''def compute(x):
    return x + 1


class Greeter(object):
    def greet(self, name):
        return "hello " + name

    @classmethod
    def kind(cls):
        return "v1"


def untouched():
    return 0
'''


@pytest.fixture(scope="module")
def target(interp, workdir):
    d = tempfile.mkdtemp(dir=str(workdir))
    os.chmod(d, 0o755)
    with open(os.path.join(d, "fp_reload_mod.py"), "w") as f:
        f.write(MODULE)
    t = fpdtest.Target(interp.python, "values_target.py", (d,), logdir=workdir).ready()
    t.module_file = os.path.join(d, "fp_reload_mod.py")
    yield t
    t.kill()


def edit(target, old, new):
    with open(target.module_file) as f:
        text = f.read()
    assert old in text
    with open(target.module_file, "w") as f:
        f.write(text.replace(old, new))


def results(fpctl, target):
    r = fpctl("--json", "attach", target.pid, "getglobal", "__main__", "RESULTS", "-x", "1")
    ev = [e for e in map(json.loads, r.out.splitlines()) if e.get("event") == "value"]
    return dict(re.findall(r"'(\w+)': ('[^']*'|\d+)", ev[0]["value"]))


def test_function(fpctl, target):
    wait_for(lambda: results(fpctl, target).get("compute") == "3", 30, "the first results")
    edit(target, "return x + 1", "return x + 100")
    r = fpctl("attach", target.pid, "reload", "fp_reload_mod", "compute")
    assert r.out == "Reloaded fp_reload_mod.compute from %s:1-2\n" % target.module_file, r.out
    wait_for(lambda: results(fpctl, target).get("compute") == "102", 30, "the new code to run")


def test_method_and_classmethod(fpctl, target):
    edit(target, '"hello " + name', '"hi " + name.upper()')
    edit(target, 'return "v1"', 'return "v2"')
    r = fpctl("attach", target.pid, "reload", "fp_reload_mod", "Greeter", "greet", "-v")
    assert r.out == ("Reloaded fp_reload_mod.Greeter.greet from %s:6-7\n"
                     "  now also uses: upper\n"
                     "Source:\n"
                     "    def greet(self, name):\n"
                     "        return \"hi \" + name.upper()\n" % target.module_file), r.out
    r = fpctl("attach", target.pid, "reload", "fp_reload_mod", "Greeter", "kind")
    assert r.out.startswith("Reloaded fp_reload_mod.Greeter.kind from "), r.out

    def both():
        res = results(fpctl, target)
        return res.get("greet") == "'hi BOB'" and res.get("kind") == "'v2'"

    wait_for(both, 30, "the new method code to run")


def test_unchanged_and_errors(fpctl, target):
    r = fpctl("attach", target.pid, "reload", "fp_reload_mod", "untouched", check=False)
    assert (r.rc, r.out) == (1, ""), r
    assert r.err == ("fpctl: reload: fp_reload_mod.untouched in %s compiles to the code already "
                     "running; nothing to reload (save the file first?)\n" % target.module_file)
    edit(target, "    return 0\n", "    return (\n")
    r = fpctl("attach", target.pid, "reload", "fp_reload_mod", "untouched", check=False)
    assert r.rc == 1 and r.out == "", r
    assert re.match(r"fpctl: reload: %s:1[56]: SyntaxError: .*; nothing was changed\n$"
                    % re.escape(target.module_file), r.err), r.err
    edit(target, "    return (\n", "    return 0\n")
    for args, rc, message in [
            (["fp_reload_mod", "nothing"], 1,
             "reload: module fp_reload_mod has no function nothing; functions matching "
             "nothing: none"),
            (["fp_reload_mod", "Greeter", "gret"], 1, None),
            (["no_such_mod", "f"], 1, None),
            (["__main__", "counter"], 1, "reload: __main__.counter is int, not a Python function"),
            (["fp_reload_mod"], 2, "reload: missing arguments (usage: reload module [class] "
             "method); see 'fpctl help reload'")]:
        r = fpctl("attach", target.pid, "reload", *args, check=False)
        assert r.rc == rc and r.out == "" and len(r.err.splitlines()) == 1, (args, r)
        if message:
            assert r.err == "fpctl: %s\n" % message, r.err
    assert results(fpctl, target).get("compute") in ("3", "102")
    target.ping()
