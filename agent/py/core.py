# The helper's Python side: request dispatch and the link to fpd.
#
# Every file of agent/py/ is embedded into libfpagent.so at build time and
# executed in ONE private namespace (a plain dict, never a module in
# sys.modules): core.py and the generated manifest when the helper starts,
# every other file the first time a command needs it (_fp_load), after the
# files whose top-level names it reads (tools/embed_py.py finds them).  Nothing here may
# touch the application's modules or sys.modules beyond importing stdlib
# modules it needs.  The code must run on CPython 3.6 to 3.14: no walrus, no
# positional-only parameters, no match.
#
# The C side (agent/agent.c) puts these callables into the namespace before
# executing the files:
#   _fp_source(name)             the text of embedded file name ("mem.py"), or None
#   _fp_send(op, rid, payload)   send one frame to fpd (payload: str); releases
#                                the GIL while writing; OSError when fpd is gone
#   _fp_recv(rid, timeout_s)     wait, without the GIL, for the next INPUT or
#                                CANCEL of request rid: ("input", payload),
#                                ("cancel", ""), or None on timeout
#   _fp_cancelled(rid)           True once fpd cancelled rid or the link closed
#   _fp_async_exc(ident, exc)    PyThreadState_SetAsyncExc (console's Ctrl-C);
#                                exc None (clearing) is refused: see agent.c
# and calls _fp_handle(session, rid, payload) on a helper thread holding the
# GIL for each REQUEST, and _fp_session_end(session) once when a session's
# link closes.
import json
import sys
import threading

OP_EVENT = 17
OP_END = 18
OP_ERROR = 19

COMMANDS = {}
# Per session: callables that undo what the session changed in the target
# (instrumentation), run once when the session ends, newest first.
SESSION_CLEANUPS = {}


def command(name):
    """Registers fn(req) as the handler of request `name`."""
    def register(fn):
        COMMANDS[name] = fn
        return fn
    return register


class CommandError(Exception):
    """A failure the user caused: one line, sent as the request's error."""

    def __init__(self, message, code="command_error", exit=1):
        Exception.__init__(self, message)
        self.message = message
        self.code = code
        self.exit = exit


class Request(object):
    def __init__(self, session, rid, cmd, args):
        self.session = session
        self.id = rid
        self.cmd = cmd
        self.args = args

    def arg(self, key, default=None):
        v = self.args.get(key)
        return default if v is None else v

    def emit(self, event, **fields):
        fields["event"] = event
        _fp_send(OP_EVENT, self.id, json.dumps(fields, default=str))

    def cancelled(self):
        return _fp_cancelled(self.id)

    def recv(self, timeout):
        """The next INPUT as a dict, None on timeout; CommandError-free
        cancellation is reported as the string "cancel"."""
        got = _fp_recv(self.id, timeout)
        if got is None:
            return None
        kind, payload = got
        if kind == "cancel":
            return "cancel"
        return json.loads(payload) if payload else {}

    def on_session_end(self, undo):
        SESSION_CLEANUPS.setdefault(self.session, []).append(undo)


_LOADED = set()
# Held for a whole load: a second request must not see a file half run.
_LOAD_LOCK = threading.RLock()


def _fp_load(stem):
    """Runs embedded file stem.py (once) in this namespace, after the files
    it needs (_FP_DEPS, from the generated manifest)."""
    with _LOAD_LOCK:
        if stem in _LOADED or stem == "core":
            return
        _LOADED.add(stem)
        try:
            for dep in _FP_DEPS.get(stem, ()):
                _fp_load(dep)
            src = _fp_source(stem + ".py")
            if src is None:
                raise RuntimeError("no embedded file %s.py" % stem)
            exec(compile(src, "<fpagent>/%s.py" % stem, "exec"), globals())
        except BaseException:
            _LOADED.discard(stem)  # the next request tries again
            raise


def _send_error(rid, code, exit_status, message):
    _fp_send(OP_ERROR, rid, json.dumps({"code": code, "exit": exit_status,
                                        "message": message}))


def _fp_handle(session, rid, payload):
    try:
        msg = json.loads(payload)
        cmd = msg.get("cmd", "")
        args = msg.get("args") or {}
    except ValueError:
        _send_error(rid, "protocol", 1, "helper: malformed request")
        return
    fn = COMMANDS.get(cmd)
    if fn is None and cmd in _FP_COMMAND_FILES:
        try:
            _fp_load(_FP_COMMAND_FILES[cmd])
        except Exception as e:
            _send_error(rid, "helper_error", 1, "%s: the helper failed to load it: %s: %s"
                        % (cmd, type(e).__name__, e))
            return
        fn = COMMANDS.get(cmd)
    if fn is None:
        _send_error(rid, "unknown_command", 2,
                    "%s: the helper in this process does not know this command "
                    "(an older helper is loaded; restart the process to update it)" % cmd)
        return
    try:
        fn(Request(session, rid, cmd, args))
    except CommandError as e:
        _send_error(rid, e.code, e.exit, e.message)
        return
    except Exception as e:
        _send_error(rid, "helper_error", 1, "%s: the helper failed: %s: %s"
                    % (cmd, type(e).__name__, e))
        return
    _fp_send(OP_END, rid, "")


def _fp_session_end(session):
    for undo in reversed(SESSION_CLEANUPS.pop(session, [])):
        try:
            undo()
        except Exception:
            pass


@command("hello")
def _hello(req):
    req.emit("hello", python=sys.version.split()[0], executable=sys.executable)
