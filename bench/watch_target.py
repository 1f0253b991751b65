"""Benchmark target for bench/watch.sh: what a watch costs the calls it
observes, and the code it does not.

    watch_target.py --out FILE [--pace S] [--calls N]

The main thread loops forever.  Each round it makes
  - N calls of handle() (the function to watch), each timed alone
    (perf_counter_ns around the call), S seconds apart (0: back to back);
  - a batch of 20000 calls of other(), the same code never watched;
  - a batch of 2000 calls of raiser(), never watched, each raising an
    exception through three frames to its caller, which catches it: what
    sys.monitoring's PY_UNWIND event sees in code nobody watches;
  (both batches timed in the thread's CPU time, which the machine's other
  work disturbs less than the clock;)
and appends "handle_ns other_ns raise_ns cpu_s handle_calls" to FILE: the
median of the handle calls, the per-call average of each batch, then the
process's CPU time (every thread: a tool's own thread in the process
counts) and the handle() calls so far.  Prints "ready" once the first round
is written.
"""

import argparse
import statistics
import time


def handle(request, retries=1):
    return {"id": request, "ok": True, "retries": retries}


def other(request, retries=1):
    return {"id": request, "ok": True, "retries": retries}


def raiser(n, depth=2):
    if depth:
        return raiser(n, depth - 1)
    raise KeyError(n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--pace", type=float, default=0.0)
    ap.add_argument("--calls", type=int, default=2000)
    opts = ap.parse_args()
    clock = time.perf_counter_ns
    first = True
    i = 0
    while True:
        samples = []
        for _ in range(opts.calls):
            i += 1
            t0 = clock()
            handle(i, retries=2)
            samples.append(clock() - t0)
            if opts.pace:
                time.sleep(opts.pace)
        cpu = time.thread_time_ns
        t0 = cpu()
        for k in range(20000):
            other(k, retries=2)
        other_ns = (cpu() - t0) / 20000.0
        t0 = cpu()
        for k in range(2000):
            try:
                raiser(k)
            except KeyError:
                pass
        raise_ns = (cpu() - t0) / 2000.0
        with open(opts.out, "a") as f:
            f.write("%d %.1f %.1f %.6f %d\n" % (statistics.median(samples), other_ns, raise_ns,
                                               time.process_time(), i))
        if first:
            print("ready", flush=True)
            first = False


if __name__ == "__main__":
    main()
