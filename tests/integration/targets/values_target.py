"""A target with known values for getglobal, vmtool, module and reload.

argv[1], when given, is a folder holding fp_reload_mod.py (the reload tests
write and edit it there); a worker thread calls that module's functions
through references taken at start (a plain reference, a bound method, a
classmethod) and keeps their latest results in RESULTS."""

import sys
import threading
import time

import fptarget as fpt

g_list = [1, 2, {"a": [1, 2]}]
counter = 61
text = "x" * 300


class AppConfig(object):
    VERSION = "2.1.0"
    FEATURES = {"caching": False, "metrics": True}

    class Limits(object):
        MAX = 10


class Connection(object):
    def __init__(self, host, port):
        self.host = host
        self.port = port


class TlsConnection(Connection):
    pass


class Hostile(object):
    """Rendering must never run these."""

    def __init__(self):
        self.state = "ok"

    def __repr__(self):
        raise RuntimeError("__repr__ ran")

    def __getattr__(self, name):
        raise RuntimeError("__getattr__ ran")


class Spinner(object):
    def __repr__(self):
        while True:
            pass


connections = [Connection("db", 5432), Connection("cache", 6379), TlsConnection("api", 443)]
hostile = Hostile()
spinner = Spinner()
RESULTS = {}

if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])
    import fp_reload_mod

    def caller():
        compute = fp_reload_mod.compute
        greet = fp_reload_mod.Greeter().greet
        kind = fp_reload_mod.Greeter.kind
        fpt.report("caller", settle="any")
        while True:  # LINE:caller
            RESULTS["compute"] = compute(2)
            RESULTS["greet"] = greet("bob")
            RESULTS["kind"] = kind()
            time.sleep(0.02)

    fpt.expect(2)
    fpt.start_thread("caller", caller)
    fpt.extra(reload_dir=sys.argv[1])
fpt.serve()
