"""Two CPU-bound threads for the sampler, perf and gilstat: hot-a spins in
hot_a, hot-b calls leaf in a loop; they take turns on the GIL.  With the
argument "nogil", a third thread (nogil) burns CPU in zlib with the GIL
released; with "exit S", the whole process exits S seconds after it starts
(a target that goes away in the middle of a profile)."""

import os
import sys
import threading
import zlib

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


def nogil():
    data = b"x" * (1 << 20)
    fpt.report("nogil", settle="cpu")
    while True: zlib.compress(data, 1)  # LINE:nogil


def main():
    extra = "nogil" in sys.argv[1:]
    fpt.expect(4 if extra else 3)
    fpt.start_thread("hot-a", hot_a)
    fpt.start_thread("hot-b", hot_b)
    if extra:
        fpt.start_thread("nogil", nogil)
    if sys.argv[1:2] == ["exit"]:
        threading.Timer(float(sys.argv[2]), os._exit, (0,)).start()
    fpt.serve()


main()
