"""perf's target: thread hot-a spins in hot_a, thread hot-b calls leaf from
hot_b in a loop; both CPU-bound, so they take turns on the GIL.  With
"exit S", the whole process exits S seconds after it starts (a target that
goes away in the middle of a profile)."""

import os
import sys
import threading

import fptarget as fpt


def hot_a():
    fpt.report("hot_a", settle="cpu")
    n = 0
    while True: n += 1  # LINE:hot_a


def leaf():
    x = 0
    for i in range(200): x += i  # LINE:leaf
    return x


def hot_b():
    fpt.report("hot_b", settle="cpu")
    while True: leaf()  # LINE:hot_b


def main():
    fpt.expect(3)
    fpt.start_thread("hot-a", hot_a)
    fpt.start_thread("hot-b", hot_b)
    if sys.argv[1:2] == ["exit"]:
        threading.Timer(float(sys.argv[2]), os._exit, (0,)).start()
    fpt.serve()


main()
