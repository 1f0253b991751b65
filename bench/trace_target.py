"""Benchmark target for bench/trace.sh: what a trace costs the calls it traces.

    trace_target.py --out FILE --method handle|tiny [--pace S]
                    [--hook cprofile|LIB --hook-flag FLAG]

The main thread loops forever.  Each round it makes 20 calls of the method,
S seconds apart (default 0.005), each timed alone (wall: perf_counter_ns;
CPU: thread_time_ns, this thread only, so that what other processes on the
machine do does not count), and appends "wall_ns cpu_ns process_cpu_s calls"
to FILE: the medians of the round, the process's CPU time (every thread: a
tool's own threads in the process count) and the calls so far.  Prints
"ready PY C" once the first round is written: the Python and the C calls
one call of the method makes (counted once, before anything else, with a
profile function).  With --hook, the rounds run under a profile hook
set in this thread while the file FLAG exists: `cprofile`, the stdlib's C
profiler, as a yardstick for the cost of a profile hook; a library LIB,
its fp_noop_profile (a C profile function that returns at once) set by
PyEval_SetProfile: what CPython itself charges for a C profile hook that
sees every call, the floor under any tracer of this kind.

The methods, both call-heavy:
  handle  a request handler over 200 JSON documents: parse, validate,
          hash, count words, format (about 3,200 Python and 5,200 C calls,
          a few ms);
  tiny    1,500 calls of a one-line function and 3,000 of builtins (well
          under a ms): the worst case, all call overhead.
"""

import argparse
import cProfile
import ctypes
import hashlib
import os
import json
import re
import statistics
import time
from collections import Counter

WORD = re.compile(r"[a-z]+")
DOCS = [json.dumps({"id": i, "user": "user%d" % (i % 17), "tags": ["t%d" % (i % 5), "x"],
                    "text": " ".join("word%d lorem ipsum dolor sit amet" % j
                                     for j in range(i % 7 + 8))})
        for i in range(200)]


def parse(line):
    return json.loads(line)


def valid(doc):
    return isinstance(doc.get("id"), int) and bool(doc.get("user"))


def digest(doc):
    return hashlib.sha256(doc["text"].encode()).hexdigest()[:16]


def keywords(text):
    counts = Counter(WORD.findall(text))
    return [w for w, _ in counts.most_common(3)]


def handle():
    out = []
    for line in DOCS:
        doc = parse(line)
        if not valid(doc):
            continue
        out.append({"id": doc["id"], "digest": digest(doc), "top": keywords(doc["text"]),
                    "tags": ",".join(sorted(doc["tags"]))})
    return json.dumps(out)


def word(i):
    return "w%d" % (i % 50)


def tiny():
    counts = {}
    for i in range(1500):
        w = word(i)
        counts[w] = counts.get(w, 0) + len(w)
    return max(counts.values())


def calls_inside(method):
    """(Python calls, C calls) one call of method makes."""
    import sys
    n = [0, 0]

    def count(frame, event, arg):
        if event == "call":
            n[0] += 1
        elif event == "c_call":
            n[1] += 1
    sys.setprofile(count)
    method()
    sys.setprofile(None)
    return n[0] - 1, n[1] - 1  # the method itself; sys.setprofile's own C call


def hook_switch(kind):
    """A function that sets (True) or clears (False) the --hook in this thread."""
    if kind == "cprofile":
        profiler = cProfile.Profile()
        return lambda on: profiler.enable() if on else profiler.disable()
    set_profile = ctypes.pythonapi.PyEval_SetProfile
    set_profile.argtypes, set_profile.restype = [ctypes.c_void_p, ctypes.c_void_p], None
    noop = ctypes.cast(ctypes.CDLL(kind).fp_noop_profile, ctypes.c_void_p)
    return lambda on: set_profile(noop if on else None, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--method", choices=("handle", "tiny"), required=True)
    ap.add_argument("--pace", type=float, default=0.005)
    ap.add_argument("--hook")
    ap.add_argument("--hook-flag")
    opts = ap.parse_args()
    hook, hooked = (hook_switch(opts.hook) if opts.hook else None), False
    method = globals()[opts.method]
    inside = calls_inside(method)
    wall, cpu = time.perf_counter_ns, time.thread_time_ns
    first = True
    calls = 0
    while True:
        if hook and os.path.exists(opts.hook_flag) != hooked:
            hooked = not hooked
            hook(hooked)
        walls, cpus = [], []
        for _ in range(20):
            w0, c0 = wall(), cpu()
            method()
            c1, w1 = cpu(), wall()
            walls.append(w1 - w0)
            cpus.append(c1 - c0)
            calls += 1
            time.sleep(opts.pace)
        with open(opts.out, "a") as f:
            f.write("%d %d %.6f %d\n" % (statistics.median(walls), statistics.median(cpus),
                                         time.process_time(), calls))
        if first:
            print("ready %d %d" % inside, flush=True)
            first = False


if __name__ == "__main__":
    main()
