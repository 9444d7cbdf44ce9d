"""The examples in the drift-statistics docstrings run and show what they claim."""

import doctest
import importlib

import pytest

MODULES_WITH_EXAMPLES = [
    "udfs.drift_reference",
    "udfs.drift_stat_tests",
    "udfs.drift_window",
]


@pytest.mark.parametrize("name", MODULES_WITH_EXAMPLES)
def test_docstring_examples_hold(name):
    failed, attempted = doctest.testmod(importlib.import_module(name))
    assert attempted > 0 and failed == 0
