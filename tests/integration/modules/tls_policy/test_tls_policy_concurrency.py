# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Concurrent runs of mailgw.postfix_tls.tls_policy: runs editing the same table, or two
tables in one directory, at the same time all land, and the index agrees with the source.

tls_policy serializes its read-modify-write with a lock on the table's
directory.  The runs go through the real ``ansible`` command, started
together (``sandbox.run_together``); each scenario is repeated a few times
with fresh runs, so a lost update would show as a missing entry.
"""

import os

import pytest

from postfix_sandbox import TLS_POLICY, needs_postfix

pytestmark = [pytest.mark.slow, needs_postfix]

ROUNDS = 3


def source_view(path):
    """KEY -> VALUE of a simple one-line-per-entry table source."""
    view = {}
    with open(str(path)) as f:
        for line in f:
            if line.strip() and not line.startswith('#'):
                key, value = line.split(None, 1)
                view.setdefault(key.lower(), value.strip())
    return view


@pytest.fixture
def sandbox(sandbox):
    """The sandbox with a seeded, indexed table."""
    return sandbox.seed('# shared table\nseed.example may\n')


def test_two_runs_on_different_entries_of_one_table_both_land(sandbox):
    expected = {'seed.example': 'may'}
    for round_ in range(ROUNDS):
        a, b = 'a%d.example' % round_, 'b%d.example' % round_
        sandbox.run_together([
            (TLS_POLICY, {'destination': a, 'level': 'encrypt'}),
            (TLS_POLICY, {'destination': b, 'level': 'secure', 'match': ['nexthop']}),
        ])
        expected.update({a: 'encrypt', b: 'secure match=nexthop'})
        assert source_view(sandbox.table) == expected
        assert sandbox.dump() == expected            # the index agrees with the source
        assert sandbox.leftovers() == []


def test_four_runs_of_twenty_entries_each_all_land(sandbox):
    sandbox.run_together([
        (TLS_POLICY, {'entries': [{'destination': 'host%d-%d.example' % (n, i), 'level': 'encrypt'}
                                  for i in range(20)]})
        for n in range(4)])
    keys = ['host%d-%d.example' % (n, i) for n in range(4) for i in range(20)]
    assert set(sandbox.query(*keys)) == set(keys)
    assert sandbox.table.read_text().count('\n') == 82          # the seeded comment and entry, and 80
    assert sorted(os.listdir(sandbox.maps_dir)) == ['tls-policy.map', 'tls-policy.map.db']


def test_concurrent_add_and_remove_both_land(sandbox):
    sandbox.tls_policy({'entries': [{'destination': 'r%d.example' % i, 'level': 'may'} for i in range(ROUNDS)]})
    expected = source_view(sandbox.table)
    for round_ in range(ROUNDS):
        added, removed = 'n%d.example' % round_, 'r%d.example' % round_
        sandbox.run_together([
            (TLS_POLICY, {'destination': added, 'level': 'dane'}),
            (TLS_POLICY, {'destination': removed, 'state': 'absent'}),
        ])
        expected[added] = 'dane'
        del expected[removed]
        assert source_view(sandbox.table) == expected
        assert sandbox.dump() == expected


def test_two_tables_in_one_directory_edited_at_once(sandbox):
    other = sandbox.maps_dir / 'other-policy.map'
    for round_ in range(ROUNDS):
        sandbox.run_together([
            (TLS_POLICY, {'destination': 'm%d.example' % round_, 'level': 'encrypt'}),
            (TLS_POLICY, {'destination': 'o%d.example' % round_, 'level': 'verify',
                          'path': str(other), 'map_type': 'hash'}),
        ])
    assert sandbox.dump() == dict([('seed.example', 'may')] +
                                  [('m%d.example' % r, 'encrypt') for r in range(ROUNDS)])
    assert sandbox.dump('hash:%s' % other) == dict(('o%d.example' % r, 'verify') for r in range(ROUNDS))
