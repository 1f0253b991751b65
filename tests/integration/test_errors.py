"""Bad input and targets that cannot be attached: one clear line on stderr, the
documented exit status, and the target (if any) keeps running unchanged."""

import os
import re
import subprocess

import pytest

import fpdtest
from fpdtest import NOBODY, as_user, proc_stat_state, spawn, stop, wait_for

EXIT_USAGE = 2
EXIT_ATTACH = 3


def one_line_error(r, status):
    assert r.rc == status, "exit %d, expected %d; stderr: %r" % (r.rc, status, r.err)
    lines = [line for line in r.err.splitlines() if line.strip()]
    assert len(lines) == 1, "expected one line on stderr, got %r" % r.err
    return lines[0]


def test_no_such_process(fpctl):
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert not os.path.exists("/proc/%d" % gone.pid)
    line = one_line_error(fpctl("attach", gone.pid, "stack", check=False), EXIT_ATTACH)
    assert str(gone.pid) in line


def test_not_python(fpctl):
    sleeper = spawn(["sleep", "1000"])
    try:
        wait_for(lambda: os.readlink("/proc/%d/exe" % sleeper.pid).endswith("/sleep"), 10, "sleep to exec")
        line = one_line_error(fpctl("attach", sleeper.pid, "stack", check=False), EXIT_ATTACH)
        assert str(sleeper.pid) in line
        assert sleeper.poll() is None and proc_stat_state(sleeper.pid) == "S"
    finally:
        stop(sleeper)


def test_zombie(fpctl, debian_python):
    """A Python process that has exited but was not reaped."""
    zombie = spawn([debian_python, "-c", "pass"])
    try:
        wait_for(lambda: proc_stat_state(zombie.pid) == "Z", 30, "the child to become a zombie")
        line = one_line_error(fpctl("attach", zombie.pid, "stack", check=False), EXIT_ATTACH)
        assert str(zombie.pid) in line
        assert proc_stat_state(zombie.pid) == "Z"  # still unreaped: nobody touched it
    finally:
        stop(zombie)


def test_other_users_process(fpctl, idle):
    """A non-root user may not attach to root's process."""
    r = fpctl("attach", idle.pid, "stack", user=NOBODY, check=False)
    line = one_line_error(r, EXIT_ATTACH)
    assert re.search(r"permission|not permitted|not allowed|denied|another user|owned by", line, re.I), line
    assert "Traceback" not in r.out
    idle.ping()


def test_own_process_as_user(fpctl, start_target, debian_python, workdir):
    """The same user against its own process works, and -f writes the file
    as that user in fpctl's working directory."""
    mine = start_target(debian_python, "basic.py", wrapper=as_user(NOBODY, []))
    assert os.stat("/proc/%d" % mine.pid).st_uid == NOBODY
    dump = fpdtest.parse_text(fpctl("attach", mine.pid, "stack", user=NOBODY).out)
    assert dump.names() == sorted(mine.threads)
    cwd = workdir / "nobody-cwd"
    cwd.mkdir()
    os.chown(str(cwd), NOBODY, NOBODY)
    r = fpctl("attach", mine.pid, "stack", "-f", "out.txt", user=NOBODY, cwd=str(cwd))
    assert r.out.strip() == "Write stack to out.txt successfully!"
    assert (cwd / "out.txt").stat().st_uid == NOBODY
    assert fpdtest.parse_text((cwd / "out.txt").read_text()).names() == sorted(mine.threads)
    mine.ping()


USAGE_ERRORS = {
    "unknown-command": ["attach", "{pid}", "nosuchcommand"],
    "unknown-top-level-command": ["nosuchcommand"],
    "bad-flag": ["attach", "{pid}", "stack", "--no-such-flag"],
    "missing-flag-value": ["attach", "{pid}", "stack", "-f"],
    "non-numeric-pid": ["attach", "abc", "stack"],
    "pid-with-garbage": ["attach", "12x", "stack"],
    "negative-pid": ["attach", "-5", "stack"],
}


@pytest.mark.parametrize("args", list(USAGE_ERRORS.values()), ids=list(USAGE_ERRORS))
def test_usage_errors(fpctl, idle, args):
    args = [a.replace("{pid}", str(idle.pid)) for a in args]
    r = fpctl(*args, check=False)
    one_line_error(r, EXIT_USAGE)
    assert "Traceback" not in r.out
    idle.ping()
