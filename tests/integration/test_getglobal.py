"""getglobal against real targets on every interpreter: the helper is
injected by fpd and the text is what a user sees (SPEC §3 getglobal)."""

import json

import pytest

import fpdtest


@pytest.fixture(scope="module")
def target(interp, workdir):
    t = fpdtest.Target(interp.python, "values_target.py", logdir=workdir).ready()
    yield t
    t.kill()


def lines(text):
    return text.rstrip("\n").split("\n")


def test_module_global(fpctl, target):
    r = fpctl("attach", target.pid, "getglobal", "__main__", "g_list")
    assert lines(r.out) == [
        "EXPR:  target",
        "TYPE:  list",
        "VALUE: [",
        "         1,",
        "         2,",
        "         {'a': [1, 2]}",
        "       ]",
    ], r.out
    assert r.err == ""
    r = fpctl("attach", target.pid, "getglobal", "__main__", "g_list", "-x", "2")
    assert "         {\n           'a': [1, 2]\n         }\n" in r.out, r.out


def test_class_attribute(fpctl, target):
    r = fpctl("attach", target.pid, "getglobal", "__main__", "AppConfig", "VERSION")
    assert lines(r.out) == ["EXPR:  target", "TYPE:  str", "VALUE: '2.1.0'"], r.out
    r = fpctl("attach", target.pid, "getglobal", "__main__", "AppConfig.Limits", "MAX")
    assert lines(r.out)[-1] == "VALUE: 10", r.out


def test_expression(fpctl, target):
    r = fpctl("attach", target.pid, "getglobal", "__main__", "AppConfig", "FEATURES",
              "--expr", "[k for k in target if target[k]]")
    assert lines(r.out) == ["EXPR:  [k for k in target if target[k]]", "TYPE:  list",
                            "VALUE: [", "         'metrics'", "       ]"], r.out
    r = fpctl("attach", target.pid, "getglobal", "__main__", "counter", "-e", "target + 1")
    assert lines(r.out)[-1] == "VALUE: 62", r.out


def test_raw_verbose_and_truncation(fpctl, target):
    r = fpctl("attach", target.pid, "getglobal", "__main__", "text")
    assert lines(r.out)[-1] == "VALUE: '%s'...(44 more chars)" % ("x" * 256), r.out
    r = fpctl("attach", target.pid, "getglobal", "__main__", "text", "--verbose")
    assert lines(r.out)[-1] == "VALUE: '%s'" % ("x" * 300), r.out
    r = fpctl("attach", target.pid, "getglobal", "__main__", "g_list", "--raw")
    assert lines(r.out)[-1] == "VALUE: [1, 2, {'a': [1, 2]}]", r.out


def test_application_code_never_runs(fpctl, target):
    r = fpctl("attach", target.pid, "getglobal", "__main__", "hostile")
    assert lines(r.out) == ["EXPR:  target", "TYPE:  __main__.Hostile", "VALUE: Hostile(",
                            "         state='ok'", "       )"], r.out
    r = fpctl("attach", target.pid, "getglobal", "__main__", "hostile", "-r")
    assert lines(r.out)[-1] == "VALUE: <repr failed: RuntimeError: __repr__ ran>", r.out
    r = fpctl("attach", target.pid, "getglobal", "__main__", "spinner", "-r")
    assert lines(r.out)[-1].startswith("VALUE: <render time budget exceeded"), r.out
    target.ping()


def test_json(fpctl, target):
    r = fpctl("--json", "attach", target.pid, "getglobal", "__main__", "counter")
    ev = [e for e in map(json.loads, r.out.splitlines()) if e.get("event") == "value"]
    assert len(ev) == 1, r.out
    assert (ev[0]["expr"], ev[0]["value_type"], ev[0]["value"], ev[0]["field"]) == \
        ("target", "int", "61", "__main__.counter"), ev


@pytest.mark.parametrize("args, rc, message", [
    (["nosuchmod", "x"], 1,
     "getglobal: module nosuchmod is not loaded in the target; loaded modules matching "
     "nosuchmod: none"),
    (["fptarge", "BIG"], 1,
     "getglobal: module fptarge is not loaded in the target; loaded modules matching "
     "fptarge: fptarget"),
    (["__main__", "AppConfg", "VERSION"], 1,
     "getglobal: class AppConfg not found in module __main__; classes matching AppConfg: "
     "AppConfig"),
    (["__main__", "AppConfig", "VERSON"], 1, None),
    (["__main__", "countr"], 1,
     "getglobal: module __main__ has no global countr; globals matching countr: counter"),
    (["__main__", "counter", "-e", "target."], 2, None),
    (["__main__", "counter", "-e", "target / 0"], 1,
     "getglobal: -e target / 0 failed: ZeroDivisionError: division by zero"),
    (["__main__", "counter", "-x", "5"], 2,
     "getglobal: --expand takes a whole number from 1 to 4, not '5'; see 'fpctl help "
     "getglobal'"),
    (["__main__", "counter", "--bogus"], 2,
     "getglobal: unknown option '--bogus'; see 'fpctl help getglobal'"),
    (["__main__"], 2,
     "getglobal: missing arguments (usage: getglobal module [class] field); see 'fpctl help "
     "getglobal'"),
], ids=["module-not-loaded", "close-module", "class", "class-field", "global", "syntax",
        "raises", "expand", "option", "missing"])
def test_bad_input(fpctl, target, args, rc, message):
    r = fpctl("attach", target.pid, "getglobal", *args, check=False)
    assert r.rc == rc, r
    assert r.out == "", r.out
    assert len(lines(r.err)) == 1, r.err
    if message is not None:
        assert r.err == "fpctl: %s\n" % message, r.err
    else:
        assert r.err.startswith("fpctl: getglobal: "), r.err
    target.ping()
