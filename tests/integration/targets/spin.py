"""One thread spinning in pure Python (it holds the GIL: nobody else wants it)."""

import fptarget as fpt


def spin():
    fpt.report("spin", settle="cpu")
    n = 0
    while True: n += 1  # LINE:spin


def main():
    fpt.expect(2)
    fpt.start_thread("spinner", spin)
    fpt.serve()


main()
