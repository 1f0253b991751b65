"""A thread state left behind by a thread that ended.

sleeper sleeps for good; then a thread named leaker makes a second thread
state for itself through the C API (PyThreadState_New) and ends without
deleting it.  The state stays on the interpreter's list under the ids of a
thread that no longer exists: no tid of the process belongs to it any more.
"""

import ctypes
import threading
import time

import fptarget as fpt


def sleeper():
    fpt.report("sleep")
    time.sleep(fpt.BIG)  # LINE:sleep


def leak():
    api = ctypes.pythonapi
    api.PyInterpreterState_Head.restype = ctypes.c_void_p
    api.PyThreadState_New.restype = ctypes.c_void_p
    api.PyThreadState_New.argtypes = [ctypes.c_void_p]
    api.PyThreadState_New(api.PyInterpreterState_Head())


def main():
    fpt.expect(2)
    fpt.start_thread("sleeper", sleeper)
    # After sleeper: a thread started later could reuse the leaker's pthread_t.
    leaker = threading.Thread(target=leak, name="leaker")
    leaker.start()
    leaker.join()
    fpt.serve()


main()
