"""How long `mem summary` keeps other threads from running, on a heap of
about 5 million objects.

A ticker thread sleeps 1 ms in a loop and records the longest gap between
two wake-ups beyond the sleep itself: that is the longest stretch it could
not get the GIL (or the CPU, on a busy machine).  It is measured while the
helper's mem summary runs (through tests/agent/harness.py, in a thread of
its own as in the target), then for as long at rest, and around one
gc.get_objects() call; the longest single call the walk makes is timed in
CPU time.  With --fpctl, the mem summary is the real one: `fpctl attach
<this pid> mem summary` injects the helper into this process (run as
root); a first call does the injection, the second is measured.

    python3 bench/mem_pause.py [objects] [--fpctl build/fpctl]   # default 5000000

On a shared machine, `chrt -f 10 python3 bench/mem_pause.py` keeps other
processes from taking the CPU away mid-measurement.
"""
import gc
import json
import os
import subprocess
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


class LongestCall(object):
    """Wraps the walk's only calls that can take long (gc.get_referents of a
    batch, one slice of a big container) to time each: a thread waiting for
    the GIL waits at most the switch interval plus the longest of them.
    Measured in the thread's CPU time, so that unlike the ticker's gaps it
    is not inflated when a busy machine takes the CPU away mid-call."""

    def __init__(self, ns):
        self.longest = 0.0
        self.gc = gc
        ns["gc"] = self
        slices = ns["_mem_slices"]

        def timed_slices(o, kind):
            it = slices(o, kind)
            while True:
                part = self.timed(next, it)
                if part is None:
                    return
                yield part

        ns["_mem_slices"] = timed_slices

    def timed(self, fn, *args):
        cpu = time.CLOCK_THREAD_CPUTIME_ID
        t0 = time.clock_gettime(cpu)
        try:
            return fn(*args)
        except StopIteration:
            return None
        finally:
            self.longest = max(self.longest, time.clock_gettime(cpu) - t0)

    def get_referents(self, *objs):
        return self.timed(gc.get_referents, *objs)

    def __getattr__(self, name):
        return getattr(gc, name)


def via_fpctl(fpctl):
    """mem summary of this very process through fpd; the counted objects."""
    out = subprocess.run([fpctl, "--json", "attach", str(os.getpid()), "mem", "summary"],
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    events = [json.loads(line) for line in out.splitlines()]
    return [e for e in events if e.get("event") == "mem_summary"][0]


def main():
    args = sys.argv[1:]
    fpctl = None
    if "--fpctl" in args:
        i = args.index("--fpctl")
        fpctl = args[i + 1]
        del args[i:i + 2]
    n = int(args[0]) if args else 5000000
    heap = build(n)
    gc.collect()
    ns = harness.load_agent()
    calls = LongestCall(ns)
    ticker = Ticker()
    ticker.start()
    if fpctl:
        # a first call injects the helper; the second is the walk alone
        _, inject = ticker.measure(lambda: via_fpctl(fpctl))
    t0 = time.perf_counter()
    if fpctl:
        summary, mem = ticker.measure(lambda: via_fpctl(fpctl))
    else:
        (events, last), mem = ticker.measure(lambda: harness.run(ns, "mem", {"argv": ["summary"]}))
        assert last == ("end", None), last
        summary = events[-1]
    took = time.perf_counter() - t0
    # the machine's own noise over as long a time, for comparison
    _, rest = ticker.measure(lambda: time.sleep(took))
    tracked, whole = ticker.measure(lambda: len(gc.get_objects()))
    ticker.stopped = True
    print("python %s%s: heap of %d objects counted (%d tracked by the GC), mem summary %.1f s: "
          "longest pause %.1f ms (as long at rest %.1f ms; one gc.get_objects() %.1f ms%s)"
          % (sys.version.split()[0], " via fpctl" if fpctl else "", summary["objects"], tracked,
             took, mem * 1e3, rest * 1e3, whole * 1e3,
             "; first call, with the injection, %.1f ms" % (inject * 1e3) if fpctl else
             "; longest call in the walk %.1f ms of CPU" % (calls.longest * 1e3)))
    del heap


if __name__ == "__main__":
    main()
