"""agent/py/console.py on every interpreter: expressions and print, the
namespace of __main__, multi-line blocks, tracebacks, only the console's
own output captured, Ctrl-C, leaving, no displayhook side effects (checks
in checks_console.py)."""
import pytest

from agentcheck import assert_check, check_names

CHECKS = "checks_console.py"


@pytest.mark.parametrize("check", check_names(CHECKS))
def test_console(interp, check):
    assert_check(interp, CHECKS, check)
