"""Serves pings until the file argv[1] appears, then execs argv[2:] in the
same process: a user's process that becomes a setuid program mid-session."""

import os
import sys
import threading
import time

import fptarget as fpt


def watch_trigger():
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.05)
    os.execv(sys.argv[2], sys.argv[2:])


threading.Thread(target=watch_trigger, daemon=True).start()
fpt.serve()
