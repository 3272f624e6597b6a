"""Fixtures of the tls_policy tests (the sandbox itself: tests/integration/conftest.py)."""
import pytest


@pytest.fixture
def postmap_calls(sandbox):
    """Every postmap call the test makes in the sandbox (a recording stand-in runs the real postmap)."""
    return sandbox.record('postmap')
