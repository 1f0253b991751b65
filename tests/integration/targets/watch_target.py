"""A target for watch (and the other instrumenting commands): code shaped
like an application's, each piece called periodically by its own threads.

- Service: a method with keyword-only arguments, a classmethod, a
  staticmethod, a property, a method that raises and one that catches, a
  method defining an inner function (-nm), a decorated method;
- fetch(): a coroutine run by an event loop on its own thread;
- numbers(): a generator;
- add(): a function called from three threads at once;
- ORIG: the code objects every function had at start, so that a test can
  check the very same objects are back after a watch (`is`).
"""

import asyncio
import functools
import sys
import threading
import time

import fptarget as fpt

PERIOD = 0.02
CALLS = {"handle": 0, "add": 0, "fetch": 0}


def logged(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


class Service(object):
    def __init__(self, name):
        self.name = name
        self.handled = 0

    def handle(self, request, *, retries=1, timeout=None):
        self.handled += 1
        CALLS["handle"] += 1
        return {"ok": True, "echo": request, "retries": retries}

    @classmethod
    def create(cls, name):
        return cls(name)

    @staticmethod
    def checksum(data):
        return sum(data) % 251

    @property
    def size(self):
        return len(self.name)

    def fail(self, n):
        raise ValueError("bad value %d" % n)

    def safe(self, n):
        try:
            return self.fail(n)
        except ValueError:
            return -1

    def outer(self, x):
        base = 100

        def inner(y, scale=2):
            return base + y * scale
        return inner(x)

    @logged
    def audited(self, who, action="read"):
        return "%s:%s" % (who, action)


async def fetch(i):
    await asyncio.sleep(0.001)
    CALLS["fetch"] += 1
    return i * 2


def numbers(n):
    for i in range(n):
        yield i
    return n


def add(a, b):
    CALLS["add"] += 1
    return a + b


SERVICE = Service("main")
ORIG = {
    "handle": Service.handle.__code__,
    "create": Service.__dict__["create"].__func__.__code__,
    "checksum": Service.__dict__["checksum"].__func__.__code__,
    "fail": Service.fail.__code__,
    "outer": Service.outer.__code__,
    "fetch": fetch.__code__,
    "numbers": numbers.__code__,
    "add": add.__code__,
}


def instrumented():
    """What differs from the start: functions whose code object is not the
    one they had, and sys.monitoring tool ids in use."""
    now = {
        "handle": Service.handle.__code__,
        "create": Service.__dict__["create"].__func__.__code__,
        "checksum": Service.__dict__["checksum"].__func__.__code__,
        "fail": Service.fail.__code__,
        "outer": Service.outer.__code__,
        "fetch": fetch.__code__,
        "numbers": numbers.__code__,
        "add": add.__code__,
    }
    out = sorted(k for k in ORIG if now[k] is not ORIG[k])
    mon = getattr(sys, "monitoring", None)
    if mon is not None:
        out += ["tool %d: %s" % (i, mon.get_tool(i)) for i in range(6) if mon.get_tool(i)]
    return out


def caller():
    i = 0
    while True:
        i += 1
        SERVICE.handle({"id": i, "query": "hello" if i % 2 else "bye"}, retries=2)
        Service.create("svc-%d" % i)
        Service.checksum([i, i + 1, i + 2])
        SERVICE.size
        SERVICE.safe(i)
        SERVICE.outer(i)
        SERVICE.audited("user%d" % (i % 3))
        list(numbers(3))
        time.sleep(PERIOD)


def adder(k):
    i = 0
    while True:
        i += 1
        add(k, i)
        time.sleep(PERIOD)


def event_loop():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def main():
        i = 0
        while True:
            i += 1
            await fetch(i)
            await asyncio.sleep(PERIOD)
    loop.run_until_complete(main())


fpt.start_thread("caller", caller)
for k in range(3):
    fpt.start_thread("adder-%d" % k, adder, k)
fpt.start_thread("asyncio", event_loop)
fpt.extra(python=sys.version.split()[0])
fpt.serve()
