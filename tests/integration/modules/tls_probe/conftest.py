# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``probe_world``: the delivery oracle's private Postfix instance with four loopback peers
(probe_peers.py), one real message per (peer, level), shared by the tls_probe and
tls_log_summary tests of a run (one pytest-xdist worker each)."""

import os
import subprocess

import pytest

from oracle.instance import POSTCONF, Oracle, unavailable_reason
from oracle.peer import PeerPool
from probe_peers import (
    KINDS,
    LEVELS,
    MATCH_NAME,
    POSTTLS_FINGER,
    ProbeWorld,
    make_certificates,
)


@pytest.fixture(scope='session')
def probe_world(tmp_path_factory):
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    if not POSTTLS_FINGER:
        pytest.skip('tls_probe needs posttls-finger (Debian: part of the postfix package)')
    ca_cert, pairs = make_certificates(tmp_path_factory.mktemp('probe-certs'))
    oracle = Oracle(keep=bool(os.environ.get("MAILGW_PROBE_KEEP")))
    pools = []
    try:
        oracle.start()
        subprocess.run([POSTCONF, '-c', oracle.conf, '-e', 'smtp_tls_CAfile = %s' % ca_cert], check=True,
                       capture_output=True)
        keys = {}
        entries = []
        pool_of = dict((kind, PeerPool(*pairs[kind])) for kind in KINDS if kind != 'plaintext')
        pool_of['plaintext'] = PeerPool(None, None, starttls=False)
        pools.extend(pool_of.values())
        n = 0
        for kind in KINDS:
            for level in LEVELS + ('may',):
                n += 1
                address = '127.%d.200.%d' % (oracle.net, n)
                pool_of[kind].listen(address, oracle.port)
                key = '[%s]:%d' % (address, oracle.port)
                keys[(kind, level)] = key
                entries.append((key, level if level in ('encrypt', 'may') else '%s match=%s' % (level, MATCH_NAME)))
        verdicts = oracle.ask(entries)
        world = ProbeWorld(oracle, ca_cert, keys, dict(zip(((k, lv) for k in KINDS for lv in LEVELS + ('may',)),
                                                           verdicts)), pool_of)
        yield world
    finally:
        oracle.stop()
        for pool in pools:
            pool.close()
