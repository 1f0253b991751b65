"""Support for the integration-test targets (valid on CPython 3.6 and later).

A target reports, for each thread it wants checked, the Python stack that
thread will be blocked in (outermost first, as seen by the thread itself) and
then prints ONE JSON line on stdout:

    {"ready": true, "pid": ..., "version": "3.12.1", "executable": ...,
     "threads": [{"name": ..., "tid": ..., "settle": ..., "frames": [[file, line, func], ...]}],
     "extra": {...}}

The innermost frame of each thread has line null and a "marker": the line of
the source file carrying `# LINE:<marker>` is where the thread blocks.  The
tests resolve markers by scanning the files, so no line number is written
twice.  "settle" says what /proc shows once the thread is where it said:
"sleep" (in time.sleep's syscall), "read" (in read(2)), "cpu" (spinning),
"gil" (waiting for the GIL: a futex wait), "hog" (running in C, GIL held).

After the ready line the main thread serves stdin: "ping N" -> "pong N"; end
of input exits.  That is how tests check the target still runs.
"""

import ctypes
import json
import os
import platform
import sys
import threading

BIG = 1e6  # seconds: "forever" for a test

_cond = threading.Condition()
_reports = []
_expected = [1]
_extra = {}


def expect(n):
    """Number of report() calls (main thread included) before ready."""
    _expected[0] = n


def extra(**kw):
    """Additional facts for the tests, sent in the ready line."""
    with _cond:
        _extra.update(kw)


def gettid():
    if hasattr(threading, "get_native_id"):
        return threading.get_native_id()
    nr = {"x86_64": 186, "aarch64": 178}[platform.machine()]
    return ctypes.CDLL(None, use_errno=True).syscall(nr)


def funcname(code):
    return getattr(code, "co_qualname", code.co_name)


def report(marker, settle="sleep", depth=1):
    """Records the calling thread's stack; its innermost frame (the caller of
    report, or `depth` frames up) will block at the line marked `marker`."""
    f = sys._getframe(depth)
    frames = []
    while f is not None:
        frames.append([f.f_code.co_filename, f.f_lineno, funcname(f.f_code)])
        f = f.f_back
    frames.reverse()
    frames[-1][1] = None
    entry = {
        "name": threading.current_thread().name,
        "tid": gettid(),
        "ident": threading.get_ident(),
        "settle": settle,
        "marker": marker,
        "frames": frames,
    }
    with _cond:
        _reports.append(entry)
        _cond.notify_all()


def announce():
    """Waits for every expected report, then prints the ready line."""
    with _cond:
        while len(_reports) < _expected[0]:
            _cond.wait()
        msg = {
            "ready": True,
            "pid": os.getpid(),
            "version": platform.python_version(),
            "executable": sys.executable,
            "threads": _reports,
            "extra": _extra,
        }
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def serve(ready=True):
    """The main thread's last call: reports itself, announces, then answers pings."""
    report("serve", settle="read")
    if ready:
        announce()
    while True:
        line = sys.stdin.readline()  # LINE:serve
        if not line:
            os._exit(0)
        words = line.split()
        if words and words[0] == "ping":
            sys.stdout.write("pong %s\n" % " ".join(words[1:]))
            sys.stdout.flush()


def start_thread(name, target, *args):
    t = threading.Thread(name=name, target=target, args=args)
    t.daemon = True
    t.start()
    return t
