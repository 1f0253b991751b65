"""The GIL held forever by a thread in a long C call.

"hog" calls sum() over a huge range: a C loop that never looks at the eval
breaker, so it never drops the GIL.  "waiter" naps in a loop; once the hog
holds the GIL, its next wake-up blocks in take_gil() for good.  The switch
interval is set very long so that the waiter sleeps in one futex wait instead
of waking every 5 ms to ask for the GIL (on a busy 2-core machine such a
wake-up can leave it runnable, i.e. "running", for a while).

The ready line is printed from inside sum() (Marker.__add__, called once for
the start value), because once sum() loops nobody else can run Python
again.  The main thread stays blocked reading stdin: do not ping this target,
it could not answer.
"""

import sys
import time

import fptarget as fpt


class Marker(object):
    def __add__(self, other):
        fpt.announce()
        return other


def nap():
    fpt.report("nap", settle="gil")
    while True:
        time.sleep(0.01)  # LINE:nap


def hog():
    fpt.report("hog", settle="hog")
    return sum(range(10 ** 15), Marker())  # LINE:hog


def main():
    # Threads now switch only when one blocks (sleep, I/O, lock waits).
    sys.setswitchinterval(1000.0)
    fpt.expect(3)
    fpt.start_thread("waiter", nap)
    fpt.start_thread("hog", hog)
    fpt.serve(ready=False)


main()
