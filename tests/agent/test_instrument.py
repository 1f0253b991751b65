"""agent/py/instrument.py on every interpreter: each kind of function,
target/args split, threads, stacked instrumentations removed in any order,
exact restoration, hooks that raise (checks in checks_instrument.py)."""
import pytest

from agentcheck import assert_check, check_names

CHECKS = "checks_instrument.py"


@pytest.mark.parametrize("check", check_names(CHECKS))
def test_instrument(interp, check):
    assert_check(interp, CHECKS, check)
