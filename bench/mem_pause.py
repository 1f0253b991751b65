"""How long `mem summary` keeps other threads from running, on a heap of
about 5 million objects.

A ticker thread sleeps 1 ms in a loop and records the longest gap between
two wake-ups beyond the sleep itself: that is the longest stretch it could
not get the GIL.  It is measured at rest, while the helper's mem summary
runs (through tests/agent/harness.py, in a thread of its own as in the
target), and, for comparison, around one gc.get_objects() call.

    python3 bench/mem_pause.py [objects]     # default 5000000
"""
import gc
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "agent"))
import harness  # noqa: E402


class Obj(object):
    def __init__(self, i):
        self.a = i * 0.5
        self.b = None


def build(n):
    """About n objects: lists holding an int and a str, a dict over half of
    them, instances with a float, a set of ints."""
    unit = n // 10
    rows = [[i + 1000, "s%d" % i] for i in range(unit * 2)]  # 3 objects each
    index = dict((r[1], r) for r in rows[:unit])
    objs = [Obj(i) for i in range(unit * 2)]  # 2 objects each (3 before 3.11)
    ints = set(range(10 ** 6, 10 ** 6 + unit))
    return rows, index, objs, ints


class Ticker(threading.Thread):
    def __init__(self):
        threading.Thread.__init__(self, daemon=True)
        self.longest = 0.0
        self.stopped = False

    def run(self):
        clock = time.perf_counter
        while not self.stopped:
            t0 = clock()
            time.sleep(0.001)
            gap = clock() - t0 - 0.001
            if gap > self.longest:
                self.longest = gap

    def measure(self, fn):
        """Runs fn in another thread; returns (its result, longest gap in s)."""
        out = []
        worker = threading.Thread(target=lambda: out.append(fn()))
        time.sleep(0.05)
        self.longest = 0.0
        worker.start()
        worker.join()
        return out[0], self.longest


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000000
    heap = build(n)
    gc.collect()
    ns = harness.load_agent()
    ticker = Ticker()
    ticker.start()
    _, rest = ticker.measure(lambda: time.sleep(0.5))
    t0 = time.perf_counter()
    (events, last), mem = ticker.measure(lambda: harness.run(ns, "mem", {"argv": ["summary"]}))
    took = time.perf_counter() - t0
    assert last == ("end", None), last
    summary = events[-1]
    tracked, whole = ticker.measure(lambda: len(gc.get_objects()))
    ticker.stopped = True
    print("python %s: heap of %d objects counted (%d tracked by the GC), mem summary %.1f s: "
          "longest pause %.1f ms (at rest %.1f ms; one gc.get_objects() %.1f ms)"
          % (sys.version.split()[0], summary["objects"], tracked, took, mem * 1e3, rest * 1e3,
             whole * 1e3))
    del heap


if __name__ == "__main__":
    main()
