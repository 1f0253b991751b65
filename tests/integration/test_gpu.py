"""gpu (SPEC §3 gpu) without a GPU: libfpcupti.so builds and exports its
entry points; a target without CUDA, or with CUDA mapped but no context, gets
one clear line, stays alive, and has nothing CUDA loaded into it; bad -d and
-f are refused before anything is attached.  The capture itself needs a GPU
and is not exercised here."""

import ctypes
import os
import subprocess
from pathlib import Path

import pytest

import fpdtest

CUDA = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda"))
REPO = Path(__file__).resolve().parent.parent.parent
EXPORTS = {"fpcupti_start", "fpcupti_stop", "fpcupti_t0", "fpcupti_dropped", "fpcupti_gpu_json",
           "fpcupti_free", "fpcupti_launch_count", "fpcupti_launch", "fpcupti_frame",
           "fpcupti_reset", "InitializeInjection"}


def first_lib(*names):
    for d in ("lib64", "lib", "lib/stubs", "lib64/stubs"):
        for n in names:
            if (CUDA / d / n).exists():
                return str(CUDA / d / n)
    return None


@pytest.fixture(scope="module")
def lib(build):
    path = build / "libfpcupti.so"
    if not path.exists():
        if build.resolve() != (REPO / "build").resolve():
            pytest.skip("%s: libfpcupti.so is built in build/ only" % build)
        if first_lib("libcupti.so"):
            pytest.fail("CUPTI is under %s but %s was not built" % (CUDA, path), pytrace=False)
        pytest.skip("no CUPTI under %s: built without gpu support" % CUDA)
    return path


def cuda_mapped(pid):
    """The driver, CUPTI and libfpcupti.so mapped in pid (not libcudart)."""
    with open("/proc/%d/maps" % pid) as f:
        paths = set(l.split()[-1] for l in f if len(l.split()) >= 6)
    return sorted(p for p in paths
                  if os.path.basename(p).startswith(("libcuda.so", "libcupti", "libfpcupti")))


def test_library_exports(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", str(lib)], stdout=subprocess.PIPE,
                         check=True).stdout.decode()
    names = set(l.split()[-1] for l in out.splitlines() if l.strip())
    assert names == EXPORTS, names ^ EXPORTS
    # It loads into a Python process that runs no CUDA (libcupti comes through the rpath).
    code = "import ctypes; l = ctypes.CDLL(%r); print(l.fpcupti_launch_count())" % str(lib)
    r = subprocess.run(["/usr/bin/python3", "-c", code], stdout=subprocess.PIPE, timeout=60)
    assert (r.returncode, r.stdout) == (0, b"0\n"), r


def test_cuda_not_loaded(fpctl, idle, workdir):
    out = workdir / "never.json"
    r = fpctl("attach", idle.pid, "gpu", "-d", "1", "-f", str(out), check=False)
    assert r.rc == 1 and r.out == "", r
    assert r.err == "fpctl: gpu: CUDA is not loaded in process %d (neither libcuda nor " \
                    "libcudart is mapped)\n" % idle.pid, r.err
    assert not out.exists() and not list(workdir.glob("never.json.*"))
    idle.ping()
    assert cuda_mapped(idle.pid) == []


def test_cudart_without_context(fpctl, debian_python, workdir):
    cudart = first_lib("libcudart.so")
    if not cudart:
        pytest.skip("no libcudart.so under %s" % CUDA)
    t = fpdtest.Target(debian_python, "cuda_target.py", args=[cudart], logdir=workdir).ready()
    try:
        r = fpctl("attach", t.pid, "gpu", "-d", "1", "-f", str(workdir / "x.json"), check=False)
        assert r.rc == 1, r
        assert r.err.startswith("fpctl: gpu: no CUDA device/context in process %d (" % t.pid), r
        t.ping()
        assert cuda_mapped(t.pid) == [], "nothing but libcudart may be loaded"
    finally:
        t.kill()


def test_driver_without_context(fpctl, debian_python, workdir):
    """libcuda mapped (the real driver if installed, else the toolkit's stub):
    the probe asks it for devices and contexts without initializing it."""
    driver = None
    for cand in ("libcuda.so.1", "libcuda.so"):
        try:
            ctypes.CDLL(cand)
            driver = cand
            break
        except OSError:
            pass
    driver = driver or first_lib("libcuda.so")
    if not driver:
        pytest.skip("no libcuda.so (no NVIDIA driver, no toolkit stub): case not run")
    t = fpdtest.Target(debian_python, "cuda_target.py", args=[driver], logdir=workdir).ready()
    try:
        before = cuda_mapped(t.pid)
        r = fpctl("attach", t.pid, "gpu", "-d", "1", "-f", str(workdir / "y.json"), check=False)
        assert r.rc == 1, r
        assert r.err.startswith("fpctl: gpu: no CUDA device/context in process %d (" % t.pid), r
        t.ping()
        assert cuda_mapped(t.pid) == before, "libcupti/libfpcupti must not be loaded"
    finally:
        t.kill()


def test_bad_file(fpctl, idle):
    r = fpctl("attach", idle.pid, "gpu", "-d", "1", "-f", "/no/such/dir/t.json", check=False)
    assert r.rc == 1 and r.out == "", r
    assert r.err == "fpctl: gpu: cannot write /no/such/dir/t.json: No such file or directory\n", r
    idle.ping()


@pytest.mark.parametrize("value", ["0", "-1", "abc", "3601"])
def test_bad_duration(fpctl, idle, value):
    r = fpctl("attach", idle.pid, "gpu", "-d", value, check=False)
    assert r.rc == 2 and r.out == "", r
    assert r.err.startswith("fpctl: gpu: --duration takes a number from 0.1 to 3600 (seconds)"), r.err
    idle.ping()


def test_unexpected_argument(fpctl, idle):
    r = fpctl("attach", idle.pid, "gpu", "extra", check=False)
    assert r.rc == 2 and r.err.startswith("fpctl: gpu takes no arguments, not 'extra'"), r


HELPER_CHECK = r"""
import ctypes, json, sys
sys.path.insert(0, %(agent)r)
from harness import load_agent
ns = load_agent()
ns["_fp_load"]("gpu")
nogil, gil = ns["_gpu_load"](ns["_gpu_check_lib"](%(lib)r))
# Without a GPU, CUPTI refuses to subscribe: an error string, no crash.
msg = ctypes.create_string_buffer(512)
assert nogil.fpcupti_start(msg, len(msg)) == -1 and msg.value.startswith(b"cuptiSubscribe: ")
nogil.fpcupti_stop()
p = gil.fpcupti_gpu_json()
assert ctypes.string_at(p) == b"[]"
gil.fpcupti_free(p)
assert ns["_gpu_launches"](gil) == []
u, i, c, n = ctypes.c_uint64(), ctypes.c_uint32(), ctypes.c_char_p(), ctypes.c_int()
assert gil.fpcupti_launch(0, ctypes.byref(u), ctypes.byref(u), ctypes.byref(u), ctypes.byref(i),
                          ctypes.byref(c), ctypes.byref(n)) == -1
assert gil.fpcupti_frame(0, 0, ctypes.byref(ctypes.c_void_p()), ctypes.byref(n)) == -1
assert gil.fpcupti_t0() == 0 and gil.fpcupti_dropped() == 0
gil.fpcupti_reset()
# Consecutive launches under the same frames share one slice per frame.
L = [(10, 1000, 2000, 1, "cudaLaunchKernel", [("main", "a.py", 5), ("f", "a.py", 9)]),
     (10, 3000, 4000, 2, "cudaLaunchKernel", [("main", "a.py", 5), ("f", "a.py", 9)]),
     (10, 5000, 6000, 3, "cudaMemcpy", [("main", "a.py", 6)])]
ev = ns["_gpu_cpu_events"](7, L)
py = sorted((e["name"], e["ts"], e["dur"]) for e in ev if e["cat"] == "python")
assert py == [("f", 1.0, 3.0), ("main", 1.0, 3.0), ("main", 5.0, 1.0)], py
flows = [(e["id"], e["ts"]) for e in ev if e["ph"] == "s"]
assert flows == [(1, 1.0), (2, 3.0), (3, 5.0)], flows
rows, copies, copied = ns["_gpu_summary"]([
    {"ph": "X", "cat": "kernel", "name": "k", "dur": 2.0, "args": {}},
    {"ph": "X", "cat": "kernel", "name": "k", "dur": 4.0, "args": {}},
    {"ph": "X", "cat": "kernel", "name": "big", "dur": 9.0, "args": {}},
    {"ph": "X", "cat": "memcpy", "name": "Memcpy HtoD", "dur": 1.0, "args": {"bytes": 10}}])
assert [(r["name"], r["count"], r["avg_us"]) for r in rows] == [("big", 1, 9.0), ("k", 2, 3.0)]
assert (copies, copied) == (1, 10)
print("ok")
"""


def test_helper_side_without_gpu(lib, debian_python):
    """gpu.py's calls into libfpcupti.so (ctypes signatures), the start
    failure path, the CPU-side slices and the summary, in a throwaway process."""
    agent = str(REPO / "tests" / "agent")
    code = HELPER_CHECK % {"agent": agent, "lib": str(lib.resolve())}
    r = subprocess.run([debian_python, "-c", code], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    assert (r.returncode, r.stdout.decode()[-2000:]) == (0, "ok\n")
