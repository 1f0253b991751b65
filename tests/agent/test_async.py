"""agent/py/asyncio_tasks.py (stack -a) on every interpreter: tasks per
loop with their await chains, gather, a task awaiting a task, states,
generator-based coroutines, the running task, an idle loop, no asyncio
(checks in checks_async.py)."""
import pytest

from agentcheck import assert_check, check_names

CHECKS = "checks_async.py"


@pytest.mark.parametrize("check", check_names(CHECKS))
def test_async(interp, check):
    assert_check(interp, CHECKS, check)
