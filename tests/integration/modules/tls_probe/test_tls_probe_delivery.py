# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tls_probe against real delivery: the probe's would_defer is what Postfix did with a real message.

Four loopback peers (plaintext only, self-signed, test-CA certificate whose name
matches, one whose name does not) at encrypt, verify and secure (and may), see
conftest.py.  Each (peer, level) got one real message through a private Postfix
instance with a policy entry for it; the module then probes the same next hops
with that instance's configuration.
"""

import pytest

from ansible_env import run_module
from probe_peers import (DANE_CASES, DANE_DELIVERY, KINDS, MX_CASES, MX_DELIVERY, NO_DNS_CASES, NO_DNS_DELIVERY,
                         mx_domain_of, mx_host_of)

# (kind, level) -> (would_defer, trust) as Postfix decides them
EXPECTED = {
    ('plaintext', 'encrypt'): (True, 'none'),
    ('plaintext', 'verify'): (True, 'none'),
    ('plaintext', 'secure'): (True, 'none'),
    ('plaintext', 'may'): (False, 'none'),
    ('untrusted', 'encrypt'): (False, 'untrusted'),
    ('untrusted', 'verify'): (True, 'untrusted'),
    ('untrusted', 'secure'): (True, 'untrusted'),
    ('untrusted', 'may'): (False, 'untrusted'),
    ('match', 'encrypt'): (False, 'trusted'),
    ('match', 'verify'): (False, 'verified'),
    ('match', 'secure'): (False, 'verified'),
    ('match', 'may'): (False, 'trusted'),
    ('mismatch', 'encrypt'): (False, 'trusted'),
    ('mismatch', 'verify'): (True, 'untrusted'),
    ('mismatch', 'secure'): (True, 'untrusted'),
    ('mismatch', 'may'): (False, 'trusted'),
}
CASES = sorted(EXPECTED)


@pytest.fixture(scope='module')
def probed(probe_world, tmp_path_factory):
    """The module's results at the levels of the policy table, by (kind, level)."""
    keys = [probe_world.keys[case] for case in CASES]
    result = run_module('mailgw.postfix_tls.tls_probe', {
        'destinations': keys, 'config_dir': probe_world.config_dir, 'connect_timeout': 5, 'command_timeout': 10, 'concurrency': 4})
    assert not result.get('failed'), result
    return result, dict(zip(CASES, result['destinations']))


def _why(verdict, probe):
    log = '\n'.join(verdict.evidence)
    return 'postfix: %s (%s)\nprobe: %r\nlog:\n%s' % (verdict.status, verdict.reason, probe, log)


@pytest.mark.parametrize('case', CASES, ids=['%s-%s' % case for case in CASES])
def test_probe_agrees_with_real_delivery(probe_world, probed, case):
    verdict = probe_world.verdicts[case]
    probe = probed[1][case]
    assert verdict.status in ('sent', 'deferred'), _why(verdict, probe)
    assert probe['would_defer'] == (verdict.status == 'deferred'), _why(verdict, probe)
    if verdict.status == 'deferred':
        # Postfix's own words, posttls-finger's detail may follow in parentheses
        assert probe['reason'].startswith(verdict.reason), _why(verdict, probe)


@pytest.mark.parametrize('case', CASES, ids=['%s-%s' % case for case in CASES])
def test_probe_result_per_peer_and_level(probe_world, probed, case):
    probe = probed[1][case]
    would_defer, trust = EXPECTED[case]
    assert probe['destination'] == probe_world.keys[case]
    assert probe['level'] == case[1] and probe['level_source'] == 'policy table'
    assert probe['policy_key'] == probe_world.keys[case]
    assert (probe['would_defer'], probe['trust']) == (would_defer, trust), probe
    assert probe['starttls'] is (case[0] != 'plaintext') and probe['reachable'] is True
    assert probe['host'].endswith(probe_world.keys[case].split(']')[1])


def test_deferring_lists_the_deferring_destinations(probe_world, probed):
    result = probed[0]
    assert result['changed'] is False
    assert result['deferring'] == [probe_world.keys[c] for c in CASES if EXPECTED[c][0]]


def test_level_option_overrides_the_table_and_check_mode_probes_the_same(probe_world):
    """level: encrypt probes every peer at encrypt (the level a role is about to set): only the
    plaintext peer would defer; in check mode the module probes just the same."""
    keys = [probe_world.keys[(kind, 'may')] for kind in KINDS]
    for check in (False, True):
        result = run_module('mailgw.postfix_tls.tls_probe', {
            'destinations': keys, 'level': 'encrypt', 'config_dir': probe_world.config_dir, 'connect_timeout': 5}, check=check)
        assert not result.get('failed'), result
        assert [(r['level'], r['level_source']) for r in result['destinations']] == [('encrypt', 'option')] * 4
        assert result['deferring'] == [probe_world.keys[('plaintext', 'may')]], result
        assert result['changed'] is False


def test_levels_probe_each_destination_at_its_own_level_in_one_call(probe_world):
    """levels: {destination: level} (what a planned change gives each one): the untrusted peer
    passes at encrypt and defers at verify; a destination of destinations not in levels gets
    the level it has today (its table entry, may)."""
    untrusted = probe_world.keys[('untrusted', 'may')]
    matching = probe_world.keys[('match', 'may')]
    mismatch = probe_world.keys[('mismatch', 'may')]
    result = run_module('mailgw.postfix_tls.tls_probe', {
        'levels': {untrusted: 'verify', matching: 'encrypt'}, 'config_dir': probe_world.config_dir,
        'connect_timeout': 5})
    assert not result.get('failed'), result
    got = dict((r['destination'], (r['level'], r['level_source'], r['would_defer'])) for r in result['destinations'])
    assert got == {untrusted: ('verify', 'option', True), matching: ('encrypt', 'option', False)}, result
    mixed = run_module('mailgw.postfix_tls.tls_probe', {
        'destinations': [untrusted, mismatch], 'levels': {untrusted: 'encrypt'},
        'config_dir': probe_world.config_dir, 'connect_timeout': 5})
    assert [(r['level'], r['level_source'], r['would_defer']) for r in mixed['destinations']] == [
        ('encrypt', 'option', False), ('may', 'policy table', False)], mixed


def test_no_entry_means_the_global_level_and_a_closed_port_defers(probe_world):
    """A next hop without a policy entry gets smtp_tls_security_level (may in the instance);
    nothing listening: the mail defers at any level, reachable false."""
    closed = '[127.%d.201.1]:%d' % (probe_world.oracle.net, probe_world.oracle.port)
    result = run_module('mailgw.postfix_tls.tls_probe', {
        'destinations': [closed], 'config_dir': probe_world.config_dir, 'connect_timeout': 3})
    (probe,) = result['destinations']
    assert (probe['level'], probe['level_source'], probe['policy_key']) == ('may', 'smtp_tls_security_level', None)
    assert probe['would_defer'] is True and probe['reachable'] is False and probe['starttls'] is None
    assert 'Connection refused' in probe['reason'], probe


MX_CASE_IDS = sorted(MX_DELIVERY)


@pytest.fixture(scope='module')
def mx_probed(probe_world):
    """The module's results for the MX case domains, run with the instance's resolver (its DNS
    server for the MX records, its /etc/hosts for the hosts), by case."""
    result = run_module('mailgw.postfix_tls.tls_probe', {
        'destinations': [mx_domain_of(case) for case in MX_CASE_IDS], 'config_dir': probe_world.dns_config_dir,
        'connect_timeout': 5, 'command_timeout': 10, 'concurrency': 4}, wrapper=probe_world.namespace_argv())
    assert not result.get('failed'), result
    return dict(zip(MX_CASE_IDS, result['destinations']))


@pytest.mark.parametrize('case', MX_CASE_IDS)
def test_probe_follows_the_smtp_client_to_the_next_mx_host(probe_world, mx_probed, case):
    """The SMTP client goes on to the next MX host after a TLS failure (smtp_connect.c): the
    probe says would_defer exactly when the real message was deferred, with the words of the
    last host, and names the host that would take the mail."""
    verdict = probe_world.mx_verdicts[case]
    probe = mx_probed[case]
    assert verdict.status == MX_DELIVERY[case], _why(verdict, probe)
    assert probe['would_defer'] == (verdict.status == 'deferred'), _why(verdict, probe)
    hosts = MX_CASES[case][1]
    if verdict.status == 'deferred':
        assert probe['reason'].startswith(verdict.reason), _why(verdict, probe)
        assert [o['mx'] for o in probe['other_mx']] == [mx_host_of(case, n, kind)
                                                        for n, (_p, kind) in enumerate(hosts, 1)][1:]
    else:
        taker = next(n for n, (_p, kind) in enumerate(hosts, 1)
                     if kind == 'domain' or (kind == 'untrusted' and probe['level'] == 'encrypt'))
        assert probe['host'].startswith(mx_host_of(case, taker, hosts[taker - 1][1]) + '['), probe
        # the relay Postfix delivered to is the host the probe names
        assert any('relay=%s' % probe['host'].rsplit(':', 1)[0] in line for line in verdict.evidence), \
            _why(verdict, probe)
        assert (taker == 1) == (probe['other_mx'] == []), probe


def test_other_mx_hosts_are_checked_against_the_domain(probe_world, mx_probed):
    """An MX host probed as [HOST] is held to the next hop's names, as the SMTP client holds it:
    at secure the certificate names the domain, not the host, and servername=nexthop sends the
    domain as SNI (each TLS session the host saw, the real delivery's and the probe's)."""
    secure = mx_probed['backup-verified-secure']
    assert secure['trust'] == 'verified' and secure['other_mx'][0]['trust'] == 'verified', secure
    domain = mx_domain_of('backup-sni-nexthop')
    sni = probe_world.mx_sni('backup-sni-nexthop')
    good = mx_host_of('backup-sni-nexthop', 2, 'domain')
    assert len(sni[good]) >= 2 and set(sni[good]) == {domain}, sni


@pytest.mark.parametrize('case', sorted(NO_DNS_CASES))
def test_without_dns_lookups_the_domain_is_a_host(probe_world, case):
    """smtp_dns_support_level = disabled (the instance's own): the SMTP client looks a domain
    next hop up as a host name, not its MX records (smtp_connect.c), and so does the probe,
    which asks posttls-finger for [DOMAIN]; the MX host here would answer otherwise."""
    verdict = probe_world.no_dns_verdicts[case]
    result = run_module('mailgw.postfix_tls.tls_probe', {
        'destinations': [mx_domain_of(case)], 'config_dir': probe_world.config_dir, 'connect_timeout': 5},
        wrapper=probe_world.namespace_argv())
    (probe,) = result['destinations']
    assert verdict.status == NO_DNS_DELIVERY[case], _why(verdict, probe)
    assert probe['would_defer'] == (verdict.status == 'deferred'), _why(verdict, probe)
    assert probe['host'].startswith(mx_domain_of(case) + '['), probe
    assert probe['other_mx'] == [], probe
    assert any(cmd[-1] == '[%s]:%d' % (mx_domain_of(case), probe_world.oracle.port) for cmd in result['commands'])


@pytest.fixture(scope='module')
def dane_probed(probe_world):
    """The module's results for the DANE case domains, with the main.cf of the round that
    delivered them (DNSSEC lookups) and the instance's resolver, by case."""
    cases = sorted(DANE_CASES)
    result = run_module('mailgw.postfix_tls.tls_probe', {
        'destinations': [mx_domain_of(case) for case in cases], 'config_dir': probe_world.dnssec_config_dir,
        'connect_timeout': 5, 'command_timeout': 10, 'concurrency': 4}, wrapper=probe_world.namespace_argv())
    assert not result.get('failed'), result
    return dict(zip(cases, result['destinations']))


@pytest.mark.parametrize('case', sorted(DANE_CASES))
def test_probe_at_dane_does_what_the_smtp_client_does(probe_world, dane_probed, case):
    """dane and dane-only with TLSA records that match, name another key, are unusable or
    missing, and an MX RRset that is not DNSSEC-validated: the probe says would_defer exactly
    when the real message was deferred, with the SMTP client's words (posttls-finger itself
    falls back to secure without usable TLSA records: stricter at dane, and at dane-only
    it would pass a certificate the SMTP client never looks at)."""
    verdict = probe_world.dane_verdicts[case]
    probe = dane_probed[case]
    assert verdict.status == DANE_DELIVERY[case], _why(verdict, probe)
    assert probe['would_defer'] == (verdict.status == 'deferred'), _why(verdict, probe)
    assert probe['level'] == DANE_CASES[case][0]
    if verdict.status == 'deferred':
        assert probe['reason'].startswith(verdict.reason), _why(verdict, probe)


def test_dane_without_dnssec_lookups_is_what_the_smtp_client_makes_of_it(probe_world):
    """With the instance's own main.cf (smtp_dns_support_level = disabled) dane falls back to
    may and dane-only is a configuration problem (smtp_tls_policy.c dane_init()): decided from
    main.cf, dane-only without a probe."""
    untrusted = probe_world.keys[('untrusted', 'may')]
    result = run_module('mailgw.postfix_tls.tls_probe', {
        'levels': {untrusted: 'dane'}, 'config_dir': probe_world.config_dir, 'connect_timeout': 5})
    (probe,) = result['destinations']
    assert probe['would_defer'] is False and probe['trust'] == 'untrusted', probe
    assert 'dane configured with dnssec lookups disabled' in probe['reason'], probe
    result = run_module('mailgw.postfix_tls.tls_probe', {
        'levels': {untrusted: 'dane-only'}, 'config_dir': probe_world.config_dir, 'connect_timeout': 5})
    (probe,) = result['destinations']
    assert probe['would_defer'] is True and probe['reachable'] is None, probe
    assert probe['reason'].startswith('client TLS configuration problem (dane-only configured with dnssec lookups '
                                      'disabled'), probe
    assert not any('posttls-finger' in ' '.join(cmd) for cmd in result['commands']), result['commands']


@pytest.mark.parametrize('args, message', [
    ({'destinations': ['a b']}, "destinations: destination 'a b': contains whitespace"),
    ({'destinations': ['[h]:99999']}, 'Postfix refuses this next hop ("bad network port")'),
    ({'destinations': ['.example.com']}, "destinations: '.example.com' is a policy key for subdomains, not a next hop"),
    ({'destinations': ['x'], 'concurrency': 0}, 'concurrency: 0 is not allowed, it must be at least 1'),
    ({'destinations': ['x'], 'level': 'strict'}, 'value of level must be one of'),
    ({'levels': {'x': 'strict'}}, "levels: x: 'strict' is not a TLS security level"),
    ({'levels': {'x': 'may'}, 'level': 'may'}, 'parameters are mutually exclusive: level|levels'),
    ({'concurrency': 2}, 'one of the following is required: destinations, levels'),
])
def test_bad_options_are_named(tmp_path, args, message):
    result = run_module('mailgw.postfix_tls.tls_probe', dict(args, config_dir=str(tmp_path)))
    assert result.get('failed') and message in result['msg'], result
