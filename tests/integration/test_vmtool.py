"""vmtool against real targets on every interpreter (SPEC §3 vmtool)."""

import json
import subprocess

import pytest

import fpdtest


@pytest.fixture(scope="module")
def target(interp, workdir):
    t = fpdtest.Target(interp.python, "values_target.py", logdir=workdir).ready()
    yield t
    t.kill()


def lines(text):
    return text.rstrip("\n").split("\n")


def test_instances(fpctl, target):
    r = fpctl("attach", target.pid, "vmtool", "-a", "getInstances", "-c", "__main__ Connection")
    out = lines(r.out)
    assert out[:3] == ["COUNT: 3 live instances of __main__.Connection", "EXPR:  instances",
                       "TYPE:  list"], r.out
    assert out[3] == "VALUE: [" and out[-1] == "       ]", r.out
    # gc.get_objects() order: any.
    assert sorted(x.rstrip(",") for x in out[4:-1]) == [
        "         Connection(host='cache', port=6379)",
        "         Connection(host='db', port=5432)",
        "         TlsConnection(host='api', port=443)"], r.out


def test_limit_and_expression(fpctl, target):
    r = fpctl("attach", target.pid, "vmtool", "-a", "getInstances", "-c", "__main__ Connection",
              "-n", "1", "-e", "len(instances)")
    assert lines(r.out) == [
        "COUNT: 3 live instances of __main__.Connection (first 1 taken; -n -1 takes all)",
        "EXPR:  len(instances)", "TYPE:  int", "VALUE: 1"], r.out
    # The reference tool's spelling: -c module class as two words.
    r = fpctl("attach", target.pid, "vmtool", "-a", "getInstances", "-c", "__main__",
              "TlsConnection", "--limits", "-1", "--expr", "instances[0].port")
    assert lines(r.out)[0] == "COUNT: 1 live instance of __main__.TlsConnection", r.out
    assert lines(r.out)[-1] == "VALUE: 443", r.out


def test_force_gc(fpctl, target):
    r = fpctl("attach", target.pid, "vmtool", "-a", "forceGc")
    assert r.out.startswith("Garbage collection done: "), r.out
    assert len(lines(r.out)) == 1, r.out
    r = fpctl("--json", "attach", target.pid, "vmtool", "-a", "forceGc")
    ev = [e for e in map(json.loads, r.out.splitlines()) if e.get("event") == "gc"]
    assert len(ev) == 1 and ev[0]["collected"] >= 0 and ev[0]["uncollectable"] == 0, r.out
    target.ping()


@pytest.mark.parametrize("args, rc, message", [
    ([], 2, "vmtool: -a is required: -a getInstances or -a forceGc"),
    (["-a", "getinstances"], 2, "vmtool: -a takes getInstances or forceGc, not 'getinstances'"),
    (["-a", "getInstances"], 2, "vmtool: getInstances needs -c \"module class\""),
    (["-a", "getInstances", "-c", "__main__"], 2,
     "vmtool: -c takes \"module class\" (the module and the class, quoted as one argument)"),
    (["-a", "getInstances", "-c", "__main__ Connection", "-n", "0"], 2,
     "vmtool: -n takes a positive number, or -1 for all instances"),
    (["-a", "forceGc", "-n", "3"], 2, "vmtool: -a forceGc takes no other option"),
    (["-a", "getInstances", "-c", "nosuchmod Connection"], 1,
     "vmtool: module nosuchmod is not loaded in the target; loaded modules matching "
     "nosuchmod: none"),
    (["-a", "getInstances", "-c", "__main__ Conection"], 1,
     "vmtool: class Conection not found in module __main__; classes matching Conection: "
     "Connection, TlsConnection"),
    (["-a", "getInstances", "-c", "__main__ counter"], 1,
     "vmtool: counter in module __main__ is int, not a class"),
    (["-a", "getInstances", "-c", "__main__ Connection", "-e", "instances[9]"], 1,
     "vmtool: -e instances[9] failed: IndexError: list index out of range"),
], ids=["no-action", "bad-action", "no-class", "one-word", "limit-0", "gc-options",
        "module", "class", "not-class", "expression"])
def test_bad_input(fpctl, target, args, rc, message):
    r = fpctl("attach", target.pid, "vmtool", *args, check=False)
    assert r.rc == rc, r
    assert r.out == "", r.out
    if rc == 2:
        message += "; see 'fpctl help vmtool'"
    assert r.err == "fpctl: %s\n" % message, r.err
    target.ping()


def test_force_gc_after_mem_summary_of_asyncio(fpctl, start_target, interp):
    """mem summary walks every loaded module.  On CPython 3.12.0-3.12.5, what
    gc.get_referents() gives of the _asyncio module includes the freed
    iterators on its FutureIter free list (CPython gh-122695); a walk that
    took and dropped them freed them twice, the list became a cycle, and
    the next full collection spun over it forever holding the GIL (the
    stress test's forceGc hang on 3.12.1).  A freed iterator is put on that
    list first, as any finished await does."""
    t = start_target(interp.python, "values_target.py")
    code = "\n".join([
        "import asyncio",
        "loop = asyncio.new_event_loop()",
        "it = iter(loop.create_future())",
        "del it",
        "loop.close()",
        "print('iterator freed')",
    ]) + "\n"
    r = subprocess.run(fpctl.command(["attach", t.pid, "console"]), input=code.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=fpctl.env(), timeout=120)
    assert r.returncode == 0 and r.stdout.decode() == "iterator freed\n", r
    r = fpctl("attach", t.pid, "mem", "summary")
    assert " objects, " in r.out and " types (walked in " in r.out, r.out
    r = fpctl("--timeout", "60", "attach", t.pid, "vmtool", "-a", "forceGc", check=False)
    assert r.rc == 0 and r.out.startswith("Garbage collection done: "), r
    t.ping()
