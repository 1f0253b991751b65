"""agent/py/render.py on every interpreter: layout, depth, truncation,
cycles, no application code without -r, raising and hanging __repr__ with
-r, the time and size budgets, cancellation (checks in checks_render.py)."""
import pytest

from agentcheck import assert_check, check_names

CHECKS = "checks_render.py"


@pytest.mark.parametrize("check", check_names(CHECKS))
def test_render(interp, check):
    assert_check(interp, CHECKS, check)
