"""agent/py/mem.py on every interpreter: counts and sizes per type, objects
the GC does not track, big containers walked in slices, thread locals,
limit and order, diff, cancel, bad input (checks in checks_mem.py)."""
import pytest

from agentcheck import assert_check, check_names

CHECKS = "checks_mem.py"


@pytest.mark.parametrize("check", check_names(CHECKS))
def test_mem(interp, check):
    assert_check(interp, CHECKS, check)
