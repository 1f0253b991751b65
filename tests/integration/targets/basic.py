"""Three threads at known places: nested functions, a Thread subclass, main.

worker-1: worker_main -> outer -> outer.<locals>.inner, sleeping
worker-2: Worker.run -> Worker.idle, sleeping
MainThread: <module> -> main -> fptarget.serve, reading stdin
"""

import time

import fptarget as fpt


def worker_main():
    outer()  # LINE:call_outer


def outer():
    def inner():
        fpt.report("inner_sleep")
        time.sleep(fpt.BIG)  # LINE:inner_sleep

    inner()  # LINE:call_inner


class Worker(object):
    def run(self):
        self.idle()  # LINE:call_idle

    def idle(self):
        fpt.report("idle_sleep")
        time.sleep(fpt.BIG)  # LINE:idle_sleep


def main():
    fpt.expect(3)
    fpt.start_thread("worker-1", worker_main)
    fpt.start_thread("worker-2", Worker().run)
    fpt.serve()  # LINE:call_serve


main()  # LINE:call_main
