# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""What decides whether a read works the preflight's levels out (pure, no Postfix)."""

import pytest

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.policy_levels import (
    OPTIONS_SPEC,
    check_input,
    looked_up_keys,
    lookup_change,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import planned_level

TABLE = 'hash:/etc/postfix/tls_policy'
CONVERGED = {'smtp_tls_policy_maps': 'proxy:' + TABLE, 'smtp_tls_security_level': 'encrypt',
             'smtpd_tls_security_level': 'may'}


@pytest.mark.parametrize('requested, now, side, keep, level', [
    ('may', 'encrypt', 'smtp', True, 'encrypt'),          # no downgrade: the stricter level stays
    ('may', 'encrypt', 'smtp', False, 'may'),
    ('verify', 'encrypt', 'smtp', True, 'verify'),
    (None, 'encrypt', 'smtp', True, 'encrypt'),           # not planned: unchanged
    ('may', 'encrypt', 'smtpd', True, 'encrypt'),
    ('encrypt', 'none', 'smtpd', True, 'encrypt'),
])
def test_planned_level_follows_the_roles_no_downgrade_rule(requested, now, side, keep, level):
    assert planned_level(requested, now, side, keep) == level


def test_nothing_changes_a_lookup_on_a_converged_host():
    assert lookup_change(CONVERGED, TABLE, False, 'encrypt', 'may') is None
    # smtpd raised only to may, or not planned: clients are not refused
    assert lookup_change(CONVERGED, TABLE, False, 'encrypt', None) is None


@pytest.mark.parametrize('params, differs, level, smtpd, why', [
    ({}, True, 'encrypt', None, 'the table %s changes' % TABLE),
    ({'smtp_tls_policy_maps': 'hash:/etc/postfix/other'}, False, 'encrypt', None,
     'smtp_tls_policy_maps gets %s' % TABLE),
    ({'smtp_tls_policy_maps': ''}, False, 'encrypt', None, 'smtp_tls_policy_maps gets %s' % TABLE),
    ({}, False, 'verify', None, 'smtp_tls_security_level goes from encrypt to verify'),
    ({}, False, 'may', None, 'smtp_tls_security_level goes from encrypt to may'),
    ({}, False, 'encrypt', 'encrypt', 'smtpd_tls_security_level goes from may to encrypt'),
    # the obsolete settings count as Postfix counts them
    ({'smtpd_tls_security_level': '', 'smtpd_use_tls': 'yes'}, False, 'encrypt', 'encrypt',
     'smtpd_tls_security_level goes from may to encrypt'),
    ({'smtp_tls_security_level': '', 'smtp_use_tls': 'yes'}, False, 'encrypt', None,
     'smtp_tls_security_level goes from may to encrypt'),
])
def test_each_thing_that_changes_a_lookup_is_named(params, differs, level, smtpd, why):
    assert lookup_change(dict(CONVERGED, **params), TABLE, differs, level, smtpd) == why


def test_a_table_listed_anywhere_keeps_its_place():
    # the role writes smtp_tls_policy_maps only when the table is not listed (policy_maps_with_table)
    params = dict(CONVERGED, smtp_tls_policy_maps='hash:/etc/postfix/first, ' + TABLE)
    assert lookup_change(params, TABLE, False, 'encrypt') is None
    smtpd_encrypt = dict(CONVERGED, smtpd_tls_security_level='encrypt')
    assert lookup_change(smtpd_encrypt, TABLE, False, 'encrypt', 'encrypt') is None


def options(**given):
    p = dict((name, spec.get('default')) for name, spec in OPTIONS_SPEC.items())
    p.update(given)
    return p


def test_input_problems_name_the_option_they_are_in():
    planned, errors = check_input(options(max=-1, destinations=['a b'], policies={'x.example': 'tight'}),
                                  prefix='tls_policy_levels.')
    assert planned == {}
    assert errors[0] == 'tls_policy_levels.max: -1 is not allowed, it must be 0 or more'
    assert errors[1].startswith('tls_policy_levels.destinations: ')
    assert errors[2].startswith("tls_policy_levels.policies: 'x.example': the value 'tight' is refused by Postfix")
    planned, errors = check_input(options(policies={'Example.COM': 'encrypt', 'old.example': None}))
    assert errors == [] and planned == {'example.com': 'encrypt', 'old.example': None}


def test_a_planned_table_file_is_planned_as_its_mapping(tmp_path):
    source = tmp_path / 'partners.table'
    source.write_text('# planned\nExample.COM encrypt\n\n[mx.example.net]:25\n   secure match=nexthop\n')
    planned, errors = check_input(options(policies_src=str(source)))
    assert errors == []
    assert planned == check_input(options(policies={'Example.COM': 'encrypt',
                                                    '[mx.example.net]:25': 'secure match=nexthop'}))[0]
    source.write_text('  orphan\nb.example tight\na.example may\nA.example may\n')
    planned, errors = check_input(options(policies_src=str(source)), prefix='p.')
    assert errors == [
        'p.policies_src: %s, line 1: logical line must not start with whitespace; Postfix ignores it' % source,
        errors[1],
        "p.policies_src: %s, line 4: 'A.example' is planned twice (keys are case-insensitive)" % source]
    assert errors[1].startswith("p.policies_src: %s, line 2: 'b.example': the value 'tight' is refused" % source)
    planned, errors = check_input(options(policies_src='relative.table'))
    assert errors == ['policies_src relative.table must be an absolute path (a file on the managed host; a '
                      'relative path would depend on the directory the module runs in)']
    planned, errors = check_input(options(policies_src=str(source), policies={'a.example': 'may'}))
    assert errors == ['policies_src and policies are mutually exclusive: give the planned entries in one of them']


def test_only_keys_postfix_looks_up_are_destinations():
    # a removal may name a key Postfix never looks up (here one with a space): no level changes under it
    keys = ['example.com', '[mx.example.net]:25', 'bad key', '.example.org']
    assert looked_up_keys(keys) == ['example.com', '[mx.example.net]:25', '.example.org']


def test_relayhost_next_hops_and_content_filter_routes():
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.policy_levels import (
        content_filter_routes, relayhost_next_hops)
    assert relayhost_next_hops('[Relay.example]:587, [b.example]:25') == ['[relay.example]:587', '[b.example]:25']
    assert relayhost_next_hops('') == [] and relayhost_next_hops(None) == []
    routes = content_filter_routes({'content_filter': 'smtp-amavis:[127.0.0.1]:10024'},
                                   {('smtp', 'inet'): {'content_filter': 'scan:[127.0.0.1]:10030'},
                                    ('127.0.0.1:10025', 'inet'): {'content_filter': ''}})
    assert sorted(routes) == ['[127.0.0.1]:10024', '[127.0.0.1]:10030']
    amavis = routes['[127.0.0.1]:10024']
    assert (amavis.transport, amavis.next_hop, amavis.via) == (
        'smtp-amavis', '[127.0.0.1]:10024', 'content_filter = smtp-amavis:[127.0.0.1]:10024')
    assert routes['[127.0.0.1]:10030'].via == 'master.cf smtp/inet -o content_filter=scan:[127.0.0.1]:10030'
    # no next hop, or none at all: nothing
    assert content_filter_routes({'content_filter': 'smtp-amavis:'}, {}) == {}
    assert content_filter_routes({}, {}) == {}
