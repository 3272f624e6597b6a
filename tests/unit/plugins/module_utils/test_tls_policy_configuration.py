# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Cross-checks of policy entries against main.cf and master.cf (pure: the file
system is replaced by the exists/readable arguments)."""

import os

import pytest

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.mail_routing import routes_for, service_commands
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_configuration import (
    configuration_checks,
    existing_line_problems,
    may_need_configuration,
    route_warnings,
    has_tlsproxy,
    needs_configuration,
    needs_master,
    readable_by,
    smtp_cipher_list,
    smtp_client_services,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_grammar import build_policy, parse_policy

# postconf -M output of a Debian master.cf (abridged): smtp and relay run the smtp client chrooted
MASTER = """\
smtp       inet  n       -       y       -       -       smtpd
smtp       unix  -       -       y       -       -       smtp
relay      unix  -       -       y       -       -       smtp -o syslog_name=postfix/$service_name
local      unix  -       n       n       -       -       local
"""
MASTER_UNCHROOTED = MASTER.replace('y       -       -       smtp\n', 'n       -       -       smtp\n') \
    .replace('y       -       -       smtp -o', 'n       -       -       smtp -o')
TLSPROXY = 'tlsproxy   unix  -       -       y       -       0       tlsproxy\n'
SETTINGS = {'smtp_tls_fingerprint_digest': 'sha256', 'smtp_dns_support_level': 'dnssec',
            'smtp_host_lookup': 'dns', 'queue_directory': '/var/spool/postfix', 'mail_owner': 'postfix',
            # postconf -d of Postfix 3.7
            'smtp_tls_ciphers': 'medium', 'smtp_tls_mandatory_ciphers': 'medium', 'smtp_tls_exclude_ciphers': '',
            'smtp_tls_mandatory_exclude_ciphers': '', 'tls_high_cipherlist': 'aNULL:-aNULL:HIGH:@STRENGTH',
            'tls_medium_cipherlist': 'aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH',
            'tls_low_cipherlist': 'aNULL:-aNULL:HIGH:MEDIUM:LOW:+RC4:@STRENGTH',
            'tls_export_cipherlist': 'aNULL:-aNULL:HIGH:MEDIUM:LOW:EXPORT:+RC4:@STRENGTH',
            'tls_null_cipherlist': 'eNULL:!aNULL'}
SHA256 = ':'.join(['AB'] * 32)
MD5 = ':'.join(['AB'] * 16)


def check(entries, settings=None, master=MASTER, check_mode=False, files=(), unreadable=()):
    policies = [(key, build_policy(level, **attrs)) for key, level, attrs in entries]
    settings = dict(SETTINGS, **(settings or {}))
    # the transport tables answer nothing
    routes = routes_for([key for key, policy in policies], settings, lambda spec, keys: {})
    return configuration_checks(policies, settings, master, check_mode=check_mode,
                                exists=lambda path: path in files,
                                readable=lambda path, user: path not in unreadable, routes=routes)


def test_services_that_run_the_smtp_client_with_their_chroot_column():
    assert smtp_client_services(MASTER) == [('smtp/unix', 'y'), ('relay/unix', 'y')]
    assert smtp_client_services(MASTER_UNCHROOTED) == [('smtp/unix', 'n'), ('relay/unix', 'n')]
    assert not has_tlsproxy(MASTER) and has_tlsproxy(MASTER + TLSPROXY)


def test_only_entries_that_depend_on_the_configuration_need_it_read():
    # a domain entry needs main.cf for the relayhost check, a [host] entry above level none
    # for smtp_tls_connection_reuse, a [host] entry at none nothing
    assert needs_configuration([('a.example', build_policy('encrypt'))])
    assert needs_configuration([('[a.example]:587', build_policy('encrypt'))])
    assert not needs_configuration([('[127.0.0.1]:10025', build_policy('none'))])
    for policy in (build_policy('dane'), build_policy('fingerprint', match=[SHA256]),
                   build_policy('verify', tafile=['/etc/ta.pem']), build_policy('may', connection_reuse=True)):
        assert needs_configuration([('[a.example]', policy)]), policy
    # master.cf only for tafile (the smtp chroot) and connection_reuse (tlsproxy)
    assert not needs_master([('a.example', build_policy('dane'))])
    assert needs_master([('a.example', build_policy('verify', tafile=['/etc/ta.pem']))])
    assert needs_master([('a.example', build_policy('may', connection_reuse=True))])
    # main.cf's smtp_tls_connection_reuse for the entries that do not say (and use TLS at all)
    reuse = {'smtp_tls_connection_reuse': 'yes'}
    assert needs_master([('[a.example]', build_policy('encrypt'))], reuse)
    assert not needs_master([('[a.example]', build_policy('encrypt'))], {'smtp_tls_connection_reuse': 'no'})
    assert not needs_master([('[a.example]', build_policy('encrypt', connection_reuse=False))], reuse)
    assert not needs_master([('[a.example]', build_policy('none'))], reuse)


@pytest.mark.parametrize('settings, warned', [
    ({'relayhost': '[smtp.example.net]:587'}, ['a.example', '.b.example']),
    ({'relayhost': 'relay.example.net'}, ['a.example', '.b.example']),
    ({'relayhost': 'a.example'}, ['.b.example']),               # the relayhost's own entry is used
    ({'relayhost': ''}, []),
    # transport_maps without an entry for them: the relayhost still
    ({'relayhost': '[smtp.example.net]:587', 'transport_maps': 'hash:/etc/postfix/transport'},
     ['a.example', '.b.example']),
    ({'relayhost': '[smtp.example.net]:587', 'sender_dependent_relayhost_maps': 'hash:/etc/postfix/s'}, []),
    ({'relayhost': '[smtp.example.net]:587', 'sender_dependent_default_transport_maps': 'hash:/x'}, []),
])
def test_domain_entries_on_a_host_that_relays_everything_are_never_looked_up(settings, warned):
    """resolve.c: with a relayhost and nothing that routes a domain otherwise, every remote
    delivery's next hop is the relayhost; Postfix looks up its entry, not the domain's."""
    errors, warnings = check([('a.example', 'secure', {}), ('.b.example', 'encrypt', {}),
                              ('[smtp.example.net]:587', 'encrypt', {}), ('[192.0.2.1]', 'verify', {})],
                             settings=settings)
    assert errors == []
    assert [w.split("'")[1] for w in warnings] == warned, warnings
    for warning in warnings:
        assert 'relayhost = %s and no transport_maps entry routes it otherwise' % settings['relayhost'] in warning
        assert 'never this one' in warning


def test_a_consistent_configuration_passes():
    assert check([('a.example', 'fingerprint', {'match': [SHA256]}),
                  ('b.example', 'dane-only', {}),
                  ('c.example', 'secure', {'tafile': ['/etc/ta.pem']})],
                 files={'/var/spool/postfix/etc/ta.pem'}) == ([], [])


def test_fingerprint_digest_length_must_fit_smtp_tls_fingerprint_digest():
    errors, warnings = check([('a.example', 'fingerprint', {'match': [MD5]})])
    assert len(errors) == 1 and "'a.example'" in errors[0] and 'smtp_tls_fingerprint_digest' in errors[0]
    assert check([('a.example', 'fingerprint', {'match': [MD5]})],
                 {'smtp_tls_fingerprint_digest': 'md5'}) == ([], [])


@pytest.mark.parametrize('level, settings, errors, warnings', [
    ('dane-only', {'smtp_dns_support_level': 'enabled'}, 1, 0),
    ('dane', {'smtp_dns_support_level': 'enabled'}, 0, 1),
    ('dane-only', {'smtp_host_lookup': 'native'}, 1, 0),
    ('dane', {'smtp_host_lookup': 'native'}, 0, 1),
    ('dane-only', {'smtp_host_lookup': 'native, dns'}, 0, 0),
    ('dane-only', {}, 0, 0),
])
def test_dane_needs_dnssec_and_dns_lookups(level, settings, errors, warnings):
    got = check([('a.example', level, {})], settings)
    assert (len(got[0]), len(got[1])) == (errors, warnings), got
    for message in got[0] + got[1]:
        assert "'a.example'" in message
        assert 'smtp_dns_support_level' in message or 'smtp_host_lookup' in message


@pytest.mark.parametrize('level', ['dane', 'dane-only'])
def test_dane_for_an_address_literal_is_refused(level):
    # a new entry: dane-only defers the mail, dane is level may; both refused, naming the entry
    errors, warnings = check([('[192.0.2.1]:25', level, {})])
    assert warnings == [] and len(errors) == 1
    assert errors[0].startswith("destination '[192.0.2.1]:25': level %s for the address literal" % level)
    # the same level for a host name is fine
    assert check([('[mx.example.com]:25', level, {})]) == ([], [])


def test_tafile_is_looked_for_inside_the_smtp_chroot():
    errors, dummy = check([('a.example', 'verify', {'tafile': ['/etc/ta.pem']})], files={'/etc/ta.pem'})
    assert len(errors) == 1
    assert '/var/spool/postfix/etc/ta.pem does not exist' in errors[0] and 'chroot' in errors[0]
    assert 'queue_directory = /var/spool/postfix' in errors[0]


def test_tafile_outside_a_chroot_is_looked_for_on_the_host_path():
    assert check([('a.example', 'verify', {'tafile': ['/etc/ta.pem']})], master=MASTER_UNCHROOTED,
                 files={'/etc/ta.pem'}) == ([], [])
    errors, dummy = check([('a.example', 'verify', {'tafile': ['/etc/ta.pem']})], master=MASTER_UNCHROOTED)
    assert len(errors) == 1 and 'tafile /etc/ta.pem does not exist' in errors[0]


def test_missing_tafile_is_a_warning_in_check_mode():
    errors, warnings = check([('a.example', 'verify', {'tafile': ['/etc/ta.pem']})], check_mode=True)
    assert errors == [] and len(warnings) == 1 and 'check mode' in warnings[0]


def test_unreadable_tafile_is_a_warning_naming_mail_owner():
    where = '/var/spool/postfix/etc/ta.pem'
    errors, warnings = check([('a.example', 'verify', {'tafile': ['/etc/ta.pem']})],
                             files={where}, unreadable={where})
    assert errors == [] and len(warnings) == 1 and 'mail_owner postfix' in warnings[0]


def test_connection_reuse_without_tlsproxy_is_refused_and_a_warning_in_check_mode():
    entries = [('a.example', 'may', {'connection_reuse': True}), ('b.example', 'encrypt', {'connection_reuse': True})]
    errors, warnings = check(entries)
    assert warnings == [] and len(errors) == 1
    assert errors[0].startswith("destination 'a.example' (and 1 more): connection_reuse=yes needs the tlsproxy")
    assert 'connect to private/tlsproxy service' in errors[0] and 'at level may too' in errors[0]
    # an earlier task of the play may add the service
    errors, warnings = check(entries, check_mode=True)
    assert errors == [] and len(warnings) == 1 and 'tlsproxy' in warnings[0]
    assert check(entries, master=MASTER + TLSPROXY) == ([], [])
    assert check([('a.example', 'may', {'connection_reuse': False})]) == ([], [])


def test_connection_reuse_needs_the_service_tlsproxy_service_name_names():
    # the SMTP client connects to private/$tlsproxy_service_name (tls_proxy_clnt.c)
    entries = [('a.example', 'encrypt', {'connection_reuse': True})]
    renamed = TLSPROXY.replace('tlsproxy   unix', 'tlsproxy2  unix')
    assert check(entries, settings={'tlsproxy_service_name': 'tlsproxy2'}, master=MASTER + renamed) == ([], [])
    errors, warnings = check(entries, settings={'tlsproxy_service_name': 'tlsproxy2'}, master=MASTER + TLSPROXY)
    assert warnings == [] and len(errors) == 1
    assert 'names, tlsproxy2, in master.cf' in errors[0] and 'connect to private/tlsproxy2 service' in errors[0]
    # a service of that name of another type is not the one
    errors, warnings = check(entries, settings={'tlsproxy_service_name': 'tlsproxy2'},
                             master=MASTER + renamed.replace(' unix ', ' inet '))
    assert len(errors) == 1
    # empty (not read: an old Postfix) is the default
    assert check(entries, settings={'tlsproxy_service_name': ''}, master=MASTER + TLSPROXY) == ([], [])


def test_main_cf_connection_reuse_needs_the_service_for_entries_that_do_not_say():
    # smtp_tls_policy.c policy_create: an entry without connection_reuse takes
    # smtp_tls_connection_reuse; level none never starts TLS
    reuse = {'smtp_tls_connection_reuse': 'yes'}
    entries = [('a.example', 'encrypt', {}), ('[b.example]', 'may', {}), ('c.example', 'encrypt', {'connection_reuse': False}),
               ('[127.0.0.1]:10025', 'none', {})]
    errors, warnings = check(entries, settings=reuse)
    assert warnings == [] and len(errors) == 1, errors
    assert errors[0].startswith("destination 'a.example' (and 1 more): main.cf sets smtp_tls_connection_reuse = yes")
    assert 'connection_reuse=no' in errors[0] and 'private/tlsproxy service' in errors[0]
    assert check(entries, settings=reuse, master=MASTER + TLSPROXY) == ([], [])
    assert check(entries) == ([], [])
    # an entry's own connection_reuse=yes is named apart
    errors, warnings = check(entries + [('d.example', 'may', {'connection_reuse': True})], settings=reuse)
    assert len(errors) == 2 and errors[0].startswith("destination 'd.example': connection_reuse=yes needs")
    errors, warnings = check(entries, settings=reuse, check_mode=True)
    assert errors == [] and len(warnings) == 1


def test_readable_by_follows_the_mode_bits(tmp_path):
    path = tmp_path / 'ta.pem'
    path.write_text('x')
    os.chmod(str(path), 0o600)
    assert readable_by(str(path), 'root')
    assert readable_by(str(path), 'no-such-user-here')        # cannot tell: no warning
    if os.getuid() == 0:
        assert not readable_by(str(path), 'nobody')
        os.chmod(str(path), 0o644)
        assert readable_by(str(path), 'nobody')


def test_warnings_that_differ_only_in_the_destination_are_given_once():
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.tls_policy_configuration import (
        summarize_warnings,
    )
    text = 'level dane needs smtp_dns_support_level = dnssec'
    warnings = ["destination '%s.example': %s" % (n, text) for n in 'abcdefg']
    warnings += ['connection_reuse=yes needs the tlsproxy service', "destination 'x.example': other",
                 "destination \"it's.example\": %s" % text, "destination 'a.example': %s" % text,
                 'connection_reuse=yes needs the tlsproxy service']
    assert summarize_warnings(warnings) == [
        "8 destinations ('a.example', 'b.example', 'c.example', 'd.example', 'e.example' and 3 more): " + text,
        'connection_reuse=yes needs the tlsproxy service',
        "destination 'x.example': other",
    ]
    assert summarize_warnings(["destination 'a': t", "destination 'b': t"], shown=5) == [
        "2 destinations ('a', 'b'): t"]
    assert summarize_warnings([]) == []


def _routes(keys, settings, transport=None):
    """mail_routing.routes_for KEYS with SETTINGS, TRANSPORT ({key: value}) as the one
    transport table's answers (None: the table cannot be asked)."""
    return routes_for(keys, settings, lambda spec, lookup: None if transport is None else
                      dict((k, transport[k]) for k in lookup if k in transport))


def test_domain_entries_that_transport_maps_routes_elsewhere_are_never_looked_up():
    keys = ('a.example', 'B.example', 'c.example', 'x.d.example', '[e.example]', 'f.example')
    policies = [(key, build_policy('secure')) for key in keys]
    settings = {'transport_maps': 'hash:/etc/postfix/transport', 'relayhost': '[relay.example.net]'}
    transport = {'a.example': 'smtp:[relay.example.net]:587', 'b.example': ' relay:[relay2.example.net] ',
                 'c.example': 'smtp:', '.d.example': ':[parent.example.net]', 'f.example': 'smtp:f.example'}
    warnings = route_warnings(policies, _routes(keys, settings, transport))
    assert [w.split("'")[1] for w in warnings] == ['a.example', 'B.example', 'x.d.example'], warnings
    assert warnings[0] == ("destination 'a.example': transport_maps (hash:/etc/postfix/transport) routes this "
                           "domain to smtp:[relay.example.net]:587: the SMTP client's next hop is "
                           "[relay.example.net]:587 and Postfix looks up its entry, never this one; key the "
                           "entry as [relay.example.net]:587")
    assert "routes this domain to :[parent.example.net] (key .d.example)" in warnings[2]
    # 'c.example smtp:' resets the next hop to the domain: its entry is used, relayhost or not


def test_entries_are_not_warned_about_when_the_route_is_uncertain():
    keys = ('a.example',)
    policies = [('a.example', build_policy('secure'))]
    settings = {'transport_maps': 'ldap:/etc/postfix/transport.cf', 'relayhost': '[relay.example.net]'}
    assert route_warnings(policies, _routes(keys, settings, None)) == []      # the table cannot be asked
    assert len(route_warnings(policies, _routes(keys, settings, {}))) == 1    # asked, no entry: the relayhost


def test_a_next_hop_in_default_transport_makes_domain_entries_dead():
    policies = [('a.example', build_policy('secure'))]
    (warning,) = route_warnings(policies, _routes(['a.example'], {'default_transport': 'smtp:[gw.example.net]'}))
    assert warning.startswith("destination 'a.example': default_transport = smtp:[gw.example.net] routes its "
                              "mail to [gw.example.net]")
    # a relay domain whose relay_transport names a next hop
    settings = {'relay_domains': 'a.example', 'relay_transport': 'relay:[inside.example]'}
    (warning,) = route_warnings(policies, _routes(['a.example'], settings))
    assert warning.startswith("destination 'a.example': relay_transport = relay:[inside.example] (the domain is in "
                              "relay_domains) routes its mail to [inside.example]"), warning


def test_entries_for_domains_no_smtp_client_delivers_are_never_looked_up():
    """resolve.c: a domain in mydestination goes to local_transport, one in
    virtual_mailbox_domains to virtual_transport (here lmtp), one in virtual_alias_domains
    nowhere (error: User unknown in virtual alias table); a transport_maps entry to discard:
    too. Their entries are dead; so is one whose virtual_transport names another next hop."""
    keys = ('gw.example', 'alias.example', 'mail.example', 'store.example', 'gone.example', 'a.example')
    policies = [(key, build_policy('secure')) for key in keys]
    settings = {'mydestination': 'gw.example, localhost', 'local_transport': 'local:gw.example',
                'virtual_alias_domains': 'alias.example', 'virtual_mailbox_domains': 'mail.example, store.example',
                'virtual_transport': 'lmtp:unix:private/dovecot-lmtp', 'transport_maps': 'hash:/etc/postfix/transport'}
    transport = {'store.example': 'smtp:[store.example.net]', 'gone.example': 'discard:'}
    master = MASTER + 'lmtp       unix  -       -       y       -       -       lmtp\n' \
                      'discard    unix  -       -       y       -       -       discard\n'
    routes = _routes(keys, settings, transport)
    warnings = route_warnings(policies, routes, service_commands(master))
    assert [w.split("'")[1] for w in warnings] == list(keys[:-1]), warnings
    local, alias, mailbox, store, gone = warnings
    assert local == ("destination 'gw.example': the domain is in mydestination: local_transport = local:gw.example, "
                     'and its transport local runs local, not the SMTP client: the smtp_tls_* settings and '
                     'smtp_tls_policy_maps do not apply: Postfix never looks up this entry')
    assert alias.startswith("destination 'alias.example': the domain is in virtual_alias_domains: an address no "
                            'virtual alias rewrote is refused (5.1.1 User unknown in virtual alias table); an '
                            'address a virtual alias rewrites is routed by its new domain'), alias
    assert 'virtual_transport = lmtp:unix:private/dovecot-lmtp, and its transport lmtp runs lmtp' in mailbox
    assert "the SMTP client's next hop is [store.example.net]" in store
    assert 'its transport discard (master.cf command discard) delivers no mail over SMTP' in gone
    # master.cf not read: nothing is said about the transports, the alias domain is still dead
    assert [w.split("'")[1] for w in route_warnings(policies, routes)] == ['alias.example', 'store.example']


@pytest.mark.parametrize('level, attrs, settings, expected', [
    # the grade from main.cf: smtp_tls_ciphers at may, smtp_tls_mandatory_ciphers above it
    ('may', {}, {'smtp_tls_ciphers': 'high'}, 'aNULL:-aNULL:HIGH:@STRENGTH'),
    ('encrypt', {}, {}, 'aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!eNULL'),
    ('verify', {'ciphers': 'high'}, {}, 'aNULL:-aNULL:HIGH:@STRENGTH:!aNULL'),
    ('dane', {}, {}, 'aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!aNULL'),
    # main.cf's exclusions (the mandatory ones above may), replaced by the entry's exclude
    ('may', {}, {'smtp_tls_exclude_ciphers': 'RC4, aNULL', 'smtp_tls_mandatory_exclude_ciphers': 'MD5'},
     'aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!RC4:!aNULL'),
    ('encrypt', {}, {'smtp_tls_exclude_ciphers': 'RC4', 'smtp_tls_mandatory_exclude_ciphers': 'MD5 SEED'},
     'aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!RC4:!MD5:!SEED:!eNULL'),
    ('secure', {'exclude': ['CAMELLIA', 'ARIA']}, {'smtp_tls_exclude_ciphers': 'RC4'},
     'aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!CAMELLIA:!ARIA:!aNULL'),
    ('may', {'ciphers': 'null'}, {}, 'eNULL:!aNULL'),
    ('none', {}, {}, None),
])
def test_the_smtp_clients_cipher_list_as_postfix_builds_it(level, attrs, settings, expected):
    assert smtp_cipher_list(build_policy(level, **attrs), dict(SETTINGS, **settings)) == expected


@pytest.mark.parametrize('level, attrs', [
    ('encrypt', {'ciphers': 'high', 'exclude': ['HIGH']}),     # no cipher with any OpenSSL
    ('may', {'ciphers': 'high', 'exclude': ['HIGH']}),         # at may too: the mail defers
    ('secure', {'ciphers': 'medium', 'exclude': ['HIGH', 'MEDIUM']}),
])
def test_exclusions_that_leave_no_cipher_are_refused(level, attrs):
    errors, dummy = check([('a.example', level, attrs)])
    assert len(errors) == 1 and 'leaves no cipher' in errors[0] and 'error setting cipher grade' in errors[0]
    assert errors[0].startswith("destination 'a.example': ") and 'ciphers=%s' % attrs['ciphers'] in errors[0]


def test_exclusions_that_leave_a_cipher_pass():
    assert check([('a.example', 'encrypt', {'exclude': ['aNULL', 'RC4', 'MD5']}),
                  ('b.example', 'secure', {'ciphers': 'high', 'exclude': ['CAMELLIA']}),
                  ('c.example', 'may', {'ciphers': 'medium'})]) == ([], [])
    # an entry without ciphers= or exclude= is not asked about main.cf's own exclusions
    assert check([('a.example', 'encrypt', {})], settings={'smtp_tls_mandatory_exclude_ciphers': 'ALL'}) == ([], [])


def test_existing_lines_are_checked_against_the_configuration_only_when_they_need_it():
    assert may_need_configuration('encrypt CIPHERS=high') and may_need_configuration('may { exclude = RC4 }')
    assert may_need_configuration('may connection_reuse=yes') and not may_need_configuration('secure match=nexthop')
    asked = []

    def read(what, value):
        return lambda: asked.append(what) or value
    policy = parse_policy('encrypt ciphers=high exclude=HIGH')
    assert len(existing_line_problems(policy, read('main.cf', SETTINGS), read('master.cf', MASTER))) == 1
    assert asked == ['main.cf']
    asked[:] = []
    policy = parse_policy('may connection_reuse=no connection_reuse=yes')     # the last one wins
    problems = existing_line_problems(policy, read('main.cf', SETTINGS), read('master.cf', MASTER))
    assert asked == ['main.cf', 'master.cf'] and len(problems) == 1 and 'tlsproxy' in problems[0]
    assert existing_line_problems(policy, read('main.cf', SETTINGS), read('master.cf', MASTER + TLSPROXY)) == []
    renamed = dict(SETTINGS, tlsproxy_service_name='tlsproxy2')
    problems = existing_line_problems(policy, read('main.cf', renamed), read('master.cf', MASTER + TLSPROXY))
    assert len(problems) == 1 and 'private/tlsproxy2' in problems[0]
