"""A target for mem and console: 2500 LeakyRecord objects held by a global,
a thread that adds one Growing object every 10 ms (what mem diff must
find), and a thread that prints "app tick N" on stdout every 20 ms (what
console must leave alone).  The record's size travels in the ready line."""

import sys
import threading
import time

import fptarget as fpt

APP_NAME = "mem-target"


class LeakyRecord(object):
    def __init__(self, i):
        self.i = i


class Growing(object):
    pass


records = [LeakyRecord(i) for i in range(2500)]
grown = []


def grow():
    fpt.report("grow", settle="any")
    while True:
        grown.append(Growing())
        time.sleep(0.01)  # LINE:grow


def tick():
    fpt.report("tick", settle="any")
    n = 0
    while True:
        n += 1
        sys.stdout.write("app tick %d\n" % n)
        sys.stdout.flush()
        time.sleep(0.02)  # LINE:tick


fpt.extra(record_size=sys.getsizeof(records[0]))
fpt.expect(3)
fpt.start_thread("grow", grow)
fpt.start_thread("tick", tick)
fpt.serve()
