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


def test_cuda_not_loaded(fpctl, idle, lib, workdir):
    out = workdir / "never.json"
    r = fpctl("attach", idle.pid, "gpu", "-d", "1", "-f", str(out), check=False)
    assert r.rc == 1 and r.out == "", r
    assert r.err == "fpctl: gpu: CUDA is not loaded in process %d (neither libcuda nor " \
                    "libcudart is mapped)\n" % idle.pid, r.err
    assert not out.exists() and not list(workdir.glob("never.json.*"))
    idle.ping()
    assert cuda_mapped(idle.pid) == []


def test_cudart_without_context(fpctl, debian_python, lib, workdir):
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


def test_driver_without_context(fpctl, debian_python, lib, workdir):
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


def test_bad_file(fpctl, idle, lib):
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
