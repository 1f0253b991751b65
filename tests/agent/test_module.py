"""The helper's module command on every interpreter, through the fake link
(checks in checks_module.py)."""
import pytest

from agentcheck import assert_check, check_names

CHECKS = "checks_module.py"


@pytest.mark.parametrize("check", check_names(CHECKS))
def test_module(interp, check):
    assert_check(interp, CHECKS, check)
