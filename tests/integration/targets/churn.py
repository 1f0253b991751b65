"""Thread churn: threads that come and go all the time, beside steady ones.

MainThread serves stdin; long-0 .. long-2 sleep for good.  These and the
thread named churner are reported, so the tests know their tids; churner keeps
SHORT_ALIVE short-lived
threads named short-N alive: each writes "tid name" to the log file given as
argv[1] first thing (one write(2) of a line, so lines never interleave), then
lives a millisecond or two, sleeping or computing, and ends.  The log tells
the tests which tids existed, since most are gone by the time they look.
"""

import os
import sys
import threading
import time

import fptarget as fpt

LONG = 3
SHORT_ALIVE = 6


def long_lived():
    fpt.report("long_sleep")
    time.sleep(fpt.BIG)  # LINE:long_sleep


def short_lived(log, n):
    os.write(log, ("%d short-%d\n" % (fpt.gettid(), n)).encode())
    if n % 2:
        time.sleep(0.001 * (n % 3))
    else:
        sum(range(2000 * (n % 5)))


def churn(log):
    fpt.report("churn", settle="cpu")
    n = 0
    alive = []
    while True:  # LINE:churn
        alive = [t for t in alive if t.is_alive()]
        while len(alive) < SHORT_ALIVE:
            n += 1
            t = threading.Thread(name="short-%d" % n, target=short_lived, args=(log, n))
            t.daemon = True
            t.start()
            alive.append(t)
        time.sleep(0.001)


def main():
    log = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    fpt.expect(LONG + 2)
    for i in range(LONG):
        fpt.start_thread("long-%d" % i, long_lived)
    fpt.start_thread("churner", churn, log)
    fpt.serve()


main()
