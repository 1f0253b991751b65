"""Benchmark target for bench/attach.sh: what a tool's attach costs the process.

    attach_target.py --probe PATH [--native-ticker LIB]

The main thread sleeps (an idle application's main thread: the one fpd
hijacks, as it prefers the main thread blocked in a restartable syscall).
Two other threads wake every millisecond and keep the longest gap between
their ticks:
  - python: a Python thread; a tick needs the GIL, so its gap shows how long
    the tool's code in the process held the GIL (or stopped the process);
  - native (with --native-ticker, a C library bench/attach.sh builds): a
    thread that never touches Python, so its gap shows only whether the
    process's other threads were stopped, plus the machine's scheduling noise;
    the library also keeps the longest part of a tick that thread spent
    neither asleep, nor running, nor waiting for a CPU: time it was stopped.
Module globals to read: counter (an int) and config (a small dict).

Prints "ready" once both tick; PATH.tids holds "main=TID python=TID native=TID".
When PATH.reset appears the maxima are forgotten (and the file removed); the
maxima since then, in ms, are kept in PATH.gap as "python native
native-stopped" (both native figures -1 without the library).
"""

import argparse
import ctypes
import os
import sys
import threading
import time

counter = 42
config = {"name": "bench", "workers": 4, "limits": {"rss_mb": 512, "qps": 1000.0}}


def ticker(probe, native, ready):
    reset, gapfile = probe + ".reset", probe + ".gap"
    worst, written = 0.0, None
    ready.set()
    last = time.monotonic()
    while True:
        time.sleep(0.001)
        now = time.monotonic()
        worst = max(worst, now - last)
        if os.path.exists(reset):
            worst = 0.0
            if native:
                native.ticker_reset()
            os.unlink(reset)
            written = None
            now = time.monotonic()
        last = now
        cur = (worst * 1e3, native.ticker_worst() if native else -1.0,
               native.ticker_worst_stopped() if native else -1.0)
        if cur != written:
            with open(gapfile + ".tmp", "w") as f:
                f.write("%.2f %.2f %.2f\n" % cur)
            os.rename(gapfile + ".tmp", gapfile)
            written = cur


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--probe", required=True)
    ap.add_argument("--native-ticker", help="shared library with ticker_start/_worst/_reset")
    a = ap.parse_args()

    native = None
    tids = {"main": threading.get_native_id(), "native": 0}
    if a.native_ticker:
        native = ctypes.CDLL(a.native_ticker)
        native.ticker_worst.restype = ctypes.c_double
        native.ticker_worst_stopped.restype = ctypes.c_double
        tids["native"] = native.ticker_start()
        if tids["native"] <= 0:
            sys.exit("attach_target: the native ticker did not start")
    ready = threading.Event()
    t = threading.Thread(target=ticker, args=(a.probe, native, ready), name="ticker", daemon=True)
    t.start()
    ready.wait()
    tids["python"] = t.native_id
    with open(a.probe + ".tids", "w") as f:
        f.write("main=%(main)d python=%(python)d native=%(native)d\n" % tids)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    os.close(1)
    while True:
        time.sleep(3600)


main()
