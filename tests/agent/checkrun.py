"""Runs the check_* functions of one checks_*.py file under the interpreter
that runs this script (any CPython 3.6+), each with a fresh helper namespace
from harness.load_agent(), and prints one JSON line:
{"python": "3.x.y", "results": {check name: null when it passed, else the
traceback}}.

    python checkrun.py checks_render.py [check_name ...]
"""
import json
import os
import platform
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness import load_agent  # noqa: E402


def main():
    path = os.path.join(HERE, sys.argv[1])
    ns = {"__name__": "checks", "__file__": path}
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), ns)
    names = sys.argv[2:] or [n for n in ns if n.startswith("check_") and callable(ns[n])]
    results, times = {}, {}
    for name in names:
        start = time.time()
        try:
            ns[name](load_agent())
            results[name] = None
        except BaseException:
            results[name] = traceback.format_exc()
        times[name] = round(time.time() - start, 3)
    sys.stdout.write(json.dumps({"python": platform.python_version(), "results": results,
                                 "seconds": times}) + "\n")


if __name__ == "__main__":
    main()
