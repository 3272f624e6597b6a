# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The route of a recipient domain as trivial-rewrite works it out (resolve.c,
transport.c, mail_addr_find.c); the integration test in
tests/integration/oracle/test_transport_routing.py holds it against real deliveries."""

import pytest

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.mail_routing import (
    ALIAS,
    LOCAL,
    VIRTUAL,
    AddressClasses,
    Route,
    choose_transport_entry,
    list_keys,
    list_match,
    list_patterns,
    may_reroute,
    maybe_routed_elsewhere,
    not_smtp,
    route_domain,
    routes_for,
    service_commands,
    transport_keys,
    transport_parameters,
    transport_queries,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import parse_service_overrides

MAPS = {'transport_maps': 'hash:/etc/postfix/transport, regexp:/etc/postfix/transport.re'}
HASH = 'hash:/etc/postfix/transport'
REGEXP = 'regexp:/etc/postfix/transport.re'


def test_keys_in_postfix_order_with_dotted_parents():
    assert transport_keys('A.Sub.Example.COM') == [
        ('tls-probe@a.sub.example.com', True), ('a.sub.example.com', False), ('.sub.example.com', False),
        ('.example.com', False), ('.com', False), ('*', True)]


def test_keys_when_parent_domain_matches_subdomains_lists_transport_maps():
    assert [key for key, pattern_too in transport_keys('a.example.com', True)] == [
        'tls-probe@a.example.com', 'a.example.com', 'example.com', 'com', '*']


def test_keys_for_any_subdomain():
    assert transport_keys('.Example.com') == [('.example.com', False), ('.com', False), ('*', True)]
    assert transport_keys('.example.com', True) == [('example.com', False), ('com', False), ('*', True)]


def test_pattern_tables_are_asked_only_for_the_address_and_the_wildcard():
    queries = transport_queries(['a.example.com'], MAPS)
    assert queries[HASH][1] == ['tls-probe@a.example.com', 'a.example.com', '.example.com', '.com', '*']
    assert queries[REGEXP][1] == ['tls-probe@a.example.com', '*']


def test_each_key_in_every_table_before_the_next_key():
    # the regexp table's address match wins over the hash table's domain entry
    answers = {HASH: {'a.example.com': 'smtp:[hash]'}, REGEXP: {'tls-probe@a.example.com': 'smtp:[re]'}}
    assert choose_transport_entry('a.example.com', MAPS, answers) == (REGEXP, 'tls-probe@a.example.com', 'smtp:[re]')
    # a domain key answered by a regexp table is not used (Postfix never asks it)
    answers = {HASH: {'.example.com': 'smtp:[parent]'}, REGEXP: {'a.example.com': 'smtp:[re]'}}
    assert choose_transport_entry('a.example.com', MAPS, answers) == (HASH, '.example.com', 'smtp:[parent]')
    assert choose_transport_entry('a.example.com', MAPS, {HASH: {'*': 'relay:[star]'}}) == (HASH, '*', 'relay:[star]')
    assert choose_transport_entry('a.example.com', MAPS, {}) is None


@pytest.mark.parametrize('params, entry, expected', [
    # no transport_maps entry: the relayhost, else the domain; default_transport's next hop wins
    ({}, None, ('smtp', 'example.com')),
    ({'relayhost': '[relay]:587'}, None, ('smtp', '[relay]:587')),
    ({'relayhost': '[relay]:587', 'default_transport': 'lane:[other]'}, None, ('lane', '[other]')),
    # transport:nexthop sets both
    ({'relayhost': '[relay]'}, 'relay:[gw]:25', ('relay', '[gw]:25')),
    # transport (or transport:) resets the next hop to the domain: the relayhost is bypassed
    ({'relayhost': '[relay]'}, 'smtp:', ('smtp', 'example.com')),
    ({'relayhost': '[relay]'}, 'lane', ('lane', 'example.com')),
    # :nexthop keeps the transport, ':' changes nothing
    ({'relayhost': '[relay]', 'default_transport': 'lane'}, ':[gw]', ('lane', '[gw]')),
    ({'relayhost': '[relay]'}, ':', ('smtp', '[relay]')),
    # error and retry: the next hop is the reason
    ({}, 'error:5.1.1 no such domain', ('error', None)),
    ({}, 'retry:4.3.2 later', ('retry', None)),
])
def test_route_follows_update_entry(params, entry, expected):
    params = dict(params, transport_maps=HASH if entry else '')
    answers = {HASH: {'example.com': entry}} if entry else {}
    route = route_domain('example.com', params, answers)
    assert (route.transport, route.next_hop) == expected
    if entry and entry != ':':          # ':' is a no-op: the default route and its reason stay
        assert route.via == 'transport_maps (%s: example.com %s)' % (HASH, entry)


def test_next_hops_that_are_not_domains_are_their_own():
    routes = routes_for(['[10.0.0.1]:25', 'host:2525', 'example.com', '.example.org'], {'relayhost': '[relay]'},
                        lambda spec, keys: {})
    assert routes['.example.org'].next_hop == '[relay]'    # mail to its subdomains
    assert routes['[10.0.0.1]:25'] == Route('[10.0.0.1]:25', 'smtp', '[10.0.0.1]:25', 'a next hop of its own')
    assert routes['host:2525'].next_hop == 'host:2525'
    assert routes['example.com'].next_hop == '[relay]'


def test_routes_for_asks_each_table_once_and_notes_a_table_it_cannot_ask():
    asked = []

    def query(spec, keys):
        asked.append((spec.text, keys))
        return None if spec.map_type == 'regexp' else {'b.test': 'smtp:[b]'}
    routes = routes_for(['a.test', 'b.test', '[x]'], MAPS, query)
    assert [a[0] for a in asked] == [HASH, REGEXP]
    assert asked[1][1] == ['tls-probe@a.test', '*', 'tls-probe@b.test']
    assert routes['b.test'].next_hop == '[b]' and routes['a.test'].next_hop == 'a.test'
    assert any('could not be asked' in n for n in routes['a.test'].notes)
    assert routes['[x]'].notes == []


def test_sender_dependent_routing_is_noted():
    route = route_domain('example.com', {'sender_dependent_relayhost_maps': 'hash:/x'}, {})
    assert route.next_hop == 'example.com' and 'mail from some senders' in route.notes[0]


MASTER = """smtp       inet  n       -       y       -       -       smtpd
smtp       unix  -       -       y       -       -       smtp
relay      unix  -       -       y       -       -       smtp
    -o syslog_name=postfix/$service_name
lmtp       unix  -       -       y       -       -       lmtp
error      unix  -       -       y       -       -       error
retry      unix  -       -       y       -       -       error
discard    unix  -       -       y       -       -       discard
"""


def test_which_transports_run_the_smtp_client():
    commands = service_commands(MASTER)
    assert commands['smtp'] == 'smtp' and commands['relay'] == 'smtp' and commands['lmtp'] == 'lmtp'
    assert not_smtp(Route('d', 'relay', 'd', ''), commands) is None
    assert 'runs lmtp, not the SMTP client' in not_smtp(Route('d', 'lmtp', 'd', ''), commands)
    assert 'delivers no mail over SMTP' in not_smtp(Route('d', 'error', None, ''), commands)
    assert 'delivers no mail over SMTP' in not_smtp(Route('d', 'discard', 'd', ''), commands)
    assert 'mail transport unavailable' in not_smtp(Route('d', 'nosuch', 'd', ''), commands)


def test_a_services_overrides_replace_main_cf_settings():
    overrides = parse_service_overrides('relay/unix/smtp_tls_security_level = encrypt\n'
                                        'relay/unix/syslog_name = postfix/relay\n'
                                        'smtp/inet/smtpd_tls_security_level = may\n')
    params = {'smtp_tls_security_level': 'may', 'smtp_tls_policy_maps': 'hash:/p'}
    merged, changed = transport_parameters('relay', params, overrides)
    assert merged == {'smtp_tls_security_level': 'encrypt', 'smtp_tls_policy_maps': 'hash:/p'}
    assert changed == ['smtp_tls_security_level']
    assert transport_parameters('smtp', params, overrides) == (params, [])


# --- relay_domains: relay_transport instead of default_transport (resolve.c, match_ops.c) ---

def test_list_patterns_as_match_list_parses_them(tmp_path):
    listed = tmp_path / 'relay'
    listed.write_text('# ours\nA.example, !b.a.example\n')
    patterns = list_patterns('hash:/etc/postfix/relay !%s other.example /nonexistent' % listed)
    assert [(neg, getattr(p, 'text', p)) for neg, p in patterns] == [
        (False, 'hash:/etc/postfix/relay'), (True, 'a.example'), (False, 'b.a.example'),
        (False, 'other.example'), (False, None)]


@pytest.mark.parametrize('parent, keys', [
    (True, ['a.b.example.com', 'b.example.com', 'example.com', 'com']),
    (False, ['a.b.example.com', '.b.example.com', '.example.com', '.com']),
])
def test_relay_domain_table_keys(parent, keys):
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_types import parse_map_spec
    assert list_keys('A.b.example.com', parse_map_spec('hash:/r'), parent) == keys
    assert list_keys('a.b.example.com', parse_map_spec('pcre:/r'), parent) == ['a.b.example.com']
    # a string list (mydestination, virtual_*_domains): the name only
    assert list_keys('A.b.example.com', parse_map_spec('hash:/r')) == ['a.b.example.com']


@pytest.mark.parametrize('value, answers, parent, domain, expected', [
    ('example.com', {}, True, 'example.com', True),
    ('example.com', {}, True, 'sub.example.com', True),          # parent style (the default)
    ('example.com', {}, False, 'sub.example.com', False),
    ('.example.com', {}, False, 'sub.example.com', True),
    ('.example.com', {}, False, 'example.com', False),
    ('!sub.example.com example.com', {}, True, 'sub.example.com', False),   # the first match decides
    ('hash:/r', {'hash:/r': {'example.com': 'OK'}}, True, 'a.example.com', True),
    ('hash:/r', {'hash:/r': {}}, True, 'a.example.com', False),
    ('hash:/r', {}, True, 'a.example.com', None),                # the table could not be asked
    ('example.com', {}, True, '.example.com', True),            # any subdomain
    ('', {}, True, 'example.com', False),
])
def test_relay_domain_match(value, answers, parent, domain, expected):
    assert list_match(domain, list_patterns(value), answers, parent) is expected


@pytest.mark.parametrize('value, answers, domain, expected', [
    ('example.com', {}, 'example.com', True),
    ('example.com', {}, 'Example.COM.', True),                  # casefolded, one trailing dot stripped
    ('example.com', {}, 'sub.example.com', False),              # no parent domains in a string list
    ('.example.com', {}, 'sub.example.com', False),
    ('!example.com hash:/d', {'hash:/d': {'example.com': 'x'}}, 'example.com', False),
    ('hash:/d', {'hash:/d': {'example.com': 'x'}}, 'example.com', True),
    ('hash:/d', {'hash:/d': {'example.com': 'x'}}, 'sub.example.com', False),
    ('hash:/d', {}, 'example.com', None),
])
def test_string_list_match(value, answers, domain, expected):
    """mydestination and virtual_*_domains are string lists (match_string): the name, exactly."""
    assert list_match(domain, list_patterns(value), answers) is expected


def test_a_relay_domain_takes_relay_transport_and_its_next_hop():
    params = {'relay_domains': 'hash:/etc/postfix/relay', 'relay_transport': 'relay:[inside.example]',
              'relayhost': '[out.example]', 'parent_domain_matches_subdomains': 'relay_domains'}

    def query(spec, keys):
        assert spec.text == 'hash:/etc/postfix/relay'
        return {'ours.example': 'OK'} if 'ours.example' in keys else {}
    routes = routes_for(['ours.example', 'mail.ours.example', 'theirs.example'], params, query)
    assert (routes['ours.example'].transport, routes['ours.example'].next_hop) == ('relay', '[inside.example]')
    assert routes['ours.example'].via == 'relay_transport = relay:[inside.example] (the domain is in relay_domains)'
    assert routes['mail.ours.example'].transport == 'relay'
    assert (routes['theirs.example'].transport, routes['theirs.example'].next_hop) == ('smtp', '[out.example]')
    # relay_transport without a next hop: the relayhost (or the domain), the relay service's settings
    params['relay_transport'] = 'relay'
    route = routes_for(['ours.example'], params, query)['ours.example']
    assert (route.transport, route.next_hop, route.via) == (
        'relay', '[out.example]', 'relayhost = [out.example] (the domain is in relay_domains: relay_transport = relay)')
    # a table that cannot be asked: noted
    route = routes_for(['ours.example'], params, lambda spec, keys: None)['ours.example']
    assert route.transport == 'smtp' and not route.certain and 'relay_domains could not be read' in route.notes[0]


# --- the local and virtual classes (resolve.c: mydestination, virtual_alias_domains, virtual_mailbox_domains) ---

CLASSES = {'mydestination': 'gw.example, localhost, hash:/etc/postfix/local-domains',
           'virtual_alias_domains': 'alias.example',
           'virtual_mailbox_domains': 'hash:/etc/postfix/vmailbox',
           'relay_domains': 'gw.example, relayed.example, alias.example',
           'local_transport': 'local:gw.example', 'virtual_transport': 'lmtp:unix:private/dovecot-lmtp',
           'relayhost': '[out.example]', 'parent_domain_matches_subdomains': 'relay_domains'}


def _class_query(spec, keys):
    tables = {'hash:/etc/postfix/local-domains': {'also-local.example': 'x'},
              'hash:/etc/postfix/vmailbox': {'mail.example': 'x', 'tls-probe@mail.example': 'x'}}
    return dict((key, value) for key, value in tables[spec.text].items() if key in keys)


def test_address_classes_in_resolve_c_order():
    asked = []

    def query(spec, keys):
        asked.append((spec.text, keys))
        return _class_query(spec, keys)
    domains = ['gw.example', 'also-local.example', 'alias.example', 'mail.example', 'relayed.example',
               'sub.relayed.example', 'other.example']
    classes = AddressClasses(CLASSES, domains, query)
    assert [classes.of(d) for d in domains] == [
        (LOCAL, 'mydestination'), (LOCAL, 'mydestination'),             # mydestination before relay_domains
        (ALIAS, 'virtual_alias_domains'), (VIRTUAL, 'virtual_mailbox_domains'),
        ('relay', 'relay_domains'), ('relay', 'relay_domains'), ('default', None)]
    # each table once, with the names only (string lists)
    assert asked == [('hash:/etc/postfix/local-domains', domains), ('hash:/etc/postfix/vmailbox', domains)]
    unreadable = AddressClasses(CLASSES, ['other.example'], lambda spec, keys: None)
    assert unreadable.of('other.example') == (None, 'mydestination')


def test_local_and_virtual_domains_take_their_class_transport():
    routes = routes_for(['gw.example', 'alias.example', 'mail.example', 'other.example'], CLASSES, _class_query)
    local = routes['gw.example']
    assert (local.transport, local.next_hop, local.source) == ('local', 'gw.example', LOCAL)
    assert local.via == 'the domain is in mydestination: local_transport = local:gw.example'
    alias = routes['alias.example']
    assert (alias.transport, alias.next_hop, alias.source) == ('error', None, 'alias')
    assert 'User unknown in virtual alias table' in alias.via
    mailbox = routes['mail.example']
    assert (mailbox.transport, mailbox.next_hop) == ('lmtp', 'unix:private/dovecot-lmtp')
    assert routes['other.example'].next_hop == '[out.example]'         # the relayhost is for remote domains only
    # the built-in defaults: local (next hop the domain), virtual
    params = {'mydestination': 'gw.example', 'virtual_mailbox_domains': 'mail.example', 'relayhost': '[r]'}
    routes = routes_for(['gw.example', 'mail.example'], params, lambda spec, keys: {})
    assert (routes['gw.example'].transport, routes['gw.example'].next_hop) == ('local', 'gw.example')
    assert (routes['mail.example'].transport, routes['mail.example'].next_hop) == ('virtual', 'mail.example')


def test_transport_maps_overrides_every_class_but_virtual_alias():
    params = dict(CLASSES, transport_maps='hash:/etc/postfix/transport')

    def query(spec, keys):
        if spec.text == 'hash:/etc/postfix/transport':
            return dict((key, 'smtp:[store.example]') for key in keys if key in (
                'gw.example', 'alias.example', 'mail.example'))
        return _class_query(spec, keys)
    routes = routes_for(['gw.example', 'alias.example', 'mail.example'], params, query)
    assert (routes['gw.example'].transport, routes['gw.example'].next_hop) == ('smtp', '[store.example]')
    assert routes['gw.example'].via.endswith('(the domain is in mydestination)')
    assert (routes['mail.example'].transport, routes['mail.example'].next_hop) == ('smtp', '[store.example]')
    assert (routes['alias.example'].transport, routes['alias.example'].next_hop) == ('error', None)


@pytest.mark.parametrize('params, destinations, expected', [
    ({}, ['a.example', '[h]:25'], []),
    ({'mydestination': 'gw.example, localhost'}, ['a.example', 'gw.example', '.gw.example'], ['gw.example']),
    ({'mydestination': 'gw.example', 'virtual_mailbox_domains': 'hash:/v'}, ['a.example', 'b.example'],
     ['a.example', 'b.example']),                       # a table: every domain may be in it
    ({'virtual_alias_domains': '/etc/postfix/alias-domains'}, ['a.example'], ['a.example']),
    ({'relayhost': '[r]'}, ['a.example', '[h]:25'], ['a.example']),
])
def test_maybe_routed_elsewhere(params, destinations, expected):
    assert maybe_routed_elsewhere(destinations, params) == expected


@pytest.mark.parametrize('params, expected', [
    ({}, False),
    ({'default_transport': 'smtp', 'relay_transport': 'relay', 'relayhost': ' ', 'transport_maps': ''}, False),
    ({'relayhost': '[r]'}, True),
    ({'transport_maps': 'hash:/t'}, True),
    ({'relay_domains': 'example.com'}, True),
    ({'default_transport': 'smtp:[gw]'}, True),
    ({'relay_transport': 'relay:[inside]'}, True),
])
def test_may_reroute(params, expected):
    assert may_reroute(params) is expected
    if not expected:        # then every domain is routed to itself
        route = routes_for(['example.com'], params, lambda spec, keys: {})['example.com']
        assert route.next_hop == 'example.com'
