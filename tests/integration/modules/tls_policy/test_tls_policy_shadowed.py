# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""An entry a table listed before the managed one in smtp_tls_policy_maps answers first.

The SMTP client asks each key form of a next hop in every table of the list, in order
(maps_find in tls_policy_lookup_one), so an earlier table that answers the key wins and the
managed entry is never used. tls_policy writes the entry and warns, naming the destination,
the earlier table and its answer; asked of the real postmap here, and checked against what
Postfix itself answers for the whole list (postmap -q KEY over each table, first wins).
"""

import subprocess

import pytest

from postfix_sandbox import (
    assert_ok,
    needs_postfix,
    warnings_of,
)
pytestmark = needs_postfix


def with_maps(sandbox, earlier, after=''):
    """main.cf with EARLIER tables listed before the managed one (and AFTER after it)."""
    ours = '%s:%s' % (sandbox.map_type, sandbox.table)
    maps = ', '.join([m for m in (earlier, ours, after) if m])
    lines = [line for line in sandbox.main_cf_text().splitlines(True) if not line.startswith('smtp_tls_policy_maps')]
    sandbox.main_cf.write_text(''.join(lines) + 'smtp_tls_policy_maps = %s\n' % maps)
    return ours


def first_answer(sandbox, maps, key):
    """What Postfix answers for KEY over the table list MAPS: the first table that has it."""
    for spec in maps:
        proc = sandbox.real_postmap('-q', key, spec)
        if proc.returncode == 0:
            return spec, proc.stdout.strip()
    return None, None


def test_an_earlier_regexp_answers_first_warned_and_written(sandbox):
    regexp = sandbox.tmp / 'tls_policy.regexp'
    regexp.write_text('/(^|\\.)example\\.com$/ secure match=nexthop\n')
    ours = with_maps(sandbox, 'regexp:%s' % regexp)
    result = assert_ok(sandbox.tls_policy({'policies': {'example.com': 'encrypt', 'other.example': 'encrypt',
                                                        '.example.com': 'may'}}))
    assert result['added'] == ['example.com', 'other.example', '.example.com']
    assert sandbox.table.read_text() == 'example.com encrypt\nother.example encrypt\n.example.com may\n'
    warnings = warnings_of(result)
    assert ("2 destinations ('example.com', '.example.com'): regexp:%s, listed before %s in smtp_tls_policy_maps, "
            "answers first (secure match=nexthop): Postfix uses that answer and never this entry; remove the key "
            "there or list %s first" % (regexp, ours, ours)) in warnings
    assert 'other.example' not in warnings
    # what Postfix itself answers over the whole list
    maps = ['regexp:%s' % regexp, ours]
    assert first_answer(sandbox, maps, 'example.com') == ('regexp:%s' % regexp, 'secure match=nexthop')
    assert first_answer(sandbox, maps, 'other.example') == (ours, 'encrypt')


def test_an_earlier_file_table_with_the_key_and_a_later_one(sandbox):
    earlier = sandbox.tmp / 'earlier'
    earlier.write_text('a.example none\n')
    later = sandbox.tmp / 'later'
    later.write_text('b.example none\n')
    for path in (earlier, later):
        assert sandbox.real_postmap('hash:%s' % path).returncode == 0
    ours = with_maps(sandbox, 'proxy:hash:%s' % earlier, 'hash:%s' % later)
    # path chooses the table: without it the module edits the first file table of the list
    result = assert_ok(sandbox.tls_policy({'policies': {'a.example': 'encrypt', 'b.example': 'encrypt'},
                                           'path': str(sandbox.table)}))
    warnings = warnings_of(result)
    assert 'overriding' not in warnings
    assert ("destination 'a.example': proxy:hash:%s, listed before %s in smtp_tls_policy_maps, answers first "
            "(none)" % (earlier, ours)) in warnings
    assert 'b.example' not in warnings                  # a later table never wins over this one
    assert first_answer(sandbox, ['hash:%s' % earlier, ours, 'hash:%s' % later], 'b.example') == (ours, 'encrypt')
    # removing the entry gives no warning
    result = assert_ok(sandbox.tls_policy({'policies': {'a.example': None}, 'path': str(sandbox.table)}))
    assert 'listed before' not in warnings_of(result)


def test_the_managed_table_first_asks_no_other_table(sandbox):
    later = sandbox.tmp / 'later.regexp'
    later.write_text('/./ none\n')
    calls = sandbox.record('postmap')
    with_maps(sandbox, '', 'regexp:%s' % later)
    result = assert_ok(sandbox.tls_policy({'policies': {'a.example': 'encrypt'}}))
    assert 'listed before' not in warnings_of(result)
    assert not [call for call in calls.calls() if str(later) in call]


def test_the_list_is_read_once(sandbox):
    earlier = sandbox.tmp / 'earlier.regexp'
    earlier.write_text('/^a\\.example$/ none\n')
    with_maps(sandbox, 'regexp:%s' % earlier)
    postconf_calls = sandbox.record('postconf')
    result = assert_ok(sandbox.tls_policy({'policies': {'a.example': 'encrypt'}, 'path': str(sandbox.table)}))
    assert 'answers first (none)' in warnings_of(result)
    assert len([call for call in postconf_calls.calls() if 'smtp_tls_policy_maps' in call]) == 1, postconf_calls.calls()


def test_an_earlier_table_postmap_cannot_query_is_named(sandbox):
    supported = subprocess.run(['/usr/sbin/postconf', '-c', str(sandbox.confdir), '-m'], stdout=subprocess.PIPE,
                               universal_newlines=True, check=True).stdout.split()
    if 'mysql' in supported:
        pytest.skip('postfix-mysql is installed here: mysql tables can be queried')
    ours = with_maps(sandbox, 'mysql:%s' % (sandbox.tmp / 'mysql.cf'))
    result = assert_ok(sandbox.tls_policy({'policies': {'a.example': 'encrypt'}}))
    assert result['added'] == ['a.example']
    assert ('mysql:%s, listed before %s in smtp_tls_policy_maps, cannot be queried with postmap here: this Postfix '
            'does not support the mysql type (postconf -m); install the postfix-mysql package; whether it answers '
            'first for the managed destinations' % (sandbox.tmp / 'mysql.cf', ours)) in warnings_of(result)
