# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``probe_world``: the delivery oracle's private Postfix instance with four loopback peers
(probe_peers.py), one real message per (peer, level), shared by the tls_probe and
tls_log_summary tests of a run (one pytest-xdist worker each)."""

import os

import pytest

from oracle.instance import unavailable_reason
from probe_peers import POSTTLS_FINGER, start_probe_world


@pytest.fixture(scope='session')
def probe_world(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    if not POSTTLS_FINGER:
        pytest.skip('tls_probe needs posttls-finger (Debian: part of the postfix package)')
    world, stop = start_probe_world(tmp_path_factory.mktemp('probe-certs'),
                                    keep=bool(os.environ.get("MAILGW_PROBE_KEEP")))
    try:
        yield world
    finally:
        stop()
