# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tls_policy_values filter: entries shape -> policies mapping (pure, no Postfix)."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.mailgw.postfix_tls.plugins.filter.postfix_tls import tls_policy_values
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import (
    build_policy,
    parse_policy,
)


def test_renders_each_entry_as_the_module_writes_it():
    entries = [
        {'destination': 'Example.COM', 'level': 'secure', 'match': ['nexthop', 'dot-nexthop'],
         'protocols': '>=TLSv1.2'},
        {'destination': '[127.0.0.1]:10025', 'level': 'none'},
        {'destination': '[relay.example.net]:587', 'level': 'encrypt', 'ciphers': 'high',
         'exclude': ['aNULL', 'MD5'], 'connection_reuse': True},
        {'destination': 'old.example', 'state': 'absent'},
        {'destination': 'pin.example', 'level': 'fingerprint',
         'match': ['3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1:17:0B:D1:CB:7B:8B:F5:49:D4:A8:7E:07:D6:39:EA:E8:8E:12:0E']},
    ]
    assert tls_policy_values(entries) == {
        'Example.COM': 'secure match=nexthop:dot-nexthop protocols=>=TLSv1.2',
        '[127.0.0.1]:10025': 'none',
        '[relay.example.net]:587': 'encrypt ciphers=high exclude=aNULL:MD5 connection_reuse=yes',
        'old.example': None,
        'pin.example': 'fingerprint match=3D:95:34:51:24:66:33:B9:D2:40:99:C0:C1:17:0B:D1:CB:7B:8B:F5:'
                       '49:D4:A8:7E:07:D6:39:EA:E8:8E:12:0E',
    }


def test_values_are_canonical_renders_of_the_grammar():
    entry = {'destination': 'a.example', 'level': 'verify', 'match': ['hostname'], 'protocols': ['!SSLv2', '!SSLv3'],
             'servername': 'hostname', 'enable_rpk': False}
    value = tls_policy_values([entry])['a.example']
    expected = build_policy('verify', match=['hostname'], protocols=['!SSLv2', '!SSLv3'],
                            servername='hostname', enable_rpk=False).render()
    assert value == expected
    # reading the value back gives the same value: the module writes it unchanged
    assert parse_policy(value).render() == value


def test_options_are_converted_as_the_module_argument_spec_converts_them():
    # a string for a list option is split at commas, booleans accept yes/no words
    values = tls_policy_values([
        {'destination': 'a.example', 'level': 'secure', 'match': 'nexthop,dot-nexthop',
         'connection_reuse': 'yes'},
    ])
    assert values == {'a.example': 'secure match=nexthop:dot-nexthop connection_reuse=yes'}
    # blanks after the commas, as people write lists: the items without them (tls_policy does
    # the same; they were refused, "match value ' dot-nexthop' contains ' '")
    assert tls_policy_values([{'destination': 'a.example', 'level': 'secure', 'match': 'nexthop, dot-nexthop',
                               'protocols': '>=TLSv1.2, <=TLSv1.3'}]) == {
        'a.example': 'secure match=nexthop:dot-nexthop protocols=>=TLSv1.2:<=TLSv1.3'}
    # only spaces: a control character is still refused
    with pytest.raises(AnsibleFilterError, match='nexthop'):
        tls_policy_values([{'destination': 'a.example', 'level': 'secure', 'match': ['nexthop\r']}])


def test_empty_list_is_an_empty_mapping():
    assert tls_policy_values([]) == {}


@pytest.mark.parametrize('entries, words', [
    ([{'destination': 'a.example', 'level': 'encrypt', 'match': ['nexthop']}],
     ['entries[0]', "'a.example'", "'nexthop'", 'invalid at level encrypt']),
    ([{'destination': 'ok.example', 'level': 'may'},
      {'destination': 'b.example', 'level': 'encrypt', 'ciphers': 'strong'}],
     ['entries[1]', "'b.example'", "'strong'", 'not a cipher grade']),
    ([{'destination': 'c.example', 'level': 'tight'}],
     ["'c.example'", "'tight'", 'not a Postfix TLS security level']),
    # a rule of this collection (lint) is refused like the module refuses it, not dropped
    ([{'destination': 'd.example', 'level': 'none', 'match': ['nexthop']}],
     ["'d.example'", 'at level none does nothing', 'rule of this collection']),
    ([{'destination': 'e.example', 'level': 'verify', 'tafile': ['relative.pem']}],
     ["'e.example'", "'relative.pem'", 'not an absolute path']),
    ([{'destination': 'f.example'}], ["'f.example'", 'level is required']),
    ([{'destination': 'g.example', 'level': 'may', 'state': 'gone'}], ["'g.example'", "'gone'"]),
    ([{'destination': 'h.example', 'level': 'may', 'comment': 'x'}],
     ["'h.example'", 'unsupported option comment']),
    ([{'level': 'may'}], ['entries[0]', 'no destination']),
    (['h.example'], ['entries[0]', 'not a policy entry']),
    ([{'destination': 'i.example', 'level': 'may'}, {'destination': 'i.example', 'level': 'encrypt'}],
     ['entries[1]', "'i.example'", 'twice']),
    ([{'destination': 'j.example', 'level': 'may', 'connection_reuse': 'maybe'}], ["'j.example'", 'maybe']),
])
def test_bad_entry_names_destination_value_and_rule(entries, words):
    with pytest.raises(AnsibleFilterError) as e:
        tls_policy_values(entries)
    for word in words:
        assert word in str(e.value)


@pytest.mark.parametrize('value', [None, 'a.example', {'destination': 'a.example', 'level': 'may'}])
def test_not_a_list_is_refused(value):
    with pytest.raises(AnsibleFilterError, match='expects a list of policy entries'):
        tls_policy_values(value)


def test_case_variants_are_kept_for_the_module_to_report():
    values = tls_policy_values([{'destination': 'A.example', 'level': 'may'},
                                {'destination': 'a.example', 'level': 'encrypt'}])
    assert values == {'A.example': 'may', 'a.example': 'encrypt'}
