"""A stand-in for a PyTorch process on every interpreter (no torch wheel
exists for most of them): a module named torch in sys.modules with the few
entry points the helper uses, CUDA "available", a profiler whose Chrome
trace is large enough to need several chunks, and _record_memory_history
with torch 2.1's signature, logging how it was called."""

import json
import sys
import threading
import time
import types

import fptarget as fpt

# The names of the calls the fake received, for the tests (getglobal).
LOG = []
TRACE_EVENTS = 30000  # ~2.4 MB of JSON: three chunks or more


class _Activity(object):
    CPU = "cpu"
    CUDA = "cuda"


class _Profile(object):
    def __init__(self, activities):
        self.activities = activities
        self.thread = None

    def start(self):
        self.thread = threading.current_thread().name
        LOG.append("start")

    def stop(self):
        LOG.append("stop")

    def export_chrome_trace(self, path):
        events = [{"name": "aten::fake_%d" % i, "ph": "X", "ts": i, "dur": 1, "pid": 1,
                   "tid": self.thread} for i in range(TRACE_EVENTS)]
        with open(path, "w") as f:
            json.dump({"traceEvents": events, "activities": self.activities}, f)


def _record_memory_history(enabled="all", context="all", stacks="all", max_entries=9,
                           device=None):
    LOG.append(("record", enabled, max_entries))


def _snapshot():
    LOG.append("snapshot")
    return {"segments": [{"size": 1 << 20}], "recording": LOG[-2:]}


torch = types.ModuleType("torch")
torch.__version__ = "2.99.0+fake"
torch.profiler = types.SimpleNamespace(profile=_Profile, ProfilerActivity=_Activity)
torch.cuda = types.SimpleNamespace(
    is_available=lambda: True, is_initialized=lambda: True,
    memory=types.SimpleNamespace(_record_memory_history=_record_memory_history,
                                 _snapshot=_snapshot))
sys.modules["torch"] = torch

COUNTS = {"calls": 0}


def step(n):
    return sum(range(n))


def worker():
    fpt.report("work", settle="any")
    while True:  # LINE:work
        step(100)
        COUNTS["calls"] += 1
        time.sleep(0.005)


fpt.expect(2)
threading.Thread(target=worker, name="worker", daemon=True).start()
fpt.serve()
