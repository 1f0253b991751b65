"""The helper's getglobal command and locate.py's lookups on every interpreter,
through the fake link (checks in checks_getglobal.py)."""
import pytest

from agentcheck import assert_check, check_names

CHECKS = "checks_getglobal.py"


@pytest.mark.parametrize("check", check_names(CHECKS))
def test_getglobal(interp, check):
    assert_check(interp, CHECKS, check)
