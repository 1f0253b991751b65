"""Benchmark target: N threads, each sleeping D frames deep; the main thread
is a probe that ticks every millisecond and records the longest gap between
ticks, i.e. how long the process was stopped by a tool.

    target.py --threads N --depth D --probe PATH

Prints "ready" once every thread is in place.  When PATH.reset appears the
probe forgets its maximum (and removes the file); the maximum since then, in
ms, is kept in PATH.gap.
"""

import argparse
import os
import sys
import threading
import time


def dive(depth, ready):
    if depth > 1:
        return dive(depth - 1, ready)
    ready.release()
    while True:
        time.sleep(3600)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--probe", required=True)
    a = ap.parse_args()
    ready = threading.Semaphore(0)
    for i in range(a.threads):
        threading.Thread(target=dive, args=(a.depth, ready), name="worker-%d" % i, daemon=True).start()
    for _ in range(a.threads):
        ready.acquire()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    os.close(1)

    reset, gapfile = a.probe + ".reset", a.probe + ".gap"
    worst, written = 0.0, None
    last = time.monotonic()
    while True:
        time.sleep(0.001)
        now = time.monotonic()
        worst = max(worst, now - last)
        last = now
        if os.path.exists(reset):
            os.unlink(reset)
            worst = 0.0
            last = time.monotonic()
        if worst != written:
            with open(gapfile + ".tmp", "w") as f:
                f.write("%.1f\n" % (worst * 1e3))
            os.rename(gapfile + ".tmp", gapfile)
            written = worst


main()
