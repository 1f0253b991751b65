"""The helper's watch command on every interpreter: records, expression
names, filters, errors inside records, -e with tracebacks, -n, threads,
cancel and session end restoring the function, two sessions at once,
render options, dropped records, bad input (checks in checks_watch.py)."""
import pytest

from agentcheck import assert_check, check_names

CHECKS = "checks_watch.py"


@pytest.mark.parametrize("check", check_names(CHECKS))
def test_watch(interp, check):
    assert_check(interp, CHECKS, check)
