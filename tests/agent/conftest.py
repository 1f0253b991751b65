"""Unit tests of the helper's Python (agent/py/*.py) through the fake-link
harness, on every interpreter the integration tests use: the `interp`
fixture runs a test once per CPython found ($(pyenv root)/versions/3.* and
/usr/bin/python3.X); an expected version that is missing is a skip naming it."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

import fpdtest  # noqa: E402


def pytest_generate_tests(metafunc):
    if "interp" in metafunc.fixturenames:
        params = [pytest.param(i, id=i.id) for i in fpdtest.INTERPRETERS]
        params += [pytest.param(None, id=mid, marks=pytest.mark.skip(reason=why))
                   for mid, why in fpdtest.MISSING]
        metafunc.parametrize("interp", params)
