# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tls_policy's policies mapping (issue #16) against the host's real postconf and postmap.

``policies`` maps each destination to its table value (null removes it). It
must write exactly what the equivalent ``entries`` write, so a table can be
switched between the two shapes without a change, and be exactly as strict.
The validation itself, value by value against entries, is unit-tested in
tests/unit/plugins/modules/test_tls_policy_policies.py.
"""

import glob
import os

import pytest

from postfix_sandbox import (
    REALWORLD_TABLES,
    TLS_POLICY,
    assert_check_mode_writes_nothing,
    assert_failed,
    assert_ok,
    assert_unchanged,
    needs_postfix,
    needs_root,
    warnings_of,
    why,
)

pytestmark = needs_postfix

SHA256 = '3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1:17:0B:D1:CB:7B:8B:F5:49:D4:A8:7E:07:D6:39:EA:E8:8E:12:0E'
MD5 = '3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1:17:0B:D1'

ENTRIES = [
    {'destination': 'Example.com', 'level': 'secure', 'match': ['nexthop', 'dot-nexthop'], 'protocols': ['>=TLSv1.2']},
    {'destination': '[127.0.0.1]:10025', 'level': 'none'},
    {'destination': '.example.org', 'level': 'encrypt', 'ciphers': 'high', 'exclude': ['aNULL', 'MD5']},
    {'destination': '[relay.example.net]:587', 'level': 'fingerprint', 'match': [SHA256]},
]
POLICIES = {
    'Example.com': 'secure match=nexthop:dot-nexthop protocols=>=TLSv1.2',
    '[127.0.0.1]:10025': 'none',
    '.example.org': 'encrypt ciphers=high exclude=aNULL:MD5',
    '[relay.example.net]:587': 'fingerprint match=' + SHA256,
}
TABLE = (
    'example.com secure match=nexthop:dot-nexthop protocols=>=TLSv1.2\n'
    '[127.0.0.1]:10025 none\n'
    '.example.org encrypt ciphers=high exclude=aNULL:MD5\n'
    '[relay.example.net]:587 fingerprint match=%s\n' % SHA256)


def outcome(result):
    """What a run reports, without the parts that name the shape."""
    keys = ('failed', 'changed', 'added', 'updated', 'removed', 'postmap_ran', 'duplicates', 'map_type')
    return dict((k, result.get(k)) for k in keys)


def test_apply_idempotence_and_what_postfix_reads(sandbox):
    postmap_calls = sandbox.record('postmap')
    result = assert_ok(sandbox.tls_policy({'policies': POLICIES}))
    assert result['changed'] is True and result['postmap_ran'] is True
    assert result['table_differs'] is True          # kept where a task overrides changed (a check-mode plan)
    assert result['added'] == ['example.com', '[127.0.0.1]:10025', '.example.org', '[relay.example.net]:587']
    assert result['updated'] == result['removed'] == []
    assert 'policies' not in result                     # the mapping is not echoed as a result
    assert sandbox.table.read_text() == TABLE
    assert sandbox.query('EXAMPLE.COM', '[127.0.0.1]:10025', '.example.org') == {
        'EXAMPLE.COM': 'secure match=nexthop:dot-nexthop protocols=>=TLSv1.2',
        '[127.0.0.1]:10025': 'none', '.example.org': 'encrypt ciphers=high exclude=aNULL:MD5'}
    assert sandbox.leftovers() == []

    before = sandbox.snapshot()
    calls = postmap_calls.calls()
    again = assert_ok(sandbox.tls_policy({'policies': POLICIES}))
    assert again['changed'] is False and again['postmap_ran'] is False and again['table_differs'] is False
    assert again['added'] == again['updated'] == again['removed'] == []
    assert_unchanged(before, sandbox.snapshot())
    assert postmap_calls.calls() == calls


def test_same_results_and_bytes_as_entries(make_sandbox, tmp_path):
    """Both shapes on two sandboxes: the same results, warnings, diff and files."""
    seeded = '# kept\nold.example may\nexample.com encrypt\n'
    runs = {}
    for shape, value in (('entries', ENTRIES + [{'destination': 'old.example', 'state': 'absent'}]),
                         ('policies', dict(POLICIES, **{'old.example': None}))):
        sandbox = make_sandbox(confdir=tmp_path / shape / 'postfix', maps_dir=tmp_path / shape / 'maps.d')
        sandbox.seed(seeded)
        result = assert_ok(sandbox.tls_policy({shape: value, 'exclusive': True}, diff=True))
        runs[shape] = (outcome(result), result['diff']['after'], result['diff']['before'],
                       warnings_of(result).replace(str(tmp_path / shape), 'SANDBOX'),
                       sandbox.table.read_bytes(), sandbox.dump())
    assert runs['policies'] == runs['entries']
    result, after, before, warnings, table, dump = runs['policies']
    assert before == seeded and after == '# kept\n' + TABLE      # example.com updated where it was
    assert result['removed'] == ['old.example'] and result['updated'] == ['example.com']


@pytest.mark.parametrize('first, second', [('entries', 'policies'), ('policies', 'entries')])
def test_switching_shape_is_a_no_op(sandbox, first, second):
    args = {'entries': ENTRIES, 'policies': POLICIES}
    assert_ok(sandbox.tls_policy({first: args[first], 'exclusive': True}))
    before = sandbox.snapshot()
    result = assert_ok(sandbox.tls_policy({second: args[second], 'exclusive': True}, diff=True))
    assert result['changed'] is False, why(result)
    assert result['diff']['before'] == result['diff']['after'] == TABLE
    assert_unchanged(before, sandbox.snapshot())


def test_a_non_canonical_value_is_written_as_the_entry_writes_it(sandbox):
    sandbox.seed('a.example SECURE match=nexthop match=dot-nexthop\n')
    # the existing line is the same policy: nothing to do
    result = assert_ok(sandbox.tls_policy({'policies': {'a.example': 'secure {match = nexthop:dot-nexthop}'}}))
    assert result['changed'] is False
    result = assert_ok(sandbox.tls_policy({'policies': {'b.example': 'ENCRYPT  ciphers=HIGH,protocols=!SSLv2'}}))
    assert sandbox.table.read_text().endswith('\nb.example encrypt ciphers=high protocols=!SSLv2\n')


def test_null_removes_and_exclusive_keeps_only_the_mapping(sandbox):
    sandbox.seed('# comment\nold.example may\nkeep.example encrypt\n*\tencrypt\n')
    result = assert_ok(sandbox.tls_policy({'policies': {'old.example': None, '*': None}}))
    assert result['removed'] == ['old.example', '*']
    assert sandbox.table.read_text() == '# comment\nkeep.example encrypt\n'
    assert sandbox.query('old.example', 'keep.example') == {'keep.example': 'encrypt'}
    result = assert_ok(sandbox.tls_policy({'policies': {'new.example': 'may', 'gone.example': None}, 'exclusive': True}))
    assert result['added'] == ['new.example'] and result['removed'] == ['keep.example']
    assert sandbox.table.read_text() == '# comment\nnew.example may\n'
    # an empty mapping with exclusive empties the table (comments stay)
    result = assert_ok(sandbox.tls_policy({'policies': {}, 'exclusive': True}))
    assert result['removed'] == ['new.example'] and sandbox.table.read_text() == '# comment\n'


@pytest.mark.parametrize('policies, fragments', [
    ({'ok.example': 'may', 'bad.example': 'encrypt match=nexthop'},
     ["destination 'bad.example', value 'encrypt match=nexthop'", 'invalid at level encrypt']),
    ({'bad.example': 'tight'}, ["'tight'", 'not a Postfix TLS security level']),
    ({'bad.example': 'none ciphers=high'}, ['at level none does nothing', 'rule of this collection']),
    ({'bad.example': 'verify tafile=relative.pem'}, ["'relative.pem'", 'not an absolute path']),
    ({'bad.example': 'encrypt policy_type=sts'}, ['TLSRPT attribute']),
    ({'bad.example': ''}, ["value ''", 'a level is required']),
    ({'bad.example': 7}, ['value 7', 'must be a string']),
    ({'*': 'encrypt'}, ["'*'", 'no wildcards']),
    ({'Dup.example': 'may', 'dup.EXAMPLE': 'encrypt'},
     ["'dup.EXAMPLE' duplicates 'Dup.example'", 'case-insensitive']),
    # checks against the configuration and version gates, as for entries
    ({'bad.example': 'fingerprint match=' + MD5}, ['smtp_tls_fingerprint_digest is sha256']),
    ({'bad.example': 'dane-only'}, ['smtp_dns_support_level = dnssec']),
])
def test_bad_value_fails_naming_it_and_changes_nothing(sandbox, policies, fragments):
    sandbox.seed('keep.example may\n')
    before = sandbox.snapshot()
    result = sandbox.tls_policy({'policies': policies, 'exclusive': True})
    assert_failed(result, 'nothing was changed', *fragments)
    assert_unchanged(before, sandbox.snapshot())
    assert sandbox.leftovers() == []


def test_version_gate_as_for_entries(sandbox):
    sandbox.main_cf.write_text(sandbox.main_cf_text('mail_version = 3.5.9\n'))
    by_entries = sandbox.tls_policy({'entries': [{'destination': 'a.example', 'level': 'encrypt',
                                                  'protocols': ['>=TLSv1.2']}]})
    by_policies = sandbox.tls_policy({'policies': {'a.example': 'encrypt protocols=>=TLSv1.2'}})
    assert_failed(by_entries, 'Postfix 3.6')
    assert_failed(by_policies, 'Postfix 3.6')
    assert by_policies['msg'] == by_entries['msg']
    assert not sandbox.table.exists()


def test_warnings_as_for_entries(sandbox):
    by_entries = assert_ok(sandbox.tls_policy({'entries': [{'destination': 'relay.example:587', 'level': 'dane'}]}))
    by_policies = assert_ok(sandbox.tls_policy({'policies': {'relay.example:587': 'dane'}}))
    assert 'silently uses level may' in warnings_of(by_policies) and 'verbatim' in warnings_of(by_policies)
    assert warnings_of(by_policies) == warnings_of(by_entries)


@pytest.mark.parametrize('args, fragment', [
    ({'entries': ENTRIES}, 'mutually exclusive: entries|policies'),
    ({'destination': 'a.example'}, 'mutually exclusive: destination|policies'),
    ({'level': 'may'}, 'policies is mutually exclusive with level'),
    ({'match': ['nexthop'], 'ciphers': 'high'}, 'policies is mutually exclusive with match, ciphers'),
    ({'state': 'absent'}, 'a destination mapped to null is removed'),
])
def test_mutual_exclusion(sandbox, args, fragment):
    result = sandbox.tls_policy(dict({'policies': POLICIES}, **args))
    assert_failed(result, fragment)
    assert not sandbox.table.exists()


def test_not_a_mapping_is_refused(sandbox):
    assert_failed(sandbox.tls_policy({'policies': ['example.com secure']}), 'policies')
    assert not sandbox.table.exists()


@needs_root('chattr')
def test_check_mode_writes_nothing(frozen_sandbox):
    sandbox = frozen_sandbox
    results = assert_check_mode_writes_nothing(sandbox, [
        sandbox.task(TLS_POLICY, {'policies': {'new.example': 'secure match=nexthop'}}),
        sandbox.task(TLS_POLICY, {'policies': {'old.example': 'dane', 'keep.example': None}}),
        sandbox.task(TLS_POLICY, {'policies': {'only.example': 'may'}, 'exclusive': True}),
    ])
    assert results[0]['added'] == ['new.example'] and 'new.example secure match=nexthop' in results[0]['diff']['after']
    assert results[1]['updated'] == ['old.example'] and results[1]['removed'] == ['keep.example']
    assert sorted(results[2]['removed']) == ['[127.0.0.1]:10025', 'keep.example', 'old.example']


def test_playbook_with_the_filter_then_no_op(sandbox):
    """The role's shape: the entries list through the filter into policies, with the real ansible-playbook."""
    task = {TLS_POLICY: {'policies': '{{ entries | mailgw.postfix_tls.tls_policy_values }}', 'exclusive': True,
                         'config_dir': str(sandbox.confdir)},
            'vars': {'entries': ENTRIES}}
    results, stats = sandbox.playbook([task, task])
    assert [r['changed'] for r in results] == [True, False], [why(r) for r in results]
    assert sandbox.table.read_text() == TABLE


# -- the real tables: written by entries, then by the mapping of their own lines: no change ------

def realworld_lines():
    """(key, value) of every line of the real tables the module accepts, first key wins."""
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_source import LookupTableSource
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import (
        PolicyError, fold_key, normalize_destination, parse_policy)
    lines, seen = [], set()
    for path in sorted(glob.glob(os.path.join(REALWORLD_TABLES, '*'))):
        with open(path, 'rb') as f:
            table = LookupTableSource.parse(f.read().decode('utf-8', 'surrogateescape'))
        for line in table.entries():
            if not line.value or fold_key(line.key) in seen:
                continue
            try:
                normalize_destination(line.key)
                policy = parse_policy(line.value, lint=True)
            except PolicyError:
                continue
            if policy.level == 'fingerprint':
                continue        # real fingerprints are md5 or sha1; the sandbox digest is sha256
            seen.add(fold_key(line.key))
            lines.append((line.key, line.value, policy))
    return lines


def entry_of(key, policy):
    entry = {'destination': key, 'level': policy.level}
    for attr, text in policy.attributes:
        if attr == 'match':
            entry['match'] = text.split(':')
        elif attr == 'tafile':
            entry.setdefault('tafile', []).append(text)
        elif attr in ('protocols', 'exclude'):
            entry[attr] = [text]
        elif attr in ('connection_reuse', 'enable_rpk'):
            entry[attr] = text == 'yes'
        else:
            entry[attr] = text
    return entry


def test_realworld_tables_switch_shape_without_change(make_sandbox, tmp_path):
    lines = realworld_lines()
    assert len(lines) > 250
    entries = [entry_of(key, policy) for key, value, policy in lines]
    policies = dict((key, value) for key, value, policy in lines)      # the lines as written
    tables = {}
    for first, second in (('entries', 'policies'), ('policies', 'entries')):
        sandbox = make_sandbox(confdir=tmp_path / first / 'postfix', maps_dir=tmp_path / first / 'maps.d')
        sandbox.main_cf.write_text(sandbox.main_cf_text('smtp_dns_support_level = dnssec\n'))
        args = {'entries': entries, 'policies': policies}
        result = assert_ok(sandbox.tls_policy({first: args[first], 'exclusive': True}))
        assert len(result['added']) == len(lines)
        before = sandbox.snapshot()
        again = assert_ok(sandbox.tls_policy({second: args[second], 'exclusive': True}))
        assert again['changed'] is False, why(again)
        assert_unchanged(before, sandbox.snapshot())
        tables[first] = sandbox.table.read_bytes()
    assert tables['entries'] == tables['policies']


# -- hostile values ----------------------------------------------------------------------------

@pytest.mark.parametrize('value', [
    'may\nb.example none', 'may\r\nb.example none', 'may\x00', 'secure match=nexthop\x00',
    'secure match=nexthop\nb.example', 'encrypt ciphers=high\x0bb.example=none', 'may\x85b.example none',
    'encrypt servername=mx.example\u2028b.example', 'encrypt exclude=aNULL;touch@x',
    'may $(touch @CANARY@)', 'encrypt protocols=`touch @CANARY@`',
])
def test_values_that_would_add_lines_or_tokens_are_refused(sandbox, value):
    value = value.replace('@CANARY@', str(sandbox.canary))
    sandbox.seed('keep.example may\n')
    before = sandbox.snapshot()
    assert_failed(sandbox.tls_policy({'policies': {'a.example': value}}), "destination 'a.example', value %r" % value)
    assert_unchanged(before, sandbox.snapshot())
    assert not sandbox.canary.exists()


def test_line_breaks_between_tokens_are_whitespace_and_one_line_is_written(sandbox):
    result = assert_ok(sandbox.tls_policy({'policies': {'a.example': 'secure\n  match=nexthop\r\n\tprotocols=>=TLSv1.2'}}))
    assert result['added'] == ['a.example']
    assert sandbox.table.read_text() == 'a.example secure match=nexthop protocols=>=TLSv1.2\n'
    assert sandbox.dump() == {'a.example': 'secure match=nexthop protocols=>=TLSv1.2'}
