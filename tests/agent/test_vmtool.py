"""The helper's vmtool command on every interpreter, through the fake link
(checks in checks_vmtool.py)."""
import pytest

from agentcheck import assert_check, check_names

CHECKS = "checks_vmtool.py"


@pytest.mark.parametrize("check", check_names(CHECKS))
def test_vmtool(interp, check):
    assert_check(interp, CHECKS, check)
