"""Fixtures of the postconf tests (the sandbox itself: tests/integration/conftest.py)."""
import pytest


@pytest.fixture
def postconf_calls(sandbox):
    """Every postconf call the test makes in the sandbox (a recording stand-in runs the real postconf)."""
    return sandbox.record('postconf')
