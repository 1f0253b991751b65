"""The GIL held forever by a thread in a long C call.

"hog" calls sum() over a huge range: a C loop that never looks at the eval
breaker, so it never drops the GIL.  "spinner" (pure Python) then waits for
the GIL forever.  The ready line is printed from inside sum() (Marker.__add__,
called once for the start value), because once sum() loops nobody else can
run Python again.  The main thread stays blocked reading stdin: do not ping
this target, it cannot answer.
"""

import fptarget as fpt


class Marker(object):
    def __add__(self, other):
        fpt.announce()
        return other


def spin():
    fpt.report("spin", settle="gil")
    n = 0
    while True: n += 1  # LINE:spin


def hog():
    fpt.report("hog", settle="hog")
    return sum(range(10 ** 15), Marker())  # LINE:hog


def main():
    fpt.expect(3)
    fpt.start_thread("spinner", spin)
    fpt.start_thread("hog", hog)
    fpt.serve(ready=False)


main()
