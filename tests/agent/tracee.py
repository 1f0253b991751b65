"""Functions that checks_trace.py traces (a module of their own: trace finds
what it traces in sys.modules)."""
import sys
import threading
import time


def leaf(n):
    return sum(range(n))


def helper(n):
    return leaf(n) + leaf(n + 1)


def work(n):
    out = []
    for _ in range(3):
        out.append(helper(n))
    return len(sorted(out))


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def deep(n):
    return 0 if n == 0 else deep(n - 1) + 1


def raiser(n):
    leaf(n)
    raise KeyError(n)


def switches_profiler(fn):
    """Sets the application's profile function fn in the middle of the call."""
    leaf(3)
    sys.setprofile(fn)
    leaf(4)


def gen(n):
    for i in range(n):
        yield leaf(i)


def consume(n):
    return sum(gen(n))


async def coro(delay):
    import asyncio
    leaf(10)
    await asyncio.sleep(delay)
    return leaf(20)


def slow(delay):
    time.sleep(delay)
    return leaf(5)


GATE = threading.Event()
INSIDE = threading.Event()


def blocker():
    """Waits inside the traced call until GATE is set."""
    INSIDE.set()
    GATE.wait(30)
    return leaf(2)


def many(codes):
    for f in codes:
        f()
