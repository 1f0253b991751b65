"""trace's C hook in the real helper (build/libfpagent.so loaded into each
interpreter, a fake fpd) on every interpreter: checks in checks_trace.py."""
import pytest

from agentcheck import assert_check, check_names

CHECKS = "checks_trace.py"


@pytest.mark.parametrize("check", check_names(CHECKS))
def test_trace(interp, check):
    assert_check(interp, CHECKS, check)
