"""agent/py/tt.py on every interpreter: records from 1000, -n, the store's
caps and eviction order, snapshots independent of later mutation, text for
values deepcopy refuses, list filters, show, replay, delete, bad input
(checks in checks_tt.py)."""
import pytest

from agentcheck import assert_check, check_names

CHECKS = "checks_tt.py"


@pytest.mark.parametrize("check", check_names(CHECKS))
def test_tt(interp, check):
    assert_check(interp, CHECKS, check)
