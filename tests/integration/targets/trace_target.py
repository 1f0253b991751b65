"""A target for trace: methods called over and over by threads of their own.

- "caller" calls Service.handle (Python helpers, builtins, a C method and a
  sleep) and outer (whose inner function is the -nm case) every 20 ms;
- "loop" runs an asyncio event loop awaiting acoro (a sleep and a nested
  coroutine) every 20 ms, with a second task sharing the loop;
- "profiled" has the application's own profile function (sys.setprofile):
  PROFILED records whether it stayed set and saw every call of prof_inner;
- "cprofiled" runs under cProfile: CPROFILED compares cProfile's count of
  cprof_inner with the calls made;
- "busy" calls hot(): a few thousand Python and C calls per call.
"""

import asyncio
import cProfile
import sys
import threading
import time

import fptarget as fpt


def leaf(n):
    return sum(range(n))


def helper(n):
    s = 0
    for _ in range(3):
        s += leaf(n)
    return s


class Service(object):
    def handle(self, n):
        out = []
        for _ in range(2):
            out.append(helper(n))
        time.sleep(0.003)
        return len(sorted(out))


def outer(n):
    k = n % 7

    def inner(m):
        return leaf(m) + k

    return inner(n)


def caller():
    svc = Service()
    fpt.report("caller", settle="any")
    while True:  # LINE:caller
        svc.handle(200)
        outer(50)
        time.sleep(0.02)


async def fetch(i):
    await asyncio.sleep(0.005)
    return i


async def acoro():
    x = leaf(100)
    await asyncio.sleep(0.01)
    y = await fetch(1)
    return x + y


async def bystander():
    while True:
        leaf(10)
        await asyncio.sleep(0.001)


async def loop_main():
    asyncio.ensure_future(bystander())
    while True:
        await acoro()
        await asyncio.sleep(0.02)


def loop_thread():
    fpt.report("loop", settle="any")
    asyncio.new_event_loop().run_until_complete(loop_main())  # LINE:loop


PROFILED = {"iterations": 0, "missed": 0, "kept": True}
_seen = [0]


def prof_inner():
    return 1


def prof_work():
    return prof_inner() + leaf(20)


def app_profiler(frame, event, arg):
    if event == "call" and frame.f_code is prof_inner.__code__:
        _seen[0] += 1


def profiled():
    sys.setprofile(app_profiler)
    fpt.report("profiled", settle="any")
    while True:  # LINE:profiled
        before = _seen[0]
        prof_work()
        PROFILED["iterations"] += 1
        if _seen[0] != before + 1:
            PROFILED["missed"] += 1
        if sys.getprofile() is not app_profiler:
            PROFILED["kept"] = False
        time.sleep(0.01)


CPROFILED = {"iterations": 0, "counted": 0, "kept": True}


def cprof_inner():
    return 2


def cprof_work():
    return cprof_inner() + leaf(20)


def cprofiled():
    pr = cProfile.Profile()
    pr.enable()
    mine = sys.getprofile()
    fpt.report("cprofiled", settle="any")
    while True:  # LINE:cprofiled
        cprof_work()
        n = CPROFILED["iterations"] + 1
        counted = sum(s.callcount for s in pr.getstats()
                      if getattr(s.code, "co_name", None) == "cprof_inner")
        CPROFILED.update(iterations=n, counted=counted)
        if sys.getprofile() is not mine:
            CPROFILED["kept"] = False
        time.sleep(0.01)


def words(i):
    return "w%d" % (i % 50)


def hot():
    """A few thousand Python and C calls."""
    counts = {}
    for i in range(1500):
        w = words(i)
        counts[w] = counts.get(w, 0) + len(w)
    return max(counts.values())


def busy():
    fpt.report("busy", settle="any")
    while True:  # LINE:busy
        hot()
        time.sleep(0.005)


fpt.expect(6)
fpt.start_thread("caller", caller)
fpt.start_thread("loop", loop_thread)
fpt.start_thread("profiled", profiled)
fpt.start_thread("cprofiled", cprofiled)
fpt.start_thread("busy", busy)
fpt.serve()
