# console: an interactive Python console inside the target, in the
# namespace of __main__.
#
# Two threads per console.  The request's own thread reads fpctl's input
# (lines, interrupts, the end) and compiles each line as the REPL does
# (codeop: a block runs once it is complete); a thread of the console's own
# runs the statements, so that the request's thread stays free to deliver
# Ctrl-C to it (PyThreadState_SetAsyncExc: a statement blocked in a C call
# sees it when that call returns).  An interrupt left pending when the
# statement ends is taken by the console's thread, never cleared: see settle().
#
# Output: print() and tracebacks write to whatever sys.stdout/sys.stderr are
# at that moment, which every thread of the application shares.  While a
# statement runs both are replaced by a stand-in that sends what the
# console's thread writes to fpctl and passes every other thread's writes
# on to the stream it replaced, unchanged; the original is put back when
# the statement ends, unless the application replaced it meanwhile.  The
# value of an expression statement is shown by the console itself rather
# than by sys.displayhook, which would also set builtins._ (gettext's _ in
# many applications).  What C code writes to file descriptors 1 and 2 goes
# to the application's output, not to the console.
import _thread
import ast
import codeop
import os
import sys
import traceback

_CONSOLE_PS1 = ">>> "
_CONSOLE_PS2 = "... "
_CONSOLE_CHUNK = 65536  # characters per output event
# typed alone, these leave the console: the site module's exit() would
# close the application's sys.stdin before raising SystemExit
_CONSOLE_LEAVE = ("exit", "exit()", "quit", "quit()")


def _console_future_flags():
    import __future__
    flags = 0
    for name in __future__.all_feature_names:
        flags |= getattr(__future__, name).compiler_flag
    return flags


_CONSOLE_FUTURE = _console_future_flags()


class _ConsoleSettled(BaseException):
    """Takes the place of an interrupt that came too late for its statement."""


class _ConsoleStream(object):
    """Stands in for sys.stdout or sys.stderr while a statement runs."""

    def __init__(self, console, name):
        self._fp_console = console
        self._fp_name = name
        self._fp_orig = None

    def write(self, text):
        con = self._fp_console
        if _thread.get_ident() == con.ident:
            return con.out(self._fp_name, text)
        if self._fp_orig is None:
            return len(text)  # print() to a None stream writes nothing either
        return self._fp_orig.write(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if _thread.get_ident() == self._fp_console.ident:
            return self._fp_console.flush()
        if self._fp_orig is not None:
            return self._fp_orig.flush()

    def __getattr__(self, name):
        return getattr(self._fp_orig, name)


class _Console(object):
    def __init__(self, req):
        main = sys.modules.get("__main__")
        if main is None:
            raise CommandError("console: this process has no __main__ module")
        self.req = req
        self.ns = main.__dict__
        self.compiler = codeop.CommandCompiler()
        self.lines = []
        # lock guards running and closing against the request's thread
        self.lock = _thread.allocate_lock()
        self.running = False
        self.interrupted = False  # an interrupt was sent to the running statement
        self.closing = False
        self.wake = _thread.allocate_lock()  # released once per statement to run
        self.wake.acquire()
        self.job = None
        self.ident = None
        self.buf = []
        self.buf_stream = None
        self.streams = {"stdout": _ConsoleStream(self, "stdout"),
                        "stderr": _ConsoleStream(self, "stderr")}

    # ---- the request's thread

    def feed(self, line):
        """One line typed at the prompt; False when it asks to leave."""
        if self.running:
            return True  # fpctl sends a line only at a prompt
        if not self.lines and line.strip() in _CONSOLE_LEAVE:
            return False
        self.lines.append(line)
        source = "\n".join(self.lines)
        try:
            code = self.compiler(source, "<console>", "single")
        except (OverflowError, SyntaxError, ValueError):
            self.lines = []
            self.out("stderr", "".join(traceback.format_exception_only(*sys.exc_info()[:2])))
            self.flush()
            self.prompt(_CONSOLE_PS1)
            return True
        if code is None:
            self.prompt(_CONSOLE_PS2)
            return True
        self.lines = []
        with self.lock:
            self.running = True
        self.job = source
        self.wake.release()
        return True

    def reset(self):
        if not self.running:
            self.lines = []

    def interrupt(self):
        with self.lock:
            if self.running:
                self.interrupted = True
                _fp_async_exc(self.ident, KeyboardInterrupt)

    def close(self):
        self.interrupt()
        with self.lock:
            self.closing = True
        self.job = None
        try:
            self.wake.release()
        except RuntimeError:
            pass  # already released: the thread sees no job and leaves

    def prompt(self, text, **extra):
        with self.lock:
            if not self.closing:
                self.req.emit("console_prompt", prompt=text, **extra)

    # ---- the console's thread

    def main(self):
        while True:
            self.wake.acquire()
            try:
                source = self.job
                if source is None:
                    return
                self.run(source)
            except BaseException:
                pass  # an interrupt that arrived just before or after the statement
            self.done()

    def run(self, source):
        self.swap_in()
        try:
            flags = self.compiler.compiler.flags & _CONSOLE_FUTURE
            tree = compile(source + "\n", "<console>", "single", ast.PyCF_ONLY_AST | flags, True)
            for node in tree.body:
                if isinstance(node, ast.Expr):
                    code = compile(ast.Expression(node.value), "<console>", "eval", flags, True)
                    value = eval(code, self.ns)
                    if value is not None:
                        self.out("stdout", repr(value) + "\n")
                    continue
                module = ast.Module([node], []) if sys.version_info >= (3, 8) \
                    else ast.Module([node])
                exec(compile(module, "<console>", "exec", flags, True), self.ns)
        except BaseException:
            etype, value, tb = sys.exc_info()
            self.out("stderr", "".join(traceback.format_exception(etype, value, tb.tb_next)))
            if etype is SystemExit:
                self.out("stderr", "(the console does not end the process; exit() or Ctrl-D "
                                   "leaves the console)\n")

    def done(self):
        self.settle()
        self.swap_out()
        self.flush()
        self.prompt(_CONSOLE_PS1)

    def settle(self):
        """Ends the statement's time for interrupts.  Once running is False
        under the lock none is sent; one sent before may still be pending
        for this thread and would stop the next statement.  It is replaced
        by _ConsoleSettled and taken here, on a loop's backward jump, where
        the interpreter delivers it.  Clearing it instead
        (PyThreadState_SetAsyncExc with NULL) would leave the interpreter's
        "async exception pending" signal on for good on 3.6-3.12, which
        only taking an exception turns off: every thread would then go
        through the eval loop's slow path at every check, and on 3.11 a
        thread running under a profile function (trace, tt -t, the
        application's cProfile) would loop forever on the first
        instruction of the next function it calls."""
        while True:
            try:
                with self.lock:
                    self.running = False
                    pending = self.interrupted
                    self.interrupted = False
                if pending:
                    _fp_async_exc(self.ident, _ConsoleSettled)
                    for _ in range(100000):
                        pass
                return
            except _ConsoleSettled:
                return
            except KeyboardInterrupt:
                continue  # it landed here, which took it

    def swap_in(self):
        for name, stream in self.streams.items():
            current = getattr(sys, name)
            if current is not stream:
                stream._fp_orig = current
                setattr(sys, name, stream)

    def swap_out(self):
        for name, stream in self.streams.items():
            if getattr(sys, name) is stream:
                setattr(sys, name, stream._fp_orig)

    def out(self, stream, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        if stream != self.buf_stream:
            self.flush()
            self.buf_stream = stream
        self.buf.append(text)
        if "\n" in text or sum(len(t) for t in self.buf) >= _CONSOLE_CHUNK:
            self.flush()
        return len(text)

    def flush(self):
        text = "".join(self.buf)
        self.buf = []
        with self.lock:
            if self.closing:
                return
            for i in range(0, len(text), _CONSOLE_CHUNK):
                self.req.emit("console_out", stream=self.buf_stream,
                              text=text[i:i + _CONSOLE_CHUNK])


@command("console")
def _console(req):
    con = _Console(req)
    con.ident = _thread.start_new_thread(con.main, ())
    con.prompt(_CONSOLE_PS1, banner="Python %s in process %d, in the namespace of __main__. "
               "Ctrl-C interrupts a statement; Ctrl-D or exit() leaves."
               % (sys.version.split()[0], os.getpid()))
    try:
        while True:
            msg = req.recv(3600)
            if msg == "cancel" or (msg is None and req.cancelled()):
                return
            if not isinstance(msg, dict):
                continue
            if msg.get("interrupt"):
                con.interrupt()
            elif msg.get("reset"):
                con.reset()
            elif msg.get("eof"):
                return
            elif isinstance(msg.get("line"), str) and not con.feed(msg["line"]):
                return
    finally:
        con.close()
