# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""posttls-finger's command line, its report read, and the SMTP client's verdict.

The reports below are real output of Debian bookworm's posttls-finger (Postfix 3.7)
against loopback peers: a plaintext-only server, STARTTLS with a self-signed
certificate, with a certificate of a test CA whose name matches, one whose name
does not match, and a closed port (only the EHLO name is replaced).
"""

import pytest

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.posttls_finger import (
    dane_verdict,
    finger_args,
    find_policy,
    listing_args,
    looked_up_hosts,
    map_specs,
    mx_domain,
    nexthop_names,
    parse_entry,
    parse_report,
    policy_keys,
    probe_one,
    unapplied_settings,
    verdict,
)

PLAINTEXT = '\n'.join([
    'posttls-finger: Connected to 127.0.0.1[127.0.0.1]:30000',
    'posttls-finger: < 220 plain ESMTP',
    'posttls-finger: > EHLO gateway.test',
    'posttls-finger: < 250-plain',
    'posttls-finger: < 250 8BITMIME',
    'posttls-finger: > QUIT',
    'posttls-finger: < 221 bye',
]) + '\n'

SELF_SIGNED_VERIFY = '\n'.join([
    'posttls-finger: Connected to 127.0.0.1[127.0.0.1]:30001',
    'posttls-finger: < 220 oracle-peer.test ESMTP',
    'posttls-finger: > EHLO gateway.test',
    'posttls-finger: < 250-oracle-peer.test',
    'posttls-finger: < 250-STARTTLS',
    'posttls-finger: < 250-SMTPUTF8',
    'posttls-finger: < 250 8BITMIME',
    'posttls-finger: > STARTTLS',
    'posttls-finger: < 220 2.0.0 ready to start TLS',
    ('posttls-finger: certificate verification failed for 127.0.0.1[127.0.0.1]:30001: self-signed '
     'certificate'),
    ('posttls-finger: 127.0.0.1[127.0.0.1]:30001: subject_CN=peer.probe.test, '
     'issuer_CN=peer.probe.test, fingerprint=27:27:37:73:1D:DD:4E:0C:C4:08:23:74:78:47:20:F6:EB:05:66:'
     '9A:AE:30:3E:1A:C8:28:1D:E9:01:47:54:A5, pkey_fingerprint=7D:74:CA:F5:38:DC:B2:95:3B:71:36:53:5C:'
     '2E:F0:D0:95:6A:92:02:FE:46:04:B4:6C:DF:86:4D:51:1A:A8:BA'),
    ('posttls-finger: Untrusted TLS connection established to 127.0.0.1[127.0.0.1]:30001: TLSv1.3 '
     'with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA '
     '(prime256v1) server-digest SHA256'),
    'posttls-finger: > EHLO gateway.test',
    'posttls-finger: < 250-oracle-peer.test',
    'posttls-finger: < 250-SMTPUTF8',
    'posttls-finger: < 250 8BITMIME',
    'posttls-finger: > QUIT',
    'posttls-finger: < 221 2.0.0 bye',
]) + '\n'

CA_MATCH_SECURE = '\n'.join([
    'posttls-finger: Connected to 127.0.0.1[127.0.0.1]:30002',
    'posttls-finger: < 220 oracle-peer.test ESMTP',
    'posttls-finger: > EHLO gateway.test',
    'posttls-finger: < 250-oracle-peer.test',
    'posttls-finger: < 250-STARTTLS',
    'posttls-finger: < 250-SMTPUTF8',
    'posttls-finger: < 250 8BITMIME',
    'posttls-finger: > STARTTLS',
    'posttls-finger: < 220 2.0.0 ready to start TLS',
    'posttls-finger: 127.0.0.1[127.0.0.1]:30002: matched peername: peer.probe.test',
    ('posttls-finger: 127.0.0.1[127.0.0.1]:30002: subject_CN=peer.probe.test, '
     'issuer_CN=probe-test-ca, fingerprint=84:E3:E9:A0:CD:F1:30:EF:C6:FB:9D:2B:50:29:80:36:81:00:7D:D5'
     ':01:4D:33:5B:5C:0A:1A:B3:20:BC:E6:BB, pkey_fingerprint=03:F5:DB:2E:C9:55:6F:5B:C0:58:17:14:09:AA'
     ':34:F6:F6:52:FD:D8:4F:D5:38:B5:9A:2D:F3:01:CC:3D:29:0B'),
    ('posttls-finger: Verified TLS connection established to 127.0.0.1[127.0.0.1]:30002: TLSv1.3 with '
     'cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA '
     '(prime256v1) server-digest SHA256'),
    'posttls-finger: > EHLO gateway.test',
    'posttls-finger: < 250-oracle-peer.test',
    'posttls-finger: < 250-SMTPUTF8',
    'posttls-finger: < 250 8BITMIME',
    'posttls-finger: > QUIT',
    'posttls-finger: < 221 2.0.0 bye',
]) + '\n'

CA_MISMATCH_VERIFY = '\n'.join([
    'posttls-finger: Connected to 127.0.0.1[127.0.0.1]:30003',
    'posttls-finger: < 220 oracle-peer.test ESMTP',
    'posttls-finger: > EHLO gateway.test',
    'posttls-finger: < 250-oracle-peer.test',
    'posttls-finger: < 250-STARTTLS',
    'posttls-finger: < 250-SMTPUTF8',
    'posttls-finger: < 250 8BITMIME',
    'posttls-finger: > STARTTLS',
    'posttls-finger: < 220 2.0.0 ready to start TLS',
    ('posttls-finger: server certificate verification failed for 127.0.0.1[127.0.0.1]:30003: '
     'num=62:hostname mismatch'),
    ('posttls-finger: 127.0.0.1[127.0.0.1]:30003: subject_CN=other.probe.test, '
     'issuer_CN=probe-test-ca, fingerprint=36:13:67:4C:BC:72:F9:10:36:B9:EA:DA:21:C5:F8:94:49:2F:34:81'
     ':0A:BB:57:5E:80:55:3D:E3:3A:A4:65:23, pkey_fingerprint=21:0F:92:B4:E4:74:60:21:F6:C6:45:BB:CF:94'
     ':09:F3:92:3C:F8:C8:B7:02:6F:F4:15:59:D1:FB:D1:F3:4F:DD'),
    ('posttls-finger: Untrusted TLS connection established to 127.0.0.1[127.0.0.1]:30003: TLSv1.3 '
     'with cipher TLS_AES_256_GCM_SHA384 (256/256 bits) key-exchange X25519 server-signature ECDSA '
     '(prime256v1) server-digest SHA256'),
    'posttls-finger: > EHLO gateway.test',
    'posttls-finger: < 250-oracle-peer.test',
    'posttls-finger: < 250-SMTPUTF8',
    'posttls-finger: < 250 8BITMIME',
    'posttls-finger: > QUIT',
    'posttls-finger: < 221 2.0.0 bye',
]) + '\n'

REFUSED = '\n'.join([
    ('posttls-finger: Failed to establish session to [127.0.0.1]:1 via 127.0.0.1: connect to '
     '127.0.0.1[127.0.0.1]:1: Connection refused'),
]) + '\n'


@pytest.mark.parametrize('destination, keys', [
    ('a.Example.COM', ['a.example.com', '.example.com', '.com']),
    ('example.com', ['example.com', '.com']),
    ('[mx.example.com]', ['[mx.example.com]']),
    ('[127.0.0.1]:10025', ['[127.0.0.1]:10025']),
    ('relay.example.com:587', ['relay.example.com:587']),
    ('localhost', ['localhost']),
])
def test_policy_keys_follow_the_smtp_client(destination, keys):
    assert policy_keys(destination) == keys


def test_first_key_in_lookup_order_wins_across_maps():
    tables = {'hash:/a': {'.example.com': 'may'}, 'hash:/b': {'a.example.com': 'verify', '.com': 'none'}}

    def query(spec, keys):
        return dict((k, v) for k, v in tables[spec].items() if k in keys)
    assert find_policy(query, ['hash:/a', 'hash:/b'], 'a.example.com') == ('a.example.com', 'verify', 'hash:/b')
    assert find_policy(query, ['hash:/a', 'hash:/b'], 'b.example.com') == ('.example.com', 'may', 'hash:/a')
    assert find_policy(query, ['hash:/a', 'hash:/b'], 'example.org') is None


def test_map_specs_drop_proxy():
    specs = map_specs('proxy:hash:/etc/postfix/tls_policy, texthash:/x')
    assert specs == ['hash:/etc/postfix/tls_policy', 'texthash:/x']


@pytest.mark.parametrize('value, parsed', [
    ('verify match=a.example:b.example', ('verify', {'match': ['a.example:b.example']})),
    ('Secure, match=x  tafile=/t.pem,ciphers=high', ('secure', {'match': ['x'], 'tafile': ['/t.pem'],
                                                                'ciphers': ['high']})),
])
def test_parse_entry(value, parsed):
    assert parse_entry(value) == parsed


@pytest.mark.parametrize('value, message', [
    ('', 'invalid empty policy'),
    ('strict', 'invalid security level "strict"'),
    ('verify match', 'malformed attribute/value pair "match"'),
])
def test_parse_entry_refuses_what_postfix_refuses(value, message):
    with pytest.raises(ValueError, match=message):
        parse_entry(value)


def test_finger_args_carry_the_entry_and_main_cf():
    params = {'smtp_tls_mandatory_protocols': '>=TLSv1.2', 'smtp_tls_mandatory_ciphers': 'medium',
              'smtp_host_lookup': 'dns, native', 'smtp_tcp_port': '2525', 'inet_protocols': 'ipv4'}
    args = finger_args('example.com', 'verify', {'match': ['mx.example.com:.example.com'], 'tafile': ['/a.pem'],
                                                 'ciphers': ['high']},
                       params, ca_file='/ca.pem', connect_timeout=5, command_timeout=7)
    assert args == ['-l', 'verify', '-t', '5', '-T', '7', '-h', 'dns,native', '-a', 'ipv4', '-p', '>=TLSv1.2',
                    '-g', 'high', '-F', '/ca.pem', '-A', '/a.pem', 'example.com:2525', 'mx.example.com',
                    '.example.com']


def test_finger_args_fingerprint_and_may():
    assert finger_args('[h]:25', 'fingerprint', {'match': ['AA:BB|CC:DD']})[-3:] == ['[h]:25', 'AA:BB', 'CC:DD']
    params = {'smtp_tls_protocols': '!SSLv2', 'smtp_tls_mandatory_protocols': 'x', 'smtp_tcp_port': 'smtp'}
    args = finger_args('[h]', 'may', {}, params)
    assert args == ['-l', 'may', '-p', '!SSLv2', '[h]']
    assert finger_args('[h]', 'none', {}, {'smtp_tcp_port': '2525'}) == ['-l', 'none', '[h]:2525']


@pytest.mark.parametrize('attributes, params, sni', [
    ({'servername': ['nexthop']}, {}, 'nexthop'),
    ({'servername': ['hostname']}, {'smtp_tls_servername': 'nexthop'}, 'hostname'),
    ({'servername': ['mx.example.net']}, {}, 'mx.example.net'),
    ({}, {'smtp_tls_servername': 'hostname'}, 'hostname'),
    ({}, {'smtp_tls_servername': ''}, None),
    ({}, {}, None),
])
def test_finger_args_send_the_servername_the_smtp_client_sends(attributes, params, sni):
    """The entry's servername, else smtp_tls_servername; the keywords as they are (Postfix's
    TLS library resolves them for posttls-finger as for the SMTP client)."""
    args = finger_args('[mx.example.com]:25', 'encrypt', attributes, params)
    assert (args[args.index('-s') + 1] if '-s' in args else None) == sni, args
    assert '-s' not in finger_args('[mx.example.com]:25', 'none', attributes, params)


@pytest.mark.parametrize('level, version, words', [
    ('verify', '3.5.25', 'Server certificate not trusted'),
    ('secure', '3.5.25', 'Server certificate not trusted'),
    ('verify', '3.6.0', 'Server certificate not verified'),
    ('verify', None, 'Server certificate not verified'),
    ('fingerprint', '3.5.25', 'Server certificate not verified'),
])
def test_an_untrusted_chain_is_worded_as_the_release_words_it(level, version, words):
    """Postfix before 3.6 defers an untrusted chain at verify/secure/dane with 'not trusted'
    (smtp_proto.c TLS_MUST_TRUST); fingerprint needs no trust, and 3.6 dropped the words."""
    report = parse_report(SELF_SIGNED_VERIFY)
    result = verdict(level, report, version=version)
    assert result['would_defer'] is True and result['reason'].startswith(words), result


def test_plaintext_server():
    report = parse_report(PLAINTEXT)
    assert report.connected == '127.0.0.1[127.0.0.1]' and report.port == 30000
    assert report.starttls_offered is False and report.trust_word is None
    assert verdict('may', report)['would_defer'] is False
    for level in ('encrypt', 'verify', 'secure'):
        result = verdict(level, report)
        assert result == {'starttls': False, 'trust': 'none', 'would_defer': True, 'reachable': True,
                          'reason': 'TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]'}


def test_self_signed_certificate():
    report = parse_report(SELF_SIGNED_VERIFY)
    assert report.starttls_offered is True and report.trust_word == 'Untrusted'
    assert report.verify_problems == ['self-signed certificate']
    assert report.tls_details.startswith('TLSv1.3 with cipher')
    assert verdict('encrypt', report)['would_defer'] is False
    result = verdict('verify', report)
    assert result['would_defer'] is True and result['trust'] == 'untrusted'
    assert result['reason'] == 'Server certificate not verified (self-signed certificate)'


def test_ca_signed_matching_certificate():
    report = parse_report(CA_MATCH_SECURE)
    result = verdict('secure', report)
    assert result['would_defer'] is False and result['trust'] == 'verified'
    assert result['reason'] == 'Verified TLS connection established to 127.0.0.1[127.0.0.1]:30002'


def test_ca_signed_certificate_with_another_name():
    report = parse_report(CA_MISMATCH_VERIFY)
    result = verdict('verify', report)
    assert result['would_defer'] is True and result['trust'] == 'untrusted'
    assert result['reason'] == 'Server certificate not verified (num=62:hostname mismatch)'


def test_no_connection_defers_at_any_level():
    report = parse_report(REFUSED)
    assert report.connected is None
    for level in ('none', 'may', 'encrypt'):
        result = verdict(level, report)
        assert result['would_defer'] is True and result['reachable'] is False and result['starttls'] is None
        assert result['reason'] == 'connect to 127.0.0.1[127.0.0.1]:1: Connection refused'


def test_starttls_refused_and_handshake_failure():
    text = ('posttls-finger: Connected to mx.test[127.0.0.2]:25\n'
            'posttls-finger: > EHLO gateway.test\n'
            'posttls-finger: < 250-mx.test\n'
            'posttls-finger: < 250 STARTTLS\n'
            'posttls-finger: > STARTTLS\n')
    assert verdict('encrypt', parse_report(text))['reason'] == 'Cannot start TLS: handshake failure'
    refused = parse_report(text + 'posttls-finger: STARTTLS rejected: 454 4.7.0 TLS not available\n')
    assert verdict('encrypt', refused)['reason'] == ('TLS is required, but host mx.test[127.0.0.2] refused to '
                                                     'start TLS: 454 4.7.0 TLS not available')
    assert verdict('may', refused)['would_defer'] is False


# -- the next MX host after a TLS failure -------------------------------------------------------

def _session(host, address, lines):
    return '\n'.join('posttls-finger: ' + line for line in ['Connected to %s[%s]:25' % (host, address)] + lines) + '\n'


NO_STARTTLS = ['< 220 mx ESMTP', '> EHLO gateway.test', '< 250-mx', '< 250 8BITMIME', '> QUIT', '< 221 bye']
SELF_SIGNED = ['< 220 mx ESMTP', '> EHLO gateway.test', '< 250-mx', '< 250 STARTTLS', '> STARTTLS',
               '< 220 2.0.0 ready', 'certificate verification failed for %s: self-signed certificate',
               'Untrusted TLS connection established to %s: TLSv1.3 with cipher X']
VERIFIED = ['< 220 mx ESMTP', '> EHLO gateway.test', '< 250-mx', '< 250 STARTTLS', '> STARTTLS',
            '< 220 2.0.0 ready', 'Verified TLS connection established to %s: TLSv1.3 with cipher X']


def _tls(kind, host, address):
    where = '%s[%s]:25' % (host, address)
    return _session(host, address, [line.replace('%s', where) for line in kind])


# what posttls-finger -v logs for a domain with three MX hosts (bookworm, trimmed)
LISTING = '\n'.join([
    'posttls-finger: name_mask: dns',
    'posttls-finger: parse_destination: example.com smtp',
    'posttls-finger: dns_query: example.com (MX): OK',
    'posttls-finger: addr_one: host mx1.example.net',
    'posttls-finger: lookup mx1.example.net type A flags RES_USE_DNSSEC',
    'posttls-finger: addr_one: host mx2.example.net',
    'posttls-finger: addr_one: host MX3.example.net',
    'posttls-finger: addr_one: host mx1.example.net',
    'posttls-finger: connect_addr: trying: mx1.example.net[192.0.2.1] port 25...',
]) + '\n'


class FakeFinger:
    """posttls-finger answering from a table {destination argument: output}; -v runs get LISTING."""

    def __init__(self, outputs, listing=LISTING):
        self.outputs = outputs
        self.listing = listing
        self.runs = []
        self.binary = '/usr/sbin/posttls-finger'

    def run(self, args):
        self.runs.append(list(args))
        if '-v' in args:
            return self.listing
        dest = next(arg for arg in args if arg in self.outputs)
        return self.outputs[dest]


OPTIONS = dict(ca_file=None, ca_path=None, connect_timeout=5, command_timeout=10)


def _probe(finger, destination='example.com', level='secure', entry=None, params=None):
    return probe_one(finger, destination, level, 'option', entry, params or {}, OPTIONS)


def test_nexthop_keywords_name_the_domain_for_another_mx_host():
    assert nexthop_names(['nexthop', 'Dot-Nexthop', 'hostname', 'mx.example'], 'example.com') == [
        'example.com', '.example.com', 'hostname', 'mx.example']
    args = finger_args('[mx2.example.net]', 'secure', {'servername': ['nexthop']},
                       {'smtp_tls_secure_cert_match': 'nexthop, dot-nexthop'}, nexthop='example.com')
    assert args[-3:] == ['[mx2.example.net]', 'example.com', '.example.com']
    assert args[args.index('-s') + 1] == 'example.com'
    # without a next hop of its own, the keywords go to posttls-finger as they are
    assert finger_args('example.com', 'secure', {}, {'smtp_tls_secure_cert_match': 'nexthop'})[-1] == 'nexthop'


@pytest.mark.parametrize('destination, domain', [
    ('example.com', ('example.com', None)),
    ('Example.COM:587', ('example.com', '587')),
    ('[mx.example.com]', None),
    ('[192.0.2.1]:25', None),
    ('192.0.2.1', None),
    ('.example.com', None),
])
def test_which_next_hops_have_mx_hosts(destination, domain):
    assert mx_domain(destination) == domain


def test_the_mx_hosts_are_read_from_posttls_fingers_lookups():
    assert looked_up_hosts(LISTING) == ['mx1.example.net', 'mx2.example.net', 'MX3.example.net']
    assert listing_args('example.com', {'smtp_host_lookup': 'dns, native', 'smtp_tcp_port': '2525'}, 5, 10) == [
        '-v', '-c', '-l', 'none', '-t', '5', '-T', '10', '-h', 'dns,native', 'example.com:2525']


def test_a_later_mx_host_that_takes_the_mail_means_no_deferral():
    finger = FakeFinger({'example.com': _tls(SELF_SIGNED, 'mx1.example.net', '192.0.2.1'),
                         '[mx2.example.net]': _session('mx2.example.net', '192.0.2.2', NO_STARTTLS),
                         '[MX3.example.net]': _tls(VERIFIED, 'MX3.example.net', '192.0.2.3')})
    result = _probe(finger, params={'smtp_tls_secure_cert_match': 'nexthop, dot-nexthop'})
    assert result['would_defer'] is False and result['trust'] == 'verified'
    assert result['host'] == 'MX3.example.net[192.0.2.3]:25'
    assert result['reason'].startswith('Verified TLS connection established to MX3.example.net[192.0.2.3]:25 (the '
                                       'SMTP client goes on to it after mx1.example.net[192.0.2.1]:25 would defer: '
                                       'Server certificate not verified')
    assert [(o['mx'], o['would_defer']) for o in result['other_mx']] == [
        ('mx2.example.net', True), ('MX3.example.net', False)]
    # the listing run, then each later host against the domain's names
    assert finger.runs[1][:4] == ['-v', '-c', '-l', 'none']
    assert finger.runs[3][-3:] == ['[MX3.example.net]', 'example.com', '.example.com']


def test_every_mx_host_deferring_defers_with_the_last_hosts_words():
    finger = FakeFinger({'example.com': _tls(SELF_SIGNED, 'mx1.example.net', '192.0.2.1'),
                         '[mx2.example.net]': _tls(SELF_SIGNED, 'mx2.example.net', '192.0.2.2'),
                         '[MX3.example.net]': _session('MX3.example.net', '192.0.2.3', NO_STARTTLS)},)
    result = _probe(finger, level='encrypt')
    # at encrypt a self-signed certificate is enough: no further host
    assert result['would_defer'] is False and result['other_mx'] == []
    finger = FakeFinger({'example.com': _session('mx1.example.net', '192.0.2.1', NO_STARTTLS),
                         '[mx2.example.net]': _session('mx2.example.net', '192.0.2.2', NO_STARTTLS),
                         '[MX3.example.net]': _session('MX3.example.net', '192.0.2.3', NO_STARTTLS)})
    result = _probe(finger, level='encrypt')
    assert result['would_defer'] is True and len(result['other_mx']) == 2
    assert result['reason'].startswith('TLS is required, but was not offered by host MX3.example.net[192.0.2.3]')
    assert result['host'] == 'mx1.example.net[192.0.2.1]:25'


def test_no_further_host_beyond_smtp_mx_address_limit_for_an_insecure_mx_rrset_or_a_host_next_hop():
    outputs = {'example.com': _session('mx1.example.net', '192.0.2.1', NO_STARTTLS),
               '[mx2.example.net]': _tls(VERIFIED, 'mx2.example.net', '192.0.2.2'),
               '[mx.example.com]': _session('mx1.example.net', '192.0.2.1', NO_STARTTLS)}
    limited = _probe(FakeFinger(outputs), level='encrypt', params={'smtp_mx_address_limit': '1'})
    assert limited['would_defer'] is True and limited['other_mx'] == []
    assert limited['evidence'][-1] == ('(smtp_mx_address_limit = 1: the SMTP client tries no further address)')
    dnssec = {'smtp_dns_support_level': 'dnssec', 'smtp_host_lookup': 'dns'}
    # an MX RRset that is not DNSSEC-validated holds for every host alike
    insecure = dict(outputs, **{'example.com': 'posttls-finger: MX RRset is insecure: try to encrypt\n'
                                + outputs['example.com']})
    for destination, level, answers in (('example.com', 'dane-only', insecure),
                                        ('[mx.example.com]', 'encrypt', outputs)):
        finger = FakeFinger(answers)
        result = _probe(finger, destination=destination, level=level, params=dnssec)
        assert result['would_defer'] is True and len(finger.runs) == 1, result
    # a validated MX RRset: each host has its own TLSA records, the next one is probed
    finger = FakeFinger(outputs)
    result = _probe(finger, level='dane', params=dnssec)
    assert result['would_defer'] is False and [o['mx'] for o in result['other_mx']] == ['mx2.example.net']
    assert finger.runs[2][:2] == ['-l', 'dane-only'] and finger.runs[2][4:] == [
        '-t', '5', '-T', '10', '-h', 'dns', '[mx2.example.net]']


# -- dane and dane-only ------------------------------------------------------------------------

DNSSEC = {'smtp_dns_support_level': 'dnssec', 'smtp_host_lookup': 'dns'}


def _dane_report(note, session):
    lines = ([note] if note else []) + ['Connected to mx1.example.net[192.0.2.1]:25'] + [
        line.replace('%s', 'mx1.example.net[192.0.2.1]:25') for line in session]
    return parse_report('\n'.join('posttls-finger: ' + line for line in lines) + '\n')


TRUSTED = ['< 220 mx ESMTP', '> EHLO gateway.test', '< 250-mx', '< 250 STARTTLS', '> STARTTLS',
           '< 220 2.0.0 ready', 'Trusted TLS connection established to %s: TLSv1.3 with cipher X']


@pytest.mark.parametrize('level, note, session, would_defer, reason', [
    # what posttls-finger (-l dane-only) logged of the TLSA records, and what the SMTP client does then
    ('dane', 'no TLSA records found, resorting to "secure"', SELF_SIGNED, False, '(dane: no TLSA records, so may)'),
    ('dane', 'no TLSA records found, resorting to "secure"', NO_STARTTLS, False, '(dane: no TLSA records, so may)'),
    ('dane', 'no usable TLSA records found, resorting to "secure"', SELF_SIGNED, False, 'so encrypt)'),
    ('dane', 'no usable TLSA records found, resorting to "secure"', NO_STARTTLS, True, 'TLS is required'),
    ('dane', 'MX RRset is insecure: try to encrypt', NO_STARTTLS, False, 'not DNSSEC-validated, so may)'),
    ('dane', 'TLSA RRs found, MX RRset insecure: just encrypt', SELF_SIGNED, False, 'so encrypt)'),
    ('dane', 'MX RRset insecure: log verified as trusted', TRUSTED, False, 'Trusted TLS connection'),
    ('dane', 'MX RRset insecure: log verified as trusted', SELF_SIGNED, True, 'Server certificate not verified'),
    ('dane', None, SELF_SIGNED, True, 'Server certificate not verified'),
    ('dane', None, VERIFIED, False, 'Verified TLS connection'),
    ('dane-only', 'no TLSA records found, resorting to "secure"', VERIFIED, True, 'no TLSA records found'),
    ('dane-only', 'no usable TLSA records found, resorting to "secure"', VERIFIED, True, 'TLSA records unusable'),
    ('dane-only', 'MX RRset is insecure: try to encrypt', VERIFIED, True, 'non DNSSEC destination'),
    ('dane-only', None, VERIFIED, False, 'Verified TLS connection'),
])
def test_dane_verdicts_follow_the_smtp_client(level, note, session, would_defer, reason):
    result = dane_verdict(level, _dane_report(note, session))
    assert result['would_defer'] is would_defer and reason in result['reason'], result


def test_a_dane_note_belongs_to_the_address_connected_to():
    text = ('posttls-finger: no TLSA records found, resorting to "secure"\n'
            'posttls-finger: Failed to establish session to example.com via mx1.example.net: connect to '
            'mx1.example.net[192.0.2.1]:25: Connection refused\n')
    report = parse_report(text + _tls(VERIFIED, 'mx2.example.net', '192.0.2.2'))
    assert report.dane_note is None and dane_verdict('dane-only', report)['would_defer'] is False


def test_dane_is_probed_at_dane_only_with_the_insecure_mx_policy():
    args = finger_args('example.com', 'dane', {}, dict(DNSSEC, smtp_tls_dane_insecure_mx_policy='encrypt'))
    assert args[:4] == ['-l', 'dane-only', '-M', 'encrypt']
    # dane-only defers for an insecure MX RRset: -M may makes posttls-finger say so
    assert finger_args('example.com', 'dane-only', {}, DNSSEC)[:4] == ['-l', 'dane-only', '-M', 'may']


def test_dane_without_dnssec_lookups():
    finger = FakeFinger({'example.com': _tls(SELF_SIGNED, 'mx1.example.net', '192.0.2.1')})
    result = _probe(finger, level='dane', params={'smtp_dns_support_level': 'enabled', 'smtp_host_lookup': 'dns'})
    assert result['would_defer'] is False and finger.runs[0][:2] == ['-l', 'may']
    assert result['reason'].endswith('(dane configured with dnssec lookups disabled (smtp_dns_support_level = '
                                     'enabled, smtp_host_lookup = dns): the SMTP client falls back to may)')
    finger = FakeFinger({})
    result = _probe(finger, level='dane-only', params={'smtp_dns_support_level': 'dnssec',
                                                       'smtp_host_lookup': 'native'})
    assert result['would_defer'] is True and finger.runs == []
    assert result['reason'].startswith('client TLS configuration problem (dane-only configured with dnssec')


@pytest.mark.parametrize('params, looks_up_mx', [
    ({}, True),
    ({'smtp_dns_support_level': 'enabled'}, True),
    ({'smtp_dns_support_level': 'dnssec'}, True),
    ({'smtp_dns_support_level': 'disabled'}, False),
    ({'smtp_dns_support_level': '', 'disable_dns_lookups': 'yes'}, False),
    ({'smtp_dns_support_level': 'enabled', 'disable_dns_lookups': 'yes'}, True),
])
def test_without_dns_lookups_a_domain_is_probed_as_a_host(params, looks_up_mx):
    """smtp_connect.c: no MX lookups with DNS disabled; posttls-finger looks [NAME] up as a host."""
    args = finger_args('example.com:2525', 'encrypt', {}, params)
    assert args[-1] == ('example.com:2525' if looks_up_mx else '[example.com]:2525')
    finger = FakeFinger({'example.com': _session('mx1.example.net', '192.0.2.1', NO_STARTTLS),
                         '[mx2.example.net]': _session('mx2.example.net', '192.0.2.2', NO_STARTTLS),
                         '[MX3.example.net]': _session('MX3.example.net', '192.0.2.3', NO_STARTTLS),
                         '[example.com]': _session('example.com', '192.0.2.9', NO_STARTTLS)})
    result = _probe(finger, level='encrypt', params=params)
    assert result['would_defer'] is True
    # the first server, the MX listing and two more MX hosts; none without MX lookups
    assert len(finger.runs) == (4 if looks_up_mx else 1), finger.runs


def test_wrapper_mode_is_probed_with_tls_from_the_first_byte():
    """smtp_tls_wrappermode = yes (SMTPS relays on port 465): posttls-finger -w; below encrypt
    the SMTP client refuses the address (smtp_connect.c), and a failed handshake is worded as
    the handshake's, not as STARTTLS missing."""
    wrapped = {'smtp_tls_wrappermode': 'yes'}
    assert '-w' in finger_args('[smtp.example.net]:465', 'encrypt', {}, wrapped)
    assert '-w' not in finger_args('[smtp.example.net]:465', 'encrypt', {}, {'smtp_tls_wrappermode': 'no'})
    finger = FakeFinger({})
    result = _probe(finger, destination='[smtp.example.net]:465', level='may', params=wrapped)
    assert result['would_defer'] is True and finger.runs == []
    assert result['reason'].startswith('smtp_tls_wrappermode requires "smtp_tls_security_level = encrypt"')
    failed = 'posttls-finger: Connected to smtp.example.net[192.0.2.5]:465\n'
    finger = FakeFinger({'[smtp.example.net]:465': failed})
    result = _probe(finger, destination='[smtp.example.net]:465', level='encrypt', params=wrapped)
    assert result['would_defer'] is True and result['reason'] == 'Cannot start TLS: handshake failure'


def test_what_posttls_finger_cannot_apply_is_named_in_the_evidence():
    """smtp_tls_policy.c set_cipher_grade: an entry's exclude= replaces main.cf's exclusion lists
    (empty: none at all); without it smtp_tls_exclude_ciphers applies from may on and
    smtp_tls_mandatory_exclude_ciphers from encrypt on. posttls-finger takes none of them."""
    params = {'smtp_tls_exclude_ciphers': 'RC4', 'smtp_tls_mandatory_exclude_ciphers': ' MD5 '}
    assert unapplied_settings({}, params, 'may') == [
        '(not applied by the probe, posttls-finger has no option for it: smtp_tls_exclude_ciphers = RC4; a '
        'handshake that succeeds here may still fail for the SMTP client)']
    assert 'smtp_tls_exclude_ciphers = RC4; smtp_tls_mandatory_exclude_ciphers = MD5;' in \
        unapplied_settings({}, params, 'secure')[0]
    assert 'exclude=aNULL:MD5;' in unapplied_settings({'exclude': ['aNULL:MD5']}, params, 'encrypt')[0]
    assert 'smtp_tls_' not in unapplied_settings({'exclude': ['aNULL:MD5']}, params, 'encrypt')[0]
    assert unapplied_settings({'exclude': ['']}, params, 'encrypt') == []
    assert unapplied_settings({}, {}, 'secure') == [] and unapplied_settings({}, params, 'none') == []
    assert 'connection_reuse=yes' in unapplied_settings({'connection_reuse': ['yes']}, {}, 'encrypt')[0]
    # in a probe's result, after posttls-finger's own lines
    finger = FakeFinger({'example.com': _tls(SELF_SIGNED, 'mx1.example.net', '192.0.2.1')})
    result = probe_one(finger, 'example.com', 'encrypt', 'policy table', ('example.com', 'encrypt exclude=MD5'),
                       {}, OPTIONS)
    assert result['evidence'][-1].startswith('(not applied by the probe, posttls-finger has no option for it: '
                                             'exclude=MD5;'), result['evidence']
