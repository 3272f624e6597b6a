# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Concurrent runs: two Ansible runs editing the same configuration at the
same time both land, and the index agrees with the source afterwards.

tls_policy serializes its read-modify-write with a lock on the table's
directory; postconf edits main.cf under Postfix's own lock.  Each scenario
is repeated a few times with fresh pairs of runs started together
(subprocess.Popen), so a lost update would show as a missing entry.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import subprocess

import pytest

from ansible_env import ad_hoc_result
from reliability_helpers import (
    HAVE_POSTFIX,
    POSTCONF,
    TLS_POLICY,
    Sandbox,
    why,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not HAVE_POSTFIX, reason='needs the host postconf and postmap'),
]

ROUNDS = 3


def run_together(box, jobs):
    """Start every (module, args) at once; return their results in order."""
    procs = [subprocess.Popen(box.command(module, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=box.environ(), cwd=str(box.tmp))
             for module, args in jobs]
    results = []
    for proc in procs:
        out, err = proc.communicate()
        results.append(ad_hoc_result(subprocess.CompletedProcess(proc.args, proc.returncode, out, err)))
    for result in results:
        assert result.get('failed') is not True, why(result)
        assert result['changed'] is True, why(result)
    return results


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
def box(tmp_path):
    return Sandbox(tmp_path).seed('# shared table\nseed.example may\n')


def test_two_runs_on_different_entries_of_one_table_both_land(box):
    expected = {'seed.example': 'may'}
    for round_ in range(ROUNDS):
        a, b = 'a%d.example' % round_, 'b%d.example' % round_
        run_together(box, [
            (TLS_POLICY, {'destination': a, 'level': 'encrypt'}),
            (TLS_POLICY, {'destination': b, 'level': 'secure', 'match': ['nexthop']}),
        ])
        expected.update({a: 'encrypt', b: 'secure match=nexthop'})
        assert source_view(box.table) == expected
        assert box.dump() == expected            # the index agrees with the source
        assert box.leftovers() == []


def test_concurrent_add_and_remove_both_land(box):
    box.tls_policy({'entries': [{'destination': 'r%d.example' % i, 'level': 'may'} for i in range(ROUNDS)]})
    expected = source_view(box.table)
    for round_ in range(ROUNDS):
        added, removed = 'n%d.example' % round_, 'r%d.example' % round_
        run_together(box, [
            (TLS_POLICY, {'destination': added, 'level': 'dane'}),
            (TLS_POLICY, {'destination': removed, 'state': 'absent'}),
        ])
        expected[added] = 'dane'
        del expected[removed]
        assert source_view(box.table) == expected
        assert box.dump() == expected


def test_two_tables_in_one_directory_edited_at_once(box):
    other = box.maps_dir / 'other-policy.map'
    for round_ in range(ROUNDS):
        run_together(box, [
            (TLS_POLICY, {'destination': 'm%d.example' % round_, 'level': 'encrypt'}),
            (TLS_POLICY, {'destination': 'o%d.example' % round_, 'level': 'verify',
                          'path': str(other), 'map_type': 'hash'}),
        ])
    assert box.dump() == dict([('seed.example', 'may')] +
                              [('m%d.example' % r, 'encrypt') for r in range(ROUNDS)])
    assert box.dump('hash:%s' % other) == dict(('o%d.example' % r, 'verify') for r in range(ROUNDS))


def test_two_postconf_runs_on_different_parameters_both_land(box):
    for round_ in range(ROUNDS):
        run_together(box, [
            (POSTCONF, {'name': 'smtpd_banner', 'value': '$myhostname ESMTP round %d' % round_}),
            (POSTCONF, {'params': {'smtp_tls_loglevel': str(round_ + 1),
                                   'smtp_tls_note_starttls_offer': 'yes' if round_ % 2 else 'no'}}),
        ])
        explicit = box.explicit_main_cf()
        assert explicit['smtpd_banner'] == '$myhostname ESMTP round %d' % round_
        assert explicit['smtp_tls_loglevel'] == str(round_ + 1)
        assert explicit['smtp_tls_note_starttls_offer'] == ('yes' if round_ % 2 else 'no')
        assert explicit['smtp_tls_policy_maps'] == 'hash:${maps_d_dir}/tls-policy.map'
        assert box.leftovers(box.confdir) == []
