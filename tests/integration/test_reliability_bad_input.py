# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad input matrix for both modules, run through the real ansible-playbook.

For every option of mailgw.postfix_tls.tls_policy and mailgw.postfix_tls.postconf,
hostile and malformed values (line breaks, NUL, shell metacharacters, ``=`` and
``,``, spaces, over-long and non-ASCII names, wrong types) must

* fail with a message that names the offending value or option,
* leave every file of the config and maps directories byte-identical (same
  bytes, mode, owner, inode and mtime: nothing was even rewritten), and
* never reach a shell: a canary file that any of the payloads would create if
  a shell ran it must not exist afterwards.

Each group of cases is one playbook (tasks with ignore_errors), so the matrix
costs one Ansible start-up per group.  Values that are legitimate although
they look hostile (``=`` and ``,`` in a main.cf value, shell metacharacters in
a file name) are accepted and must land literally, as exactly one table entry
or one main.cf line.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess

import pytest

from reliability_helpers import (
    HAVE_POSTFIX,
    POSTCONF,
    TLS_POLICY,
    Sandbox,
    assert_failed,
    assert_unchanged,
    crashed,
    why,
)

pytestmark = pytest.mark.skipif(not HAVE_POSTFIX, reason='needs the host postconf and postmap')

SEEDED = (
    '# TLS policy (hand-maintained part)\n'
    '\n'
    'partner.example   secure\n'
    '    match=nexthop:dot-nexthop\n'
    '[relay.example.net]:587\tencrypt\n'
    '[127.0.0.1]:10025 none\n'
)
SEEDED_KEYS = {'partner.example', '[relay.example.net]:587', '[127.0.0.1]:10025'}

CANARY = '@CANARY@'     # replaced by the sandbox's canary path in every value


def shell_payloads(canary):
    """Strings that create CANARY if any shell ever interprets them."""
    return [
        '$(touch %s)' % canary,
        '`touch %s`' % canary,
        ';touch %s' % canary,
        '|touch %s' % canary,
        '&&touch %s' % canary,
        '>%s' % canary,
        'x$(touch${IFS}%s)' % canary,
    ]


@pytest.fixture
def box(tmp_path):
    return Sandbox(tmp_path).seed(SEEDED)


def substitute(value, canary):
    if isinstance(value, str):
        return value.replace(CANARY, canary)
    if isinstance(value, list):
        return [substitute(v, canary) for v in value]
    if isinstance(value, dict):
        return dict((substitute(k, canary), substitute(v, canary)) for k, v in value.items())
    return value


def run_matrix(box, module, cases, base=None):
    """Run every case as one task of one playbook; assert failure, fragments, nothing changed."""
    canary = str(box.canary)
    before = box.snapshot()
    tasks = []
    for args, dummy in cases:
        merged = dict(base or {})
        merged.update(substitute(args, canary))
        tasks.append(box.task(module, merged))
    results = box.playbook(tasks)
    assert len(results) == len(cases)
    problems = []
    for (args, fragments), result in zip(cases, results):
        if result.get('failed') is not True:
            problems.append('accepted: %r -> %r' % (args, result))
            continue
        msg = result.get('msg', '')
        missing = [f for f in substitute(fragments, canary) if f not in msg]
        if missing:
            problems.append('%r: message %r lacks %r' % (args, msg, missing))
        if crashed(result):
            problems.append('%r: crashed instead of a clear error: %r' % (args, msg))
    assert not problems, '\n'.join(problems)
    assert_unchanged(before, box.snapshot())
    assert not box.canary.exists(), 'a value reached a shell'
    return results


# ---------------------------------------------------------------------------
# tls_policy
# ---------------------------------------------------------------------------

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
    ({'destination': 'a=b.example', 'level': 'may'}, ['a=b.example', 'not a valid DNS label']),
    ({'destination': '', 'level': 'may'}, ['destination']),
    ({'destination': 'l' * 64 + '.example', 'level': 'may'}, ['l' * 64, 'at most 63']),
    ({'destination': ('a' * 60 + '.') * 5 + 'com', 'level': 'may'}, ['longer than 253']),
    ({'destination': 'bücher.de', 'level': 'may'}, ['bücher.de', 'xn--bcher-kva.de']),
    ({'destination': 'ехаmple.com', 'level': 'may'}, ['non-ASCII']),          # Cyrillic homoglyphs
    ({'destination': '\u212aelvin.example', 'level': 'may'}, ['non-ASCII']),  # KELVIN SIGN
    ({'destination': 'a\u2028b.example', 'level': 'may'}, ['non-ASCII']),     # LINE SEPARATOR
    ({'destination': 'a\x85b.example', 'level': 'may'}, ['non-ASCII']),       # NEXT LINE (NEL)
    ({'destination': 'example.com.', 'level': 'may'}, ['ends with a dot']),
    ({'destination': '[example.com', 'level': 'may'}, ['unbalanced']),
    ({'destination': '[ipv6:::1', 'level': 'may'}, ['unbalanced']),
    ({'destination': '[mx.example]:99999', 'level': 'may'}, ['99999']),
    ({'destination': ['a.example'], 'level': 'may'}, ["['a.example']"]),
    ({'destination': {'a.example': 'may'}, 'level': 'may'}, ['destination']),
    ({'destination': None, 'level': 'may'}, ['one of destination or entries is required']),
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
    ({'destination': 'a.example', 'level': 'secure', 'match': ['mx.bücher.de']}, ['match', 'mx.bücher.de']),
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


def file_option_cases(box):
    return [
        ({'destination': 'a.example', 'level': 'may', 'path': str(box.tmp / 'no-such-dir' / 'map')},
         ['no-such-dir', 'does not exist']),
        ({'destination': 'a.example', 'level': 'may', 'path': str(box.maps_dir)},
         [str(box.maps_dir), 'not a regular file']),
        ({'destination': 'a.example', 'level': 'may', 'map_type': 'hash\n'}, ['map_type']),
        ({'destination': 'a.example', 'level': 'may', 'map_type': 'regexp'}, ['map_type', 'regexp']),
        ({'destination': 'a.example', 'level': 'may', 'map_type': 'lmdb'},
         ['lmdb', 'smtp_tls_policy_maps']),
        ({'destination': 'a.example', 'level': 'may', 'map_type': 'hash;touch %s' % CANARY}, ['map_type']),
        ({'destination': 'a.example', 'level': 'may', 'config_dir': str(box.tmp / 'nowhere')},
         ['nowhere']),
        ({'destination': 'a.example', 'level': 'may', 'config_dir': str(box.main_cf)}, ['main.cf']),
        ({'destination': 'a.example', 'level': 'may', 'config_dir': str(box.tmp / '$(touch @CANARY@)')},
         ['touch']),
        ({'destination': 'a.example', 'level': 'may', 'backup': 'perhaps'}, ['backup']),
        ({'destination': 'a.example', 'level': 'may', 'unsafe_writes': 'perhaps'}, ['unsafe_writes']),
    ]


@pytest.mark.parametrize('group', ['destination', 'level', 'attributes', 'entries'])
def test_tls_policy_bad_input_fails_clearly_and_changes_nothing(box, group):
    cases = {'destination': DESTINATION_CASES, 'level': LEVEL_CASES,
             'attributes': ATTRIBUTE_CASES, 'entries': ENTRIES_CASES}[group]
    run_matrix(box, TLS_POLICY, cases)
    # (Postfix joins a continuation line keeping its leading whitespace)
    assert box.dump() == {'partner.example': 'secure    match=nexthop:dot-nexthop',
                          '[relay.example.net]:587': 'encrypt', '[127.0.0.1]:10025': 'none'}


def test_tls_policy_bad_file_options_fail_clearly_and_change_nothing(box):
    run_matrix(box, TLS_POLICY, file_option_cases(box))


def test_tls_policy_bad_input_in_check_mode_fails_the_same_way(box):
    """Validation does not depend on check mode: --check reports the same errors."""
    cases = [DESTINATION_CASES[0], ATTRIBUTE_CASES[0], ENTRIES_CASES[4]]
    canary = str(box.canary)
    before = box.snapshot()
    results = box.playbook([box.task(TLS_POLICY, substitute(args, canary)) for args, dummy in cases],
                           check=True)
    for (args, fragments), result in zip(cases, results):
        assert_failed(result, *fragments)
    assert_unchanged(before, box.snapshot())


# ---------------------------------------------------------------------------
# postconf
# ---------------------------------------------------------------------------

NAME_CASES = [
    ({'name': '', 'value': 'x'}, ['parameter name']),
    ({'name': 'smtpd_banner\nrelayhost', 'value': 'x'}, ['invalid parameter name', 'smtpd_banner\\nrelayhost']),
    ({'name': 'smtpd_banner\n', 'value': 'x'}, ['invalid parameter name']),
    ({'name': 'smtpd_banner\r', 'value': 'x'}, ['invalid parameter name']),
    ({'name': 'smtpd_banner\x00', 'value': 'x'}, ['invalid parameter name']),
    ({'name': 'smtpd_banner=relayhost', 'value': 'x'}, ['invalid parameter name', 'smtpd_banner=relayhost']),
    ({'name': 'smtpd banner', 'value': 'x'}, ['invalid parameter name', 'smtpd banner']),
    ({'name': 'smtpd-banner', 'value': 'x'}, ['invalid parameter name']),
    ({'name': 'smtp_tls_sécurity_level', 'value': 'may'}, ['invalid parameter name']),
    ({'name': 'smtp_tls_security_leve\u212a', 'value': 'may'}, ['invalid parameter name']),
    ({'name': 'x' * 5000, 'value': 'x'}, ['unknown Postfix parameter']),
    ({'name': 'smtp_tls_securty_level', 'value': 'may'}, ['did you mean', 'smtp_tls_security_level']),
    ({'name': ['smtpd_banner'], 'value': 'x'}, ['invalid parameter name']),
    ({'name': {'smtpd_banner': 'x'}, 'value': 'x'}, ['name']),
] + [
    ({'name': payload, 'value': 'x'}, ['invalid parameter name'])
    for payload in shell_payloads(CANARY)
]

VALUE_CASES = [
    ({'name': 'smtp_tls_security_level', 'value': 'may\nsmtp_tls_security_level = none'},
     ['smtp_tls_security_level', 'newline']),
    ({'name': 'smtpd_banner', 'value': 'x\nrelayhost = [evil.example]'}, ['smtpd_banner', 'newline']),
    ({'name': 'smtpd_banner', 'value': 'x\r\nrelayhost = [evil.example]'}, ['smtpd_banner']),
    ({'name': 'smtpd_banner', 'value': 'x\rrelayhost = [evil.example]'}, ['smtpd_banner', 'carriage return']),
    ({'name': 'smtpd_banner', 'value': 'x\x00y'}, ['smtpd_banner', 'NUL']),
    ({'name': 'smtpd_banner', 'value': '\nrelayhost = [evil.example]'}, ['smtpd_banner', 'newline']),
    ({'name': 'smtpd_banner', 'value': 'x\n'}, ['smtpd_banner', 'newline']),
    ({'name': 'smtpd_banner', 'value': {'a': 1}}, ['smtpd_banner', 'dict']),
    ({'name': 'mynetworks', 'value': [['127.0.0.0/8']]}, ['mynetworks', 'list items']),
    ({'name': 'mynetworks', 'value': [None]}, ['mynetworks', 'list items']),
    ({'name': 'mynetworks', 'value': ['127.0.0.0/8', '']}, ['mynetworks', 'empty']),
    ({'name': 'mynetworks', 'value': ['127.0.0.0/8', '10.0.0.0/8\nrelayhost = x']}, ['mynetworks', 'newline']),
    ({'name': 'smtpd_banner'}, ['value is required']),
    ({'value': 'x'}, ['name']),
]

PARAMS_CASES = [
    ({'params': 'garbage'}, ['params']),
    ({'params': ['smtpd_banner']}, ['params']),
    ({'params': {}}, ['at least one']),
    ({'params': {'smtpd_banner\nrelayhost': 'x'}}, ['invalid parameter name']),
    ({'params': {'smtpd_banner=x': 'y'}}, ['invalid parameter name']),
    ({'params': {'smtpd_banner': {'x': 1}}}, ['smtpd_banner', 'dict']),
    ({'params': {'smtpd_banner': None}}, ['smtpd_banner', 'null']),
    ({'params': {'smtp_tls_security_level': 'encrypt', 'smtpd_banner': 'x\nrelayhost = y'}},
     ['smtpd_banner', 'newline']),
    ({'params': {'smtp_tls_security_level': 'encrypt', '$(touch %s)' % CANARY: 'y'}},
     ['invalid parameter name']),
    ({'params': {'smtpd_banner': 'x'}, 'name': 'smtpd_banner', 'value': 'y'}, ['mutually exclusive']),
]

SERVICE_CASES = [
    ({'service': 'smtp', 'name': 'smtpd_tls_security_level', 'value': 'none'}, ['SERVICE/TYPE']),
    ({'service': 'smtp/inet\n', 'name': 'smtpd_tls_security_level', 'value': 'none'}, ['service']),
    ({'service': 'smtp\n/inet', 'name': 'smtpd_tls_security_level', 'value': 'none'}, ['service']),
    ({'service': '/inet', 'name': 'smtpd_tls_security_level', 'value': 'none'}, ['service']),
    ({'service': 'smtp/bogus', 'name': 'smtpd_tls_security_level', 'value': 'none'}, ['bogus']),
    ({'service': 'smtp/inet/x', 'name': 'smtpd_tls_security_level', 'value': 'none'}, ['service']),
    ({'service': 'smtp x/inet', 'name': 'smtpd_tls_security_level', 'value': 'none'}, ['service']),
    ({'service': 'nosuch/inet', 'name': 'smtpd_tls_security_level', 'value': 'none'}, ['not found']),
    ({'service': '$(touch %s)/inet' % CANARY, 'name': 'smtpd_tls_security_level', 'value': 'none'},
     ['service']),
    ({'service': '`id`;x|y/inet', 'name': 'smtpd_tls_security_level', 'value': 'none'}, ['not found']),
    ({'service': 'smtp/inet', 'name': 'smtpd_tls_security_level', 'value': 'none -o content_filter=x'},
     ['whitespace']),
    ({'service': 'smtp/inet', 'name': 'smtpd_tls_security_level', 'value': 'none\n  -o x=y'},
     ['newline']),
    ({'service': 'smtp/inet', 'name': 'smtpd_tls_security_level', 'value': 'none\tx'}, ['whitespace']),
    ({'service': ['smtp/inet'], 'name': 'smtpd_tls_security_level', 'value': 'none'}, ['service']),
]


def postconf_other_cases(box):
    return [
        ({'name': 'smtpd_banner', 'value': 'x', 'state': 'gone'}, ['state']),
        ({'name': 'smtpd_banner', 'value': 'x', 'allow_unknown': 'perhaps'}, ['allow_unknown']),
        ({'name': 'smtpd_banner', 'value': 'x', 'config_dir': str(box.tmp / 'nowhere')},
         ['nowhere', 'does not exist']),
        ({'name': 'smtpd_banner', 'value': 'x', 'config_dir': str(box.main_cf)}, ['main.cf']),
        ({'name': 'smtpd_banner', 'value': 'x', 'config_dir': str(box.maps_dir)},
         [str(box.maps_dir / 'main.cf'), 'does not exist']),
        ({'name': 'smtpd_banner', 'value': 'x', 'config_dir': str(box.tmp / ';touch @CANARY@')},
         ['does not exist']),
        ({'name': 'smtpd_banner', 'value': 'x', 'bogus_option': 1}, ['bogus_option']),
    ]


@pytest.mark.parametrize('group', ['name', 'value', 'params', 'service'])
def test_postconf_bad_input_fails_clearly_and_changes_nothing(box, group):
    cases = {'name': NAME_CASES, 'value': VALUE_CASES, 'params': PARAMS_CASES,
             'service': SERVICE_CASES}[group]
    before = box.explicit_main_cf()
    run_matrix(box, POSTCONF, cases)
    assert box.explicit_main_cf() == before


def test_postconf_bad_other_options_fail_clearly_and_change_nothing(box):
    run_matrix(box, POSTCONF, postconf_other_cases(box))


# ---------------------------------------------------------------------------
# hostile-looking values that are legitimate: they land literally, once
# ---------------------------------------------------------------------------

def test_postconf_shell_metacharacters_equals_and_commas_are_written_literally(box):
    canary = str(box.canary)
    values = [
        '`touch %s`' % canary,
        ';touch %s' % canary,
        '|touch %s' % canary,
        '&&touch %s' % canary,
        '>%s' % canary,
        '$$(touch %s)' % canary,            # "$$" is a literal dollar sign for Postfix
        'a=b, c=d',                         # '=' and ',' inside a value
        'x # not a comment',
        '$myhostname ESMTP; rm -rf %s' % box.confdir,
        '"quoted" \'single\' \\backslash',
        'mail gateway \u00e9\u00e8 \u4e2d\u6587',   # UTF-8 is fine in a banner
    ]
    before = box.explicit_main_cf()
    tasks = []
    for value in values:
        tasks.append(box.task(POSTCONF, {'name': 'smtpd_banner', 'value': value}, ignore_errors=False))
        tasks.append(box.task(POSTCONF, {'name': 'smtpd_banner', 'value': value}, ignore_errors=False))
    results = box.playbook(tasks)
    assert len(results) == len(tasks), why(results[-1])
    for index, value in enumerate(values):
        first, second = results[2 * index], results[2 * index + 1]
        assert first['changed'] is True and first['params']['smtpd_banner']['after'] == value, why(first)
        assert second['changed'] is False, (value, why(second))    # read back exactly as written
    assert not box.canary.exists(), 'a value reached a shell'
    assert box.confdir.is_dir()
    after = box.explicit_main_cf()
    assert after.pop('smtpd_banner') == values[-1]
    assert after == before                                      # no second line, nothing else touched
    lines = [line for line in box.main_cf.read_text().splitlines() if line.startswith('smtpd_banner')]
    assert len(lines) == 1


def test_postconf_service_override_with_equals_and_comma_is_one_override(box):
    results = box.playbook([
        box.task(POSTCONF, {'service': '127.0.0.1:10026/inet', 'name': 'smtpd_client_restrictions',
                            'value': 'permit_mynetworks,reject'}, ignore_errors=False),
        box.task(POSTCONF, {'service': '127.0.0.1:10026/inet', 'name': 'content_filter',
                            'value': 'a=b'}, ignore_errors=False),
    ])
    assert [r['changed'] for r in results] == [True, True], results
    proc = subprocess.run(['/usr/sbin/postconf', '-c', str(box.confdir), '-P'],
                          capture_output=True, text=True, check=True)
    overrides = sorted(line for line in proc.stdout.splitlines() if line.startswith('127.0.0.1:10026/inet/'))
    assert overrides == ['127.0.0.1:10026/inet/content_filter = a=b',
                         '127.0.0.1:10026/inet/smtpd_client_restrictions = permit_mynetworks,reject',
                         '127.0.0.1:10026/inet/smtpd_tls_security_level = none']
    assert not box.canary.exists()


def test_tls_policy_hostile_directory_and_file_names_never_reach_a_shell(tmp_path):
    canary = tmp_path / 'PWNED'
    # (no "$" in the config directory: Postfix itself expands config_directory)
    confdir = tmp_path / ('conf `touch %s`;x' % canary)
    # no whitespace in the table's path: main.cf could not name it in smtp_tls_policy_maps
    maps_dir = tmp_path / ('maps;`touch${IFS}%s`|x&y' % canary)
    box = Sandbox(tmp_path, confdir=confdir, maps_dir=maps_dir)
    path = maps_dir / "policy$(touch${IFS}PWNED)'q'>x.map"
    result = box.tls_policy({'entries': [
        {'destination': 'a.example', 'level': 'encrypt'},
        {'destination': '[127.0.0.1]:10025', 'level': 'none'},
    ], 'path': str(path), 'map_type': 'hash'})
    assert result.get('failed') is not True, why(result)
    assert result['changed'] is True and result['postmap_ran'] is True
    assert path.read_text() == 'a.example encrypt\n[127.0.0.1]:10025 none\n'
    assert box.dump('hash:%s' % path) == {'a.example': 'encrypt', '[127.0.0.1]:10025': 'none'}
    assert not canary.exists() and not (maps_dir / 'PWNED').exists() and not (tmp_path / 'PWNED').exists()
    assert sorted(os.listdir(str(maps_dir))) == sorted([path.name, path.name + '.db'])


def test_tls_policy_accepted_odd_values_add_exactly_one_entry(box):
    """Values that pass validation although they look odd are written as one entry each."""
    results = box.playbook([
        box.task(TLS_POLICY, {'destination': 'xn--bcher-kva.de', 'level': 'may'}, ignore_errors=False),
        box.task(TLS_POLICY, {'destination': 'Mixed.Case.Example', 'level': 'encrypt'}, ignore_errors=False),
        box.task(TLS_POLICY, {'destination': 't.example', 'level': 'verify',
                              'tafile': ['/etc/ta/;`id`|x&$(id).pem']}, ignore_errors=False),
        box.task(TLS_POLICY, {'destination': 'p.example', 'level': 'may',
                              'protocols': '!SSLv2,!SSLv3'}, ignore_errors=False),
        box.task(TLS_POLICY, {'destination': '[ipv6:2001:db8::1]:587', 'level': 'secure',
                              'match': ['mx.example', '.example'], 'servername': 'hostname'},
                 ignore_errors=False),
    ])
    assert all(r['changed'] for r in results), [why(r) for r in results]
    dump = box.dump()
    assert set(dump) == SEEDED_KEYS | {'xn--bcher-kva.de', 'mixed.case.example', 't.example', 'p.example',
                                       '[ipv6:2001:db8::1]:587'}
    assert dump['mixed.case.example'] == 'encrypt'
    assert dump['p.example'] == 'may protocols=!SSLv2:!SSLv3'
    assert dump['t.example'] == 'verify tafile=/etc/ta/;`id`|x&$(id).pem'
    assert dump['[ipv6:2001:db8::1]:587'] == 'secure match=mx.example:.example servername=hostname'
    assert not box.canary.exists()


# ---------------------------------------------------------------------------
# bugs found by these tests (fixed; kept as regression tests)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('option, fragment', [
    ({'owner': 'no-such-user-r8'}, 'no-such-user-r8'),
    ({'group': 'no-such-group-r8'}, 'no-such-group-r8'),
    ({'mode': 'rwx-bogus'}, 'mode'),
])
def test_tls_policy_invalid_owner_group_or_mode_changes_nothing(box, option, fragment):
    before = box.snapshot()
    args = {'destination': 'new.example', 'level': 'encrypt'}
    args.update(option)
    result = box.tls_policy(args)
    assert_unchanged(before, box.snapshot())
    assert_failed(result, fragment)


@pytest.mark.parametrize('target', ['main.cf', 'master.cf', 'index'])
def test_tls_policy_refuses_to_edit_main_cf_master_cf_or_an_index_as_a_table(box, target):
    path = {'main.cf': box.main_cf, 'master.cf': box.master_cf, 'index': box.index_files()[0]}[target]
    before = box.snapshot()
    result = box.tls_policy({'destination': 'new.example', 'level': 'encrypt', 'path': str(path)})
    assert_unchanged(before, box.snapshot())
    assert box.postconf_works()
    assert_failed(result, str(path))


def _names_under(top, fragment):
    found = []
    for root, dirnames, filenames in os.walk(str(top)):
        found.extend(os.path.join(root, n) for n in dirnames + filenames if fragment in n)
    return found


def test_tls_policy_refuses_a_relative_path(box):
    # (was a bug: the index landed in the module's working directory; fixed in 037338c)
    before = box.snapshot()
    result = box.tls_policy({'destination': 'new.example', 'level': 'encrypt', 'path': 'relative-policy.map'})
    assert _names_under(box.tmp, 'relative-policy') == []
    assert_unchanged(before, box.snapshot())
    assert_failed(result, 'relative-policy.map', 'absolute')


def test_tls_policy_refuses_a_path_with_a_line_break(box):
    before = box.snapshot()
    result = box.tls_policy({'destination': 'new.example', 'level': 'encrypt',
                             'path': str(box.maps_dir / 'x\ny.map')})
    assert_unchanged(before, box.snapshot())
    assert_failed(result, 'path')


@pytest.mark.parametrize('value', ['$(touch %s)' % CANARY, '${unclosed'])
def test_postconf_refuses_a_value_postfix_cannot_expand(box, value):
    value = substitute(value, str(box.canary))
    before = box.snapshot()
    result = box.postconf({'name': 'smtpd_banner', 'value': value})
    assert not box.canary.exists()
    assert box.postconf_works(), 'main.cf left broken'
    assert_unchanged(before, box.snapshot())
    assert_failed(result, 'smtpd_banner')


@pytest.mark.parametrize('char', ['\x0c', '\x85', '\u2028'])
def test_postconf_value_with_a_unicode_line_break_is_refused_or_round_trips(box, char):
    value = 'gw%srelayhost = [evil.example]' % char
    before = box.snapshot()
    results = box.playbook([box.task(POSTCONF, {'name': 'smtpd_banner', 'value': value}),
                            box.task(POSTCONF, {'name': 'smtpd_banner', 'value': value})])
    first, second = results
    if first.get('failed'):
        assert 'reported success' not in first['msg'], why(first)
        assert_unchanged(before, box.snapshot())
    else:
        assert second.get('failed') is not True and second['changed'] is False, why(second)
        assert box.postconf_h('smtpd_banner') == value
    assert 'relayhost' not in box.explicit_main_cf()


def test_postconf_is_not_fooled_by_a_phantom_line_in_main_cf(box):
    box.main_cf.write_text(box.main_cf_text(
        'smtp_tls_security_level = may\n'
        'smtpd_banner = gw\u2028smtp_tls_security_level = encrypt\n'))
    assert box.postconf_h('smtp_tls_security_level') == 'may'
    result = box.postconf({'name': 'smtp_tls_security_level', 'value': 'encrypt'})
    assert box.postconf_h('smtp_tls_security_level') == 'encrypt', why(result)


def test_postconf_handles_a_main_cf_that_is_not_utf8(box):
    latin1 = b'# Gr\xfc\xdfe aus M\xfcnchen (Latin-1)\n'
    box.main_cf.write_bytes(box.main_cf.read_bytes() + latin1)
    result = box.postconf({'name': 'smtpd_banner', 'value': 'gateway'})
    assert result.get('failed') is not True, why(result)
    assert latin1 in box.main_cf.read_bytes()
    assert box.postconf_h('smtpd_banner') == 'gateway'
