# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the postconf tests (the sandbox itself: tests/integration/conftest.py)."""
import pytest


@pytest.fixture
def postconf_calls(sandbox):
    """Every postconf call the test makes in the sandbox (a recording stand-in runs the real postconf)."""
    return sandbox.record('postconf')
