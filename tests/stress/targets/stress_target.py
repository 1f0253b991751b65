"""A target of the stress test (tests/stress/stress.py), one workload per run,
valid on CPython 3.6 and later:

    python stress_target.py STATE

STATE is what its threads do while fpctl attaches, runs a command and
detaches, over and over:

  cpu      "spinner" runs Python without pause
  sleep    "sleeper" sleeps 20 ms at a time
  read     "reader" blocks in read(2) on a pipe that "writer" feeds every 20 ms
  threads  64 threads "w-00".."w-63" sleeping 50 ms at a time
  gil      "hog" holds the GIL in one C call (sum over a range) for ~150 ms
           at a time
  asyncio  "loop-thread" runs an event loop whose tasks await sleeps
  churn    "churner" starts short-lived threads "churn-N" without pause

Every workload calls tick() (what watch, trace and tt instrument) and then
looks whether a profile or trace function was left on its thread.

The main thread prints one JSON line when ready: pid, version, the state,
the persistent threads {name: tid}, the script's path, then serves stdin:
  "ping N"  -> "pong N"
  "check N" -> "check N {json}": whether tick runs its original code, the
               sys.monitoring tools in use (3.12+), the stray hooks seen, the
               tick count
  "never N TID,..." -> "never N [TID, ...]": those of the tids that were
               never a thread of this process
End of input exits.
"""

import ctypes
import json
import os
import platform
import sys
import threading
import time

STATE = sys.argv[1]
# The value `getglobal __main__ STRESS_TOKEN` and the console must show.
STRESS_TOKEN = "stress-%s-%d" % (STATE, os.getpid())
TICKS = [0]
STRAYS = []
_lock = threading.Lock()
_tids = {}
# Every kernel thread id this process has had (churn threads included).
_ever = set()


def tick():
    TICKS[0] += 1
    return TICKS[0]


ORIG_TICK = tick.__code__


def after_tick():
    """A profile or trace function on this thread once tick returned is one
    an instrumentation failed to take back."""
    hook = sys.getprofile() or sys.gettrace()
    if hook is not None:
        with _lock:
            if len(STRAYS) < 20:
                STRAYS.append([time.monotonic(), threading.current_thread().name, repr(hook)[:200]])


def gettid():
    if hasattr(threading, "get_native_id"):
        return threading.get_native_id()
    nr = {"x86_64": 186, "aarch64": 178}[platform.machine()]
    return ctypes.CDLL(None, use_errno=True).syscall(nr)


def register():
    tid = gettid()
    with _lock:
        _tids[threading.current_thread().name] = tid
        _ever.add(tid)


def start(name, fn, *args):
    t = threading.Thread(name=name, target=fn, args=args)
    t.daemon = True
    t.start()
    return t


def loop_cpu():
    register()
    while True:
        tick()
        after_tick()


def loop_sleep(period):
    register()
    while True:
        time.sleep(period)
        tick()
        after_tick()


def loop_read(fd):
    register()
    while True:
        os.read(fd, 1)
        tick()
        after_tick()


def loop_write(fd):
    register()
    while True:
        time.sleep(0.02)
        os.write(fd, b"x")


def hog_size():
    """A range whose sum takes ~150 ms in C, the GIL held all along."""
    n = 10 ** 5
    while True:
        t0 = time.monotonic()
        sum(range(n))
        took = time.monotonic() - t0
        if took > 0.01:
            return max(n, int(n * 0.15 / took))
        n *= 4


def loop_hog(n):
    register()
    while True:
        sum(range(n))
        tick()
        after_tick()
        time.sleep(0.01)


def run_asyncio():
    import asyncio

    register()

    async def worker(period):
        while True:
            await asyncio.sleep(period)
            tick()
            after_tick()

    async def main():
        await asyncio.gather(*[worker(0.01 * (i + 1)) for i in range(5)])

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(main())


def churn_one():
    tid = gettid()
    with _lock:
        _ever.add(tid)
    tick()
    after_tick()
    time.sleep(0.002)


def loop_churn():
    register()
    n = 0
    live = []
    while True:
        live = [t for t in live if t.is_alive()]
        if len(live) < 8:
            n += 1
            live.append(start("churn-%d" % n, churn_one))
        time.sleep(0.001)


def monitoring():
    """The sys.monitoring tool ids in use (3.12+), the helper's among them."""
    mon = getattr(sys, "monitoring", None)
    if mon is None:
        return {}
    out = {}
    for tool in range(6):
        name = mon.get_tool(tool)
        if name is not None:
            out[str(tool)] = [name, mon.get_events(tool), mon.get_local_events(tool, ORIG_TICK)]
    return out


def check():
    with _lock:
        strays = list(STRAYS)
    return {
        "code_ok": tick.__code__ is ORIG_TICK,
        "code": repr(tick.__code__),
        "monitoring": monitoring(),
        "strays": strays,
        "ticks": TICKS[0],
        "now": time.monotonic(),
    }


def main():
    register()
    if STATE == "cpu":
        start("spinner", loop_cpu)
    elif STATE == "sleep":
        start("sleeper", loop_sleep, 0.02)
    elif STATE == "read":
        r, w = os.pipe()
        start("reader", loop_read, r)
        start("writer", loop_write, w)
    elif STATE == "threads":
        for i in range(64):
            start("w-%02d" % i, loop_sleep, 0.05)
    elif STATE == "gil":
        start("hog", loop_hog, hog_size())
    elif STATE == "asyncio":
        start("loop-thread", run_asyncio)
    elif STATE == "churn":
        start("churner", loop_churn)
    else:
        sys.exit("unknown state %r" % STATE)
    want = {"cpu": 2, "sleep": 2, "read": 3, "threads": 65, "gil": 2, "asyncio": 2, "churn": 2}[STATE]
    while True:
        with _lock:
            if len(_tids) >= want:
                tids = dict(_tids)
                break
        time.sleep(0.01)
    msg = {"ready": True, "pid": os.getpid(), "version": platform.python_version(), "state": STATE,
           "threads": tids, "script": os.path.abspath(__file__)}
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()
    while True:
        line = sys.stdin.readline()
        if not line:
            os._exit(0)
        words = line.split()
        if words[:1] == ["ping"]:
            sys.stdout.write("pong %s\n" % " ".join(words[1:]))
        elif words[:1] == ["never"]:
            asked = [int(x) for x in words[2].split(",") if x] if len(words) > 2 else []
            with _lock:
                never = [tid for tid in asked if tid not in _ever]
            sys.stdout.write("never %s %s\n" % (words[1], json.dumps(never)))
        elif words[:1] == ["check"]:
            sys.stdout.write("check %s %s\n" % (" ".join(words[1:]), json.dumps(check())))
        sys.stdout.flush()


main()
