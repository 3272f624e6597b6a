# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile and malformed input to mailgw.postfix_tls.tls_policy is refused, and changes nothing.

Each group of cases runs as one play of the real ``ansible-playbook``
(``postfix_sandbox.assert_all_refused``: every task must fail naming the value
or option, the directories stay byte-identical, no shell ever sees a value);
single calls run the module directly (``sandbox.tls_policy``).

Covered: destination (line breaks, whitespace, commas, label and name
lengths, brackets and ports, types), level and state, every attribute, the
entries list, and the file options (path, map_type, config_dir, backup).
Values that look hostile but are legitimate (shell metacharacters in a file
name or a tafile, UTF-8 names) are accepted and must land literally, as
exactly one table entry read back with ``postmap -s``.
"""

import os

import pytest

from postfix_sandbox import (CANARY, TLS_POLICY, assert_all_refused, assert_failed, assert_unchanged, needs_postfix,
                             shell_payloads, substitute, warnings_of, why)

pytestmark = needs_postfix

SEEDED = (
    '# TLS policy (hand-maintained part)\n'
    '\n'
    'partner.example   secure\n'
    '    match=nexthop:dot-nexthop\n'
    '[relay.example.net]:587\tencrypt\n'
    '[127.0.0.1]:10025 none\n'
)
SEEDED_KEYS = {'partner.example', '[relay.example.net]:587', '[127.0.0.1]:10025'}


@pytest.fixture
def sandbox(sandbox):
    """The sandbox with a seeded, indexed table."""
    return sandbox.seed(SEEDED)


LINE_BREAKS = [('\n', '\\n'), ('\r', '\\r'), ('\x00', '\\x00'), ('\x0b', '\\x0b'), ('\x0c', '\\x0c')]

DESTINATION_CASES = [
    ({'destination': 'evil.example%snew.example' % ch, 'level': 'may'},
     ['evil.example%snew.example' % shown, 'control character'])
    for ch, shown in LINE_BREAKS
] + [
    ({'destination': 'a.example none\nb.example', 'level': 'may'}, ['a.example none\\nb.example']),
    ({'destination': 'a.example\r\nb.example', 'level': 'may'}, ['a.example\\r\\nb.example']),
    ({'destination': 'exa mple.com', 'level': 'may'}, ["'exa mple.com'", 'whitespace']),
    ({'destination': 'a.example,b.example', 'level': 'may'}, ["'a.example,b.example'", 'comma']),
    ({'destination': '\tindented.example', 'level': 'may'}, ['indented.example', 'whitespace']),
    ({'destination': 'trailing.example ', 'level': 'may'}, ['trailing.example', 'whitespace']),
    ({'destination': '#comment.example', 'level': 'may'}, ['#comment.example']),
    ({'destination': 'a=b.example', 'level': 'may'}, ['a=b.example', "invalid character '='"]),
    ({'destination': '', 'level': 'may'}, ['destination']),
    ({'destination': 'l' * 64 + '.example', 'level': 'may'}, ['l' * 64, 'longer than 63 characters']),
    ({'destination': ('a' * 60 + '.') * 5 + 'com', 'level': 'may'}, ['longer than 255 characters']),
    ({'destination': '\u212aelvin.example', 'level': 'may'}, ['non-ASCII']),  # KELVIN SIGN
    ({'destination': 'a\u2028b.example', 'level': 'may'}, ['non-ASCII']),     # LINE SEPARATOR
    ({'destination': 'a\x85b.example', 'level': 'may'}, ['non-ASCII']),       # NEXT LINE (NEL)
    ({'destination': 'example.com.', 'level': 'may'}, ['trailing dot']),
    ({'destination': '[example.com', 'level': 'may'}, ['unbalanced']),
    ({'destination': '[ipv6:::1', 'level': 'may'}, ['unbalanced']),
    ({'destination': '[mx.example]:99999', 'level': 'may'}, ['99999']),
    ({'destination': ['a.example'], 'level': 'may'}, ["['a.example']"]),
    ({'destination': {'a.example': 'may'}, 'level': 'may'}, ['destination']),
    ({'destination': None, 'level': 'may'}, ['one of destination, entries, policies or policies_src is required']),
] + [
    ({'destination': payload, 'level': 'may'}, ['destination'])
    for payload in shell_payloads(CANARY)
]

LEVEL_CASES = [
    ({'destination': 'a.example', 'level': 'may\nb.example none'}, ['level']),
    ({'destination': 'a.example', 'level': 'may match=x'}, ['level']),
    ({'destination': 'a.example', 'level': 'may,ciphers=null'}, ['level']),
    ({'destination': 'a.example', 'level': 'MAY\x00'}, ['level']),
    ({'destination': 'a.example', 'level': 'strict'}, ['level', 'strict']),
    ({'destination': 'a.example', 'level': ''}, ['level']),
    ({'destination': 'a.example', 'level': ['may']}, ['level']),
    ({'destination': 'a.example', 'level': 5}, ['level']),
    ({'destination': 'a.example', 'level': '$(touch %s)' % CANARY}, ['level']),
    ({'destination': 'a.example', 'state': 'deleted'}, ['state', 'deleted']),
    ({'destination': 'a.example', 'state': 'absent\n'}, ['state']),
]

ATTRIBUTE_CASES = [
    # match: line breaks, separators and '=' would add tokens or entries
    ({'destination': 'a.example', 'level': 'secure', 'match': ['nexthop\nb.example none']}, ['match', 'nexthop\\nb.example none']),
    ({'destination': 'a.example', 'level': 'secure', 'match': ['nexthop\r']}, ['match', 'nexthop\\r']),
    ({'destination': 'a.example', 'level': 'secure', 'match': ['nexthop\x00']}, ['match', 'nexthop\\x00']),
    ({'destination': 'a.example', 'level': 'secure', 'match': ['mx.example ciphers=null']}, ['match', 'mx.example ciphers=null']),
    ({'destination': 'a.example', 'level': 'secure', 'match': ['x,ciphers=null']}, ['match', 'x,ciphers=null']),
    ({'destination': 'a.example', 'level': 'secure', 'match': ['a=b']}, ['match', 'a=b']),
    ({'destination': 'a.example', 'level': 'secure', 'match': ['a|b']}, ['match', 'a|b']),
    ({'destination': 'a.example', 'level': 'secure', 'match': ['{x}']}, ['match', '{x}']),
    ({'destination': 'a.example', 'level': 'secure', 'match': ['']}, ['match', 'empty']),
    ({'destination': 'a.example', 'level': 'secure', 'match': {'a': 1}}, ['match']),
    ({'destination': 'a.example', 'level': 'secure', 'match': ['$(touch %s)' % CANARY]}, ['match']),
    ({'destination': 'a.example', 'level': 'fingerprint', 'match': ['AB:CD\n[x]:25 none']}, ['match']),
    ({'destination': 'a.example', 'level': 'fingerprint', 'match': ['AB' * 32 + '|' + 'CD' * 32]}, ['match', '|']),
    # ciphers is a choice
    ({'destination': 'a.example', 'level': 'may', 'ciphers': 'high\n'}, ['ciphers']),
    ({'destination': 'a.example', 'level': 'may', 'ciphers': 'high exclude=x'}, ['ciphers']),
    ({'destination': 'a.example', 'level': 'may', 'ciphers': ['high']}, ['ciphers']),
    # protocols
    ({'destination': 'a.example', 'level': 'may', 'protocols': ['>=TLSv1.2\nb.example none']}, ['protocols']),
    ({'destination': 'a.example', 'level': 'may', 'protocols': ['>=TLSv1.2 ciphers=null']}, ['protocols']),
    ({'destination': 'a.example', 'level': 'may', 'protocols': ['TLSv1.2=x']}, ['protocols', 'TLSv1.2=x']),
    ({'destination': 'a.example', 'level': 'may', 'protocols': ['TLSv1.2\x00']}, ['protocols']),
    ({'destination': 'a.example', 'level': 'may', 'protocols': 1.2}, ['protocols', '1.2']),
    ({'destination': 'a.example', 'level': 'may', 'protocols': ['`touch %s`' % CANARY]}, ['protocols']),
    # exclude
    ({'destination': 'a.example', 'level': 'may', 'exclude': ['aNULL\nb.example none']}, ['exclude']),
    ({'destination': 'a.example', 'level': 'may', 'exclude': ['aNULL=x']}, ['exclude', 'aNULL=x']),
    ({'destination': 'a.example', 'level': 'may', 'exclude': ['a NULL']}, ['exclude', 'a NULL']),
    ({'destination': 'a.example', 'level': 'may', 'exclude': [';touch %s' % CANARY]}, ['exclude']),
    # tafile
    ({'destination': 'a.example', 'level': 'verify', 'tafile': ['/etc/ta.pem\nb.example none']}, ['tafile']),
    ({'destination': 'a.example', 'level': 'verify', 'tafile': ['/etc/ta pem']}, ['tafile', '/etc/ta pem']),
    ({'destination': 'a.example', 'level': 'verify', 'tafile': ['/etc/ta.pem,ciphers=null']}, ['tafile']),
    ({'destination': 'a.example', 'level': 'verify', 'tafile': ['relative.pem']}, ['tafile', 'absolute']),
    ({'destination': 'a.example', 'level': 'verify', 'tafile': ['/etc/ta\x00.pem']}, ['tafile']),
    ({'destination': 'a.example', 'level': 'verify', 'tafile': ['/etc/$(touch %s)' % CANARY]}, ['tafile']),
    # servername
    ({'destination': 'a.example', 'level': 'may', 'servername': 'mx.example\nb.example none'}, ['servername']),
    ({'destination': 'a.example', 'level': 'may', 'servername': 'mx.example match=x'}, ['servername']),
    ({'destination': 'a.example', 'level': 'may', 'servername': 'a=b'}, ['servername', 'a=b']),
    ({'destination': 'a.example', 'level': 'may', 'servername': 'mx,example'}, ['servername']),
    ({'destination': 'a.example', 'level': 'may', 'servername': 'mx.bücher.de'}, ['servername']),
    ({'destination': 'a.example', 'level': 'may', 'servername': ['mx.example']}, ['servername']),
    ({'destination': 'a.example', 'level': 'may', 'servername': '|touch %s' % CANARY}, ['servername']),
    # booleans
    ({'destination': 'a.example', 'level': 'may', 'connection_reuse': 'maybe'}, ['connection_reuse']),
    ({'destination': 'a.example', 'level': 'may', 'connection_reuse': 'yes\nb.example none'}, ['connection_reuse']),
    ({'destination': 'a.example', 'level': 'may', 'enable_rpk': [True]}, ['enable_rpk']),
    # an attribute at the wrong level is Postfix's own complaint
    ({'destination': 'a.example', 'level': 'none', 'ciphers': 'high'}, ['level none']),
]

ENTRIES_CASES = [
    ({'entries': 'a.example'}, ['dictionary requested']),     # ansible-core's own wording
    ({'entries': [5]}, ['entries']),
    ({'entries': [{'destination': 'a.example', 'level': 'may', 'bogus': 1}]}, ['bogus']),
    ({'entries': [{'level': 'may'}]}, ['destination']),
    ({'entries': [{'destination': 'ok.example', 'level': 'may'},
                  {'destination': 'bad.example\nx.example', 'level': 'may'}]},
     ['entries[2]', 'bad.example\\nx.example']),
    ({'entries': [{'destination': 'ok.example', 'level': 'may'},
                  {'destination': 'ok2.example', 'level': 'secure', 'match': ['a b']}]},
     ['entries[2]', "'a b'"]),
    ({'entries': [{'destination': 'a.example', 'level': 'may'},
                  {'destination': 'A.EXAMPLE', 'level': 'none'}]}, ['A.EXAMPLE', 'duplicates']),
    ({'entries': [{'destination': 'a.example', 'level': 'may', 'state': 'gone'}]}, ['state']),
    ({'entries': [{'destination': 'a.example', 'level': 'may'}], 'destination': 'b.example'},
     ['mutually exclusive']),
    ({'entries': [{'destination': 'a.example', 'level': 'may'}], 'level': 'may'}, ['entries', 'level']),
    ({'exclusive': True, 'entries': [{'destination': 'a.example', 'level': 'may'},
                                     {'destination': '$(touch %s)' % CANARY, 'level': 'may'}]},
     ['entries[2]']),
    ({'exclusive': 'maybe', 'entries': []}, ['exclusive']),
    ({'exclusive': True, 'destination': 'a.example', 'level': 'may'}, ['exclusive=true needs entries']),
]


def file_option_cases(sandbox):
    return [
        ({'destination': 'a.example', 'level': 'may', 'path': str(sandbox.tmp / 'no-such-dir' / 'map')},
         ['no-such-dir', 'does not exist']),
        ({'destination': 'a.example', 'level': 'may', 'path': str(sandbox.maps_dir)},
         [str(sandbox.maps_dir), 'not a regular file']),
        ({'destination': 'a.example', 'level': 'may', 'map_type': 'hash\n'}, ['map_type']),
        ({'destination': 'a.example', 'level': 'may', 'map_type': 'regexp'}, ['map_type', 'regexp']),
        ({'destination': 'a.example', 'level': 'may', 'map_type': 'lmdb'},
         ['lmdb', 'smtp_tls_policy_maps']),
        ({'destination': 'a.example', 'level': 'may', 'map_type': 'hash;touch %s' % CANARY}, ['map_type']),
        ({'destination': 'a.example', 'level': 'may', 'config_dir': str(sandbox.tmp / 'nowhere')},
         ['nowhere']),
        ({'destination': 'a.example', 'level': 'may', 'config_dir': str(sandbox.main_cf)}, ['main.cf']),
        ({'destination': 'a.example', 'level': 'may', 'config_dir': str(sandbox.tmp / '$(touch @CANARY@)')},
         ['touch']),
        ({'destination': 'a.example', 'level': 'may', 'backup': 'perhaps'}, ['backup']),
        ({'destination': 'a.example', 'level': 'may', 'unsafe_writes': 'perhaps'}, ['unsafe_writes']),
    ]


@pytest.mark.parametrize('group', ['destination', 'level', 'attributes', 'entries'])
def test_tls_policy_bad_input_fails_clearly_and_changes_nothing(sandbox, group):
    cases = {'destination': DESTINATION_CASES, 'level': LEVEL_CASES,
             'attributes': ATTRIBUTE_CASES, 'entries': ENTRIES_CASES}[group]
    assert_all_refused(sandbox, TLS_POLICY, cases)
    # (Postfix joins a continuation line keeping its leading whitespace)
    assert sandbox.dump() == {'partner.example': 'secure    match=nexthop:dot-nexthop',
                              '[relay.example.net]:587': 'encrypt', '[127.0.0.1]:10025': 'none'}


def test_tls_policy_bad_file_options_fail_clearly_and_change_nothing(sandbox):
    assert_all_refused(sandbox, TLS_POLICY, file_option_cases(sandbox))


def test_tls_policy_bad_input_in_check_mode_fails_the_same_way(sandbox):
    """Validation does not depend on check mode: --check reports the same errors."""
    cases = [DESTINATION_CASES[0], ATTRIBUTE_CASES[0], ENTRIES_CASES[4]]
    canary = str(sandbox.canary)
    before = sandbox.snapshot()
    results, dummy = sandbox.playbook([sandbox.task(TLS_POLICY, substitute(args, canary)) for args, dummy in cases],
                                      check=True)
    for (args, fragments), result in zip(cases, results):
        assert_failed(result, *fragments)
    assert_unchanged(before, sandbox.snapshot())


def test_tls_policy_hostile_directory_and_file_names_never_reach_a_shell(tmp_path, make_sandbox):
    canary = tmp_path / 'PWNED'
    # (no "$" in the config directory: Postfix itself expands config_directory)
    confdir = tmp_path / ('conf `touch %s`;x' % canary)
    # no whitespace in the table's path: main.cf could not name it in smtp_tls_policy_maps
    maps_dir = tmp_path / ('maps;`touch${IFS}%s`|x&y' % canary)
    sandbox = make_sandbox(confdir=confdir, maps_dir=maps_dir)
    path = maps_dir / "policy$(touch${IFS}PWNED)'q'>x.map"
    result = sandbox.tls_policy({'entries': [
        {'destination': 'a.example', 'level': 'encrypt'},
        {'destination': '[127.0.0.1]:10025', 'level': 'none'},
    ], 'path': str(path), 'map_type': 'hash'})
    assert result.get('failed') is not True, why(result)
    assert result['changed'] is True and result['postmap_ran'] is True
    assert path.read_text() == 'a.example encrypt\n[127.0.0.1]:10025 none\n'
    assert sandbox.dump('hash:%s' % path) == {'a.example': 'encrypt', '[127.0.0.1]:10025': 'none'}
    assert not canary.exists() and not (maps_dir / 'PWNED').exists() and not (tmp_path / 'PWNED').exists()
    assert sorted(os.listdir(str(maps_dir))) == sorted([path.name, path.name + '.db'])


def test_tls_policy_accepted_odd_values_add_exactly_one_entry(sandbox):
    """Values that pass validation although they look odd are written as one entry each."""
    tafile = sandbox.tmp / 'ta' / ';`id`|x&$(id).pem'       # it must exist: Postfix opens it
    tafile.parent.mkdir()
    tafile.write_text('trust anchor\n')
    results, dummy = sandbox.playbook([
        sandbox.task(TLS_POLICY, {'destination': 'xn--bcher-kva.de', 'level': 'may'}, ignore_errors=False),
        sandbox.task(TLS_POLICY, {'destination': 'Mixed.Case.Example', 'level': 'encrypt'}, ignore_errors=False),
        sandbox.task(TLS_POLICY, {'destination': 't.example', 'level': 'verify',
                                  'tafile': [str(tafile)]}, ignore_errors=False),
        sandbox.task(TLS_POLICY, {'destination': 'p.example', 'level': 'may',
                                  'protocols': '!SSLv2,!SSLv3'}, ignore_errors=False),
        sandbox.task(TLS_POLICY, {'destination': '[ipv6:2001:db8::1]:587', 'level': 'secure',
                                  'match': ['mx.example', '.example'], 'servername': 'hostname'},
                     ignore_errors=False),
    ])
    assert all(r['changed'] for r in results), [why(r) for r in results]
    dump = sandbox.dump()
    assert set(dump) == SEEDED_KEYS | {'xn--bcher-kva.de', 'mixed.case.example', 't.example', 'p.example',
                                       '[ipv6:2001:db8::1]:587'}
    assert dump['mixed.case.example'] == 'encrypt'
    assert dump['p.example'] == 'may protocols=!SSLv2:!SSLv3'
    assert dump['t.example'] == 'verify tafile=%s' % tafile
    assert dump['[ipv6:2001:db8::1]:587'] == 'secure match=mx.example:.example servername=hostname'
    assert not sandbox.canary.exists()


def test_tls_policy_utf8_names_are_written_verbatim_as_one_entry(sandbox):
    """UTF-8 domains are legal keys (Postfix converts no lookup key to A-labels: the module warns
    that the A-label spelling needs its own entry); Postfix converts UTF-8 match names itself."""
    results, dummy = sandbox.playbook([
        sandbox.task(TLS_POLICY, {'destination': 'bücher.de', 'level': 'may'}, ignore_errors=False),
        sandbox.task(TLS_POLICY, {'destination': 'ехаmple.com', 'level': 'may'},       # Cyrillic letters
                     ignore_errors=False),
        sandbox.task(TLS_POLICY, {'destination': 'a.example', 'level': 'secure', 'match': ['mx.bücher.de']},
                     ignore_errors=False),
    ])
    assert all(r['changed'] for r in results), [why(r) for r in results]
    assert 'xn--bcher-kva.de' in warnings_of(results[0])
    assert 'xn--mple-43d3a6i.com' in warnings_of(results[1])
    dump = sandbox.dump()
    assert set(dump) == SEEDED_KEYS | {'bücher.de', 'ехаmple.com', 'a.example'}
    assert dump['bücher.de'] == dump['ехаmple.com'] == 'may'
    assert dump['a.example'] == 'secure match=mx.bücher.de'
    assert not sandbox.canary.exists()


# ---------------------------------------------------------------------------
# bugs found by these tests (fixed; kept as regression tests)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('option, fragment', [
    ({'owner': 'no-such-user-r8'}, 'no-such-user-r8'),
    ({'group': 'no-such-group-r8'}, 'no-such-group-r8'),
    ({'mode': 'rwx-bogus'}, 'mode'),
])
def test_tls_policy_invalid_owner_group_or_mode_changes_nothing(sandbox, option, fragment):
    before = sandbox.snapshot()
    args = {'destination': 'new.example', 'level': 'encrypt'}
    args.update(option)
    result = sandbox.tls_policy(args)
    assert_unchanged(before, sandbox.snapshot())
    assert_failed(result, fragment)


@pytest.mark.parametrize('target', ['main.cf', 'master.cf', 'index'])
def test_tls_policy_refuses_to_edit_main_cf_master_cf_or_an_index_as_a_table(sandbox, target):
    path = {'main.cf': sandbox.main_cf, 'master.cf': sandbox.master_cf, 'index': sandbox.index_files()[0]}[target]
    before = sandbox.snapshot()
    result = sandbox.tls_policy({'destination': 'new.example', 'level': 'encrypt', 'path': str(path)})
    assert_unchanged(before, sandbox.snapshot())
    assert sandbox.postconf_works()
    assert_failed(result, str(path))


def _names_under(top, fragment):
    found = []
    for root, dirnames, filenames in os.walk(str(top)):
        found.extend(os.path.join(root, n) for n in dirnames + filenames if fragment in n)
    return found


def test_tls_policy_refuses_a_relative_path(sandbox):
    # (was a bug: the index landed in the module's working directory; fixed in 037338c)
    before = sandbox.snapshot()
    result = sandbox.tls_policy({'destination': 'new.example', 'level': 'encrypt', 'path': 'relative-policy.map'})
    assert _names_under(sandbox.tmp, 'relative-policy') == []
    assert_unchanged(before, sandbox.snapshot())
    assert_failed(result, 'relative-policy.map', 'absolute')


def test_tls_policy_refuses_a_path_with_a_line_break(sandbox):
    before = sandbox.snapshot()
    result = sandbox.tls_policy({'destination': 'new.example', 'level': 'encrypt',
                                 'path': str(sandbox.maps_dir / 'x\ny.map')})
    assert_unchanged(before, sandbox.snapshot())
    assert_failed(result, 'path')
