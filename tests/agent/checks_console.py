"""Checks of agent/py/console.py, run under every interpreter by checkrun.py
(CPython 3.6+ syntax only).  Each check gets a fresh helper namespace ns;
the console runs on a thread of its own as in the target, fed lines as
fpctl sends them."""
import builtins
import io
import sys
import threading
import time

from reqthread import ReqThread


class Console(object):
    def __init__(self, ns):
        self.req = ReqThread(ns, "console")
        self.seen = 0  # events already returned
        self.wait_prompt()

    def wait_prompt(self, timeout=30):
        """Output text (stdout, stderr) up to the next prompt, and that prompt."""
        def ready(evs):
            for i in range(self.seen, len(evs)):
                if evs[i]["event"] == "console_prompt":
                    return evs[self.seen:i + 1]
            return None

        evs = self.req.wait_for(ready, timeout, "a prompt")
        self.seen += len(evs)
        out = "".join(e["text"] for e in evs if e.get("stream") == "stdout")
        err = "".join(e["text"] for e in evs if e.get("stream") == "stderr")
        self.last_prompt = evs[-1]
        return out, err, evs[-1]["prompt"]

    def line(self, text, timeout=30):
        self.req.send({"line": text})
        return self.wait_prompt(timeout)

    def run(self, *lines):
        """Sends each line; output of them all and the last prompt."""
        outs, errs = [], []
        for text in lines:
            out, err, prompt = self.line(text)
            outs.append(out)
            errs.append(err)
        return "".join(outs), "".join(errs), prompt

    def leave(self):
        self.req.send({"eof": True})
        events, last = self.req.join(10)
        assert last == ("end", None), last


def main_ns():
    return sys.modules["__main__"].__dict__


def check_banner_expression_and_print(ns):
    con = Console(ns)
    first = con.req.events()[0]
    assert first["prompt"] == ">>> " and "__main__" in first["banner"], first
    assert con.run("x_console = 41") == ("", "", ">>> ")
    assert con.run("x_console + 1") == ("42\n", "", ">>> ")
    assert con.run("print('hello', 'world')") == ("hello world\n", "", ">>> ")
    assert con.run("None") == ("", "", ">>> ")
    assert con.run("'a' * 3") == ("'aaa'\n", "", ">>> ")
    con.leave()
    assert main_ns().pop("x_console") == 41


def check_application_globals_visible(ns):
    main_ns()["APP_SETTING"] = {"level": 3}
    try:
        con = Console(ns)
        assert con.run("APP_SETTING['level'] * 2") == ("6\n", "", ">>> ")
        con.leave()
    finally:
        del main_ns()["APP_SETTING"]


def check_multi_line_block(ns):
    con = Console(ns)
    assert con.line("for i in range(3):") == ("", "", "... ")
    assert con.line("    print(i * 10)") == ("", "", "... ")
    assert con.line("") == ("0\n10\n20\n", "", ">>> ")
    assert con.run("def twice(v):", "    return v * 2", "") == ("", "", ">>> ")
    assert con.run("twice(21)") == ("42\n", "", ">>> ")
    con.leave()
    del main_ns()["twice"], main_ns()["i"]


def check_traceback_and_syntax_error(ns):
    con = Console(ns)
    out, err, prompt = con.run("1 / 0")
    assert out == "" and prompt == ">>> ", (out, prompt)
    assert err.startswith("Traceback (most recent call last):\n"), err
    assert 'File "<console>", line 1' in err and err.endswith("ZeroDivisionError: division by zero\n"), err
    assert "console.py" not in err and "fpagent" not in err, err
    out, err, prompt = con.run("x = = 1")
    assert out == "" and "SyntaxError" in err and prompt == ">>> ", (out, err)
    # a statement that fails half-way keeps what it did before
    out, err, _ = con.run("y_console = 5; undefined_name_xyz")
    assert "NameError" in err and main_ns().pop("y_console") == 5, err
    con.leave()


def check_only_console_output_comes_back(ns):
    """While a statement runs, the application's threads keep writing to
    their own stdout/stderr; afterwards those are the same objects again."""
    orig_out, orig_err = sys.stdout, sys.stderr
    app_out, app_err = io.StringIO(), io.StringIO()
    sys.stdout, sys.stderr = app_out, app_err
    stop = threading.Event()

    def app():
        while not stop.is_set():
            print("app line")
            sys.stderr.write("app error\n")
            time.sleep(0.01)

    t = threading.Thread(target=app)
    try:
        t.start()
        con = Console(ns)
        out, err, _ = con.run(
            "import sys, time", "for n in range(20):", "    print('console', n)",
            "    sys.stderr.write('console error\\n')", "    time.sleep(0.01)", "")
        assert sys.stdout is app_out and sys.stderr is app_err
        con.leave()
    finally:
        stop.set()
        t.join()
        sys.stdout, sys.stderr = orig_out, orig_err
    assert out == "".join("console %d\n" % n for n in range(20)), out
    assert err == "console error\n" * 20, err
    assert "console" not in app_out.getvalue() and "app line" in app_out.getvalue()
    assert "console" not in app_err.getvalue() and "app error" in app_err.getvalue()


def check_interrupt_keeps_the_console(ns):
    con = Console(ns)
    assert con.line("while True: pass") == ("", "", "... ")
    con.req.send({"line": ""})
    time.sleep(0.3)
    assert len(con.req.events()) == con.seen, "the loop ended by itself"
    con.req.send({"interrupt": True})
    out, err, prompt = con.wait_prompt(10)
    assert prompt == ">>> " and err.endswith("KeyboardInterrupt\n"), (out, err)
    assert con.run("6 * 7") == ("42\n", "", ">>> ")
    # an interrupt at the prompt changes nothing; reset drops a pending block
    con.req.send({"interrupt": True})
    assert con.line("if True:") == ("", "", "... ")
    con.req.send({"reset": True})
    assert con.run("1 + 1") == ("2\n", "", ">>> ")
    con.leave()


def check_profiled_thread_runs_after_statements(ns):
    """Statements, one of them interrupted, leave no pending async exception
    signal behind: on 3.11 a thread under a profile function (trace, tt -t,
    cProfile) would never get past the start of its next call."""
    con = Console(ns)
    assert con.run("6 * 7") == ("42\n", "", ">>> ")
    assert con.line("while True: pass") == ("", "", "... ")
    con.req.send({"line": ""})
    time.sleep(0.2)
    con.req.send({"interrupt": True})
    out, err, prompt = con.wait_prompt(10)
    assert err.endswith("KeyboardInterrupt\n"), (out, err)
    assert con.run("print('after')") == ("after\n", "", ">>> ")
    con.leave()
    calls = [0]
    stop = []

    def bump():
        calls[0] += 1

    def profiled():
        sys.setprofile(lambda frame, event, arg: None)
        while not stop:
            bump()
            time.sleep(0.001)
        sys.setprofile(None)

    t = threading.Thread(target=profiled)
    t.daemon = True
    t.start()
    deadline = time.time() + 20
    while calls[0] < 100 and time.time() < deadline:
        time.sleep(0.01)
    stop.append(True)
    assert calls[0] >= 100, "a profiled thread made %d calls in 20 s" % calls[0]
    t.join(10)


def check_exit_and_eof_leave(ns):
    for leave in ("exit()", "quit()", "exit"):
        con = Console(ns)
        stdin = sys.stdin
        con.req.send({"line": leave})
        events, last = con.req.join(10)
        assert last == ("end", None), last
        assert sys.stdin is stdin and not getattr(stdin, "closed", False)
    con = Console(ns)
    out, err, prompt = con.run("raise SystemExit(3)")
    assert "SystemExit: 3" in err and "does not end the process" in err and prompt == ">>> ", err
    con.leave()


def check_cancel_while_running(ns):
    """fpctl gone mid-statement: the request ends, the statement is
    interrupted, the streams are back, the console's thread is gone."""
    threads = threading.active_count()
    orig = sys.stdout
    con = Console(ns)
    con.req.send({"line": "import time"})
    con.wait_prompt()
    con.req.send({"line": "while True: time.sleep(0.01)"})
    con.req.send({"line": ""})
    time.sleep(0.2)
    con.req.cancel()
    events, last = con.req.join(10)
    assert last == ("end", None), last
    deadline = time.time() + 5
    while (sys.stdout is not orig or threading.active_count() > threads) and \
            time.time() < deadline:
        time.sleep(0.01)
    assert sys.stdout is orig
    # the console's thread is a bare _thread: threading counts it only when it asked
    assert threading.active_count() <= threads + 1


def check_no_displayhook_side_effects(ns):
    had = hasattr(builtins, "_")
    old = getattr(builtins, "_", None)
    hook = sys.displayhook
    con = Console(ns)
    assert con.run("12345") == ("12345\n", "", ">>> ")
    con.leave()
    assert sys.displayhook is hook
    assert hasattr(builtins, "_") == had and getattr(builtins, "_", None) is old
