"""Thread "locals" sleeping in a frame with locals of each simple type."""

import time

import fptarget as fpt


def with_locals():
    an_int = 42
    a_float = 2.5
    a_str = "hello"
    a_bytes = b"ab\x00"
    a_true = True
    a_none = None
    a_list = [1, 2, 3]
    a_long_str = "x" * 10000
    fpt.extra(list_id=id(a_list))
    fpt.report("locals_sleep")
    time.sleep(fpt.BIG)  # LINE:locals_sleep
    return an_int, a_float, a_str, a_bytes, a_true, a_none, a_list, a_long_str


def main():
    fpt.expect(2)
    fpt.start_thread("locals", with_locals)
    fpt.serve()


main()
