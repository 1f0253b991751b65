"""Target of the injector's tests (CPython 3.6 and later): one thread state per
mode, checking its own results all along.

    injectee.py MODE STOPFILE

Prints {"ready": true, "pid": ...} once in its state, then runs until STOPFILE
exists (mode read: until a line arrives on stdin) and prints
{"result": "ok"|"fail", "fails": [...], "counts": {...}}.

Modes: sleep (time.sleep and libc nanosleep, which would show an EINTR),
cpu (one busy thread), read (blocked in libc read() on a pipe), threads8
(8 busy threads), gil (a thread holding the GIL in one long C call), malloc
(libc malloc under its arena lock, the other thread in epoll_wait so that
the injector must use the busy one), sigalrm (a 1 kHz SIGALRM handler),
asyncio (an idle event loop: its only thread in epoll_wait, which returns
EINTR after any stop; the selector retries).
"""

import ctypes
import json
import math
import os
import select
import signal
import sys
import threading
import time

mode, stopfile = sys.argv[1], sys.argv[2]
fails = []
counts = {}
libc = ctypes.CDLL(None, use_errno=True)


def chunk():
    s = 0
    for k in range(20000):
        s = (s * 31 + k) % 1000003
    return s


EXPECT = chunk()
# Float sums keep xmm registers live: a vector state not restored shows here.
DATA = [math.sqrt(i) * 1.000001 for i in range(50000)]
FSUM = math.fsum(DATA)


def check(tag):
    if chunk() != EXPECT:
        fails.append("%s: integer checksum" % tag)
    if math.fsum(DATA) != FSUM:
        fails.append("%s: float checksum" % tag)
    counts[tag] = counts.get(tag, 0) + 1


def stopped():
    return os.path.exists(stopfile)


def ready():
    sys.stdout.write(json.dumps({"ready": True, "pid": os.getpid(), "mode": mode}) + "\n")
    sys.stdout.flush()


class timespec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]


def busy(tag):
    while not stopped():
        check(tag)


if mode == "sleep":
    ready()
    while not stopped():
        t0 = time.monotonic()
        time.sleep(0.02)
        if time.monotonic() - t0 < 0.02 - 1e-4:
            fails.append("time.sleep returned early")
        if libc.nanosleep(ctypes.byref(timespec(0, 20000000)), None) != 0:
            fails.append("nanosleep: errno %d" % ctypes.get_errno())
        check("main")

elif mode == "cpu":
    ready()
    busy("main")

elif mode == "read":
    check("main")
    ready()
    buf = ctypes.create_string_buffer(100)
    n = libc.read(0, buf, 100)
    if n < 0:
        fails.append("read: errno %d" % ctypes.get_errno())
    elif buf.raw[:n] != b"stop\n":
        fails.append("read returned %r" % buf.raw[:n])
    check("main")

elif mode == "threads8":
    workers = [threading.Thread(target=busy, args=("t%d" % i,)) for i in range(8)]
    for t in workers:
        t.start()
    ready()
    for t in workers:
        t.join()

elif mode == "gil":
    ticks = []

    def ticker():
        while not stopped():
            ticks.append(time.monotonic())
            time.sleep(0.01)

    t = threading.Thread(target=ticker)
    t.start()
    N = 5000000
    ready()
    while not stopped():
        if sum(range(N)) != N * (N - 1) // 2:  # one C call, the GIL held throughout
            fails.append("sum")
        counts["sum"] = counts.get("sum", 0) + 1
    t.join()
    counts["ticks"] = len(ticks)

elif mode == "malloc":
    ep = select.epoll()
    t = threading.Thread(target=ep.poll, args=(-1,))
    t.daemon = True
    t.start()
    ready()
    while not stopped():
        for k in range(200):
            b = bytearray(200000)  # past tcache, served from the arena under its lock
            del b
        check("main")

elif mode == "sigalrm":
    alarms = [0]

    def on_alarm(signum, frame):
        alarms[0] += 1

    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
    ready()
    while not stopped():
        check("main")
        t0 = time.monotonic()
        time.sleep(0.005)
        if time.monotonic() - t0 < 0.005 - 1e-4:
            fails.append("time.sleep returned early")
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
    counts["alarms"] = alarms[0]
    if not alarms[0]:
        fails.append("no SIGALRM")

elif mode == "asyncio":
    import asyncio

    async def idle():
        ready()
        while not stopped():
            t0 = time.monotonic()
            await asyncio.sleep(0.05)
            if time.monotonic() - t0 < 0.05 - 1e-3:
                fails.append("asyncio.sleep returned early")
            check("main")

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(idle())

else:
    raise SystemExit("unknown mode %r" % mode)

sys.stdout.write(json.dumps({"result": "fail" if fails else "ok", "fails": fails[:5],
                             "counts": counts}) + "\n")
sys.stdout.flush()
