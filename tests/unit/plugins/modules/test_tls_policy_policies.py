# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""tls_policy's policies mapping without Postfix: validated exactly as the equivalent entries.

The desired state is computed by TlsPolicyTable.desired_entries() (module_utils, what
the module runs) on a stand-in
AnsibleModule (no postconf is run for it); the same table is written through
both shapes with the real postconf/postmap in
tests/integration/modules/tls_policy/test_tls_policy_policies.py.
"""

import glob
import os

import pytest

from ansible_collections.mailgw.postfix_tls.plugins.filter.postfix_tls import tls_policy_values
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_source import LookupTableSource
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import (
    PolicyError,
    parse_policy,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils import tls_policy_table
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_table import TlsPolicyTableError
from ansible_collections.mailgw.postfix_tls.plugins.modules import tls_policy

SHA256 = '3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1:17:0B:D1:CB:7B:8B:F5:49:D4:A8:7E:07:D6:39:EA:E8:8E:12:0E'
REALWORLD = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'data', 'realworld', 'tables')


Failed = TlsPolicyTableError


class FakeModule:
    check_mode = False
    _diff = False

    def __init__(self, params):
        self.params = params
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)

    def fail_json(self, msg, **kwargs):
        raise AssertionError('TlsPolicyTable exits through its caller, not fail_json: %s' % msg)


class NoPostfix:
    def __init__(self, *args, **kwargs):
        self.commands = None


@pytest.fixture(autouse=True)
def no_postfix(monkeypatch):
    monkeypatch.setattr(tls_policy_table, 'Postconf', NoPostfix)
    monkeypatch.setattr(tls_policy_table, 'Postmap', NoPostfix)


def params(**given):
    """The module's parameters as AnsibleModule fills them (defaults, None for unset)."""
    values = dict((name, spec.get('default')) for name, spec in tls_policy_table.argument_spec().items())
    values.update(given)
    return values


def entry_params(entry):
    spec = tls_policy_table.entry_options(destination_required=True)
    return dict((name, entry.get(name, spec[name].get('default'))) for name in spec)


def desired(**given):
    """(desired tuples without the Policy objects, warnings) or the Failed exception."""
    if given.get('entries') is not None:
        given['entries'] = [entry_params(e) for e in given['entries']]
    runner = tls_policy_table.TlsPolicyTable(FakeModule(params(**given)))
    try:
        result = runner.desired_entries()
    except Failed as e:
        return e, runner.warnings
    return [(key, value) for key, value, policy in result], runner.warnings


ENTRIES = [
    {'destination': 'Example.COM', 'level': 'secure', 'match': ['nexthop', 'dot-nexthop'],
     'protocols': ['>=TLSv1.2']},
    {'destination': '.example.org', 'level': 'encrypt', 'ciphers': 'high', 'exclude': ['aNULL', 'MD5']},
    {'destination': '[127.0.0.1]:10025', 'level': 'none'},
    {'destination': '[relay.example.net]:587', 'level': 'fingerprint', 'match': [SHA256, SHA256.lower()]},
    {'destination': 'relay.example.com:587', 'level': 'may'},       # warned: looked up verbatim only
    {'destination': 'bücher.example', 'level': 'verify', 'match': ['hostname'], 'servername': 'hostname',
     'connection_reuse': True, 'enable_rpk': False, 'tafile': ['/etc/ssl/ta.pem']},
    {'destination': 'empty.example', 'level': 'encrypt', 'protocols': [''], 'exclude': ['']},
    {'destination': 'old.example', 'state': 'absent'},
    {'destination': '*', 'state': 'absent'},                         # removable by name only
]


def test_mapping_gives_the_same_desired_state_and_warnings_as_entries():
    through_entries = desired(entries=ENTRIES)
    through_policies = desired(policies=tls_policy_values(ENTRIES))
    assert not isinstance(through_entries[0], Failed), through_entries[0]
    assert through_policies == through_entries
    assert any('verbatim' in w for w in through_policies[1])
    assert ('old.example', None) in through_policies[0] and ('*', None) in through_policies[0]


def test_mapping_values_are_read_as_written_in_a_table_and_rendered_canonically():
    found, dummy = desired(policies={
        'a.example': 'SECURE   match=nexthop match=dot-nexthop, protocols=!SSLv2:!SSLv3',
        'b.example': 'encrypt { ciphers = HIGH }',
        'c.example': 'fingerprint match=%s|%s' % (SHA256, SHA256),
    })
    assert found == [
        ('a.example', 'secure match=nexthop:dot-nexthop protocols=!SSLv2:!SSLv3'),
        ('b.example', 'encrypt ciphers=high'),
        ('c.example', 'fingerprint match=%s|%s' % (SHA256, SHA256)),
    ]


@pytest.mark.parametrize('entry, value, fragments', [
    ({'destination': 'a.example', 'level': 'encrypt', 'match': ['nexthop']}, 'encrypt match=nexthop',
     ['invalid at level encrypt']),
    ({'destination': 'a.example', 'level': 'none', 'match': ['nexthop']}, 'none match=nexthop',
     ['at level none does nothing', 'rule of this collection']),
    ({'destination': 'a.example', 'level': 'verify', 'tafile': ['ta.pem']}, 'verify tafile=ta.pem',
     ["'ta.pem'", 'not an absolute path']),
    ({'destination': 'a.example', 'level': 'fingerprint', 'match': ['3D:95']}, 'fingerprint match=3D:95',
     ["'3D:95'", '2 bytes long']),
    ({'destination': 'a.example', 'level': 'secure', 'match': ['Not_A..Host']}, 'secure match=Not_A..Host',
     ["'Not_A..Host'", 'not a host name']),
    ({'destination': 'a.example', 'level': 'encrypt', 'ciphers': 'null'}, 'encrypt ciphers=null',
     ['leaves no cipher']),
    ({'destination': 'a.example', 'level': 'encrypt', 'protocols': ['!TLSv1.2', '!TLSv1.3', '!TLSv1.1', '!TLSv1']},
     'encrypt protocols=!TLSv1.2:!TLSv1.3:!TLSv1.1:!TLSv1', ['protocol']),
    ({'destination': 'a.example', 'level': 'encrypt', 'servername': 'HOSTNAME'}, 'encrypt servername=HOSTNAME',
     ['HOSTNAME']),
    ({'destination': 'a.example', 'level': 'encrypt', 'exclude': ['!aNULL']}, 'encrypt exclude=!aNULL',
     ['!aNULL']),
])
def test_a_value_is_refused_exactly_when_the_entry_is(entry, value, fragments):
    by_entry, dummy = desired(entries=[entry])
    by_value, dummy = desired(policies={entry['destination']: value})
    assert isinstance(by_entry, Failed) and isinstance(by_value, Failed), (by_entry, by_value)
    for fragment in fragments:
        assert fragment in by_entry.msg, (fragment, by_entry.msg)
        assert fragment in by_value.msg, (fragment, by_value.msg)
    assert by_value.msg.startswith('invalid TLS policy entry, nothing was changed: ')
    assert "destination 'a.example', value %r" % value in by_value.msg
    assert by_value.result['errors'] and len(by_value.result['errors']) == 1


@pytest.mark.parametrize('value, fragments', [
    ('', ['empty policy value', 'a level is required']),
    ('tight', ["'tight'", 'not a Postfix TLS security level']),
    ('secure match=:', ['no names between its separators']),
    ('encrypt policy_type=sts', ['TLSRPT attribute', 'policy_type']),
    ('encrypt ciphers=high ciphers=low', ['specified multiple times']),
    ('encrypt bogus=1', ['invalid attribute name']),
    ('may # comment', ['malformed attribute/value pair']),
    (42, ['must be a string']),
    (['may'], ['must be a string']),
])
def test_values_no_entry_could_give_are_refused(value, fragments):
    failed, dummy = desired(policies={'a.example': value, 'ok.example': 'may'})
    assert isinstance(failed, Failed)
    assert "destination 'a.example', value %r" % (value,) in failed.msg
    assert 'ok.example' not in failed.msg
    for fragment in fragments:
        assert fragment in failed.msg, (fragment, failed.msg)


def test_every_bad_destination_and_value_is_named_in_one_error():
    failed, dummy = desired(policies={'*': 'may', 'a.example': 'tight', 'b.example': 'encrypt match=x',
                                      'A.EXAMPLE': 'may', 'fine.example': 'may'})
    assert isinstance(failed, Failed)
    assert failed.msg.startswith('invalid TLS policy entries, nothing was changed: ')
    assert len(failed.result['errors']) == 4
    assert "'*'" in failed.msg and 'no wildcards' in failed.msg
    assert "destination 'A.EXAMPLE' duplicates 'a.example': keys are case-insensitive" in failed.msg
    assert 'fine.example' not in failed.msg


def test_same_value_twice_is_parsed_once_and_errors_name_each_destination(monkeypatch):
    calls = []

    def counting(text, *args, **kwargs):
        calls.append(text)
        return parse_policy(text, *args, **kwargs)
    monkeypatch.setattr(tls_policy_table, 'parse_policy', counting)
    found, dummy = desired(policies=dict(('d%d.example' % i, 'secure match=nexthop') for i in range(50)))
    assert len(found) == 50 and calls == ['secure match=nexthop']
    failed, dummy = desired(policies={'x.example': 'tight', 'y.example': 'tight'})
    assert "destination 'x.example'" in failed.msg and "destination 'y.example'" in failed.msg


@pytest.mark.parametrize('extra, fragment', [
    ({'level': 'may'}, 'policies is mutually exclusive with level'),
    ({'match': ['nexthop']}, 'policies is mutually exclusive with match'),
    ({'state': 'absent'}, 'with policies, a destination mapped to null is removed'),
])
def test_single_entry_options_are_refused_with_policies(extra, fragment):
    failed, dummy = desired(policies={'a.example': 'may'}, **extra)
    assert isinstance(failed, Failed) and fragment in failed.msg, failed


def test_exclusive_works_with_policies_and_needs_a_shape():
    found, dummy = desired(policies={'a.example': 'may'}, exclusive=True)
    assert found == [('a.example', 'may')]
    failed, dummy = desired(exclusive=True, destination='a.example', level='may')
    assert 'exclusive=true needs entries, policies or policies_src' in failed.msg
    found, dummy = desired(policies={}, exclusive=True)
    assert found == []


def test_argument_spec_and_mutual_exclusion():
    spec = tls_policy.argument_spec()
    assert spec['policies'] == {'type': 'dict'}
    assert spec['policies_src'] == {'type': 'path'}


# -- policies_src: a file on the host in the table's format, read as Postfix reads it ------------

SOURCE = (
    '# partners, generated\n'
    'Example.COM secure match=nexthop:dot-nexthop protocols=>=TLSv1.2\n'
    '\n'
    '.example.org encrypt\n'
    '  # a comment inside a logical line\n'
    '    ciphers=high exclude=aNULL:MD5\n'
    '[127.0.0.1]:10025\tnone\r\n'
    'relay.example.com:587 may\n'
)


def write_source(tmp_path, text, name='partners'):
    path = tmp_path / name
    path.write_bytes(text.encode('utf-8', 'surrogateescape') if isinstance(text, str) else text)
    return str(path)


def test_source_gives_the_same_desired_state_and_warnings_as_the_mapping(tmp_path):
    by_source = desired(policies_src=write_source(tmp_path, SOURCE))
    by_mapping = desired(policies={
        'Example.COM': 'secure match=nexthop:dot-nexthop protocols=>=TLSv1.2',
        '.example.org': 'encrypt ciphers=high exclude=aNULL:MD5',
        '[127.0.0.1]:10025': 'none\r',                  # the \r is trailing whitespace, as for Postfix
        'relay.example.com:587': 'may'})
    assert not isinstance(by_source[0], Failed), by_source[0]
    assert by_source == by_mapping
    assert by_source[0][:3] == [
        ('example.com', 'secure match=nexthop:dot-nexthop protocols=>=TLSv1.2'),
        ('.example.org', 'encrypt ciphers=high exclude=aNULL:MD5'),
        ('[127.0.0.1]:10025', 'none')]
    assert any('verbatim' in w for w in by_source[1])


def test_source_errors_name_the_file_and_line_and_are_all_reported(tmp_path):
    path = write_source(tmp_path, (
        '  before the first entry\n'               # 1: Postfix ignores it
        'a.example may\n'                          # 2
        'b.example encrypt match=nexthop\n'        # 3: invalid at encrypt
        'A.EXAMPLE encrypt\n'                      # 4: duplicate of line 2
        'novalue\n'                                # 5: no value
        '# end\n'
        '*\tmay\n'))                               # 7: never looked up
    failed, dummy = desired(policies_src=path, exclusive=True)
    assert isinstance(failed, Failed)
    assert failed.msg.startswith('invalid TLS policy entries, nothing was changed: ')
    assert failed.result['errors'] == [
        "%s, line 1: logical line must not start with whitespace; Postfix ignores it" % path,
        "%s, line 5: key 'novalue' has no value; Postfix ignores it (expected format: key whitespace value)" % path,
        failed.result['errors'][2],
        "%s, line 4: destination 'A.EXAMPLE' duplicates 'a.example' (%s, line 2; Postfix would use the first): "
        "keys are case-insensitive" % (path, path),
        failed.result['errors'][4]]
    assert failed.result['errors'][2].startswith(
        "%s, line 3: destination 'b.example', value 'encrypt match=nexthop': " % path)
    assert 'invalid at level encrypt' in failed.result['errors'][2]
    assert failed.result['errors'][4].startswith("%s, line 7: destination '*': " % path)
    assert 'no wildcards' in failed.result['errors'][4]


def test_an_empty_source_is_an_empty_table(tmp_path):
    assert desired(policies_src=write_source(tmp_path, '# nothing yet\n\n'), exclusive=True) == ([], [])


@pytest.mark.parametrize('content, fragment', [
    (None, 'cannot be read on this host: No such file or directory; nothing was changed'),
    (b'a.example may\n\0\0',
     'contains NUL bytes: it is not the text of a lookup table (an indexed .db or .lmdb file?); nothing was changed'),
])
def test_unreadable_source_fails_naming_it(tmp_path, content, fragment):
    path = str(tmp_path / 'missing') if content is None else write_source(tmp_path, content)
    failed, dummy = desired(policies_src=path)
    assert isinstance(failed, Failed) and failed.msg == 'policies_src %s %s' % (path, fragment), failed


def test_a_relative_source_is_refused():
    failed, dummy = desired(policies_src='partners.table')
    assert isinstance(failed, Failed) and failed.msg == (
        "policies_src 'partners.table' must be an absolute path (a file on the managed host; a relative path "
        "would depend on the directory the module runs in); nothing was changed"), failed


@pytest.mark.parametrize('extra, fragment', [
    ({'level': 'may'}, 'policies_src is mutually exclusive with level'),
    ({'destination': 'a.example', 'match': ['nexthop']}, 'policies_src is mutually exclusive with destination, match'),
    ({'state': 'absent'}, 'with policies_src, give exclusive=true to remove every entry the file does not list'),
])
def test_single_entry_options_are_refused_with_a_source(tmp_path, extra, fragment):
    failed, dummy = desired(policies_src=write_source(tmp_path, 'a.example may\n'), **extra)
    assert isinstance(failed, Failed) and fragment in failed.msg, failed


def test_realworld_tables_as_sources_give_what_their_lines_give_as_a_mapping(tmp_path):
    """Each real table given as policies_src: refused exactly when one of its lines (or a line
    Postfix ignores) is, else the same desired state as the mapping of its lines."""
    accepted = 0
    for path in TABLES:
        with open(path, 'rb') as f:
            data = f.read()
        table = LookupTableSource.parse(data.decode('utf-8', 'surrogateescape'))
        mapping, twice = {}, False
        for line in table.entries():
            if line.value:
                twice = twice or line.key.lower() in (key.lower() for key in mapping)
                mapping.setdefault(line.key, line.value)
        by_source = desired(policies_src=path)
        by_mapping = desired(policies=mapping)
        if table.problems() or twice or isinstance(by_mapping[0], Failed):
            assert isinstance(by_source[0], Failed), path
            continue
        assert by_source == by_mapping, path
        accepted += 1
    assert accepted >= 3, accepted


# -- the real tables: each usable line, as a mapping value, gives what the entry gives ------------

TABLES = sorted(glob.glob(os.path.join(REALWORLD, '*')))


def entry_of(key, value):
    """The entries element equivalent to a table line (as the realworld unit test redeclares them)."""
    policy = parse_policy(value)
    entry = {'destination': key, 'level': policy.level}
    for attr, text in policy.attributes:
        if attr == 'match':
            entry['match'] = text.split('|' if policy.level == 'fingerprint' else ':')
        elif attr == 'tafile':
            entry.setdefault('tafile', []).append(text)
        elif attr in ('protocols', 'exclude'):
            entry[attr] = [text]
        elif attr in ('connection_reuse', 'enable_rpk'):
            entry[attr] = text == 'yes'
        else:
            entry[attr] = text
    return entry


def test_realworld_lines_as_mapping_values_match_their_entries():
    compared = refused = 0
    for path in TABLES:
        with open(path, 'rb') as f:
            table = LookupTableSource.parse(f.read().decode('utf-8', 'surrogateescape'))
        for line in table.entries():
            if not line.value:
                continue
            try:
                entry = entry_of(line.key, line.value)
            except PolicyError:
                continue                    # Postfix cannot use it (the known broken lines)
            by_entry, w_entry = desired(entries=[entry])
            by_value, w_value = desired(policies={line.key: line.value})
            if isinstance(by_entry, Failed):
                # refused by a rule of the collection (a key or an abbreviated fingerprint)
                assert isinstance(by_value, Failed), (path, line.key, line.value, by_entry.msg)
                reason = by_entry.result['errors'][0].rsplit(': ', 1)[-1]
                assert reason in by_value.msg, (reason, by_value.msg)
                refused += 1
            else:
                assert by_value == by_entry and w_value == w_entry, (path, line.key, line.value)
            compared += 1
    assert compared > 100 and refused < compared / 10, (compared, refused)


def test_plan_params_are_the_module_defaults_with_the_plan_options():
    params = tls_policy_table.plan_params('/etc/pf', policies={'a.example': 'may'}, exclusive=True,
                                          path='/etc/pf/t', map_type=None, owner='root', group='root', mode='0644')
    assert set(params) == set(tls_policy.argument_spec()) | {
        'mode', 'owner', 'group', 'seuser', 'serole', 'selevel', 'setype', 'attributes', 'unsafe_writes'}
    assert params['config_dir'] == '/etc/pf' and params['policies'] == {'a.example': 'may'}
    assert params['state'] == 'present' and params['backup'] is False and params['unsafe_writes'] is False
    assert params['destination'] is None and params['entries'] is None and params['attributes'] is None
