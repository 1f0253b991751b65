"""The helper's reload command on every interpreter, through the fake link
(checks in checks_reload.py)."""
import pytest

from agentcheck import assert_check, check_names

CHECKS = "checks_reload.py"


@pytest.mark.parametrize("check", check_names(CHECKS))
def test_reload(interp, check):
    assert_check(interp, CHECKS, check)
