"""A target for helper sessions: a known global, a worker thread computing a
checksum in a loop (it must stay right through every attach and detach), and
the main thread answering pings."""

import hashlib
import threading
import time

import fptarget as fpt

MAGIC = "fpd-magic-4242"
COUNTS = {"checksums": 0, "wrong": 0}
EXPECTED = hashlib.sha256(b"".join(str(i).encode() for i in range(2000))).hexdigest()


def checksummer():
    fpt.report("sum", settle="any")
    while True:  # LINE:sum
        h = hashlib.sha256(b"".join(str(i).encode() for i in range(2000))).hexdigest()
        COUNTS["checksums"] += 1
        if h != EXPECTED:
            COUNTS["wrong"] += 1
        time.sleep(0.001)


fpt.expect(2)
threading.Thread(target=checksummer, name="checksummer", daemon=True).start()
fpt.serve()
