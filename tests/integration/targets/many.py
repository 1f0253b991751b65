"""100 sleeping threads named t-000 .. t-099."""

import time

import fptarget as fpt

COUNT = 100


def nap():
    fpt.report("nap")
    time.sleep(fpt.BIG)  # LINE:nap


def main():
    fpt.expect(COUNT + 1)
    for i in range(COUNT):
        fpt.start_thread("t-%03d" % i, nap)
    fpt.serve()


main()
