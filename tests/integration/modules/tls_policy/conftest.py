# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the tls_policy tests (the sandbox itself: tests/integration/conftest.py)."""
import pytest


@pytest.fixture
def postmap_calls(sandbox):
    """Every postmap call the test makes in the sandbox (a recording stand-in runs the real postmap)."""
    return sandbox.record('postmap')
