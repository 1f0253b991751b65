"""Integration tests: a private fpd, real Python targets, fpctl as a user runs it.

Interpreters: every $(pyenv root)/versions/3.* and every /usr/bin/python3.X
(Debian's static, stripped build).  A test that takes the `interp` fixture
runs once per interpreter (ids like pyenv-3.12.1, debian-3.11); an expected
version that is not installed shows up as a skip naming it.

FPD_BUILD=build/san (or any folder holding fpd and fpctl) runs the whole
suite against that build; the default is <repo>/build.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import fpdtest

INTERPRETERS, MISSING = fpdtest.INTERPRETERS, fpdtest.MISSING


def pytest_generate_tests(metafunc):
    if "interp" in metafunc.fixturenames:
        params = [pytest.param(i, id=i.id) for i in INTERPRETERS]
        params += [pytest.param(None, id=mid, marks=pytest.mark.skip(reason=why)) for mid, why in MISSING]
        metafunc.parametrize("interp", params, scope="module")


def pytest_report_header(config):
    lines = ["fpd build: %s" % fpdtest.build_dir(),
             "interpreters: %s" % (", ".join(i.id for i in INTERPRETERS) or "none")]
    if MISSING:
        lines.append("missing (skipped): %s" % ", ".join(m for m, _ in MISSING))
    return lines


@pytest.fixture(scope="session")
def workdir():
    """A private folder (0755 so that fpctl run as another user reaches the socket)."""
    d = Path(tempfile.mkdtemp(prefix="fpd-it-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(str(d), ignore_errors=True)


@pytest.fixture(scope="session")
def build():
    b = fpdtest.build_dir()
    for name in ("fpd", "fpctl"):
        if not os.access(str(b / name), os.X_OK):
            pytest.fail("%s is missing: build it first (`make`, or `make SAN=1 BUILD=build/san` "
                        "for FPD_BUILD=build/san)" % (b / name), pytrace=False)
    return b


@pytest.fixture(scope="session")
def fpd(build, workdir):
    """Our own fpd on a private socket; stopped with SIGTERM at the end of the
    session, which must end it cleanly (status 0, no sanitizer report)."""
    daemon = fpdtest.Daemon(build / "fpd", workdir)
    try:
        daemon.start()
        yield daemon
    finally:
        problem = daemon.stop()
    if problem:
        raise AssertionError(problem)


@pytest.fixture(scope="session")
def fpctl(build, fpd, workdir):
    """fpctl(*args, check=True, timeout=.., user=uid, cwd=..) -> (rc, out, err)."""
    return fpdtest.Fpctl(build / "fpctl", fpd, workdir)


@pytest.fixture
def target_pool(workdir):
    pool = fpdtest.TargetPool(workdir)
    yield pool
    pool.close()


@pytest.fixture
def start_target(target_pool):
    """start_target(python, script, *args, wrapper=()) -> a ready Target,
    killed at the end of the test."""
    counter = [0]

    def start(python, script, *args, **kw):
        counter[0] += 1
        return target_pool.spawn(counter[0], python, script, *args, **kw).ready()

    return start


@pytest.fixture(scope="session")
def debian_python():
    """/usr/bin/python3, for tests that need one interpreter any user can run."""
    if not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("/usr/bin/python3 is not installed")
    return "/usr/bin/python3"


@pytest.fixture(scope="module")
def idle(debian_python, workdir):
    """A root-owned idle Python target (only its main thread, answering pings),
    shared by the tests of one module."""
    target = fpdtest.Target(debian_python, "idle.py", logdir=workdir).ready()
    yield target
    target.kill()


UNSHARE = ["unshare", "--fork", "--pid", "--mount-proc", "--kill-child"]


@pytest.fixture(scope="session")
def unshare():
    """The wrapper that runs a target in its own pid and mount namespace."""
    try:
        r = subprocess.run(UNSHARE + ["true"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip("cannot create namespaces here: %s" % e)
    if r.returncode != 0:
        pytest.skip("cannot create namespaces here: %s" % r.stdout.decode(errors="replace").strip())
    return UNSHARE
