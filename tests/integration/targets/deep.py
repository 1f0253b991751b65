"""Thread "deep" blocked at the bottom of a recursion of depth argv[1]."""

import sys
import threading
import time

import fptarget as fpt


def recurse(n):
    if n > 0:
        return recurse(n - 1)  # LINE:recurse
    fpt.report("deep_bottom")
    time.sleep(fpt.BIG)  # LINE:deep_bottom


def main():
    depth = int(sys.argv[1])
    sys.setrecursionlimit(depth + 200)
    if depth > 500:
        # Up to 3.10 each Python call also uses C stack.
        threading.stack_size(256 << 20)
    fpt.expect(2)
    fpt.extra(depth=depth)
    fpt.start_thread("deep", recurse, depth)
    fpt.serve()


main()
