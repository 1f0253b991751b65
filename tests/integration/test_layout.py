"""fpd's CPython layouts against the DWARF of every interpreter on the machine.

For each pyenv CPython (a shared libpython with DWARF), tools/layout_from_dwarf.py
computes every member of struct fp_layout from the debug info, and:

- up to 3.12, `fpd --layout 3.X` (the static table of daemon/py/layout.c)
  must equal it field by field;
- for every version, `fpd --layout-pid PID` on a live process of that
  interpreter (the layout fpd really uses: the static table, or for 3.13+ the
  one built from the process's _Py_DebugOffsets) must equal it too.

Debian's /usr/bin/python3.X is static and stripped: its live layout is
compared with the static table of its minor version, and with DWARF when the
detached debug info of that exact build is installed (package python3.X-dbg).

Exemptions (fields DWARF cannot express) are listed in EXEMPT with the reason.
Interpreters come from conftest.py (the `interp` fixture): each expected
version that is not installed is reported as a skip naming it.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fpdtest

TOOL = fpdtest.REPO / "tools" / "layout_from_dwarf.py"

# (minor, field) -> why the value fpd uses cannot be read from DWARF.
EXEMPT = {
    # 3.6's GIL is a set of statics, not a struct: fpd measures the span of
    # their symbols in the live process (python.c); DWARF has no sizeof for it.
    ((3, 6), "gil_size"): "span of the 3.6 GIL statics, measured at run time",
}


# Fields layout_probe.py cannot check from inside the process, and why.
NOT_IN_PROCESS = {
    "major": "the version itself, compared by test_live_layout",
    "minor": "the version itself, compared by test_live_layout",
    "gil_size": "no Python-visible object has the size of the GIL structure",
    "if_size": "no Python-visible object has the size of an interpreter frame",
    ((3, 6), "runtime_interpreters_head"): "3.6's interp_head is a static, invisible to ctypes",
}


def libpython(interp):
    """The libpython of a pyenv interpreter (3.6/3.7 name it libpython3.Xm), or None."""
    lib = Path(interp.python).resolve().parents[1] / "lib"
    names = sorted(lib.glob("libpython%d.%d*.so.1.0" % interp.minor))
    return names[0] if names else None


def debug_file(binary):
    """Detached DWARF of a stripped binary, found by its build id, or None."""
    out = subprocess.run(["readelf", "-n", str(binary)], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, universal_newlines=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]{2})([0-9a-f]+)", out)
    if not m:
        return None
    f = Path("/usr/lib/debug/.build-id") / m.group(1) / (m.group(2) + ".debug")
    return f if f.exists() else None


def dwarf_layout(binary, minor):
    r = subprocess.run([sys.executable, str(TOOL), str(binary), "%d.%d" % minor],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=300)
    assert r.returncode == 0, "layout_from_dwarf.py failed on %s:\n%s" % (binary, r.stderr)
    return json.loads(r.stdout)


def fpd_json(build, *args):
    r = subprocess.run([str(build / "fpd")] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert r.returncode == 0, "fpd %s failed (%d): %s" % (" ".join(args), r.returncode,
                                                          r.stderr.strip())
    return json.loads(r.stdout)


def assert_same(want, got, minor, what):
    assert sorted(got) == sorted(want), "field names differ: %s" % sorted(set(got) ^ set(want))
    diffs = ["%s: %s has %s, DWARF %s" % (k, what, got[k], want[k])
             for k in want if got[k] != want[k] and (minor, k) not in EXEMPT]
    assert not diffs, "%d.%d: %d field(s) differ:\n  %s" % (minor + (len(diffs), "\n  ".join(diffs)))


def unsupported(interp):
    if interp.minor >= (3, 14):
        pytest.xfail("fpd does not read the _Py_DebugOffsets layout of 3.14+ yet")


@pytest.fixture
def live(interp):
    """A process of interp, idle in time.sleep, initialised (it printed)."""
    proc = fpdtest.spawn([interp.python, "-c", "import time; print('ready', flush=True); "
                          "time.sleep(600)"], stdout=subprocess.PIPE, env=fpdtest.clean_env())
    try:
        assert proc.stdout.readline().strip() == b"ready"
        yield proc.pid
    finally:
        fpdtest.stop(proc)


def test_static_table_matches_dwarf(interp, build):
    if interp.kind != "pyenv":
        pytest.skip("%s has no DWARF of its own; see test_live_layout" % interp.python)
    if interp.minor >= (3, 13):
        pytest.skip("%d.%d has no static table: its layout comes from _Py_DebugOffsets "
                    "(test_live_layout)" % interp.minor)
    lib = libpython(interp)
    if not lib:
        pytest.skip("%s has no shared libpython to read DWARF from" % interp.python)
    assert_same(dwarf_layout(lib, interp.minor), fpd_json(build, "--layout", "%d.%d" % interp.minor),
                interp.minor, "fpd --layout")


def test_live_layout(interp, build, live):
    unsupported(interp)
    got = fpd_json(build, "--layout-pid", str(live))
    assert (got["major"], got["minor"]) == interp.minor
    if interp.minor <= (3, 12):
        table = fpd_json(build, "--layout", "%d.%d" % interp.minor)
        assert_same(table, got, interp.minor, "fpd --layout-pid")
    if interp.kind == "pyenv":
        binary = libpython(interp)
    else:
        binary = debug_file(interp.python)
    if not binary:
        pytest.skip("no DWARF for %s (Debian publishes it as python3.%d-dbgsym in the "
                    "debian-debug archive): checked against the static table and "
                    "test_layout_in_process only" % (interp.python, interp.minor[1]))
    assert_same(dwarf_layout(binary, interp.minor), got, interp.minor, "fpd --layout-pid")


def test_layout_in_process(interp, build):
    """targets/layout_probe.py follows every offset it can from inside the
    target and compares with what Python says: the check that needs no DWARF."""
    unsupported(interp)
    proc = fpdtest.spawn([interp.python, str(fpdtest.TARGETS / "layout_probe.py")],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         env=fpdtest.clean_env())
    try:
        assert proc.stdout.readline().strip() == b"ready"
        layout = fpd_json(build, "--layout-pid", str(proc.pid))
        out, _ = proc.communicate(json.dumps(layout).encode() + b"\n", timeout=60)
    finally:
        fpdtest.stop(proc)
    assert proc.returncode == 0, "layout_probe.py died (%d): a wrong offset?" % proc.returncode
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert not result["failed"], "\n".join(result["failed"])
    unchecked = [k for k, v in layout.items() if v >= 0 and k not in result["checked"]
                 and k not in NOT_IN_PROCESS and (interp.minor, k) not in NOT_IN_PROCESS]
    assert not unchecked, "layout_probe.py did not check %s" % unchecked
