# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The enforce_tls role's decision and input checks (filters, pure, no Postfix)."""

import json

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.mailgw.postfix_tls.plugins.filter.postfix_tls import (
    enforce_tls_decision,
    enforce_tls_input_problems,
    enforce_tls_table,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import expand_references

CERT = '/etc/ssl/certs/ssl-cert-snakeoil.pem'
KEY = '/etc/ssl/private/ssl-cert-snakeoil.key'
GOOD = {'exists': True, 'isreg': True, 'isdir': False, 'readable': True, 'size': 100}


def info(parameters=None, expanded=None, files=None, services=None, overrides=None, parameter_files=None):
    """A postconf_info result of a stock Debian Postfix with the snakeoil pair."""
    raw = dict(smtp_tls_security_level='may', smtpd_tls_security_level='may', smtp_tls_policy_maps='',
               smtpd_tls_cert_file=CERT, smtpd_tls_key_file=KEY, default_database_type='hash',
               smtp_dns_support_level='')
    raw.update(parameters or {})
    exp = dict(raw)
    exp.update(expanded or {})
    pf = dict(smtpd_tls_cert_file=[CERT], smtpd_tls_key_file=[KEY], smtpd_tls_eccert_file=[],
              smtpd_tls_eckey_file=[], smtpd_tls_chain_files=[])
    pf.update(parameter_files or {})
    fs = {'/etc/postfix': dict(GOOD, isreg=False, isdir=True), CERT: GOOD, KEY: GOOD}
    fs.update(files or {})
    return dict(parameters=raw, expanded=exp, files=fs, parameter_files=pf,
                services=services if services is not None else ['smtp/inet', '127.0.0.1:10026/inet'],
                service_parameters=overrides or {})


def test_converged_host_writes_nothing():
    d = enforce_tls_decision(info(), {'outgoing_level': 'may', 'incoming_level': 'may'})
    assert d['readable'] is True
    assert d['level_params'] == {} and d['cert_params'] == {} and d['exempt_services'] == []
    assert d['map_path'] == '/etc/postfix/tls_policy' and d['map_dir'] == '/etc/postfix'
    assert d['map_type'] == '' and d['map_reference'] == '' and d['map_dir_missing'] is False
    assert d['notes'] == [] and d['refusals'] == []
    assert d['smtpd_cert_files'] == [CERT, KEY]
    assert d['incoming_raised'] is False


def converged(**more):
    """info() of a host whose table is planned unchanged and listed in smtp_tls_policy_maps."""
    host = info(dict({'smtp_tls_policy_maps': 'hash:/etc/postfix/tls_policy'}, **more.pop('parameters', {})),
                **more)
    host['tls_policy_plan'] = {'map': 'hash:/etc/postfix/tls_policy', 'path': '/etc/postfix/tls_policy',
                               'table_differs': False}
    return host


def test_writes_nothing_only_when_every_part_is_in_place():
    settings = {'outgoing_level': 'may', 'incoming_level': 'may'}
    d = enforce_tls_decision(converged(), settings)
    assert d['writes'] is False and d['policy_maps'] == 'hash:/etc/postfix/tls_policy'
    # each part alone makes the run write (change.yml is included only then)
    table = converged()
    table['tls_policy_plan']['table_differs'] = True
    unlisted = converged(parameters={'smtp_tls_policy_maps': 'hash:/etc/postfix/other'})
    missing_dir = converged(files={'/etc/postfix': {'exists': False}})
    for host, more in ((table, {}), (unlisted, {}), (missing_dir, {}), (converged(), {'outgoing_level': 'encrypt'}),
                       (converged(), {'smtpd_cert_file': '/srv/cert.pem'}),
                       (converged(), {'incoming_level': 'encrypt', 'reinjection_services': ['127.0.0.1:10026/inet']})):
        assert enforce_tls_decision(host, dict(settings, **more))['writes'] is True, (host, more)
    assert enforce_tls_decision(unlisted, settings)['policy_maps'] == \
        'hash:/etc/postfix/tls_policy, hash:/etc/postfix/other'
    # without a plan (an older read, a refused plan): the table counts as changing
    assert enforce_tls_decision(info(), settings)['writes'] is True
    assert enforce_tls_decision(info(), settings)['policy_maps'] is None


def test_writes_follows_the_listing_through_proxy_and_expansion():
    settings = {'outgoing_level': 'may', 'incoming_level': 'may'}
    proxied = converged(parameters={'smtp_tls_policy_maps': 'proxy:hash:/etc/postfix/tls_policy'})
    assert enforce_tls_decision(proxied, settings)['writes'] is False
    referenced = converged(parameters={'smtp_tls_policy_maps': 'hash:$config_directory/tls_policy'},
                           expanded={'smtp_tls_policy_maps': 'hash:/etc/postfix/tls_policy'})
    d = enforce_tls_decision(referenced, settings)
    assert d['writes'] is False and d['policy_maps'] == 'hash:$config_directory/tls_policy'


def test_levels_raised_and_stricter_ones_kept():
    d = enforce_tls_decision(info(), {'outgoing_level': 'encrypt', 'incoming_level': 'encrypt',
                                      'reinjection_services': ['127.0.0.1:10026/inet']})
    assert d['level_params'] == {'smtp_tls_security_level': 'encrypt', 'smtpd_tls_security_level': 'encrypt'}
    assert d['exempt_services'] == ['127.0.0.1:10026/inet']
    assert d['incoming_raised'] is True
    kept = enforce_tls_decision(info({'smtp_tls_security_level': 'secure'}), {'outgoing_level': 'encrypt'})
    assert kept['outgoing_final'] == 'secure' and 'smtp_tls_security_level' not in kept['level_params']
    assert kept['notes'] == ['Outgoing TLS stays at "secure": it is stricter than the requested '
                             'enforce_tls_outgoing_level=encrypt. Set enforce_tls_allow_downgrade=true to lower it.']
    lowered = enforce_tls_decision(info({'smtp_tls_security_level': 'secure'}),
                                   {'outgoing_level': 'encrypt', 'allow_downgrade': True})
    assert lowered['level_params'] == {'smtp_tls_security_level': 'encrypt'} and lowered['notes'] == []


def test_dane_and_encrypt_are_each_weaker_somewhere():
    # encrypt -> dane: opportunistic (may, plaintext fallback) for every destination without
    # DNSSEC TLSA records, so it is no raise; kept, with a note saying why
    kept = enforce_tls_decision(info({'smtp_tls_security_level': 'encrypt'}), {'outgoing_level': 'dane'})
    assert kept['outgoing_final'] == 'encrypt' and 'smtp_tls_security_level' not in kept['level_params']
    assert kept['notes'][0].startswith('Outgoing TLS stays at "encrypt": the requested '
                                       'enforce_tls_outgoing_level=dane is opportunistic TLS (level may, '
                                       'with its plaintext fallback) for every destination without '
                                       'DNSSEC-validated TLSA records, weaker than encrypt there.')
    # dane -> encrypt: no authentication for the destinations with TLSA records; kept too
    kept = enforce_tls_decision(info({'smtp_tls_security_level': 'dane'}), {'outgoing_level': 'encrypt'})
    assert kept['outgoing_final'] == 'dane' and 'stricter than the requested' in kept['notes'][0]
    # either way with enforce_tls_allow_downgrade
    for now, requested in (('encrypt', 'dane'), ('dane', 'encrypt')):
        moved = enforce_tls_decision(info({'smtp_tls_security_level': now}),
                                     {'outgoing_level': requested, 'allow_downgrade': True})
        assert moved['level_params'] == {'smtp_tls_security_level': requested}
    # may -> dane is a raise
    raised = enforce_tls_decision(info({'smtp_tls_security_level': 'may'}), {'outgoing_level': 'dane'})
    assert raised['level_params'] == {'smtp_tls_security_level': 'dane'}


def test_obsolete_settings_count_and_case_is_ignored():
    d = enforce_tls_decision(info({'smtp_tls_security_level': '', 'smtp_enforce_tls': 'yes',
                                   'smtp_tls_enforce_peername': 'yes'}),
                             {'outgoing_level': 'encrypt'})
    assert d['current_outgoing'] == 'verify' and d['outgoing_final'] == 'verify'
    same = enforce_tls_decision(info({'smtp_tls_security_level': 'MAY'}), {'outgoing_level': 'may'})
    assert same['level_params'] == {}


def test_encrypt_without_certificate_is_refused_may_is_warned():
    broken = info(files={KEY: {'exists': False}})
    refused = enforce_tls_decision(broken, {'incoming_level': 'encrypt'})
    assert refused['refusals'][0].startswith('Refusing smtpd_tls_security_level=encrypt in /etc/postfix: '
                                             + KEY + ' does not exist.')
    assert enforce_tls_decision(broken, {'incoming_level': 'encrypt', 'skip_certificate_check': True})['refusals'] == []
    warned = enforce_tls_decision(broken, {'incoming_level': 'may'})
    assert warned['refusals'] == [] and warned['notes'][0].startswith('WARNING: smtpd_tls_security_level=may')
    none = info(parameter_files={'smtpd_tls_cert_file': [], 'smtpd_tls_key_file': []})
    assert 'no smtpd certificate is configured' in enforce_tls_decision(none, {'incoming_level': 'encrypt'})['refusals'][0]


def test_certificate_files_resolution():
    # the key defaults to the certificate file; the inventory's pair wins and is written
    d = enforce_tls_decision(info({'smtpd_tls_key_file': '$smtpd_tls_cert_file'},
                                  parameter_files={'smtpd_tls_key_file': [CERT]}), {})
    assert d['smtpd_cert_files'] == [CERT]
    mine = enforce_tls_decision(info(files={'/srv/c.pem': GOOD, '/srv/k.pem': dict(GOOD, size=0)}),
                                {'smtpd_cert_file': '/srv/c.pem', 'smtpd_key_file': '/srv/k.pem'})
    assert mine['cert_params'] == {'smtpd_tls_cert_file': '/srv/c.pem', 'smtpd_tls_key_file': '/srv/k.pem'}
    assert mine['cert_problems'] == ['/srv/k.pem is empty']
    chain = enforce_tls_decision(info(parameter_files={'smtpd_tls_chain_files': ['/srv/chain.pem']},
                                      files={'/srv/chain.pem': dict(GOOD, readable=False)}), {})
    assert chain['smtpd_cert_files'] == ['/srv/chain.pem'] and chain['cert_problems'] == ['/srv/chain.pem is not readable']


def test_ciphermail_layout_paths():
    host = info(expanded={'maps_d_dir': '/etc/postfix/maps.d'}, parameters={'default_database_type': 'lmdb'})
    d = enforce_tls_decision(host, {'layout': 'ciphermail'})
    assert d['map_path'] == '/etc/postfix/maps.d/lmdb-tls-policy.map' and d['map_type'] == 'lmdb'
    assert d['map_reference'] == 'lmdb:${maps_d_dir}/lmdb-tls-policy.map'
    assert d['maps_d_dir_write'] is False and d['map_dir_missing'] is False  # not among files: not known missing
    fresh = enforce_tls_decision(info(files={'/etc/postfix/maps.d': {'exists': False}}), {'layout': 'ciphermail'})
    assert fresh['maps_d_dir'] == '/etc/postfix/maps.d' and fresh['maps_d_dir_write'] is True
    assert fresh['map_dir_missing'] is True
    explicit = enforce_tls_decision(host, {'layout': 'ciphermail', 'map_path': '/srv/t.map', 'map_type': 'cdb'})
    assert explicit['map_path'] == '/srv/t.map' and explicit['map_dir'] == '/srv' and explicit['map_reference'] == ''


@pytest.mark.parametrize('overrides, services, incoming_now, incoming, staged', [
    ({}, None, 'may', 'encrypt', True),                              # a service to exempt
    ({'127.0.0.1:10026/inet': {'smtpd_tls_security_level': 'none'}}, None, 'may', 'encrypt', True),  # may not be live
    ({'127.0.0.1:10026/inet': {'smtpd_tls_security_level': 'none'}}, None, 'encrypt', 'encrypt', False),  # no raise
    ({}, ['smtp/inet'], 'may', 'encrypt', False),                    # no re-injection service in master.cf
    ({}, None, 'may', 'may', False),                                 # smtpd not raised to encrypt
])
def test_levels_wait_for_a_reload_when_smtpd_raised_could_reach_a_reinjection_service(
        overrides, services, incoming_now, incoming, staged):
    host = info({'smtpd_tls_security_level': incoming_now}, overrides=overrides, services=services)
    d = enforce_tls_decision(host, {'incoming_level': incoming, 'reinjection_services': ['127.0.0.1:10026/inet']})
    assert d['levels_staged'] is staged


def test_services_already_exempt_or_missing():
    exempt = info(overrides={'127.0.0.1:10026/inet': {'smtpd_tls_security_level': 'none'}})
    assert enforce_tls_decision(exempt, {'incoming_level': 'encrypt'})['exempt_services'] == []
    missing = enforce_tls_decision(info(services=['smtp/inet']), {'incoming_level': 'encrypt',
                                                                  'reinjection_services': ['127.0.0.1:10026/inet']})
    assert missing['exempt_services'] == []
    assert missing['notes'] == ['127.0.0.1:10026/inet is not a service in /etc/postfix/master.cf: nothing to '
                                'exempt from incoming TLS enforcement there.']


def test_dane_without_dnssec_is_noted():
    d = enforce_tls_decision(info(), {'outgoing_level': 'dane'})
    assert d['notes'] == ['smtp_tls_security_level=dane needs smtp_dns_support_level = dnssec (now ""): without '
                          'it Postfix cannot use DANE and falls back to a weaker level.']


def test_unreadable_configuration_is_refused():
    d = enforce_tls_decision({'failed': True, 'msg': 'postconf cannot read: boom'}, {'config_dir': '/srv/pf'})
    assert d['readable'] is False
    assert d['refusals'][0].startswith('enforce_tls_config_dir=/srv/pf: postconf cannot read the configuration '
                                       '(postconf cannot read: boom). Install Postfix first')


def test_decision_rejects_bad_settings():
    with pytest.raises(AnsibleFilterError, match='unknown settings outgoing'):
        enforce_tls_decision(info(), {'outgoing': 'may'})
    with pytest.raises(AnsibleFilterError, match='allow_downgrade'):
        enforce_tls_decision(info(), {'allow_downgrade': 'perhaps'})
    with pytest.raises(AnsibleFilterError, match='postconf_info'):
        enforce_tls_decision('x', {})


# -- enforce_tls_input_problems ----------------------------------------------------------

SETTINGS = dict(internal_nexthops=['[127.0.0.1]:10025'], reinjection_services=['127.0.0.1:10026/inet'],
                map_path='', maps_d_dir='', preflight='warn', preflight_destinations=[],
                preflight_timeout=10, preflight_log_window='7d', preflight_max=50, preflight_concurrency=4)


def test_good_input_has_no_problems():
    assert enforce_tls_input_problems({'enforce_tls_policies': [{'destination': 'a.example', 'level': 'may'}]},
                                      SETTINGS) == []


def test_policy_problems_are_named_and_capped():
    bad = [{'destination': 'd%d.example' % i} for i in range(22)]
    msg, = enforce_tls_input_problems({'enforce_tls_policies': bad}, SETTINGS)
    assert msg.startswith('22 policy entries are not valid: enforce_tls_policies[0]: '
                          '{"destination": "d0.example"}; ')
    assert '(and 2 more); each entry must be a mapping' in msg
    one, = enforce_tls_input_problems({'enforce_tls_host_policies': ['x']}, SETTINGS)
    assert one.startswith('1 policy entry is not valid: enforce_tls_host_policies[0]: "x"; each entry')


@pytest.mark.parametrize('name, value', [
    ('internal_nexthops', ['[127.0.0.1]:10025 x']),
    ('reinjection_services', ['127.0.0.1:10026']),
    ('map_path', 'relative/path'),
    ('maps_d_dir', '/etc/$postfix'),
])
def test_wiring_problems(name, value):
    # one message, for the bad variable only, with its rule and its value
    msg, = enforce_tls_input_problems({}, dict(SETTINGS, **{name: value}))
    assert msg.startswith('Bad value: enforce_tls_%s must be' % name), msg
    assert msg.endswith('(got %s).' % json.dumps(value)), msg


@pytest.mark.parametrize('name, value', [
    ('preflight', 'maybe'),
    ('preflight_destinations', 'example.com'),
    ('preflight_destinations', ['a.example b.example']),
    ('preflight_timeout', 0),
    ('preflight_log_window', '7 days'),
    ('preflight_max', -1),
    ('preflight_concurrency', 0),
    ('preflight_concurrency', 'many'),
])
def test_preflight_problems(name, value):
    msg, = enforce_tls_input_problems({}, dict(SETTINGS, **{name: value}))
    assert msg.startswith('Bad value: enforce_tls_%s must be' % name), msg
    assert msg.endswith('(got %s).' % json.dumps(value)), msg


def test_every_bad_setting_is_named_and_the_good_ones_are_not():
    msgs = enforce_tls_input_problems({}, dict(SETTINGS, preflight='maybe', preflight_timeout=0))
    assert [m.split(' must be')[0] for m in msgs] == ['Bad value: enforce_tls_preflight',
                                                      'Bad value: enforce_tls_preflight_timeout']
    assert not any('preflight_concurrency' in m or 'log_window' in m for m in msgs)


def test_policy_entries_the_grammar_refuses_are_named_by_variable_and_index():
    # every one, not just the first (before: the read's argument templating failed on it)
    msg, = enforce_tls_input_problems({
        'enforce_tls_policies': [{'destination': 'a.example', 'level': 'verify'},
                                 {'destination': 'b.example', 'level': 'encrypt', 'match': ['x.example']}],
        'enforce_tls_host_policies': [{'destination': 'c.example', 'level': 'tight'}]}, SETTINGS)
    assert msg.startswith('2 policy entries are not valid: enforce_tls_policies[1] destination '), msg
    assert "enforce_tls_host_policies[0] destination 'c.example'" in msg and 'tight' in msg


@pytest.mark.parametrize('mode, refused', [
    (644, '0o1204'), (600, '0o1130'), ('4644', '04644'), ('0644', None), (420, None), ('u=rw,g=r,o=r', None),
    ('0640', None), (None, None),
])
def test_a_map_mode_with_special_bits_is_refused(mode, refused):
    problems = enforce_tls_input_problems({'enforce_tls_policies': []}, dict(SETTINGS, map_mode=mode))
    if refused is None:
        assert problems == []
    else:
        expected = '0' + refused[2:] if refused.startswith('0o') else refused
        assert len(problems) == 1 and 'enforce_tls_map_mode' in problems[0] and '(mode %s)' % expected in problems[0]
        assert 'quote it, "0644"' in problems[0]


def test_a_refused_table_plan_is_a_refusal():
    host = dict(info(), tls_policy_plan={'failed': True, 'path': '/etc/postfix/tls_policy',
                                         'msg': "invalid TLS policy entry, nothing was changed: policies: "
                                                "destination 'x.example', value 'tight': unknown level"})
    d = enforce_tls_decision(host, {})
    assert d['refusals'] == ["TLS policy table /etc/postfix/tls_policy: invalid TLS policy entry, nothing was "
                             "changed: policies: destination 'x.example', value 'tight': unknown level"]
    fine = dict(info(), tls_policy_plan={'failed': False, 'table_differs': False})
    assert enforce_tls_decision(fine, {})['refusals'] == []


def test_a_table_entry_lowered_by_the_run_is_a_warning():
    changed = {'a.example': {'before': 'secure match=mx.a.example', 'after': 'may'},
               'b.example': {'before': 'encrypt', 'after': None},          # removed: smtp_tls_security_level
               'c.example': {'before': 'encrypt', 'after': 'dane'},        # may without TLSA records
               'd.example': {'before': 'may', 'after': 'encrypt'},         # raised
               'e.example': {'before': 'verify', 'after': 'secure'},
               'f.example': {'before': 'none', 'after': None}}             # removed, to may: raised
    host = dict(info(), tls_policy_plan={'failed': False, 'table_differs': True, 'path': '/etc/postfix/tls_policy',
                                         'changed_values': changed})
    d = enforce_tls_decision(host, {'outgoing_level': 'may'})
    assert d['refusals'] == []
    assert d['notes'] == ['WARNING: this run lowers the TLS policy of 3 destinations in /etc/postfix/tls_policy: '
                          'a.example secure -> may, b.example encrypt -> no entry (smtp_tls_security_level=may), '
                          'c.example encrypt -> dane. Mail to them is then sent with weaker TLS or in plaintext. '
                          'Set enforce_tls_allow_downgrade=true when that is intended.']
    # under a global encrypt the removed entry lowers nothing
    d = enforce_tls_decision(host, {'outgoing_level': 'encrypt'})
    assert 'b.example' not in d['notes'][0] and '2 destinations' in d['notes'][0]
    # allowed: no warning; nothing changed: none either
    assert enforce_tls_decision(host, {'outgoing_level': 'may', 'allow_downgrade': True})['notes'] == []
    converged = dict(info(), tls_policy_plan={'failed': False, 'table_differs': False, 'changed_values': {}})
    assert enforce_tls_decision(converged, {'outgoing_level': 'may'})['notes'] == []


def test_a_preflight_that_could_not_be_worked_out_is_a_refusal_at_fail():
    host = dict(info(), tls_policy_levels={'failed': True, 'msg': 'cannot look up the TLS policy in /etc/postfix '
                                                                  '(smtp_tls_policy_maps = hash:/x): postmap: fatal'})
    refusal, = enforce_tls_decision(host, {'preflight': 'fail'})['refusals']
    assert refusal.startswith('Preflight (enforce_tls_preflight=fail): nothing was changed; the preflight could not '
                              'work out what this change does to mail on this host: cannot look up the TLS policy '
                              'in /etc/postfix')
    assert 'enforce_tls_preflight=warn (or off)' in refusal
    # at warn the change goes ahead, with the warning
    warned = enforce_tls_decision(host, {'preflight': 'warn'})
    assert warned['refusals'] == []
    assert [n for n in warned['notes'] if n.startswith('WARNING: The preflight could not work out')], warned['notes']
    for worked_out in ({'failed': False, 'skipped': True}, {'failed': False, 'skipped': False, 'destinations': []}):
        assert enforce_tls_decision(dict(info(), tls_policy_levels=worked_out), {})['refusals'] == []


# -- enforce_tls_table: what the read plans, the same rule the decision expands -----------

@pytest.mark.parametrize('settings, template', [
    ({}, {'path': '/etc/postfix/tls_policy', 'map_type': ''}),
    ({'map_type': 'lmdb'}, {'path': '/etc/postfix/tls_policy', 'map_type': 'lmdb'}),
    ({'layout': 'ciphermail'}, {'path': '${maps_d_dir}${maps_d_dir:/etc/postfix/maps.d}/${default_database_type}'
                                        '-tls-policy.map', 'map_type': '${default_database_type}'}),
    ({'layout': 'ciphermail', 'maps_d_dir': '/srv/m', 'map_type': 'cdb', 'config_dir': '/etc/pf$x'},
     {'path': '/srv/m/cdb-tls-policy.map', 'map_type': 'cdb'}),
    ({'layout': 'ciphermail', 'config_dir': '/etc/pf$x'},
     {'path': '${maps_d_dir}${maps_d_dir:/etc/pf$$x/maps.d}/${default_database_type}-tls-policy.map',
      'map_type': '${default_database_type}'}),
    ({'layout': 'ciphermail', 'map_path': '/srv/t.map'}, {'path': '/srv/t.map', 'map_type': '${default_database_type}'}),
])
def test_table_template(settings, template):
    assert enforce_tls_table(settings) == template


@pytest.mark.parametrize('host_maps_d_dir', ['/var/lib/ciphermail/maps.d', None])
def test_the_planned_path_is_the_decided_one(host_maps_d_dir):
    expanded = {'default_database_type': 'lmdb'}
    if host_maps_d_dir:
        expanded['maps_d_dir'] = host_maps_d_dir
    host = info(expanded=expanded)
    settings = {'layout': 'ciphermail'}
    # what postconf_info does with the template (a user parameter main.cf lacks is empty)
    values = dict(info(expanded=expanded)['expanded'], maps_d_dir=host_maps_d_dir or '')
    planned = expand_references(enforce_tls_table(settings)['path'], values)
    decided = enforce_tls_decision(host, settings)
    assert decided['map_path'] == planned == '%s/lmdb-tls-policy.map' % (host_maps_d_dir or '/etc/postfix/maps.d')
    assert decided['map_type'] == 'lmdb' and decided['map_dir'] == (host_maps_d_dir or '/etc/postfix/maps.d')


def test_master_cf_overrides_that_undercut_the_levels_are_named():
    """An -o override beats main.cf: the role says which services its levels do not reach."""
    commands = {'smtp/inet': 'smtpd', '127.0.0.1:10026/inet': 'smtpd', 'smtp/unix': 'smtp'}
    overrides = {'smtp/inet': {'smtpd_tls_security_level': 'may'},
                 '127.0.0.1:10026/inet': {'smtpd_tls_security_level': 'none'},
                 'smtp/unix': {'smtp_tls_security_level': 'may'}}
    result = dict(info(overrides=overrides), service_commands=commands)
    d = enforce_tls_decision(result, {'outgoing_level': 'encrypt', 'incoming_level': 'encrypt',
                                      'reinjection_services': ['127.0.0.1:10026/inet']})
    warnings = [n for n in d['notes'] if n.startswith('WARNING: /etc/postfix/master.cf')]
    assert len(warnings) == 2, d['notes']
    assert 'service smtp/inet runs smtpd with -o smtpd_tls_security_level=may' in warnings[0]
    assert 'transport smtp/unix' in warnings[1] and 'at TLS level "may", not the "encrypt"' in warnings[1]
    assert d['refusals'] == []
    # both services logging as postfix/smtpd stay below encrypt (smtp/inet by its override,
    # the re-injection service exempt): a client's plaintext there is not refused
    assert d['unenforced_smtpd_programs'] == ['postfix/smtpd']
    # smtp/inet enforced: postfix/smtpd is not exempt, unless the re-injection service logs
    # under a name of its own
    exempt_only = {'127.0.0.1:10026/inet': {'smtpd_tls_security_level': 'none'}}
    shared = enforce_tls_decision(dict(info(overrides=exempt_only), service_commands=commands),
                                  {'incoming_level': 'encrypt', 'reinjection_services': ['127.0.0.1:10026/inet']})
    assert shared['unenforced_smtpd_programs'] == []
    own_name = {'127.0.0.1:10026/inet': {'smtpd_tls_security_level': 'none', 'syslog_name': 'postfix/10026'}}
    named = enforce_tls_decision(dict(info(overrides=own_name), service_commands=commands),
                                 {'incoming_level': 'encrypt', 'reinjection_services': ['127.0.0.1:10026/inet']})
    assert named['unenforced_smtpd_programs'] == ['postfix/10026/smtpd']
    # the same overrides under the levels they match: nothing to say
    same = enforce_tls_decision(result, {'outgoing_level': 'may', 'incoming_level': 'may'})
    assert same['notes'] == []
    # main.cf's level after the run counts, not today's: an obsolete override is moot under a level
    obsolete = dict(info(overrides={'smtp/inet': {'smtpd_use_tls': 'no'}}), service_commands=commands)
    assert enforce_tls_decision(obsolete, {'incoming_level': 'encrypt'})['notes'] == []
    # a read without service_commands (an older postconf_info) decides as before
    assert enforce_tls_decision(info(overrides=overrides), {'outgoing_level': 'encrypt'})['notes'] == []


def test_a_pair_openssl_cannot_load_refuses_incoming_encrypt():
    # postconf_info's smtpd_key_pairs: the files are there, but the key is another certificate's
    read = dict(info(), smtpd_key_pairs=[dict(cert=CERT, key=KEY, problem='[X509: KEY_VALUES_MISMATCH] key values '
                                                                          'mismatch (_ssl.c:3926)')])
    d = enforce_tls_decision(read, {'incoming_level': 'encrypt'})
    assert len(d['refusals']) == 1 and 'OpenSSL cannot load %s with the key %s' % (CERT, KEY) in d['refusals'][0]
    assert 'KEY_VALUES_MISMATCH' in d['refusals'][0] and '454 4.7.0' in d['refusals'][0]
    # at may a warning note; with the check skipped nothing
    assert any('OpenSSL cannot load' in note for note in enforce_tls_decision(read, {})['notes'])
    assert enforce_tls_decision(read, {'incoming_level': 'encrypt', 'skip_certificate_check': True})['refusals'] == []
    # a pair that loads is no problem
    fine = dict(info(), smtpd_key_pairs=[dict(cert=CERT, key=KEY, problem=None)])
    assert enforce_tls_decision(fine, {'incoming_level': 'encrypt'})['refusals'] == []


def test_an_unexempted_reinjection_service_is_named_at_incoming_encrypt():
    # amavis: 127.0.0.1:10025/inet smtpd -o content_filter= (hands mail back), not in
    # enforce_tls_reinjection_services (CipherMail's 127.0.0.1:10026/inet by default)
    read = dict(info(services=['smtp/inet', '127.0.0.1:10025/inet'],
                     overrides={'127.0.0.1:10025/inet': {'content_filter': '', 'smtpd_delay_reject': 'no'}}),
                service_commands={'smtp/inet': 'smtpd', '127.0.0.1:10025/inet': 'smtpd'})
    d = enforce_tls_decision(read, {'incoming_level': 'encrypt'})
    warning, = [n for n in d['notes'] if '127.0.0.1:10025/inet in /etc/postfix/master.cf looks like' in n]
    assert 'enforce_tls_reinjection_services' in warning
    # exempted, or at may: nothing
    exempted = enforce_tls_decision(read, {'incoming_level': 'encrypt',
                                           'reinjection_services': ['127.0.0.1:10025/inet']})
    assert not [n for n in exempted['notes'] if 'looks like' in n]
    assert not [n for n in enforce_tls_decision(read, {})['notes'] if 'looks like' in n]


def test_connection_reuse_without_the_tlsproxy_service():
    """main.cf's smtp_tls_connection_reuse = yes sends every TLS connection of the SMTP client
    through the tlsproxy service tlsproxy_service_name names; without it in master.cf mail to
    every server that offers STARTTLS defers, at may too (the delivery oracle's tlsproxy rounds)."""
    settings = {'outgoing_level': 'may', 'incoming_level': 'may'}
    reuse = {'smtp_tls_connection_reuse': 'yes'}
    # raised from none: refused, nothing written
    d = enforce_tls_decision(info(dict(reuse, smtp_tls_security_level='none')), settings)
    [refusal] = d['refusals']
    assert refusal.startswith('Refusing smtp_tls_security_level=may in /etc/postfix: main.cf sets '
                              'smtp_tls_connection_reuse = yes and master.cf has no tlsproxy service'), refusal
    assert 'Raised from none, the level would stop the mail to every server that offers STARTTLS' in refusal
    assert 'postconf -M tlsproxy/unix="tlsproxy unix - - y - 0 tlsproxy"' in refusal
    assert 'set smtp_tls_connection_reuse = no' in refusal
    # already above none: the run does not cause it, a warning
    d = enforce_tls_decision(info(dict(reuse)), dict(settings, outgoing_level='encrypt'))
    assert d['refusals'] == []
    [warning] = [n for n in d['notes'] if 'smtp_tls_connection_reuse' in n]
    assert warning.startswith('WARNING: /etc/postfix: main.cf sets smtp_tls_connection_reuse = yes')
    assert 'already defers the mail' in warning
    # the service tlsproxy_service_name names, in master.cf: nothing to say
    services = ['smtp/inet', 'tlsproxy2/unix']
    for host in (info(dict(reuse, tlsproxy_service_name='tlsproxy2', smtp_tls_security_level='none'),
                      services=services),
                 info(dict(reuse, smtp_tls_security_level='none'), services=['smtp/inet', 'tlsproxy/unix'])):
        d = enforce_tls_decision(host, settings)
        assert d['refusals'] == [] and not [n for n in d['notes'] if 'smtp_tls_connection_reuse' in n]
    # tlsproxy in master.cf, but main.cf names another service
    d = enforce_tls_decision(info(dict(reuse, tlsproxy_service_name='tlsproxy2', smtp_tls_security_level='none'),
                                  services=['smtp/inet', 'tlsproxy/unix']), settings)
    assert 'master.cf has no tlsproxy2 service' in d['refusals'][0]
    # reuse off (any case), or level none: nothing
    for host, outgoing in ((info({'smtp_tls_connection_reuse': 'No', 'smtp_tls_security_level': 'none'}), 'may'),
                           (info(dict(reuse, smtp_tls_security_level='none')), 'none')):
        d = enforce_tls_decision(host, dict(settings, outgoing_level=outgoing, allow_downgrade=True))
        assert d['refusals'] == [] and not [n for n in d['notes'] if 'smtp_tls_connection_reuse' in n]
