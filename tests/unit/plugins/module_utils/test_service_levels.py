# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""master.cf services whose -o overrides undercut main.cf's TLS levels (pure)."""

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import parse_service_commands
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.service_levels import (
    content_filter_transports,
    reinjection_candidates,
    remote_transports,
    routed_smtp_transports,
    smtpd_program,
    unenforced_smtpd_programs,
    service_level_notes,
    weaker_smtp_transports,
    weaker_smtpd_services,
)

MASTER = """\
smtp       inet  n       -       y       -       -       smtpd
submission inet  n       -       y       -       -       smtpd
  -o smtpd_tls_security_level=encrypt
smtps      inet  n       -       y       -       -       smtpd
  -o smtpd_tls_wrappermode=yes
127.0.0.1:10026 inet n   -       n       -       -       smtpd
pickup     unix  n       -       y       60      1       pickup
smtp       unix  -       -       y       -       -       smtp
relay      unix  -       -       y       -       -       smtp
  -o syslog_name=postfix/$service_name
lmtp       unix  -       -       y       -       -       lmtp
"""
COMMANDS = dict(('%s/%s' % service, command) for service, command in parse_service_commands(MASTER).items())
MAIN = {'smtp_tls_security_level': 'encrypt', 'smtpd_tls_security_level': 'encrypt',
        'default_transport': 'smtp', 'relay_transport': 'relay', 'relay_domains': ''}


def test_service_commands():
    assert COMMANDS['smtp/inet'] == 'smtpd' and COMMANDS['smtp/unix'] == 'smtp'
    assert COMMANDS['127.0.0.1:10026/inet'] == 'smtpd' and COMMANDS['lmtp/unix'] == 'lmtp'
    assert 'submission/inet' in COMMANDS and len(COMMANDS) == 8


def test_smtpd_service_weaker_than_main_cf():
    overrides = {'smtp/inet': {'smtpd_tls_security_level': 'may'},
                 'submission/inet': {'smtpd_tls_security_level': 'encrypt'},
                 'smtps/inet': {'smtpd_tls_wrappermode': 'yes', 'smtpd_tls_security_level': 'none'},
                 '127.0.0.1:10026/inet': {'smtpd_tls_security_level': 'none'}}
    assert weaker_smtpd_services('encrypt', MAIN, overrides, COMMANDS) == [
        ('smtp/inet', 'may', {'smtpd_tls_security_level': 'may'})]
    # at may only "none" is weaker
    assert weaker_smtpd_services('may', MAIN, overrides, COMMANDS) == []
    assert weaker_smtpd_services('may', MAIN, {'smtp/inet': {'smtpd_tls_security_level': 'none'}}, COMMANDS) == [
        ('smtp/inet', 'none', {'smtpd_tls_security_level': 'none'})]


def test_smtpd_exempt_loopback_and_no_override():
    overrides = {'smtp/inet': {'smtpd_tls_security_level': 'may'}}
    assert weaker_smtpd_services('encrypt', MAIN, overrides, COMMANDS, exempt=['smtp/inet']) == []
    # a service without a level override runs main.cf's level
    assert weaker_smtpd_services('encrypt', MAIN, {'smtp/inet': {'smtpd_client_restrictions': ''}},
                                 COMMANDS) == []
    # the loopback-only listeners (re-injection ports) are this host's own
    commands = {'[::1]:10026/inet': 'smtpd', '127.0.0.1:10027/inet': 'smtpd', 'localhost:10028/inet': 'smtpd'}
    loop = dict((s, {'smtpd_tls_security_level': 'none'}) for s in commands)
    assert weaker_smtpd_services('encrypt', MAIN, loop, commands) == []


def test_smtpd_behind_postscreen_and_obsolete_settings():
    commands = {'smtp/inet': 'postscreen', 'smtpd/pass': 'smtpd'}
    # an empty level: the obsolete smtpd_use_tls says may
    overrides = {'smtpd/pass': {'smtpd_tls_security_level': '', 'smtpd_use_tls': 'yes'}}
    assert weaker_smtpd_services('encrypt', MAIN, overrides, commands) == [
        ('smtpd/pass', 'may', {'smtpd_tls_security_level': '', 'smtpd_use_tls': 'yes'})]
    # $name references are expanded from main.cf; one main.cf lacks is not judged
    values = dict(MAIN, inbound_level='none')
    ref = {'smtpd/pass': {'smtpd_tls_security_level': '$inbound_level'}}
    assert weaker_smtpd_services('encrypt', values, ref, commands)[0][1] == 'none'
    assert weaker_smtpd_services('encrypt', MAIN, ref, commands) == []


def test_remote_transports():
    assert remote_transports(MAIN) == ['smtp']
    assert remote_transports(dict(MAIN, relay_domains='example.net')) == ['smtp', 'relay']
    assert remote_transports(dict(MAIN, default_transport='out:[relay.example]:587')) == ['out']
    assert remote_transports({}) == ['smtp']


def test_smtp_transport_weaker_or_bypassing_the_table():
    overrides = {'smtp/unix': {'smtp_tls_security_level': 'may'}}
    assert weaker_smtp_transports('encrypt', MAIN, overrides, COMMANDS, '/etc/postfix/tls_policy') == [
        ('smtp/unix', 'may', {'smtp_tls_security_level': 'may'}, False)]
    stricter = {'smtp/unix': {'smtp_tls_security_level': 'verify'}}
    assert weaker_smtp_transports('encrypt', MAIN, stricter, COMMANDS) == []
    # opportunistic dane is may for destinations without TLSA records: weaker than encrypt there
    dane = {'smtp/unix': {'smtp_tls_security_level': 'dane'}}
    assert weaker_smtp_transports('encrypt', MAIN, dane, COMMANDS) == [
        ('smtp/unix', 'dane', {'smtp_tls_security_level': 'dane'}, False)]
    assert weaker_smtp_transports('may', MAIN, dane, COMMANDS) == []
    own_maps = {'smtp/unix': {'smtp_tls_policy_maps': 'hash:/etc/postfix/other'}}
    assert weaker_smtp_transports('encrypt', MAIN, own_maps, COMMANDS, '/etc/postfix/tls_policy') == [
        ('smtp/unix', None, {'smtp_tls_policy_maps': 'hash:/etc/postfix/other'}, True)]
    listed = {'smtp/unix': {'smtp_tls_policy_maps': 'hash:/etc/postfix/tls_policy, hash:/etc/postfix/other'}}
    assert weaker_smtp_transports('encrypt', MAIN, listed, COMMANDS, '/etc/postfix/tls_policy') == []
    # through the proxy map service too (before, proxy:hash:PATH was taken for another table)
    proxied = {'smtp/unix': {'smtp_tls_policy_maps': 'proxy:hash:/etc/postfix/tls_policy'}}
    assert weaker_smtp_transports('encrypt', MAIN, proxied, COMMANDS, '/etc/postfix/tls_policy') == []
    # relay/unix counts only when relay_domains lists something; lmtp is not the SMTP client
    relay = {'relay/unix': {'smtp_tls_security_level': 'none'}}
    assert weaker_smtp_transports('encrypt', MAIN, relay, COMMANDS) == []
    assert weaker_smtp_transports('encrypt', dict(MAIN, relay_domains='example.net'), relay, COMMANDS)[0][:2] == (
        'relay/unix', 'none')
    lmtp = {'lmtp/unix': {'smtp_tls_security_level': 'none'}}
    assert weaker_smtp_transports('encrypt', dict(MAIN, default_transport='lmtp'), lmtp, COMMANDS) == []


FILTERED = MASTER + """\
partner-out unix -       -       y       -       -       smtp
  -o smtp_tls_security_level=may
smtp-amavis unix -       -       y       -       2       smtp
  -o smtp_tls_security_level=none
legacy-out unix  -       -       y       -       -       smtp
  -o smtp_tls_policy_maps=hash:/etc/postfix/legacy_policy
"""
FILTERED_COMMANDS = dict(('%s/%s' % service, command) for service, command in parse_service_commands(FILTERED).items())


def test_content_filter_transports():
    assert content_filter_transports(MAIN, {}) == []
    assert content_filter_transports(dict(MAIN, content_filter='smtp-amavis:[127.0.0.1]:10024'), {}) == [
        'smtp-amavis']
    # a service's own -o content_filter, $name references expanded from main.cf; an empty one
    # (the re-injection service's "-o content_filter=") names nothing
    overrides = {'smtp/inet': {'content_filter': '${filter}'}, '127.0.0.1:10025/inet': {'content_filter': ''}}
    assert content_filter_transports(dict(MAIN, filter='scan:[127.0.0.1]:10024'), overrides) == ['scan']


def test_routed_smtp_transports_are_the_other_smtp_clients():
    # not smtp (default_transport), not relay/unix when relay_domains lists something, not
    # lmtp (another program), not the content filter's
    assert routed_smtp_transports(MAIN, {}, FILTERED_COMMANDS) == [
        'legacy-out', 'partner-out', 'relay', 'smtp-amavis']
    relaying = dict(MAIN, relay_domains='example.net', content_filter='smtp-amavis:[127.0.0.1]:10024')
    assert routed_smtp_transports(relaying, {}, FILTERED_COMMANDS) == ['legacy-out', 'partner-out']


def test_notes_for_a_transport_mail_is_routed_to():
    overrides = {'partner-out/unix': {'smtp_tls_security_level': 'may'},
                 'smtp-amavis/unix': {'smtp_tls_security_level': 'none'},
                 'legacy-out/unix': {'smtp_tls_policy_maps': 'hash:/etc/postfix/legacy_policy'},
                 'smtp/inet': {'content_filter': 'smtp-amavis:[127.0.0.1]:10024'}}
    notes = service_level_notes({'smtp': 'encrypt', 'smtpd': 'may'}, MAIN, overrides, FILTERED_COMMANDS,
                                '/etc/postfix', table_path='/etc/postfix/tls_policy')
    assert notes == [
        'WARNING: /etc/postfix/master.cf transport legacy-out/unix (an SMTP client for the mail transport_maps, '
        'a sender-dependent map or another *_transport setting sends there) runs with '
        '-o smtp_tls_policy_maps=hash:/etc/postfix/legacy_policy: '
        'it does not look up the policy table /etc/postfix/tls_policy (its smtp_tls_policy_maps is its own) '
        '(an -o override beats main.cf). Remove the override to enforce the levels on it.',
        'WARNING: /etc/postfix/master.cf transport partner-out/unix (an SMTP client for the mail transport_maps, '
        'a sender-dependent map or another *_transport setting sends there) runs with '
        '-o smtp_tls_security_level=may: it sends mail to '
        'destinations without a policy entry at TLS level "may", not the "encrypt" of main.cf (an -o override '
        'beats main.cf). Remove the override to enforce the levels on it, or give the destinations routed to '
        'it policy entries.']
    # at main.cf's may, a transport at may is not weaker; the filter's none is never named
    assert service_level_notes({'smtp': 'may', 'smtpd': 'may'}, MAIN, overrides, FILTERED_COMMANDS,
                               '/etc/postfix') == []
    assert [n for n in service_level_notes({'smtp': 'encrypt', 'smtpd': 'may'}, MAIN, overrides,
                                           FILTERED_COMMANDS, '/etc/postfix') if 'smtp-amavis' in n] == []
    # ... because a content filter takes mail through it: without that, it is one more transport
    unfiltered = dict((k, v) for k, v in overrides.items() if k != 'smtp/inet')
    named = [n for n in service_level_notes({'smtp': 'encrypt', 'smtpd': 'may'}, MAIN, unfiltered,
                                            FILTERED_COMMANDS, '/etc/postfix') if 'smtp-amavis' in n]
    assert len(named) == 1 and 'at TLS level "none"' in named[0]


def test_notes_name_the_service_the_override_and_the_fix():
    overrides = {'smtp/inet': {'smtpd_tls_security_level': 'may'},
                 'smtp/unix': {'smtp_tls_security_level': 'may', 'smtp_tls_policy_maps': ''}}
    smtpd, smtp = service_level_notes({'smtp': 'encrypt', 'smtpd': 'encrypt'}, MAIN, overrides, COMMANDS,
                                      '/etc/postfix', table_path='/etc/postfix/tls_policy')
    assert smtpd.startswith('WARNING: /etc/postfix/master.cf service smtp/inet runs smtpd with '
                            '-o smtpd_tls_security_level=may: it accepts mail at TLS level "may", not the '
                            '"encrypt" of main.cf')
    assert 'enforce_tls_reinjection_services' in smtpd
    assert smtp.startswith('WARNING: /etc/postfix/master.cf transport smtp/unix (the SMTP client remote mail '
                           'takes) runs with -o smtp_tls_policy_maps= -o smtp_tls_security_level=may: it sends '
                           'mail to destinations without a policy entry at TLS level "may", not the "encrypt" '
                           'of main.cf and does not look up the policy table /etc/postfix/tls_policy')
    assert service_level_notes({'smtp': 'may', 'smtpd': 'may'}, MAIN, {}, COMMANDS, '/etc/postfix') == []


def test_smtpd_program_names_as_logged():
    overrides = {'submission/inet': {'syslog_name': 'postfix/$service_name'},
                 'smtps/inet': {'syslog_name': '${syslog_name}/smtps'}}
    values = dict(MAIN, syslog_name='postfix-out')
    assert smtpd_program('smtp/inet', values, overrides) == 'postfix-out/smtpd'
    assert smtpd_program('submission/inet', values, overrides) == 'postfix/submission/smtpd'
    assert smtpd_program('smtps/inet', values, overrides) == 'postfix-out/smtps/smtpd'
    assert smtpd_program('smtp/inet', MAIN, {}) == 'postfix/smtpd'
    assert smtpd_program('x/inet', MAIN, {'x/inet': {'syslog_name': '$nowhere'}}) is None


def test_unenforced_smtpd_programs():
    commands = {'smtp/inet': 'smtpd', '127.0.0.1:10026/inet': 'smtpd', '2525/inet': 'smtpd',
                '2526/inet': 'smtpd', 'smtp/unix': 'smtp'}
    overrides = {'127.0.0.1:10026/inet': {'syslog_name': 'postfix/reinject', 'smtpd_tls_security_level': 'none'},
                 '2525/inet': {'syslog_name': 'postfix/legacy', 'smtpd_tls_security_level': 'may'},
                 '2526/inet': {'smtpd_tls_security_level': 'none'}}
    # the re-injection and the legacy port log under their own names; 2526 shares
    # postfix/smtpd with smtp/inet, which is enforced: that name is not exempt
    assert unenforced_smtpd_programs('encrypt', MAIN, overrides, commands,
                                     exempt=['127.0.0.1:10026/inet']) == ['postfix/legacy/smtpd', 'postfix/reinject/smtpd']
    # without its own syslog_name the re-injection service shares postfix/smtpd
    shared = dict(overrides, **{'127.0.0.1:10026/inet': {'smtpd_tls_security_level': 'none'}})
    assert unenforced_smtpd_programs('encrypt', MAIN, shared, commands) == ['postfix/legacy/smtpd']
    # at may nothing is weaker than main.cf but the loopback service
    assert unenforced_smtpd_programs('may', MAIN, overrides, commands) == ['postfix/reinject/smtpd']


def test_reinjection_candidates_are_inet_smtpd_services_with_an_empty_content_filter():
    commands = {'smtp/inet': 'smtpd', '127.0.0.1:10025/inet': 'smtpd', '127.0.0.1:10026/inet': 'smtpd',
                '127.0.0.1:10027/inet': 'smtpd', 'amavis/unix': 'smtp', 'pickup/unix': 'pickup'}
    overrides = {'127.0.0.1:10025/inet': {'content_filter': '', 'smtpd_tls_security_level': 'none'},  # exempt
                 '127.0.0.1:10026/inet': {'content_filter': '', 'receive_override_options': 'no_milters'},
                 '127.0.0.1:10027/inet': {'content_filter': 'amavis:[127.0.0.1]:10024'},      # a filter, not back
                 'amavis/unix': {'content_filter': ''},                                          # not smtpd
                 'pickup/unix': {'content_filter': ''}}
    assert reinjection_candidates(overrides, commands) == ['127.0.0.1:10026/inet']
    assert reinjection_candidates(overrides, commands, exempt=['127.0.0.1:10026/inet']) == []
    assert reinjection_candidates({}, commands) == []
