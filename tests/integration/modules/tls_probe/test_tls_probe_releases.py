# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tls_probe against real delivery on every other tested Postfix release.

test_tls_probe_delivery.py holds the probe against the host's Postfix (3.7). Here the
same world (the oracle instance, four peers, one real message per peer and level:
probe_peers.start_probe_world) runs inside a throwaway container of the bullseye (3.5),
trixie (3.10) and sid (3.11) images, with that release's posttls-finger, and the module
run by that image's python3 (oracle/in_image.py). The property: the probe says a
destination would defer exactly when Postfix deferred the real message, and its reason
starts with that release's status text (3.5 words an untrusted chain "Server
certificate not trusted", 3.6 and later "not verified"); and for the MX cases, that the
probe follows the SMTP client to the next MX host after a TLS failure.
"""

import pytest

from oracle.in_image import OTHER_RELEASES, ImageUnavailable, probe_in_image
from probe_peers import DANE_DELIVERY, MX_DELIVERY, NO_DNS_DELIVERY

pytestmark = [pytest.mark.container, pytest.mark.slow]


@pytest.fixture(scope='module', params=list(OTHER_RELEASES))
def release_probes(request, tmp_path_factory):
    try:
        return request.param, probe_in_image(request.param, tmp_path_factory.mktemp('probe-%s' % request.param))
    except ImageUnavailable as exc:
        pytest.fail(str(exc))


def test_probe_agrees_with_real_delivery(release_probes):
    release, data = release_probes
    assert not data['result']['failed'], data['result']
    assert len(data['cases']) == 16, sorted(data['cases'])
    problems = []
    for case, item in sorted(data['cases'].items()):
        probe = item['probe'] or {}
        if item['status'] not in ('sent', 'deferred'):
            problems.append('%s: no delivery status (%s)' % (case, item['status']))
        elif probe.get('would_defer') != (item['status'] == 'deferred') or (
                item['status'] == 'deferred' and not (probe.get('reason') or '').startswith(item['reason'])):
            problems.append('%s: postfix %s (%s), probe would_defer %s (%s)\n  %s' % (
                case, item['status'], item['reason'], probe.get('would_defer'), probe.get('reason'),
                '\n  '.join(item['evidence'])))
    assert not problems, 'Postfix %s:\n%s' % ('.'.join(map(str, data['version'])), '\n'.join(problems))
    assert tuple(data['version'][:2]) == OTHER_RELEASES[release]


def test_probe_follows_the_smtp_client_to_the_next_mx_host(release_probes):
    """The MX cases (probe_peers.MX_CASES): after a TLS failure the release's SMTP client goes on
    to the next MX host, and so does the probe; at secure that host is held to the domain's
    names, and servername=nexthop sends the domain."""
    _release, data = release_probes
    _assert_agrees(data, 'mx_cases', MX_DELIVERY)
    sni = data['mx_cases']['backup-sni-nexthop']['sni']
    assert all(names and set(names) == {'backup-sni-nexthop.mx.probe.test'} for names in sni.values()), sni


def test_probe_at_dane_does_what_the_smtp_client_does(release_probes):
    """The DANE cases (probe_peers.DANE_CASES): TLSA records matching, naming another key,
    unusable or missing, an insecure MX RRset; the probe agrees with the release's SMTP client."""
    _release, data = release_probes
    _assert_agrees(data, 'dane_cases', DANE_DELIVERY)


def test_without_dns_lookups_the_domain_is_a_host(release_probes):
    """The no-DNS cases (probe_peers.NO_DNS_CASES): with smtp_dns_support_level = disabled the
    release's SMTP client delivers to the domain's own address, not its MX host; so does the probe."""
    _release, data = release_probes
    _assert_agrees(data, 'no_dns_cases', NO_DNS_DELIVERY)


def _assert_agrees(data, group, expected_status):
    """Every case of DATA[GROUP] was delivered as EXPECTED_STATUS says (so the world is as
    built), and the probe says would_defer exactly then, a deferral with Postfix's words."""
    problems = []
    assert sorted(data[group]) == sorted(expected_status)
    for case, item in sorted(data[group].items()):
        probe = item['probe'] or {}
        expected = expected_status[case]
        if item['status'] != expected or probe.get('would_defer') != (expected == 'deferred') or (
                expected == 'deferred' and not (probe.get('reason') or '').startswith(item['reason'])):
            problems.append('%s: postfix %s (%s), expected %s; probe would_defer %s (%s)\n  %s' % (
                case, item['status'], item['reason'], expected, probe.get('would_defer'), probe.get('reason'),
                '\n  '.join(item['evidence'])))
    assert not problems, 'Postfix %s:\n%s' % ('.'.join(map(str, data['version'])), '\n'.join(problems))
