# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Loopback peers and certificates for the tls_probe tests (the fixture: conftest.py).

Peers, each on its own loopback address of the instance's /16, on the
instance's port:

* ``plaintext``: no STARTTLS at all (the oracle's PeerPool with starttls=False);
* ``untrusted``: STARTTLS with a self-signed certificate (CN peer.probe.test);
* ``match``: STARTTLS with a certificate of a test CA for peer.probe.test;
* ``mismatch``: STARTTLS with a certificate of the same CA for other.probe.test.

The instance trusts the test CA (``smtp_tls_CAfile``).  ``probe_world``
delivers one message per (peer, level) through the real Postfix (the
oracle's ``ask``: each policy entry used by the SMTP client, the status read
from the instance's log), so a test can hold the probe against real delivery.

MX cases (``MX_CASES``): a domain per case whose MX records (served by the
instance's DNS server, ``Oracle.add_mx``) name two or three hosts, each a peer
of a kind above, ``closed`` (nothing listens) or ``domain`` (a test-CA
certificate for the case domains and the ``good`` host names, so it matches at
``secure``, whose names are the next hop's, and at ``verify`` when the host is
named ``good``). One real message per case, through a round whose SMTP client
does MX lookups: it goes on to the next MX host after a TLS failure.

DANE cases (``DANE_CASES``): a domain per case with one MX host, TLSA records
for it or none, the MX records DNSSEC-validated or not (the instance's DNS
server sets the AD bit, oracle/dns.py); one real message per case through a
round whose SMTP client does DNSSEC lookups (``smtp_dns_support_level =
dnssec``, ``smtp_host_lookup = dns``), and a copy of the instance's main.cf
with those settings for the probes (``ProbeWorld.dnssec_config_dir``).
The MX cases likewise (``ProbeWorld.dns_config_dir``: DNS lookups enabled).

No-DNS cases (``NO_DNS_CASES``): a domain whose MX host and whose own address
(the instance's /etc/hosts) are different peers, delivered in a round with the
instance's own ``smtp_dns_support_level = disabled``: the SMTP client looks the
domain up as a host, never its MX records, and so must the probe.
"""

import hashlib
import os
import shutil
import subprocess

POSTTLS_FINGER = shutil.which('posttls-finger', path='/usr/sbin:/usr/bin:/sbin:/bin')
KINDS = ('plaintext', 'untrusted', 'match', 'mismatch')
LEVELS = ('encrypt', 'verify', 'secure')
MATCH_NAME = 'peer.probe.test'
MX_ZONE = 'mx.probe.test'
# case: (policy value, [(preference, host kind)]); the case's domain is CASE.mx.probe.test,
# host N of a case is named good-N.CASE.hosts.probe.test for kind 'domain', else mxN.CASE...
MX_CASES = {
    'backup-verified-secure': ('secure', [(10, 'untrusted'), (20, 'domain')]),
    'backup-verified-verify': ('verify', [(10, 'plaintext'), (20, 'domain')]),
    'backup-sni-nexthop': ('secure servername=nexthop', [(10, 'mismatch'), (20, 'domain')]),
    'primary-verified': ('secure', [(10, 'domain'), (20, 'untrusted')]),
    'none-verified': ('secure', [(10, 'untrusted'), (20, 'mismatch')]),
    'none-encrypted': ('encrypt', [(10, 'plaintext'), (20, 'plaintext')]),
    'closed-then-encrypted': ('encrypt', [(10, 'closed'), (20, 'plaintext'), (30, 'untrusted')]),
}

# MX case -> what the SMTP client does with the message: the peers are as probe_peers.MX_CASES says
MX_DELIVERY = {
    'backup-verified-secure': 'sent',       # host 1 self-signed; host 2 matches the domain (secure)
    'backup-verified-verify': 'sent',       # host 1 no STARTTLS; host 2 matches its own name (verify)
    'backup-sni-nexthop': 'sent',           # host 1 another name; host 2 matches, SNI is the domain
    'primary-verified': 'sent',             # host 1 matches: host 2 is never tried
    'none-verified': 'deferred',            # self-signed, then another name
    'none-encrypted': 'deferred',           # no STARTTLS on either
    'closed-then-encrypted': 'sent',        # refused, no STARTTLS, then self-signed (enough at encrypt)
}

# case: (policy value, [(host kind, its TLSA record or None)] in MX preference order, MX records
# DNSSEC-validated); 'match' is 3 1 1 of the host's key, 'other' 3 1 1 of another key,
# 'unusable' 1 1 1 of the host's key (PKIX-EE, which Postfix does not use for SMTP)
DANE_CASES = {
    'dane-no-tlsa': ('dane', [('untrusted', None)], True),
    'dane-only-no-tlsa': ('dane-only', [('domain', None)], True),
    'dane-tlsa-match': ('dane', [('untrusted', 'match')], True),
    'dane-tlsa-other': ('dane', [('untrusted', 'other')], True),
    'dane-only-tlsa-match': ('dane-only', [('untrusted', 'match')], True),
    'dane-unusable-tlsa': ('dane', [('untrusted', 'unusable')], True),
    'dane-only-unusable-tlsa': ('dane-only', [('domain', 'unusable')], True),
    'dane-insecure-mx': ('dane', [('untrusted', 'match')], False),
    'dane-only-insecure-mx': ('dane-only', [('domain', 'match')], False),
    'dane-backup-tlsa-match': ('dane', [('untrusted', 'other'), ('untrusted', 'match')], True),
    'dane-only-backup-tlsa': ('dane-only', [('domain', None), ('untrusted', 'match')], True),
    'dane-only-no-host-tlsa': ('dane-only', [('domain', None), ('untrusted', 'other')], True),
}
# DANE case -> what the SMTP client does with the message (smtp_tls_policy.c dane_init())
DANE_DELIVERY = {
    'dane-no-tlsa': 'sent',                 # no TLSA records: opportunistic TLS (may)
    'dane-only-no-tlsa': 'deferred',        # no TLSA records: never, though the certificate matches the domain
    'dane-tlsa-match': 'sent',              # DANE-EE matches a self-signed certificate
    'dane-tlsa-other': 'deferred',          # the TLSA record names another key
    'dane-only-tlsa-match': 'sent',
    'dane-unusable-tlsa': 'sent',           # unusable records: encrypt, a self-signed certificate is enough
    'dane-only-unusable-tlsa': 'deferred',
    'dane-insecure-mx': 'sent',             # the MX RRset is not validated: may (3.6+), TLSA still matches (3.5)
    'dane-only-insecure-mx': 'deferred',    # "non DNSSEC destination"
    'dane-backup-tlsa-match': 'sent',       # host 1's record names another key, host 2's matches
    'dane-only-backup-tlsa': 'sent',        # host 1 has no TLSA records (not even tried), host 2 matches
    'dane-only-no-host-tlsa': 'deferred',   # host 1 no records, host 2's name another key
}

# case: (policy value, kind of the peer at the domain's own address, kind of its MX host)
NO_DNS_CASES = {
    'nodns-plaintext-host': ('encrypt', 'plaintext', 'domain'),
    'nodns-tls-host': ('encrypt', 'untrusted', 'plaintext'),
}
NO_DNS_DELIVERY = {
    'nodns-plaintext-host': 'deferred',     # the domain's address has no STARTTLS; its MX would have
    'nodns-tls-host': 'sent',               # the domain's address offers STARTTLS; its MX does not
}


def mx_domain_of(case):
    return '%s.%s' % (case, MX_ZONE)


def mx_host_of(case, n, kind):
    return '%s-%d.%s.hosts.probe.test' % ('good' if kind == 'domain' else 'mx', n, case)


def _openssl(*args):
    subprocess.run(['openssl'] + list(args), check=True, capture_output=True)


def make_certificates(directory):
    """A test CA, two certificates it signed (match, mismatch) and a self-signed one: {kind: (cert, key)}."""
    d = str(directory)
    ca_cert, ca_key = os.path.join(d, 'ca.crt'), os.path.join(d, 'ca.key')
    curve = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
    _openssl('req', '-x509', *curve, '-keyout', ca_key, '-out', ca_cert, '-days', '30', '-subj', '/CN=probe-test-ca')
    pairs = {}
    for kind, name in (('match', MATCH_NAME), ('mismatch', 'other.probe.test')):
        cert, key, csr, ext = (os.path.join(d, '%s.%s' % (kind, s)) for s in ('crt', 'key', 'csr', 'ext'))
        _openssl('req', *curve, '-keyout', key, '-out', csr, '-subj', '/CN=%s' % name)
        with open(ext, 'w') as handle:
            handle.write('subjectAltName=DNS:%s\n' % name)
        _openssl('x509', '-req', '-in', csr, '-CA', ca_cert, '-CAkey', ca_key, '-CAcreateserial', '-out', cert,
                 '-days', '30', '-extfile', ext)
        pairs[kind] = (cert, key)
    # the 'domain' peers of the MX cases: every case domain and every good host name
    names = [mx_domain_of(case) for case in sorted(MX_CASES) + sorted(DANE_CASES) + sorted(NO_DNS_CASES)] + [
        mx_host_of(case, n, kind) for case, (_value, hosts) in sorted(MX_CASES.items())
        for n, (_pref, kind) in enumerate(hosts, 1) if kind == 'domain']
    cert, key, csr, ext = (os.path.join(d, 'domain.%s' % s) for s in ('crt', 'key', 'csr', 'ext'))
    _openssl('req', *curve, '-keyout', key, '-out', csr, '-subj', '/CN=%s' % names[0])
    with open(ext, 'w') as handle:
        handle.write('subjectAltName=%s\n' % ','.join('DNS:%s' % name for name in names))
    _openssl('x509', '-req', '-in', csr, '-CA', ca_cert, '-CAkey', ca_key, '-CAcreateserial', '-out', cert,
             '-days', '30', '-extfile', ext)
    pairs['domain'] = (cert, key)
    cert, key = os.path.join(d, 'untrusted.crt'), os.path.join(d, 'untrusted.key')
    _openssl('req', '-x509', *curve, '-keyout', key, '-out', cert, '-days', '30', '-subj', '/CN=%s' % MATCH_NAME,
             '-addext', 'subjectAltName=DNS:%s' % MATCH_NAME)
    pairs['untrusted'] = (cert, key)
    return ca_cert, pairs


class ProbeWorld:
    """The oracle instance, the peers and the verdicts of real delivery."""

    def __init__(self, oracle, ca_cert, keys, verdicts, pools=None, mx_verdicts=None, mx_addresses=None,
                 dane_verdicts=None, dnssec_config_dir=None, dns_config_dir=None, no_dns_verdicts=None):
        self.oracle = oracle
        self.ca_cert = ca_cert
        self.keys = keys                # {(kind, level): policy key}
        self.verdicts = verdicts        # {(kind, level): Verdict}
        self.pools = pools or {}        # {kind: PeerPool}: the sessions each peer saw
        self.mx_verdicts = mx_verdicts or {}        # {MX case: Verdict}
        self.mx_addresses = mx_addresses or {}      # {MX case: [address of host 1, 2, ...]}
        self.dane_verdicts = dane_verdicts or {}    # {DANE case: Verdict}
        self.dnssec_config_dir = dnssec_config_dir  # main.cf as the DANE round's SMTP client has it
        self.dns_config_dir = dns_config_dir        # main.cf as the MX round's SMTP client has it
        self.no_dns_verdicts = no_dns_verdicts or {}    # {no-DNS case: Verdict}

    def mx_sessions(self, case, n):
        """The sessions host N (1, 2, ...) of MX CASE saw, oldest first."""
        kind = MX_CASES[case][1][n - 1][1]
        return self.pools[kind].sessions_for(self.mx_addresses[case][n - 1], self.oracle.port)

    def mx_sni(self, case):
        """{host name: [the SNI of each TLS session it saw]} of MX CASE."""
        out = {}
        for n, (_pref, kind) in enumerate(MX_CASES[case][1], 1):
            if kind != 'closed':
                out[mx_host_of(case, n, kind)] = [s['sni'] for s in self.mx_sessions(case, n) if s.get('tls')]
        return out

    def namespace_argv(self):
        """The prefix that runs a probe with the instance's resolver (its DNS server, its
        /etc/hosts): for the MX cases."""
        return self.oracle.namespace_argv()

    def sessions(self, kind, key):
        """The sessions the KIND peer listening at KEY ([address]:port) saw, oldest first."""
        address, _sep, port = key[1:].partition(']:')
        return self.pools[kind].sessions_for(address, port)

    @property
    def config_dir(self):
        return self.oracle.conf

    @property
    def log(self):
        return self.oracle.log


def start_probe_world(cert_dir, keep=False):
    """Start the oracle instance that trusts a new test CA, the four peers on their loopback
    addresses, and deliver one real message per (peer, level) through it; return
    (ProbeWorld, stop) where stop() shuts everything down. Needs what Oracle needs (root,
    unshare) and posttls-finger for the probes."""
    from oracle.instance import POSTCONF, Oracle
    from oracle.peer import PeerPool
    ca_cert, pairs = make_certificates(cert_dir)
    oracle = Oracle(keep=keep)
    pools = []

    def stop():
        oracle.stop()
        for pool in pools:
            pool.close()
    try:
        oracle.start()
        subprocess.run([POSTCONF, '-c', oracle.conf, '-e', 'smtp_tls_CAfile = %s' % ca_cert], check=True,
                       capture_output=True)
        keys = {}
        entries = []
        pool_of = dict((kind, PeerPool(*pairs[kind])) for kind in KINDS + ('domain',) if kind != 'plaintext')
        pool_of['plaintext'] = PeerPool(None, None, starttls=False)
        pools.extend(pool_of.values())
        n = 0
        for kind in KINDS:
            for level in LEVELS + ('may',):
                n += 1
                address = '127.%d.200.%d' % (oracle.net, n)
                pool_of[kind].listen(address, oracle.port)
                key = '[%s]:%d' % (address, oracle.port)
                keys[(kind, level)] = key
                entries.append((key, level if level in ('encrypt', 'may') else '%s match=%s' % (level, MATCH_NAME)))
        first_table = 'hash:%s' % oracle.table_path()
        verdicts = oracle.ask(entries)
        cases = [(k, lv) for k in KINDS for lv in LEVELS + ('may',)]
        # the MX round lists the first round's table after its own: both stay in force
        mx_table = 'hash:%s' % oracle.table_path()
        mx_verdicts, mx_addresses = _mx_round(oracle, pool_of, (first_table,))
        dane_table = 'hash:%s' % oracle.table_path()
        dane_verdicts = _dane_round(oracle, pool_of, pairs, (first_table, mx_table))
        no_dns_verdicts = _no_dns_round(oracle, pool_of, (first_table, mx_table, dane_table))
        # the probes of the MX and DANE cases read main.cf as those rounds' SMTP clients had
        # it (after the last round: smtp_tls_policy_maps lists every round's table)
        dns_conf = config_copy(oracle, 'conf-dns', MX_SETTINGS)
        dnssec_conf = config_copy(oracle, 'conf-dnssec', DNSSEC_SETTINGS)
        return ProbeWorld(oracle, ca_cert, keys, dict(zip(cases, verdicts)), pool_of, mx_verdicts,
                          mx_addresses, dane_verdicts, dnssec_conf, dns_conf, no_dns_verdicts), stop
    except BaseException:
        stop()
        raise


def _mx_round(oracle, pool_of, extra_maps=()):
    """The MX cases: DNS records and peers, and one real message per case through a round
    whose SMTP client looks MX records up; ({case: Verdict}, {case: [host addresses]})."""
    addresses = {}
    for case, (_value, hosts) in sorted(MX_CASES.items()):
        exchangers = []
        for n, (pref, kind) in enumerate(hosts, 1):
            address = oracle._new_address()
            if kind != 'closed':
                pool_of[kind].listen(address, oracle.port)
            exchangers.append((pref, mx_host_of(case, n, kind), address))
        oracle.add_mx(mx_domain_of(case), exchangers)
        addresses[case] = [address for _pref, _host, address in exchangers]
    cases = sorted(MX_CASES)
    verdicts = oracle.ask([(mx_domain_of(case), MX_CASES[case][0]) for case in cases],
                          lane_options=MX_SETTINGS, extra_maps=extra_maps)
    return dict(zip(cases, verdicts)), addresses


def _no_dns_round(oracle, pool_of, extra_maps=()):
    """The no-DNS cases: each domain resolves (/etc/hosts) to one peer and has MX records naming
    another; one real message per case in a round with the instance's own DNS settings
    (disabled). Returns {case: Verdict}."""
    from oracle.instance import Route
    routes = {}
    for case, (_value, host_kind, mx_kind) in sorted(NO_DNS_CASES.items()):
        domain = mx_domain_of(case)
        address, mx_address = oracle._new_address(), oracle._new_address()
        pool_of[host_kind].listen(address, oracle.port)
        pool_of[mx_kind].listen(mx_address, oracle.port)
        oracle.add_mx(domain, [(10, mx_host_of(case, 1, mx_kind), mx_address)])
        routes[domain] = Route(domain, address, oracle.port, [domain])
    cases = sorted(NO_DNS_CASES)
    verdicts = oracle.ask([(mx_domain_of(case), NO_DNS_CASES[case][0]) for case in cases],
                          extra_maps=extra_maps, own_routes=routes)
    return dict(zip(cases, verdicts))


MX_SETTINGS = ('smtp_dns_support_level=enabled',)


def config_copy(oracle, name, settings):
    """A configuration directory NAME beside the instance's, with its main.cf and master.cf
    and SETTINGS (``name=value``) applied: what a round's SMTP client had with its lane's -o
    overrides, for the probes of that round's cases."""
    from oracle.instance import POSTCONF
    conf = os.path.join(oracle.base, name)
    os.makedirs(conf, exist_ok=True)
    for item in ('main.cf', 'master.cf'):
        shutil.copy(os.path.join(oracle.conf, item), os.path.join(conf, item))
    subprocess.run([POSTCONF, '-c', conf, '-e'] + list(settings), check=True, capture_output=True)
    return conf


def spki_sha256(cert):
    """The SHA-256 digest (hex) of CERT's public key, DER (TLSA selector 1, matching type 1)."""
    pub = subprocess.run(['openssl', 'x509', '-in', cert, '-noout', '-pubkey'], check=True, capture_output=True).stdout
    der = subprocess.run(['openssl', 'pkey', '-pubin', '-outform', 'DER'], input=pub, check=True,
                         capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


DNSSEC_SETTINGS = ('smtp_dns_support_level=dnssec', 'smtp_host_lookup=dns')


def _dane_round(oracle, pool_of, pairs, extra_maps=()):
    """The DANE cases: DNS records (AD bit but for the insecure MX RRsets), TLSA records, peers,
    one real message per case through a round whose SMTP client does DNSSEC lookups.
    Returns {case: Verdict}."""
    zone = oracle.serve_dns()
    for case, (_value, hosts, secure) in sorted(DANE_CASES.items()):
        exchangers = []
        for n, (kind, tlsa) in enumerate(hosts, 1):
            address = oracle._new_address()
            pool_of[kind].listen(address, oracle.port)
            host = mx_host_of(case, n, kind)
            exchangers.append((10 * n, host, address))
            own = spki_sha256(pairs[kind][0])
            record = {'match': (3, 1, 1, own), 'other': (3, 1, 1, spki_sha256(pairs['mismatch'][0])),
                      'unusable': (1, 1, 1, own), None: None}[tlsa]
            if record:
                oracle.add_tlsa(host, oracle.port, *record)
        oracle.add_mx(mx_domain_of(case), exchangers)
        if not secure:
            zone.mark_insecure(mx_domain_of(case))
    cases = sorted(DANE_CASES)
    verdicts = oracle.ask([(mx_domain_of(case), DANE_CASES[case][0]) for case in cases],
                          lane_options=DNSSEC_SETTINGS, extra_maps=extra_maps)
    return dict(zip(cases, verdicts))


def probe_against_delivery(cert_dir):
    """The tls_probe module's verdict on every (peer, level) of a new probe world, next to
    what Postfix did with the real message: {'version': [...], 'result': {...},
    'cases': {'KIND-LEVEL': {'status', 'reason', 'evidence', 'probe'}}}. Run where the
    Postfix under test is (in_image.probe_in_image: inside a test image)."""
    from ansible_env import run_module
    world, stop = start_probe_world(cert_dir)
    runs = []

    def probe(destinations, config_dir):
        run = run_module('mailgw.postfix_tls.tls_probe', {
            'destinations': destinations, 'config_dir': config_dir,
            'connect_timeout': 5, 'command_timeout': 10, 'concurrency': 4}, wrapper=world.namespace_argv())
        runs.append(run)
        return run.get('destinations') or [None] * len(destinations)

    def beside(verdicts, cases, probes, name=str):
        return dict((name(case), dict(status=verdicts[case].status, reason=verdicts[case].reason,
                                      evidence=verdicts[case].evidence, probe=found))
                    for case, found in zip(cases, probes))
    try:
        cases = sorted(world.keys)
        mx_cases, no_dns_cases, dane_cases = sorted(MX_CASES), sorted(NO_DNS_CASES), sorted(DANE_CASES)
        # the peers and the no-DNS domains with the instance's own main.cf, in one run
        probes = probe([world.keys[case] for case in cases] + [mx_domain_of(case) for case in no_dns_cases],
                       world.config_dir)
        out = beside(world.verdicts, cases, probes, name=lambda case: '%s-%s' % case)
        no_dns_out = beside(world.no_dns_verdicts, no_dns_cases, probes[len(cases):])
        mx_out = beside(world.mx_verdicts, mx_cases,
                        probe([mx_domain_of(case) for case in mx_cases], world.dns_config_dir))
        for case in mx_cases:
            mx_out[case]['sni'] = world.mx_sni(case)
        dane_out = beside(world.dane_verdicts, dane_cases,
                          probe([mx_domain_of(case) for case in dane_cases], world.dnssec_config_dir))
        return dict(version=list(world.oracle.mail_version()), cases=out, mx_cases=mx_out, dane_cases=dane_out,
                    no_dns_cases=no_dns_out,
                    result=dict(failed=any(run.get('failed') for run in runs),
                                msg='; '.join(run['msg'] for run in runs if run.get('msg')) or None))
    finally:
        stop()
