# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The mailgw.postfix_tls filters the enforce_tls role decides with (pure, no Postfix)."""

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.mailgw.postfix_tls.plugins.filter.postfix_tls import (
    FilterModule,
    current_tls_level,
    merge_tls_policies,
    policy_maps_with_table,
    postfix_list,
    tls_level_rank,
    tls_policy_problems,
    tls_preflight_report,
)


def test_every_filter_is_registered():
    assert sorted(FilterModule().filters()) == sorted([
        'tls_policy_problems', 'merge_tls_policies', 'current_tls_level', 'tls_level_rank',
        'postfix_list', 'policy_maps_with_table', 'tls_policy_values', 'tls_preflight_report',
        'enforce_tls_decision', 'enforce_tls_input_problems', 'enforce_tls_table'])


# -- tls_policy_problems -------------------------------------------------------------

def test_problems_name_every_bad_entry_and_non_list_source():
    sources = {
        'enforce_tls_policies': [
            {'destination': 'ok.example', 'level': 'verify'},
            {'destination': '  ', 'level': 'may'},
            {'destination': 'gone.example', 'state': 'absent'},
        ],
        'enforce_tls_policies__partners': {'destination': 'not-a-list.example', 'level': 'secure'},
        'enforce_tls_host_policies': [
            {'destination': 'nolevel.example'},
            {'destination': 'fine.example', 'level': 'encrypt'},
        ],
    }
    assert tls_policy_problems(sources) == [
        ['enforce_tls_policies[1]', {'destination': '  ', 'level': 'may'}],
        ['enforce_tls_policies__partners (must be a list of entries)',
         {'destination': 'not-a-list.example', 'level': 'secure'}],
        ['enforce_tls_host_policies[0]', {'destination': 'nolevel.example'}],
    ]


@pytest.mark.parametrize('entry', [
    'example.com verify',
    ['example.com', 'verify'],
    {'level': 'verify'},
    {'destination': None, 'level': 'verify'},
    {'destination': 42, 'level': 'verify'},
    {'destination': '', 'level': 'verify'},
    {'destination': 'example.com', 'level': ''},
    {'destination': 'example.com', 'level': None},
    {'destination': 'example.com', 'level': 'verify', 'state': 'gone'},
    {'destination': 'example.com', 'level': 'verify', 'state': None},
])
def test_bad_entry_shapes(entry):
    assert tls_policy_problems({'v': [entry]}) == [['v[0]', entry]]


@pytest.mark.parametrize('value', ['example.com verify', 7, None, {'destination': 'a', 'level': 'may'}])
def test_a_source_that_is_not_a_list_is_one_problem(value):
    assert tls_policy_problems({'v': value}) == [['v (must be a list of entries)', value]]


def test_good_entries_and_list_sources():
    good = [{'destination': 'a.example', 'level': 'may'},
            {'destination': 'b.example', 'state': 'absent'},
            {'destination': '[h]:25', 'level': 'verify', 'state': 'present', 'match': ['x']}]
    assert tls_policy_problems({'v': good, 'w': []}) == []
    assert tls_policy_problems([good, ({'level': 'x'},)]) == [['sources[1][0]', {'level': 'x'}]]


def test_problems_refuse_a_source_container_that_is_neither_list_nor_mapping():
    with pytest.raises(AnsibleFilterError, match='expected a mapping'):
        tls_policy_problems('enforce_tls_policies')


# -- merge_tls_policies --------------------------------------------------------------

def test_merge_later_source_wins_and_keeps_the_first_place():
    group = [{'destination': 'example.com', 'level': 'verify'},
             {'destination': 'partner.example', 'level': 'encrypt'}]
    extra = [{'destination': 'partner.example', 'level': 'secure', 'match': ['nexthop']},
             {'destination': 'bank.example', 'level': 'secure'}]
    host = [{'destination': 'EXAMPLE.com', 'level': 'secure'},
            {'destination': '[127.0.0.1]:10025', 'level': 'encrypt'}]
    merged = merge_tls_policies([group, extra, host], ['[127.0.0.1]:10025', '[10.0.0.5]:2525'])
    assert merged == [
        {'destination': '[127.0.0.1]:10025', 'level': 'encrypt'},
        {'destination': '[10.0.0.5]:2525', 'level': 'none'},
        {'destination': 'EXAMPLE.com', 'level': 'secure'},
        {'destination': 'partner.example', 'level': 'secure', 'match': ['nexthop']},
        {'destination': 'bank.example', 'level': 'secure'},
    ]


def test_merge_accepts_a_mapping_of_sources_and_absent_entries_replace():
    merged = merge_tls_policies({'a': [{'destination': 'x.example', 'level': 'may'}],
                                 'b': [{'destination': 'X.EXAMPLE', 'state': 'absent'}]})
    assert merged == [{'destination': 'X.EXAMPLE', 'state': 'absent'}]


def test_merge_folds_ascii_only_as_postfix_does():
    # Postfix folds table keys with ASCII rules: a non-ASCII capital stays distinct.
    merged = merge_tls_policies([[{'destination': 'Ä.example', 'level': 'may'},
                                  {'destination': 'ä.EXAMPLE', 'level': 'verify'},
                                  {'destination': 'Ä.EXAMPLE', 'level': 'secure'}]])
    assert merged == [{'destination': 'Ä.EXAMPLE', 'level': 'secure'},
                      {'destination': 'ä.EXAMPLE', 'level': 'verify'}]


def test_merge_of_nothing():
    assert merge_tls_policies([]) == []
    assert merge_tls_policies([[], []], []) == []


def test_merge_is_linear_for_large_inputs():
    big = [[{'destination': 'd%d.example' % i, 'level': 'verify'} for i in range(20000)]] * 3
    assert len(merge_tls_policies(big, ['[127.0.0.1]:10025'])) == 20001


@pytest.mark.parametrize('sources, message', [
    ([{'destination': 'a', 'level': 'may'}], r'sources\[0\] must be a list'),
    ({'v': [{'level': 'may'}]}, r'v\[0\] is not a policy entry'),
    ('text', 'expected a mapping'),
])
def test_merge_refuses_unchecked_input(sources, message):
    with pytest.raises(AnsibleFilterError, match=message):
        merge_tls_policies(sources)


def test_merge_refuses_a_string_of_nexthops():
    with pytest.raises(AnsibleFilterError, match='internal_nexthops must be a list'):
        merge_tls_policies([], '[127.0.0.1]:10025')


# -- current_tls_level / tls_level_rank ----------------------------------------------

@pytest.mark.parametrize('params, level', [
    ({'smtp_tls_security_level': 'Encrypt'}, 'encrypt'),
    ({'smtp_tls_security_level': ' secure ', 'smtp_use_tls': 'yes'}, 'secure'),
    ({'smtp_tls_security_level': '', 'smtp_enforce_tls': 'yes', 'smtp_tls_enforce_peername': 'yes'}, 'verify'),
    ({'smtp_tls_security_level': '', 'smtp_enforce_tls': 'yes', 'smtp_tls_enforce_peername': 'no'}, 'encrypt'),
    ({'smtp_tls_security_level': '', 'smtp_enforce_tls': 'no', 'smtp_use_tls': 'yes'}, 'may'),
    ({'smtp_tls_security_level': '', 'smtp_enforce_tls': 'no', 'smtp_use_tls': 'no'}, 'none'),
    ({}, 'none'),
])
def test_current_outgoing_level(params, level):
    assert current_tls_level(params, 'smtp') == level


@pytest.mark.parametrize('params, level', [
    ({'smtpd_tls_security_level': 'MAY'}, 'may'),
    ({'smtpd_tls_security_level': '', 'smtpd_enforce_tls': 'yes', 'smtpd_use_tls': 'no'}, 'encrypt'),
    ({'smtpd_tls_security_level': '', 'smtpd_enforce_tls': 'no', 'smtpd_use_tls': 'YES'}, 'may'),
    ({'smtpd_tls_security_level': '', 'smtpd_enforce_tls': '', 'smtpd_use_tls': ''}, 'none'),
    # The client's settings do not count for the server.
    ({'smtp_tls_security_level': 'encrypt', 'smtp_use_tls': 'yes'}, 'none'),
])
def test_current_incoming_level(params, level):
    assert current_tls_level(params, 'smtpd') == level


def test_current_level_refuses_bad_arguments():
    with pytest.raises(AnsibleFilterError, match='side must be one of smtp, smtpd'):
        current_tls_level({}, 'outgoing')
    with pytest.raises(AnsibleFilterError, match='expects a mapping'):
        current_tls_level('may', 'smtp')


def test_level_ranks():
    smtp = ['none', 'may', 'encrypt', 'dane', 'verify', 'secure']
    assert [tls_level_rank(level, 'smtp') for level in smtp] == [0, 1, 2, 3, 4, 5]
    assert tls_level_rank('dane-only', 'smtp') == tls_level_rank('FINGERPRINT', 'smtp') == 5
    assert [tls_level_rank(level, 'smtpd') for level in ('none', 'may', 'encrypt')] == [0, 1, 2]
    for level in ('verify', 'secure', 'fingerprint'):
        assert tls_level_rank(level, 'smtpd') == 2
    assert tls_level_rank('dane', 'smtpd') == -1
    assert tls_level_rank('', 'smtp') == tls_level_rank(None, 'smtp') == tls_level_rank('bogus', 'smtp') == -1
    with pytest.raises(AnsibleFilterError):
        tls_level_rank('may', 'incoming')


# -- postfix_list / policy_maps_with_table -------------------------------------------

def test_postfix_list():
    assert postfix_list('hash:/a, lmdb:/b\tcdb:/c,,inline:{ a=b, c=d }') == [
        'hash:/a', 'lmdb:/b', 'cdb:/c', 'inline:{ a=b, c=d }']
    assert postfix_list('') == [] and postfix_list(None) == []
    assert postfix_list('/etc/a.pem,/etc/b.pem /etc/c.pem') == ['/etc/a.pem', '/etc/b.pem', '/etc/c.pem']
    with pytest.raises(AnsibleFilterError):
        postfix_list(['a'])


TABLE = 'hash:/etc/postfix/tls_policy'


@pytest.mark.parametrize('current, expanded, table, table_expanded, result', [
    # empty: the table alone
    ('', '', TABLE, TABLE, TABLE),
    # already listed: unchanged, spelling kept
    ('hash:/etc/postfix/tls_policy,texthash:/x', None, TABLE, None, 'hash:/etc/postfix/tls_policy,texthash:/x'),
    # listed under its expanded spelling only
    ('hash:$config_directory/tls_policy', 'hash:/etc/postfix/tls_policy', TABLE, TABLE,
     'hash:$config_directory/tls_policy'),
    # CipherMail spelling: listed raw
    ('hash:${maps_d_dir}/hash-tls-policy.map', 'hash:/etc/postfix/cm/hash-tls-policy.map',
     'hash:${maps_d_dir}/hash-tls-policy.map', 'hash:/etc/postfix/cm/hash-tls-policy.map',
     'hash:${maps_d_dir}/hash-tls-policy.map'),
    # other tables follow the new one
    ('texthash:/etc/postfix/other', 'texthash:/etc/postfix/other', TABLE, TABLE,
     'hash:/etc/postfix/tls_policy, texthash:/etc/postfix/other'),
    # the same file under another type is dropped (raw or expanded path)
    ('lmdb:/etc/postfix/tls_policy, texthash:/o', None, TABLE, None, 'hash:/etc/postfix/tls_policy, texthash:/o'),
    ('lmdb:$config_directory/tls_policy inline:{ a=b, c=d }', 'lmdb:/etc/postfix/tls_policy inline:{ a=b, c=d }',
     TABLE, TABLE, 'hash:/etc/postfix/tls_policy, inline:{ a=b, c=d }'),
    # the same table through proxy: is listed already (hunt finding: it got a hash: duplicate)
    ('proxy:hash:/etc/postfix/tls_policy', None, TABLE, None, 'proxy:hash:/etc/postfix/tls_policy'),
    ('texthash:/o, proxy:hash:$config_directory/tls_policy', 'texthash:/o, proxy:hash:/etc/postfix/tls_policy',
     TABLE, TABLE, 'texthash:/o, proxy:hash:$config_directory/tls_policy'),
    # the same file under another type through proxy: is dropped like any other
    ('proxy:lmdb:/etc/postfix/tls_policy', None, TABLE, None, 'hash:/etc/postfix/tls_policy'),
    # expansion changed the number of items: the raw items are used
    ('$extra_maps', 'hash:/a hash:/b', TABLE, TABLE, 'hash:/etc/postfix/tls_policy, $extra_maps'),
])
def test_policy_maps_with_table(current, expanded, table, table_expanded, result):
    assert policy_maps_with_table(current, table, expanded, table_expanded) == result


def test_policy_maps_with_table_refuses_bad_input():
    with pytest.raises(AnsibleFilterError, match='must not be empty'):
        policy_maps_with_table('', ' ')
    with pytest.raises(AnsibleFilterError, match='current must be a string'):
        policy_maps_with_table(None, TABLE)


# -- tls_preflight_report --------------------------------------------------------------

LEVELS = {'changed': False, 'destinations': [
    {'destination': 'plain.example', 'level_before': 'may', 'level': 'encrypt', 'affected': True,
     'probe': True, 'not_probed': None},
    {'destination': 'gone.example', 'level_before': 'may', 'level': 'encrypt', 'affected': True,
     'probe': True, 'not_probed': None},
    {'destination': 'ok.example', 'level_before': 'may', 'level': 'encrypt', 'affected': True,
     'probe': True, 'not_probed': None},
    {'destination': '.example.org', 'level_before': 'may', 'level': 'verify', 'affected': True,
     'probe': False, 'not_probed': 'a .domain pattern names no host to probe'},
    {'destination': 'same.example', 'level_before': 'encrypt', 'level': 'encrypt', 'affected': False,
     'probe': False, 'not_probed': 'level unchanged'},
]}
PROBES = {'results': [
    {'item': 'encrypt', 'destinations': [
        {'destination': 'plain.example', 'host': 'mx.plain.example', 'reachable': True, 'starttls': False,
         'trust': None, 'would_defer': True, 'reason': 'TLS is required, but was not offered'},
        {'destination': 'gone.example', 'host': None, 'reachable': False, 'starttls': None,
         'trust': None, 'would_defer': True, 'reason': 'no route to host'},
        {'destination': 'ok.example', 'host': 'mx.ok.example', 'reachable': True, 'starttls': True,
         'trust': 'anonymous', 'would_defer': False, 'reason': 'TLS offered and usable at encrypt'}]},
    {'item': 'skipped', 'skipped': True},
]}


def test_preflight_report_merges_levels_and_probes():
    report = tls_preflight_report(LEVELS, PROBES, 'fail', 'gw1')
    assert (report['mode'], report['host']) == ('fail', 'gw1')
    by_name = dict((d['destination'], d) for d in report['destinations'])
    assert list(by_name) == [d['destination'] for d in LEVELS['destinations']]      # order kept
    assert by_name['plain.example']['would_defer'] is True and by_name['plain.example']['probed'] is True
    assert by_name['plain.example']['starttls'] is False and by_name['plain.example']['host'] == 'mx.plain.example'
    # unreachable at any level: not made to defer by this change
    assert by_name['gone.example']['would_defer'] is False and by_name['gone.example']['reachable'] is False
    assert by_name['ok.example']['trust'] == 'anonymous' and not by_name['ok.example']['would_defer']
    # not probed: the levels' reason, no probe facts
    assert by_name['.example.org']['probed'] is False and by_name['.example.org']['reachable'] is None
    assert by_name['.example.org']['line'] == '.example.org at verify (a .domain pattern names no host to probe)'
    assert report['affected'] == ['plain.example', 'gone.example', 'ok.example', '.example.org']
    assert report['would_defer'] == ['plain.example']
    assert report['unreachable'] == ['gone.example']
    assert report['summary'] == '1 would defer: plain.example at encrypt (TLS is required, but was not offered)'


def test_preflight_report_from_one_probe_task():
    one = {'changed': False, 'destinations': PROBES['results'][0]['destinations']}
    assert tls_preflight_report(LEVELS, one, 'fail', 'gw1') == tls_preflight_report(LEVELS, PROBES, 'fail', 'gw1')


def test_preflight_report_from_levels_that_probed_themselves():
    """tls_policy_levels with probe: true carries the probes (its `probes`): no probe result needed."""
    probed = dict(LEVELS, probes=PROBES['results'][0]['destinations'])
    assert tls_preflight_report(probed, None, 'fail', 'gw1') == tls_preflight_report(LEVELS, PROBES, 'fail', 'gw1')


def test_preflight_report_of_nothing_affected_and_of_a_skipped_task():
    quiet = {'destinations': [LEVELS['destinations'][-1]]}
    report = tls_preflight_report(quiet, {'results': [], 'skipped': True}, 'warn', 'gw1')
    assert report['summary'] == 'no destination would defer (0 affected)'
    assert report['would_defer'] == [] and report['unreachable'] == [] and report['affected'] == []
    assert report['destinations'][0]['line'] == 'same.example at encrypt (level unchanged)'
    skipped = tls_preflight_report({'skipped': True, 'changed': False}, None, 'off', 'gw1')
    assert skipped == dict(mode='off', host='gw1', destinations=[], affected=[], would_defer=[],
                           unreachable=[], refused_clients=[], local_plaintext_clients=[], unchecked=None,
                           failed=False, summary='no destination would defer (0 affected)')


def test_preflight_report_of_levels_that_could_not_be_worked_out():
    failed = {'failed': True, 'skipped': False, 'msg': 'posttls-finger is not installed on this host'}
    report = tls_preflight_report(failed, None, 'warn', 'gw1', {'before': 'may', 'after': 'encrypt'})
    assert report['failed'] is True and report['destinations'] == [] and report['would_defer'] == []
    assert report['summary'] == report['unchecked'] == ('nothing was checked: the preflight could not run '
                                                        '(posttls-finger is not installed on this host)')


def test_preflight_report_says_what_a_global_raise_leaves_unchecked():
    """smtp_tls_security_level may -> encrypt applies to every destination without an entry:
    the report must not read as if the whole change had been checked."""
    raised = dict(LEVELS, level_before='may', level='encrypt', probes=PROBES['results'][0]['destinations'])
    report = tls_preflight_report(raised, None, 'warn', 'gw1')
    assert report['unchecked'].startswith('smtp_tls_security_level rises from may to encrypt for every '
                                          'destination without a policy entry'), report['unchecked']
    assert 'enforce_tls_preflight_log: true' in report['unchecked']
    assert report['summary'] == ('1 would defer: plain.example at encrypt (TLS is required, but was not offered)'
                                 '; NOTE: ' + report['unchecked'])
    # with the log read: names what was read, and what it cannot cover
    logged = dict(raised, log_sources=['/var/log/mail.log'])
    assert 'the mail log (/var/log/mail.log) shows' in tls_preflight_report(logged, None, 'warn', 'gw1')['unchecked']
    # a log without TLS lines (smtp_tls_loglevel 0) shows no plaintext next hop: said so
    unlogged = dict(logged, log_tls_logged={'smtp': False, 'smtpd': True})
    assert 'smtp_tls_loglevel is 0' in tls_preflight_report(unlogged, None, 'warn', 'gw1')['unchecked']
    # no global raise (the same level, or a table-only change): nothing to add
    for before, after in (('encrypt', 'encrypt'), ('encrypt', 'may'), (None, None)):
        same = dict(LEVELS, level_before=before, level=after)
        report = tls_preflight_report(same, PROBES, 'warn', 'gw1')
        assert report['unchecked'] is None and 'NOTE' not in report['summary']


CLIENTS = [{'client': 'mail.example.net[192.0.2.7]', 'loopback': False, 'messages_plaintext': 2},
           {'client': 'unknown[127.0.0.1]', 'loopback': True, 'messages_plaintext': 1},
           {'client': 'tls.example.net[192.0.2.9]', 'loopback': False, 'messages_plaintext': 0}]
RAISED = {'before': 'may', 'after': 'encrypt'}


def test_preflight_report_names_the_clients_a_raised_smtpd_refuses():
    logged = {'destinations': [], 'log_sources': ['/var/log/mail.log'],
              'log_tls_logged': {'smtp': True, 'smtpd': True}, 'log_clients': CLIENTS}
    report = tls_preflight_report(logged, None, 'fail', 'gw1', RAISED)
    assert report['refused_clients'] == ['mail.example.net[192.0.2.7]']
    assert report['local_plaintext_clients'] == ['unknown[127.0.0.1]']
    assert report['unchecked'] is None
    assert report['summary'] == (
        'no destination would defer (0 affected); 1 client sent mail without TLS (mail log: /var/log/mail.log) and '
        'would get 530 at smtpd_tls_security_level = encrypt: mail.example.net[192.0.2.7] (2 messages); from this '
        'host without TLS: unknown[127.0.0.1] (1 message) (a re-injection service in '
        'enforce_tls_reinjection_services is exempt; another local program sending to port 25 would get 530)')
    # the module lists at most 100 clients and counts them all
    capped = tls_preflight_report(dict(logged, log_clients_plaintext=102), None, 'fail', 'gw1', RAISED)
    assert 'mail.example.net[192.0.2.7] (2 messages) (and 100 more clients, not listed)' in capped['summary']
    # all over TLS: said so
    tls_only = dict(logged, log_clients=CLIENTS[2:])
    assert tls_preflight_report(tls_only, None, 'fail', 'gw1', RAISED)['summary'] == (
        'no destination would defer (0 affected); no other host sent mail without TLS (mail log: /var/log/mail.log)')
    # smtpd not raised (already encrypt, or staying at may): clients are not this run's business
    for incoming in ({'before': 'encrypt', 'after': 'encrypt'}, {'before': 'none', 'after': 'may'}, None):
        quiet = tls_preflight_report(logged, None, 'fail', 'gw1', incoming)
        assert quiet['refused_clients'] == [] and quiet['summary'] == 'no destination would defer (0 affected)'


def test_preflight_report_says_when_the_clients_were_not_checked():
    no_log = tls_preflight_report({'destinations': []}, None, 'warn', 'gw1', RAISED)
    assert no_log['refused_clients'] == [] and no_log['unchecked'] == (
        'smtpd_tls_security_level rises from may to encrypt: a client that does not use STARTTLS gets 530, and '
        'the preflight did not read the mail log (enforce_tls_preflight_log: true lists the clients that sent '
        'mail without TLS)')
    unlogged = {'destinations': [], 'log_sources': ['journal'], 'log_tls_logged': {'smtp': True, 'smtpd': False},
                'log_clients': CLIENTS}
    report = tls_preflight_report(unlogged, None, 'fail', 'gw1', RAISED)
    assert report['refused_clients'] == [] and 'smtpd_tls_loglevel is 0' in report['unchecked']
    assert report['summary'].endswith('; NOTE: ' + report['unchecked'])


def test_preflight_report_does_not_count_plaintext_to_services_encrypt_does_not_reach():
    clients = [{'client': 'scanner[192.0.2.20]', 'loopback': False, 'messages_plaintext': 4,
                'plaintext_services': ['postfix/legacy/smtpd']},
               {'client': 'mixed[192.0.2.21]', 'loopback': False, 'messages_plaintext': 2,
                'plaintext_services': ['postfix/legacy/smtpd', 'postfix/smtpd']}]
    logged = {'destinations': [], 'log_sources': ['/var/log/mail.log'], 'log_tls_logged': {'smtpd': True},
              'log_clients': clients}
    report = tls_preflight_report(logged, None, 'fail', 'gw1', dict(RAISED, unenforced=['postfix/legacy/smtpd']))
    assert report['refused_clients'] == ['mixed[192.0.2.21]']
    assert ('; not refused: scanner[192.0.2.20] (4 messages) (sent only to postfix/legacy/smtpd, which incoming '
            'encrypt does not reach)') in report['summary']
    # this host's plaintext only to such a service (a re-injection service logging as its own
    # name) is expected, and not listed; to port 25 it is
    local = [{'client': 'localhost[127.0.0.1]', 'loopback': True, 'messages_plaintext': 3,
              'plaintext_services': ['postfix/10026/smtpd']},
             {'client': 'localhost[::1]', 'loopback': True, 'messages_plaintext': 1,
              'plaintext_services': ['postfix/smtpd']}]
    mixed = tls_preflight_report(dict(logged, log_clients=local), None, 'fail', 'gw1',
                                 dict(RAISED, unenforced=['postfix/10026/smtpd']))
    assert mixed['local_plaintext_clients'] == ['localhost[::1]'] and mixed['refused_clients'] == []
    # without the decision's list every such client counts
    assert tls_preflight_report(logged, None, 'fail', 'gw1', RAISED)['refused_clients'] == [
        'scanner[192.0.2.20]', 'mixed[192.0.2.21]']
