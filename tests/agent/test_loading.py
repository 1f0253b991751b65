"""The helper loads each command's files on first use, and nothing else
(checks in checks_loading.py), on every interpreter."""
import pytest

from agentcheck import assert_check, check_names

CHECKS = "checks_loading.py"


@pytest.mark.parametrize("check", check_names(CHECKS))
def test_loading(interp, check):
    assert_check(interp, CHECKS, check)
