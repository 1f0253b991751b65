"""A mixed GIL workload, like a service: CPU jobs on a thread pool next to
threads that release the GIL in different ways (pipe reads and writes,
sleeps, lock waits, threads starting and exiting).  On a static interpreter
each of those releases may be a separate inlined copy of drop_gil, so a
probe set that misses one shows here as a hold longer than the thread's CPU
time.  Each thread switches the GIL a few hundred times a second at most,
so the probes stay cheap."""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import fptarget as fpt

POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pool")
_reported = threading.local()


def job():
    """About 10 ms of pure Python: the two pool workers take turns on the
    GIL through the eval loop's forced switch."""
    if not getattr(_reported, "done", False):
        _reported.done = True
        fpt.report("job", settle="mixed")
    n = 0
    for i in range(200000): n += i  # LINE:job
    return n


def submitter():
    fpt.report("submitter", settle="mixed")
    while True:
        futures = [POOL.submit(job), POOL.submit(job)]
        for f in futures: f.result()  # LINE:submitter
        time.sleep(0.005)


def reader(fd):
    fpt.report("reader", settle="mixed")
    while True: os.read(fd, 64)  # LINE:reader


def writer(fd):
    fpt.report("writer", settle="mixed")
    while True:
        os.write(fd, b"x")  # LINE:writer
        time.sleep(0.002)


def sleeper():
    fpt.report("sleeper", settle="mixed")
    while True: time.sleep(0.001)  # LINE:sleeper


def spawner():
    fpt.report("spawner", settle="mixed")
    while True:
        t = threading.Thread(target=sum, args=(range(1000),))
        t.start()
        t.join()  # LINE:spawner
        time.sleep(0.05)


def main():
    # main, submitter, both pool workers, reader, writer, sleeper, spawner
    fpt.expect(8)
    rfd, wfd = os.pipe()
    fpt.start_thread("submitter", submitter)
    fpt.start_thread("reader", reader, rfd)
    fpt.start_thread("writer", writer, wfd)
    fpt.start_thread("sleeper", sleeper)
    fpt.start_thread("spawner", spawner)
    fpt.serve()


main()
