"""console against real targets on every interpreter: lines piped into
`fpctl attach PID console`, the shell's console, and a terminal session
with Ctrl-C and Ctrl-D (SPEC §3 console)."""

import json
import re
import subprocess
import time

import pytest

import fpdtest


@pytest.fixture(scope="module")
def target(interp, workdir):
    t = fpdtest.Target(interp.python, "mem_target.py", logdir=workdir).ready()
    yield t
    t.kill()


def console(fpctl, target, text, args=("console",), timeout=60):
    """fpctl attach PID console with text on stdin; (rc, stdout, stderr)."""
    cmd = fpctl.command(["attach", target.pid] + list(args))
    r = subprocess.run(cmd, input=text.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=fpctl.env(), timeout=timeout)
    fpd_err = r.stderr.decode(errors="replace")
    assert not any(m in fpd_err for m in fpdtest.SANITIZER_MARKS), fpd_err
    return r.returncode, r.stdout.decode(errors="replace"), fpd_err


def target_output(target):
    """What the target printed on its stdout since the last call."""
    lines = []
    while not target._lines.empty():
        line = target._lines.get()
        if line is None:
            target._lines.put(None)
            break
        lines.append(line)
    return "".join(lines)


def test_globals_expressions_and_blocks(fpctl, target):
    rc, out, err = console(fpctl, target, "\n".join([
        "APP_NAME",
        "len(records), records[7].i",
        "for r in records[:3]:",
        "    print(r.i * 10)",
        "",
        "def double(v):",
        "    return v * 2",
        "",
        "double(21)",
        "console_made = 'kept'",
    ]) + "\n")
    assert rc == 0 and err == "", (rc, err)
    assert out == "'mem-target'\n(2500, 7)\n0\n10\n20\n42\n", out
    # what the console defined lives on in __main__
    rc, out, _ = console(fpctl, target, "console_made, double(4)\n")
    assert out == "('kept', 8)\n", out
    target.ping()


def test_tracebacks_and_syntax_errors(fpctl, target):
    rc, out, err = console(fpctl, target, "1 / 0\nx = = 1\nundefined_name\nprint('still here')\n")
    assert rc == 0 and out == "still here\n", (rc, out)
    assert err.startswith("Traceback (most recent call last):\n"
                          "  File \"<console>\", line 1, in <module>\n"), err
    assert "ZeroDivisionError: division by zero\n" in err
    assert "SyntaxError: invalid syntax\n" in err
    assert "NameError: name 'undefined_name' is not defined\n" in err
    assert "fpagent" not in err and "console.py" not in err, err
    target.ping()


def test_only_console_output_comes_back(fpctl, target):
    """The target prints "app tick N" every 20 ms from a thread of its own:
    none of it reaches the console, all of the console's output does, and
    the target's own stdout keeps its ticks and gets none of the console's."""
    target_output(target)
    rc, out, err = console(fpctl, target, "\n".join([
        "import sys, time",
        "for n in range(25):",
        "    print('console', n)",
        "    sys.stderr.write('console error %d\\n' % n)",
        "    time.sleep(0.01)",
        "",
        "sys.stdout is sys.__stdout__, sys.stderr is sys.__stderr__",
    ]) + "\n")
    time.sleep(0.1)
    app = target_output(target)
    assert rc == 0, err
    # while a statement runs, both are the console's stand-ins
    assert out == "".join("console %d\n" % n for n in range(25)) + "(False, False)\n", out
    assert err == "".join("console error %d\n" % n for n in range(25)), err
    assert "app tick" in app and "console" not in app, app[-500:]
    # once no statement runs, the application's streams are its own again:
    # a thread the console starts looks after the statement has ended
    console(fpctl, target, "\n".join([
        "import threading",
        "def probe():",
        "    time.sleep(0.3)",
        "    globals()['seen'] = (sys.stdout is sys.__stdout__, type(sys.stderr).__name__)",
        "",
        "threading.Thread(target=probe).start()",
    ]) + "\n")
    def seen():
        return console(fpctl, target, "globals().get('seen')\n")[1]
    out = fpdtest.wait_for(seen, 30, "the console's thread to look at the streams", 0.2)
    assert out == "(True, 'TextIOWrapper')\n", out
    target.ping()


def test_leaving(fpctl, target):
    # exit() leaves the console without closing the target's stdin
    rc, out, err = console(fpctl, target, "print(1)\nexit()\nprint(2)\n")
    assert (rc, out, err) == (0, "1\n", "")
    # end of input runs a block still open
    rc, out, err = console(fpctl, target, "for i in range(2):\n    print('open', i)\n")
    assert (rc, out) == (0, "open 0\nopen 1\n"), (rc, out, err)
    rc, out, err = console(fpctl, target, "raise SystemExit(4)\nprint('alive')\n")
    assert rc == 0 and out == "alive\n" and "SystemExit: 4" in err, (rc, out, err)
    target.ping()


def test_in_the_shell(fpctl, target):
    rc, out, err = console(fpctl, target, "console\nprint(6 * 7)\nexit()\nmem summary --limit 1\n",
                           args=())
    assert rc == 0, err
    assert out.startswith("42\n") and "types | # objects | total size" in out, out
    target.ping()


def test_json(fpctl, target):
    cmd = fpctl.command(["--json", "attach", target.pid, "console"])
    r = subprocess.run(cmd, input=b"print('j')\n", stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=fpctl.env(), timeout=60)
    evs = [json.loads(line) for line in r.stdout.decode().splitlines()]
    kinds = [e.get("event") for e in evs if e.get("type") == "event" and e["event"] != "agent"]
    assert kinds == ["console_prompt", "console_out", "console_prompt"], evs
    out = [e for e in evs if e.get("event") == "console_out"][0]
    assert (out["stream"], out["text"]) == ("stdout", "j\n")


def test_bad_input(fpctl, target):
    rc, out, err = console(fpctl, target, "", args=("console", "extra"))
    assert rc == 2 and out == "" and err.startswith(
        "fpctl: console takes no arguments, not 'extra'"), (rc, err)
    target.ping()


PROMPT = re.compile(r"fpctl\(\d+\)> $")


def test_terminal_ctrl_c_and_ctrl_d(fpctl, target):
    sh = fpdtest.attach_shell(fpctl, target.pid, PROMPT, fpctl.env(TERM="dumb"))
    try:
        sh.send("console\n")
        out = sh.expect(lambda t: t.endswith(">>> "), 60, "the console's banner and prompt")
        assert "in the namespace of __main__" in out, out
        sh.send("x_tty = 5\n")
        sh.expect(lambda t: t.endswith(">>> "), 30, "a prompt")
        sh.send("while True: x_tty += 1\n")
        sh.expect(lambda t: t.endswith("... "), 30, "the block's prompt")
        sh.send("\n")
        time.sleep(0.5)
        sh.send("\x03")
        out = sh.expect(lambda t: t.endswith(">>> "), 30, "the interrupted statement")
        assert "KeyboardInterrupt" in out and "Traceback" in out, out
        sh.send("x_tty > 5\n")
        out = sh.expect(lambda t: t.endswith(">>> "), 30, "the console still there")
        assert "True" in out, out
        # Ctrl-C at the prompt drops the line typed so far
        sh.send("dropped")
        time.sleep(0.2)
        sh.send("\x03")
        out = sh.expect(lambda t: t.endswith(">>> "), 30, "a fresh prompt")
        assert "KeyboardInterrupt" in out, out
        sh.send("\x04")
        sh.expect(lambda t: PROMPT.search(t), 30, "the shell again")
        sh.send("quit\n")
        assert sh.wait(30) == 0
    finally:
        sh.close()
    target.ping()


def json_events(r):
    return [e for e in map(json.loads, r.out.splitlines()) if e.get("type") == "event"]


def add_calls(fpctl, target):
    """How many times the target's adder threads have called add."""
    r = fpctl("--json", "attach", target.pid, "getglobal", "__main__", "CALLS", "-e",
              "target['add']")
    values = [e["value"] for e in json_events(r) if e.get("event") == "value"]
    assert len(values) == 1, r.out
    return int(values[0])


def assert_adders_run(fpctl, target, after):
    """The adder threads go on calling add (three of them, every 20 ms)."""
    before = add_calls(fpctl, target)
    fpdtest.wait_for(lambda: add_calls(fpctl, target) >= before + 30, 60,
                     "the target's add counter to advance after %s (stuck at %d)"
                     % (after, before), 0.2)


def test_instrumenting_after_console(fpctl, interp, start_target):
    """A console session leaves nothing behind that stops the application
    under the commands that follow: trace and tt -t (a profile function on
    3.6-3.11, sys.monitoring on 3.12+), then watch, each ends with its
    records and the application's threads keep calling the function.  (The
    console used to clear each statement's pending Ctrl-C with
    PyThreadState_SetAsyncExc(id, NULL), which leaves the interpreter's
    async-exception signal on: 3.11 then looped forever at the start of
    every call made under trace's profile function, after detach too.)"""
    t = start_target(interp.python, "watch_target.py")
    rc, out, err = console(fpctl, t, "print(6*7)\nfor i in range(2):\n    print(i)\n\n")
    assert (rc, out, err) == (0, "42\n0\n1\n", ""), (rc, out, err)
    assert_adders_run(fpctl, t, "console")

    r = fpctl("--json", "--timeout", "30", "attach", t.pid, "trace", "__main__", "add", "-n", "2",
              check=False)
    traces = [e for e in json_events(r) if e.get("event") == "trace"]
    assert r.rc == 0 and len(traces) == 2, (r.rc, r.out, r.err)
    assert all(e["nodes"][0]["name"] == "add" and e["thread"].startswith("adder-")
               for e in traces), r.out
    assert_adders_run(fpctl, t, "trace")

    r = fpctl("--json", "--timeout", "30", "attach", t.pid, "tt", "-t", "__main__", "add",
              "-n", "2", check=False)
    evs = json_events(r)
    assert r.rc == 0 and [e["method"] for e in evs if e.get("event") == "tt_row"] == ["add"] * 2 \
        and evs[-1].get("event") == "tt_end" and evs[-1]["reason"] == "limit", (r.rc, r.out, r.err)
    assert_adders_run(fpctl, t, "tt -t")

    r = fpctl("--json", "--timeout", "30", "attach", t.pid, "watch", "__main__", "add", "-n", "2",
              "--expr", "return_obj == args[0] + args[1]", check=False)
    recs = [e for e in json_events(r) if e.get("event") == "record"]
    assert r.rc == 0 and [e["value"] for e in recs] == ["True"] * 2, (r.rc, r.out, r.err)
    assert_adders_run(fpctl, t, "watch")
    t.ping()
