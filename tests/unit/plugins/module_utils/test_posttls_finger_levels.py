# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The level the SMTP client applies now and after a planned change (posttls_finger.level_changes),
the lookup rules tls_policy_levels follows, including those the old preflight script got wrong:
parent-domain keys, proxy: in smtp_tls_policy_maps, {...} in the maps list, legacy smtp_enforce_tls."""

import pytest

from ansible_collections.mailgw.postfix_tls.plugins.filter import postfix_tls as filters
from ansible_collections.mailgw.postfix_tls.plugins.module_utils import postconf_params
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.mail_routing import Route
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import tls_security_level
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.posttls_finger import (
    level_changes,
    level_rank,
    map_specs,
    maps_with_table,
    planned_table,
    policy_keys,
    probe_options,
    probe_plan,
    relay_next_hop,
)

T = 'hash:/etc/postfix/tls_policy'
OTHER = 'hash:/etc/postfix/other'


def answers_for(tables, destinations):
    """{spec: {key: value}} as postmap -q answers the policy keys of DESTINATIONS."""
    keys = set(k for d in destinations for k in policy_keys(d))
    return dict((spec, dict((k, v) for k, v in entries.items() if k in keys)) for spec, entries in tables.items())


def changes(tables, destinations, global_before='may', specs=None, **kwargs):
    specs = list(tables) if specs is None else specs
    kwargs.setdefault('table', T)
    items = level_changes(destinations, specs, answers_for(tables, destinations), global_before, **kwargs)
    return dict((i['destination'], i) for i in items)


def test_parent_domain_key_covers_a_subdomain():
    # the script asked only for "sub.example.com" and judged it by the global level
    found = changes({T: {'.example.com': 'encrypt'}}, ['sub.example.com', 'example.com', 'a.b.example.com'],
                    global_after='may')
    assert found['sub.example.com']['level_before'] == 'encrypt'
    assert found['sub.example.com']['key_before'] == '.example.com'
    assert found['sub.example.com']['source_before'] == T
    assert found['a.b.example.com']['level_before'] == 'encrypt'
    # ".example.com" does not cover example.com itself
    assert found['example.com']['level_before'] == 'may' and found['example.com']['source_before'] == \
        'smtp_tls_security_level'


def test_a_planned_parent_domain_entry_raises_its_subdomains():
    found = changes({T: {}}, ['sub.example.com', 'example.com'], planned={'.example.com': 'verify'})
    assert found['sub.example.com']['level'] == 'verify' and found['sub.example.com']['affected']
    assert found['sub.example.com']['key'] == '.example.com' and found['sub.example.com']['probe']
    assert not found['example.com']['affected']


def test_each_key_is_asked_of_every_table_before_the_next_key():
    tables = {OTHER: {'sub.example.com': 'none'}, T: {'.example.com': 'secure'}}
    found = changes(tables, ['sub.example.com'], specs=[T, OTHER])
    # the exact key in the second table wins over the parent key in the first
    assert found['sub.example.com']['level_before'] == 'none' and found['sub.example.com']['source_before'] == OTHER


def test_bracketed_next_hops_are_looked_up_verbatim_only():
    found = changes({T: {'.example.com': 'verify', 'mx.example.com': 'secure'}},
                    ['[mx.example.com]:25', '[mx.example.com]', 'mx.example.com:25'])
    for destination in found:
        assert found[destination]['level_before'] == 'may', found[destination]


@pytest.mark.parametrize('value, specs', [
    ('proxy:hash:/etc/postfix/tls_policy', [T]),
    ('proxy:hash:/etc/postfix/tls_policy, texthash:/x', [T, 'texthash:/x']),
    # a brace group is one table: the script's plain regex split it into garbage
    ('inline:{ { [10.0.0.1]:25 = none }, { b.example = verify } }, hash:/etc/postfix/tls_policy',
     ['inline:{ { [10.0.0.1]:25 = none }, { b.example = verify } }', T]),
    ('  hash:/etc/postfix/tls_policy ,\n  pcre:{ {/x/ may} }', [T, 'pcre:{ {/x/ may} }']),
])
def test_policy_maps_split(value, specs):
    assert map_specs(value) == specs


def test_proxy_listed_table_is_the_planned_table():
    specs = map_specs('proxy:hash:/etc/postfix/tls_policy')
    assert maps_with_table(specs, T) == [T]
    found = changes({T: {'kept.example': 'may'}}, ['kept.example'], specs=specs, planned={'kept.example': 'secure'})
    assert found['kept.example']['level_before'] == 'may' and found['kept.example']['level'] == 'secure'
    assert found['kept.example']['source'] == T


def test_inline_table_in_braces_is_asked_as_one_table():
    inline = 'inline:{ { [10.0.0.1]:25 = none }, { b.example = verify } }'
    specs = map_specs(inline + ', ' + T)
    found = changes({inline: {'[10.0.0.1]:25': 'none', 'b.example': 'verify'}, T: {}},
                    ['[10.0.0.1]:25', 'b.example'], specs=specs, global_after='encrypt')
    assert found['[10.0.0.1]:25']['level'] == 'none' and found['[10.0.0.1]:25']['source'] == inline
    assert found['b.example']['level_before'] == 'verify' and not found['b.example']['affected']


def test_unlisted_table_goes_first_and_replaces_the_same_file_under_another_type():
    specs = ['texthash:/etc/postfix/tls_policy', OTHER]
    assert maps_with_table(specs, T) == [T, OTHER]
    assert maps_with_table([OTHER], T) == [T, OTHER]
    assert maps_with_table([OTHER, T], T) == [OTHER, T]
    # the new table first: its entry wins over the other table's
    found = changes({OTHER: {'a.example': 'none'}}, ['a.example'], specs=[OTHER], planned={'a.example': 'encrypt'})
    assert found['a.example']['level_before'] == 'none' and found['a.example']['level'] == 'encrypt'
    assert found['a.example']['source'] == T and found['a.example']['affected']


def test_legacy_smtp_enforce_tls_is_the_level_before():
    # the script read only smtp_tls_security_level (empty here): "none", so everything looked affected
    params = {'smtp_tls_security_level': '', 'smtp_enforce_tls': 'yes', 'smtp_tls_enforce_peername': 'yes'}
    assert tls_security_level(params, 'smtp') == 'verify'
    found = changes({T: {}}, ['a.example'], global_before=tls_security_level(params, 'smtp'),
                    global_after='encrypt')
    assert found['a.example']['level_before'] == 'verify' and not found['a.example']['affected']
    assert found['a.example']['not_probed'] == 'not probed: level lowered to encrypt'
    peername_no = dict(params, smtp_tls_enforce_peername='no')
    found = changes({T: {}}, ['a.example'], global_before=tls_security_level(peername_no, 'smtp'),
                    global_after='verify')
    assert found['a.example']['level_before'] == 'encrypt' and found['a.example']['affected']


def test_removed_and_exclusive():
    tables = {T: {'kept.example': 'may', 'strict.example': 'verify', 'none.example': 'none'}}
    dests = ['kept.example', 'strict.example', 'none.example']
    found = changes(tables, dests, planned={'strict.example': None}, global_after='encrypt')
    assert found['strict.example']['level'] == 'encrypt' and not found['strict.example']['affected']
    assert found['strict.example']['not_probed'] == 'not probed: level lowered to encrypt'
    assert found['kept.example']['level'] == 'may' and found['kept.example']['not_probed'] == \
        'not probed: level stays may'
    found = changes(tables, dests, planned={'none.example': None}, global_after='encrypt')
    assert found['none.example']['level'] == 'encrypt' and found['none.example']['affected']
    found = changes(tables, dests, planned={'kept.example': 'may'}, exclusive=True, global_after='encrypt')
    assert found['kept.example']['level'] == 'may' and not found['kept.example']['affected']
    assert found['strict.example']['level'] == 'encrypt' and found['strict.example']['source'] == \
        'smtp_tls_security_level'
    assert found['none.example']['affected']
    # exclusive empties only the planned table, not the others
    found = changes({T: {'a.example': 'none'}, OTHER: {'a.example': 'may'}}, ['a.example'], exclusive=True,
                    global_after='secure')
    assert found['a.example']['level'] == 'may' and found['a.example']['source'] == OTHER


def test_planned_table_overlay():
    assert planned_table({'a': 'may', 'b': 'none'}, {'a': 'verify', 'b': None, 'c': 'encrypt'}) == \
        {'a': 'verify', 'c': 'encrypt'}
    assert planned_table({'a': 'may'}, {'c': 'encrypt'}, exclusive=True) == {'c': 'encrypt'}


def test_probe_marks_subdomain_patterns_and_the_limit():
    found = changes({T: {}}, ['.sub.example', 'a.example', 'b.example'], global_after='encrypt', max_probes=1)
    assert found['.sub.example']['affected'] and not found['.sub.example']['probe']
    assert found['.sub.example']['not_probed'] == 'not probed: .sub.example matches subdomains and names no host'
    assert found['a.example']['probe'] and found['a.example']['not_probed'] is None
    assert not found['b.example']['probe']
    assert found['b.example']['not_probed'] == 'not probed: more than max=1 affected destinations'
    found = changes({T: {}}, ['a.example'], global_after='encrypt', max_probes=0)
    assert found['a.example']['affected'] and not found['a.example']['probe']


def test_same_rank_is_not_stricter():
    found = changes({T: {'a.example': 'fingerprint'}}, ['a.example'], planned={'a.example': 'secure'})
    assert not found['a.example']['affected']
    assert found['a.example']['not_probed'] == 'not probed: level changes to secure, no stricter than fingerprint'


def test_an_invalid_entry_is_reported_with_postfixs_words():
    found = changes({T: {'bad.example': 'verfy'}}, ['bad.example'], planned={'bad.example': 'encrypt'})
    item = found['bad.example']
    assert item['level_before'] == 'invalid' and item['level'] == 'encrypt' and item['affected']
    assert item['problems'] == ['the entry "bad.example verfy" in %s is invalid (invalid security level "verfy"): '
                                'Postfix defers the mail' % T]
    found = changes({OTHER: {'bad.example': ''}}, ['bad.example'], specs=[OTHER], global_after='encrypt')
    assert found['bad.example']['level'] == 'invalid' and not found['bad.example']['affected']
    assert 'invalid empty policy' in found['bad.example']['not_probed']


def test_one_rank_table_for_modules_and_filters():
    # the filters import postconf_params when called (not at load): same sides, same ranks
    assert filters.SIDES == tuple(postconf_params.LEVEL_RANKS)
    for side, ranks in postconf_params.LEVEL_RANKS.items():
        assert all(filters.tls_level_rank(level, side) == rank for level, rank in ranks.items())
    assert level_rank('Verify') == 4 and level_rank('bogus') == -1 and level_rank(None) == -1


@pytest.mark.parametrize('relay, hop', [
    ('mx.example.com[192.0.2.1]:25', '[mx.example.com]:25'),
    ('127.0.0.2[127.0.0.2]:2525', '[127.0.0.2]:2525'),
    ('mx6.example[2001:db8::1]:25', '[mx6.example]:25'),
    ('mail.example[private/dovecot-lmtp]', None),
])
def test_relay_next_hop(relay, hop):
    assert relay_next_hop(relay) == hop


def plan_for(tables, destinations, planned=None, exclusive=False, global_after='encrypt', specs=None):
    """probe_plan of level_changes as tls_policy_levels runs them."""
    specs = list(tables) if specs is None else specs
    answers = answers_for(tables, destinations)
    items = level_changes(destinations, specs, answers, 'may', T, planned, exclusive, global_after)
    return probe_plan(items, specs, answers, T, planned, exclusive)


def test_probe_plan_uses_the_entry_the_destination_gets_after_the_change():
    """The planned entry (with its match=) when it answers, a remaining entry of another table
    when that one answers first, none (the global level) when no table answers after."""
    tables = {T: {'a.example': 'may', 'gone.example': 'may', 'c.example': 'none'},
              OTHER: {'b.example': 'encrypt protocols=>=TLSv1.2', 'c.example': 'verify match=mx.c.example'}}
    planned = {'a.example': 'secure match=mx.a.example', 'gone.example': None, 'c.example': None}
    plan = plan_for(tables, ['a.example', 'b.example', 'c.example', 'gone.example', 'new.example'], planned,
                    specs=[T, OTHER], global_after='verify')
    assert [d for d, level, source, entry in plan] == ['a.example', 'c.example', 'gone.example', 'new.example']
    by = dict((d, (level, source, entry)) for d, level, source, entry in plan)
    assert by['a.example'] == ('secure', 'policy table', ('a.example', 'secure match=mx.a.example'))
    # T's "none" removed: OTHER's entry answers after the change, with its match=
    assert by['c.example'] == ('verify', 'policy table', ('c.example', 'verify match=mx.c.example'))
    assert by['gone.example'] == ('verify', 'smtp_tls_security_level', None)
    assert by['new.example'] == ('verify', 'smtp_tls_security_level', None)
    # b.example keeps OTHER's encrypt entry, which the global verify does not replace: not stricter
    assert 'b.example' not in by


def test_probe_plan_takes_only_the_marked_destinations_and_a_parent_key():
    plan = plan_for({T: {}}, ['.sub.example', 'x.sub.example', 'stays.example'],
                    planned={'.sub.example': 'verify match=nexthop', 'stays.example': 'none'})
    assert plan == [('x.sub.example', 'verify', 'policy table', ('.sub.example', 'verify match=nexthop'))]


def test_probe_plan_with_exclusive_drops_the_entries_not_planned():
    plan = plan_for({T: {'old.example': 'none'}}, ['old.example'], planned={}, exclusive=True)
    assert plan == [('old.example', 'encrypt', 'smtp_tls_security_level', None)]


def test_probe_options_keep_what_is_given():
    # main.cf's (or the transport's) smtp_tls_CAfile/CApath are taken per probe (probe_one)
    assert probe_options(connect_timeout=5, command_timeout=7) == dict(
        ca_file=None, ca_path=None, connect_timeout=5, command_timeout=7)
    assert probe_options(ca_file='/x.pem', ca_path='/certs')['ca_file'] == '/x.pem'
    assert probe_options(ca_path='/certs')['ca_path'] == '/certs'


def test_a_domain_routed_to_the_relayhost_gets_the_relayhost_s_level():
    """level_changes with next_hop: the domain's planned entry is not looked up, the
    relayhost's is; nothing gets stricter, and the reason names the relayhost."""
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.posttls_finger import level_changes
    relay = '[smtp.example.net]:587'
    answers = {'hash:/t': {relay: 'encrypt'}}
    route = Route('example.com', 'smtp', relay, 'relayhost = %s' % relay)
    client = {'route': route, 'overridden': [], 'next_hop': relay, 'specs': None, 'level': None, 'not_smtp': None}
    (item,) = level_changes(['example.com'], ['hash:/t'], answers, 'may', 'hash:/t',
                            planned={'example.com': 'secure'}, client=lambda d: client)
    assert (item['next_hop'], item['level_before'], item['level'], item['affected']) == (
        relay, 'encrypt', 'encrypt', False)
    assert item['not_probed'] == ('not probed: level stays encrypt (its mail goes to the relayhost %s, whose '
                                  'entry applies)' % relay)
    assert (item['transport'], item['route']) == ('smtp', 'relayhost = %s' % relay)


def _client(next_hop, specs=None, level=None, not_smtp=None, overridden=(), transport='smtp'):
    route = Route('example.com', transport, next_hop, 'transport_maps (hash:/tr: example.com %s:%s)'
                  % (transport, next_hop))
    return {'route': route, 'overridden': list(overridden), 'next_hop': next_hop, 'specs': specs,
            'level': level, 'not_smtp': not_smtp}


def test_a_transport_that_sets_its_own_level_keeps_it_when_main_cf_changes():
    # master.cf lane -o smtp_tls_security_level=may: raising main.cf's level changes nothing
    client = _client('example.com', level='may', overridden=['smtp_tls_security_level'], transport='lane')
    (item,) = level_changes(['example.com'], ['hash:/t'], {'hash:/t': {}}, 'may', 'hash:/t',
                            global_after='encrypt', client=lambda d: client)
    assert (item['level_before'], item['level'], item['affected']) == ('may', 'may', False), item
    assert item['route'].endswith('master.cf lane/unix sets smtp_tls_security_level'), item
    (item,) = level_changes(['example.com'], ['hash:/t'], {'hash:/t': {}}, 'may', 'hash:/t',
                            global_after='encrypt', client=lambda d: _client('example.com'))
    assert (item['level_before'], item['level'], item['affected']) == ('may', 'encrypt', True), item


def test_a_transport_with_its_own_policy_tables_does_not_see_the_planned_table():
    own = _client('example.com', specs=['hash:/own'], overridden=['smtp_tls_policy_maps'])
    answers = {'hash:/t': {}, 'hash:/own': {'example.com': 'encrypt'}}
    (item,) = level_changes(['example.com'], ['hash:/t'], answers, 'may', 'hash:/t',
                            planned={'example.com': 'secure'}, client=lambda d: own)
    assert (item['level_before'], item['level'], item['key'], item['source']) == (
        'encrypt', 'encrypt', 'example.com', 'hash:/own'), item
    # unless its tables list the planned one
    own = _client('example.com', specs=['hash:/t'], overridden=['smtp_tls_policy_maps'])
    (item,) = level_changes(['example.com'], ['hash:/t'], answers, 'may', 'hash:/t',
                            planned={'example.com': 'secure'}, client=lambda d: own)
    assert (item['level'], item['affected']) == ('secure', True), item
    plan = probe_plan([item], ['hash:/t'], answers, 'hash:/t', planned={'example.com': 'secure'},
                      client=lambda d: own)
    assert plan == [('example.com', 'secure', 'policy table', ('example.com', 'secure'))]


def test_mail_no_smtp_client_delivers_is_not_probed():
    client = _client(None, not_smtp='its transport discard (master.cf command discard) delivers no mail over SMTP',
                     transport='discard')
    (item,) = level_changes(['example.com'], ['hash:/t'], {'hash:/t': {}}, 'may', 'hash:/t',
                            global_after='encrypt', client=lambda d: client)
    assert (item['affected'], item['probe'], item['level']) == (False, False, None), item
    assert item['not_probed'].startswith('not probed: its transport discard'), item
