# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile and malformed input to mailgw.postfix_tls.postconf is refused, and changes nothing.

Each group of cases runs as one play of the real ``ansible-playbook``
(``postfix_sandbox.assert_all_refused``: every task must fail naming the value
or option, the directories stay byte-identical, no shell ever sees a value);
single calls run the module directly (``sandbox.postconf``).

Covered: name, value, params and service, and the other options
(state, allow_unknown, config_dir).  Values that look hostile but are
legitimate (``=`` and ``,`` in a value, shell metacharacters in a banner) are
accepted and must land literally, as exactly one main.cf line or master.cf
override read back with ``postconf -n`` / ``postconf -P``.
"""

import pytest

from postfix_sandbox import (CANARY, POSTCONF, assert_all_refused, assert_failed, assert_unchanged, needs_postfix,
                             shell_payloads, substitute, why)

pytestmark = needs_postfix


NAME_CASES = [
    ({'name': '', 'value': 'x'}, ['parameter name']),
    ({'name': 'smtpd_banner\nrelayhost', 'value': 'x'}, ['invalid parameter name', 'smtpd_banner\\nrelayhost']),
    ({'name': 'smtpd_banner\n', 'value': 'x'}, ['invalid parameter name']),
    ({'name': 'smtpd_banner\r', 'value': 'x'}, ['invalid parameter name']),
    ({'name': 'smtpd_banner\x00', 'value': 'x'}, ['invalid parameter name']),
    ({'name': 'smtpd_banner=relayhost', 'value': 'x'}, ['invalid parameter name', 'smtpd_banner=relayhost']),
    ({'name': 'smtpd banner', 'value': 'x'}, ['invalid parameter name', 'smtpd banner']),
    ({'name': 'smtpd-banner', 'value': 'x'}, ["unknown Postfix parameter 'smtpd-banner'"]),
    ({'name': '-smtpd_banner', 'value': 'x'}, ['invalid parameter name']),
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


def postconf_other_cases(sandbox):
    return [
        ({'name': 'smtpd_banner', 'value': 'x', 'state': 'gone'}, ['state']),
        ({'name': 'smtpd_banner', 'value': 'x', 'allow_unknown': 'perhaps'}, ['allow_unknown']),
        ({'name': 'smtpd_banner', 'value': 'x', 'config_dir': str(sandbox.tmp / 'nowhere')},
         ['nowhere', 'does not exist']),
        ({'name': 'smtpd_banner', 'value': 'x', 'config_dir': str(sandbox.main_cf)}, ['main.cf']),
        ({'name': 'smtpd_banner', 'value': 'x', 'config_dir': str(sandbox.maps_dir)},
         [str(sandbox.maps_dir / 'main.cf'), 'does not exist']),
        ({'name': 'smtpd_banner', 'value': 'x', 'config_dir': str(sandbox.tmp / ';touch @CANARY@')},
         ['does not exist']),
        ({'name': 'smtpd_banner', 'value': 'x', 'bogus_option': 1}, ['bogus_option']),
    ]


@pytest.mark.parametrize('group', ['name', 'value', 'params', 'service'])
def test_postconf_bad_input_fails_clearly_and_changes_nothing(sandbox, group):
    cases = {'name': NAME_CASES, 'value': VALUE_CASES, 'params': PARAMS_CASES,
             'service': SERVICE_CASES}[group]
    before = sandbox.explicit_main_cf()
    assert_all_refused(sandbox, POSTCONF, cases)
    assert sandbox.explicit_main_cf() == before


def test_postconf_bad_other_options_fail_clearly_and_change_nothing(sandbox):
    assert_all_refused(sandbox, POSTCONF, postconf_other_cases(sandbox))


# ---------------------------------------------------------------------------
# hostile-looking values that are legitimate: they land literally, once
# ---------------------------------------------------------------------------

def test_postconf_shell_metacharacters_equals_and_commas_are_written_literally(sandbox):
    canary = str(sandbox.canary)
    values = [
        '`touch %s`' % canary,
        ';touch %s' % canary,
        '|touch %s' % canary,
        '&&touch %s' % canary,
        '>%s' % canary,
        '$$(touch %s)' % canary,            # "$$" is a literal dollar sign for Postfix
        'a=b, c=d',                         # '=' and ',' inside a value
        'x # not a comment',
        '$myhostname ESMTP; rm -rf %s' % sandbox.confdir,
        '"quoted" \'single\' \\backslash',
        'mail gateway \u00e9\u00e8 \u4e2d\u6587',   # UTF-8 is fine in a banner
    ]
    before = sandbox.explicit_main_cf()
    tasks = []
    for value in values:
        tasks.append(sandbox.task(POSTCONF, {'name': 'smtpd_banner', 'value': value}, ignore_errors=False))
        tasks.append(sandbox.task(POSTCONF, {'name': 'smtpd_banner', 'value': value}, ignore_errors=False))
    results, dummy = sandbox.playbook(tasks)
    assert len(results) == len(tasks), why(results[-1])
    for index, value in enumerate(values):
        first, second = results[2 * index], results[2 * index + 1]
        assert first['changed'] is True and first['params']['smtpd_banner']['after'] == value, why(first)
        assert second['changed'] is False, (value, why(second))    # read back exactly as written
    assert not sandbox.canary.exists(), 'a value reached a shell'
    assert sandbox.confdir.is_dir()
    # no second line, nothing else touched
    assert sandbox.explicit_main_cf() == dict(before, smtpd_banner=values[-1])
    lines = [line for line in sandbox.main_cf.read_text().splitlines() if line.startswith('smtpd_banner')]
    assert len(lines) == 1


def test_postconf_service_override_with_equals_and_comma_is_one_override(sandbox):
    results, dummy = sandbox.playbook([
        sandbox.task(POSTCONF, {'service': '127.0.0.1:10026/inet', 'name': 'smtpd_client_restrictions',
                                'value': 'permit_mynetworks,reject'}, ignore_errors=False),
        sandbox.task(POSTCONF, {'service': '127.0.0.1:10026/inet', 'name': 'content_filter',
                                'value': 'a=b'}, ignore_errors=False),
    ])
    assert [r['changed'] for r in results] == [True, True], results
    overrides = sorted(line for line in sandbox.real_postconf('-P').split('\n')
                       if line.startswith('127.0.0.1:10026/inet/'))
    assert overrides == ['127.0.0.1:10026/inet/content_filter = a=b',
                         '127.0.0.1:10026/inet/smtpd_client_restrictions = permit_mynetworks,reject',
                         '127.0.0.1:10026/inet/smtpd_tls_security_level = none']
    assert not sandbox.canary.exists()


# ---------------------------------------------------------------------------
# bugs found by these tests (fixed; kept as regression tests)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('value', ['$(touch %s)' % CANARY, '${unclosed'])
def test_postconf_refuses_a_value_postfix_cannot_expand(sandbox, value):
    value = substitute(value, str(sandbox.canary))
    before = sandbox.snapshot()
    result = sandbox.postconf({'name': 'smtpd_banner', 'value': value})
    assert not sandbox.canary.exists()
    assert sandbox.postconf_works(), 'main.cf left broken'
    assert_unchanged(before, sandbox.snapshot())
    assert_failed(result, 'smtpd_banner')


@pytest.mark.parametrize('char', ['\x0c', '\x85', '\u2028'])
def test_postconf_value_with_a_unicode_line_break_is_refused_or_round_trips(sandbox, char):
    value = 'gw%srelayhost = [evil.example]' % char
    before = sandbox.snapshot()
    results, dummy = sandbox.playbook([sandbox.task(POSTCONF, {'name': 'smtpd_banner', 'value': value}),
                                       sandbox.task(POSTCONF, {'name': 'smtpd_banner', 'value': value})])
    first, second = results
    if first.get('failed'):
        assert 'reported success' not in first['msg'], why(first)
        assert_unchanged(before, sandbox.snapshot())
    else:
        assert second.get('failed') is not True and second['changed'] is False, why(second)
        assert sandbox.postconf_h('smtpd_banner') == value
    assert 'relayhost' not in sandbox.explicit_main_cf()


def test_postconf_is_not_fooled_by_a_phantom_line_in_main_cf(sandbox):
    sandbox.main_cf.write_text(sandbox.main_cf_text(
        'smtp_tls_security_level = may\n'
        'smtpd_banner = gw\u2028smtp_tls_security_level = encrypt\n'))
    assert sandbox.postconf_h('smtp_tls_security_level') == 'may'
    result = sandbox.postconf({'name': 'smtp_tls_security_level', 'value': 'encrypt'})
    assert sandbox.postconf_h('smtp_tls_security_level') == 'encrypt', why(result)


def test_postconf_handles_a_main_cf_that_is_not_utf8(sandbox):
    latin1 = b'# Gr\xfc\xdfe aus M\xfcnchen (Latin-1)\n'
    sandbox.main_cf.write_bytes(sandbox.main_cf.read_bytes() + latin1)
    result = sandbox.postconf({'name': 'smtpd_banner', 'value': 'gateway'})
    assert result.get('failed') is not True, why(result)
    assert latin1 in sandbox.main_cf.read_bytes()
    assert sandbox.postconf_h('smtpd_banner') == 'gateway'
