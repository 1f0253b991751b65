"""module FILEPATH against real targets on every interpreter (SPEC §3
module): the path is resolved in the target, whose working directory is
the targets folder."""

import pytest

import fpdtest


@pytest.fixture(scope="module")
def target(interp, workdir):
    t = fpdtest.Target(interp.python, "values_target.py", logdir=workdir).ready()
    yield t
    t.kill()


def test_script_is_main(fpctl, target):
    r = fpctl("attach", target.pid, "module", target.script)
    assert r.out == "__main__\n", r.out


def test_imported_module(fpctl, target):
    r = fpctl("attach", target.pid, "module", str(fpdtest.TARGETS / "fptarget.py"))
    assert r.out == "fptarget\n", r.out
    # Relative to the target's working directory (the targets folder).
    r = fpctl("attach", target.pid, "module", "fptarget.py")
    assert r.out == "fptarget\n", r.out
    # No json/ there: the path matches the end of the loaded module's file.
    r = fpctl("attach", target.pid, "module", "json/__init__.py")
    assert r.out.startswith("json  (/") and r.out.endswith("/json/__init__.py)\n"), r.out


def test_not_imported(fpctl, target):
    path = str(fpdtest.TARGETS / "spin.py")
    r = fpctl("attach", target.pid, "module", path)
    assert (r.rc, r.out, r.err) == (0, "%s is not imported in target process.\n" % path, ""), r
    r = fpctl("attach", target.pid, "module", "/no/such/file.py")
    assert r.rc == 0 and r.out == "/no/such/file.py is not imported in target process.\n", r
    assert r.err == "fpctl: note: the target sees no file /no/such/file.py (relative paths " \
                    "start at its working directory, %s)\n" % fpdtest.TARGETS, r.err
    target.ping()


def test_usage(fpctl, target):
    r = fpctl("attach", target.pid, "module", check=False)
    assert r.rc == 2 and r.out == "", r
    assert r.err == "fpctl: module: missing arguments (usage: module FILEPATH); see 'fpctl " \
                    "help module'\n", r.err
    r = fpctl("attach", target.pid, "module", "a.py", "b.py", check=False)
    assert r.rc == 2 and "unexpected argument 'b.py'" in r.err, r
