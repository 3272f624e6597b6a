# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tls_policy's policies_src (issue #16): the entries read from a file on the managed host,
in the table's own format, against the host's real postconf and postmap.

The file must give exactly the table its lines give as ``policies``, be exactly as strict
(errors name the file and line), never be changed itself, and leave everything as it was when
it cannot be used. What each line is read as is unit-tested in
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


SOURCE = (
    '# partner domains, generated\n'
    'Example.com secure match=nexthop:dot-nexthop protocols=>=TLSv1.2\n'
    '\n'
    '.example.org encrypt\n'
    '    ciphers=high exclude=aNULL:MD5\n'
    '[127.0.0.1]:10025\tnone\n'
)
POLICIES = {
    'Example.com': 'secure match=nexthop:dot-nexthop protocols=>=TLSv1.2',
    '.example.org': 'encrypt ciphers=high exclude=aNULL:MD5',
    '[127.0.0.1]:10025': 'none',
}
TABLE = (
    'example.com secure match=nexthop:dot-nexthop protocols=>=TLSv1.2\n'
    '.example.org encrypt ciphers=high exclude=aNULL:MD5\n'
    '[127.0.0.1]:10025 none\n')


def source(sandbox, text, name='partners.generated'):
    """A source file on the host, outside the Postfix directories."""
    path = sandbox.tmp / name
    path.write_bytes(text.encode('utf-8', 'surrogateescape'))
    return path


def test_apply_idempotence_and_what_postfix_reads(sandbox):
    src = source(sandbox, SOURCE)
    postmap_calls = sandbox.record('postmap')
    result = assert_ok(sandbox.tls_policy({'policies_src': str(src)}, diff=True))
    assert result['changed'] is True and result['postmap_ran'] is True
    assert result['added'] == ['example.com', '.example.org', '[127.0.0.1]:10025']
    assert result['diff']['before'] == '' and result['diff']['after'] == TABLE
    assert sandbox.table.read_text() == TABLE
    assert sandbox.query('EXAMPLE.COM', '.example.org', '[127.0.0.1]:10025') == {
        'EXAMPLE.COM': 'secure match=nexthop:dot-nexthop protocols=>=TLSv1.2',
        '.example.org': 'encrypt ciphers=high exclude=aNULL:MD5', '[127.0.0.1]:10025': 'none'}
    assert src.read_text() == SOURCE                     # the source itself is never changed
    assert sandbox.leftovers() == []

    before = sandbox.snapshot()
    calls = postmap_calls.calls()
    again = assert_ok(sandbox.tls_policy({'policies_src': str(src)}, diff=True))
    assert again['changed'] is False and again['postmap_ran'] is False
    assert again['diff']['before'] == again['diff']['after'] == TABLE
    assert_unchanged(before, sandbox.snapshot())
    assert postmap_calls.calls() == calls


@pytest.mark.parametrize('first, second', [('policies', 'policies_src'), ('policies_src', 'policies')])
def test_switching_between_the_mapping_and_the_file_is_a_no_op(sandbox, first, second):
    args = {'policies': POLICIES, 'policies_src': str(source(sandbox, SOURCE))}
    assert_ok(sandbox.tls_policy({first: args[first], 'exclusive': True}))
    before = sandbox.snapshot()
    result = assert_ok(sandbox.tls_policy({second: args[second], 'exclusive': True}))
    assert result['changed'] is False, why(result)
    assert_unchanged(before, sandbox.snapshot())
    assert sandbox.table.read_text() == TABLE


def test_without_exclusive_other_entries_stay_and_with_it_the_table_is_the_file(sandbox):
    sandbox.seed('# kept\nkeep.example may\nexample.com encrypt\n')
    src = source(sandbox, SOURCE)
    result = assert_ok(sandbox.tls_policy({'policies_src': str(src)}))
    assert result['updated'] == ['example.com'] and result['removed'] == []
    assert sandbox.table.read_text() == ('# kept\nkeep.example may\n'
                                         'example.com secure match=nexthop:dot-nexthop protocols=>=TLSv1.2\n'
                                         '.example.org encrypt ciphers=high exclude=aNULL:MD5\n'
                                         '[127.0.0.1]:10025 none\n')
    result = assert_ok(sandbox.tls_policy({'policies_src': str(src), 'exclusive': True}))
    assert result['removed'] == ['keep.example']
    assert sandbox.query('keep.example', 'example.com') == {
        'example.com': 'secure match=nexthop:dot-nexthop protocols=>=TLSv1.2'}
    # the file shrinks: exclusive removes what it no longer lists
    src.write_text('# nothing left\n')
    result = assert_ok(sandbox.tls_policy({'policies_src': str(src), 'exclusive': True}))
    assert sorted(result['removed']) == ['.example.org', '[127.0.0.1]:10025', 'example.com']
    assert sandbox.table.read_text() == '# kept\n'
    assert sandbox.dump() == {}


@pytest.mark.parametrize('text, fragments', [
    ('ok.example may\nbad.example encrypt match=nexthop\n',
     [", line 2: destination 'bad.example', value 'encrypt match=nexthop'", 'invalid at level encrypt']),
    ('ok.example may\nOK.example encrypt\n',
     [", line 2: destination 'OK.example' duplicates 'ok.example' (", 'line 1; Postfix would use the first']),
    ('ok.example may\nnovalue\n', [", line 2: key 'novalue' has no value; Postfix ignores it"]),
    ('   indented.example may\nok.example may\n', [', line 1: logical line must not start with whitespace']),
    # checks against the configuration name the line too
    ('ok.example may\nfp.example fingerprint match=3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1:17:0B:D1\n',
     [", line 2: destination 'fp.example': ", 'smtp_tls_fingerprint_digest is sha256']),
    ('ok.example dane-only\n', [", line 1: destination 'ok.example': ", 'smtp_dns_support_level = dnssec']),
    ('ok.example may\nfp.example fingerprint\n',
     [", line 2: destination 'fp.example': level fingerprint without match"]),
])
def test_a_bad_line_fails_naming_file_and_line_and_changes_nothing(sandbox, text, fragments):
    sandbox.seed('keep.example may\n')
    src = source(sandbox, text)
    before = sandbox.snapshot()
    result = sandbox.tls_policy({'policies_src': str(src), 'exclusive': True})
    assert_failed(result, 'nothing was changed', str(src), *fragments)
    assert_unchanged(before, sandbox.snapshot())
    assert sandbox.leftovers() == []


def test_version_gate_as_for_the_mapping(sandbox):
    sandbox.main_cf.write_text(sandbox.main_cf_text('mail_version = 3.5.9\n'))
    by_policies = sandbox.tls_policy({'policies': {'a.example': 'encrypt protocols=>=TLSv1.2'}})
    src = source(sandbox, 'b.example may\na.example encrypt protocols=>=TLSv1.2\n')
    by_source = sandbox.tls_policy({'policies_src': str(src)})
    assert_failed(by_source, 'Postfix 3.6', "%s, line 2: destination 'a.example': " % src)
    assert by_source['msg'].replace('%s, line 2: ' % src, '') == by_policies['msg']
    assert not sandbox.table.exists()


def test_warnings_as_for_the_mapping_and_summarized_as_for_it(sandbox):
    """The same warnings as policies, so the same warning for many destinations stays one
    warning (a 10,000-line file must not give thousands)."""
    policies = dict(('d%d.example' % i, 'dane') for i in range(30))
    policies['relay.example:587'] = 'may'
    text = ''.join('%s %s\n' % item for item in policies.items())
    by_policies = assert_ok(sandbox.tls_policy({'policies': policies}))
    by_source = assert_ok(sandbox.tls_policy({'policies_src': str(source(sandbox, text))}))
    assert 'silently uses level may' in warnings_of(by_source) and 'verbatim' in warnings_of(by_source)
    assert warnings_of(by_source) == warnings_of(by_policies)
    assert len(by_source['warnings']) < 5


def test_unusable_source_fails_and_changes_nothing(sandbox):
    sandbox.seed('keep.example may\n')
    before = sandbox.snapshot()
    missing = sandbox.tmp / 'missing'
    assert_failed(sandbox.tls_policy({'policies_src': str(missing)}),
                  'policies_src %s cannot be read on this host: No such file or directory' % missing)
    # in check mode a missing file is one an earlier task would ship: a predicted change
    checked = assert_ok(sandbox.tls_policy({'policies_src': str(missing), 'exclusive': True}, check=True))
    assert checked['changed'] is True and checked['table_differs'] is True
    assert checked['map'] == sandbox.map_spec
    assert 'a real run fails if the file is still missing' in warnings_of(checked)
    assert_failed(sandbox.tls_policy({'policies_src': str(missing), 'level': 'may'}, check=True),
                  'policies_src is mutually exclusive with level')
    assert_failed(sandbox.tls_policy({'policies_src': str(sandbox.table), 'exclusive': True}),
                  'policies_src %s is the table itself' % sandbox.table)
    indexed = sandbox.tmp / 'indexed'
    indexed.write_bytes(b'\0' * 64)
    assert_failed(sandbox.tls_policy({'policies_src': str(indexed)}), 'contains NUL bytes')
    assert_unchanged(before, sandbox.snapshot())


@pytest.mark.parametrize('args, fragment', [
    ({'policies': POLICIES}, 'mutually exclusive: policies|policies_src'),
    ({'entries': [{'destination': 'a.example', 'level': 'may'}]}, 'mutually exclusive: entries|policies_src'),
    ({'destination': 'a.example'}, 'mutually exclusive: destination|policies_src'),
    ({'level': 'may'}, 'policies_src is mutually exclusive with level'),
    ({'state': 'absent'}, 'give exclusive=true to remove every entry the file does not list'),
])
def test_mutual_exclusion(sandbox, args, fragment):
    result = sandbox.tls_policy(dict({'policies_src': str(source(sandbox, SOURCE))}, **args))
    assert_failed(result, fragment)
    assert not sandbox.table.exists()


@needs_root('chattr')
def test_check_mode_writes_nothing(frozen_sandbox):
    sandbox = frozen_sandbox
    added = source(sandbox, 'new.example secure match=nexthop\n', 'added')
    changed = source(sandbox, 'old.example dane\n', 'changed')
    results = assert_check_mode_writes_nothing(sandbox, [
        sandbox.task(TLS_POLICY, {'policies_src': str(added)}),
        sandbox.task(TLS_POLICY, {'policies_src': str(changed), 'exclusive': True}),
    ])
    assert results[0]['added'] == ['new.example'] and 'new.example secure match=nexthop' in results[0]['diff']['after']
    assert results[1]['updated'] == ['old.example']
    assert sorted(results[1]['removed']) == ['[127.0.0.1]:10025', 'keep.example']


def test_playbook_copies_the_file_then_manages_the_table(sandbox):
    """The operator's shape: a file shipped to the host, then the table made to hold it."""
    src = sandbox.tmp / 'shipped' / 'partners'
    tasks = [
        {'ansible.builtin.copy': {'content': SOURCE, 'dest': str(src), 'mode': '0644'},
         'ignore_errors': False},
        {TLS_POLICY: {'policies_src': str(src), 'exclusive': True, 'config_dir': str(sandbox.confdir)}},
    ]
    (src.parent).mkdir()
    # a check run first: the file is not shipped, so the table is predicted to change, with a
    # warning, and nothing is written
    before = sandbox.snapshot()
    results, stats = sandbox.playbook(tasks, check=True, diff=True)
    assert [r['changed'] for r in results] == [True, True], [why(r) for r in results]
    assert 'policies_src %s does not exist (yet): this check run assumes an earlier task creates it' % src \
        in warnings_of(results[1])
    assert not src.exists() and not sandbox.table.exists()
    assert_unchanged(before, sandbox.snapshot())
    results, stats = sandbox.playbook(tasks + tasks)
    assert [r['changed'] for r in results] == [True, True, False, False], [why(r) for r in results]
    assert sandbox.table.read_text() == TABLE
    # and a check run once it is there compares the entries
    results, stats = sandbox.playbook(tasks, check=True)
    assert [r['changed'] for r in results] == [False, False], [why(r) for r in results]


def test_realworld_tables_as_sources(make_sandbox, tmp_path):
    """The real tables given as policies_src: each one the module accepts gives the table its
    usable lines give as the mapping; each one it refuses is refused naming a line."""
    accepted = refused = 0
    for number, path in enumerate(sorted(glob.glob(os.path.join(REALWORLD_TABLES, '*')))):
        sandbox = make_sandbox(confdir=tmp_path / str(number) / 'postfix', maps_dir=tmp_path / str(number) / 'maps.d')
        sandbox.main_cf.write_text(sandbox.main_cf_text('smtp_dns_support_level = dnssec\n'
                                                        'smtp_tls_fingerprint_digest = md5\n'))
        result = sandbox.tls_policy({'policies_src': path, 'exclusive': True})
        if result.get('failed'):
            assert '%s, line' % path in result['msg'] or '%s, lines' % path in result['msg'], result['msg']
            assert not sandbox.table.exists()
            refused += 1
            continue
        accepted += 1 if result['added'] else 0
        before = sandbox.snapshot()
        again = assert_ok(sandbox.tls_policy({'policies_src': path, 'exclusive': True}))
        assert again['changed'] is False
        assert_unchanged(before, sandbox.snapshot())
        # what postmap answers for every key is the file's own value, canonically written
        dump = sandbox.dump()
        assert len(dump) == len(result['added'])
    assert accepted >= 3 and refused >= 1, (accepted, refused)
