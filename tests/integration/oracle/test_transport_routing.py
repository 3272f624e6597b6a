# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""transport_maps decides where a domain's mail goes, and which SMTP client takes it.

The world (oracle/routing.py) routes ten domains every way trivial-rewrite
can - a transport entry to another peer, a parent-domain entry, a service whose
-o overrides set secure and no tables, the relayhost, discard:, relay_domains
through relay_transport, an smtps service speaking TLS from the first byte,
mydestination (local delivery), virtual_alias_domains (refused, transport_maps
not asked) and virtual_mailbox_domains through virtual_transport - and
delivers one real message to each. tls_probe and tls_policy_levels must name
the same next hop and transport, look up the same entry, apply the same level
and agree on whether the mail goes out; tls_policy must call the entries
Postfix never looks up dead.

On the host's Postfix (3.7) and in the bullseye (3.5), trixie (3.10) and sid
(3.11) images (oracle/in_image.py), each with its own postconf, postmap and
posttls-finger.
"""

import pytest

from .in_image import OTHER_RELEASES, ImageUnavailable, routing_in_image
from .instance import unavailable_reason
from .routing import INBOUND, LANE, SMTPS, STRICT

RELEASES = ['host'] + [pytest.param(suite, marks=[pytest.mark.container, pytest.mark.slow])
                       for suite in OTHER_RELEASES]


@pytest.fixture(scope='module', params=RELEASES)
def routed(request, tmp_path_factory):
    if request.param == 'host':
        reason = unavailable_reason()
        if reason:
            pytest.skip(reason)
        from .routing import routing_against_delivery
        data = routing_against_delivery()
    else:
        try:
            data = routing_in_image(request.param, tmp_path_factory.mktemp('routing-%s' % request.param))
        except ImageUnavailable as exc:
            pytest.fail(str(exc))
        assert tuple(data['version'][:2]) == OTHER_RELEASES[request.param]
    return data


def _explain(verdicts):
    return '\n\n'.join('%s %s (%s)\n    %s' % (domain, v['status'], v['reason'], '\n    '.join(v['evidence']))
                       for domain, v in sorted(verdicts.items()))


def test_postfix_delivers_as_routed(routed):
    relay, other, wrapped, verdicts = routed['relay'], routed['other'], routed['wrapped'], routed['verdicts']
    everything = _explain(verdicts)
    for domain, hop, entry in (('routed.test', other, [other, 'encrypt']), ('a.parent.test', other, [other, 'encrypt']),
                               ('plain.test', relay, [relay, 'encrypt']), ('inbound.test', other, None),
                               ('wrapped.test', wrapped, None), ('mailbox.test', other, [other, 'encrypt'])):
        assert verdicts[domain]['status'] == 'sent', everything
        assert verdicts[domain]['relay'].endswith(hop[1:]), everything
        assert verdicts[domain]['lookup'] == entry, everything
    assert verdicts['strict.test']['status'] == 'deferred', everything
    assert verdicts['strict.test']['lookup'] is None, everything        # no table: the service's level
    assert verdicts['gone.test']['status'] == 'sent' and 'discard' in ' '.join(verdicts['gone.test']['evidence']), \
        everything
    # local delivery: the oracle's local_transport (error:) bounces it; no SMTP client ran
    assert (verdicts['here.test']['status'], verdicts['here.test']['lookup']) == ('bounced', None), everything
    assert 'the oracle delivers nothing locally' in verdicts['here.test']['reason'], everything
    # a virtual alias domain without an alias for the address: refused, transport_maps not asked
    assert (verdicts['alias.test']['status'], verdicts['alias.test']['lookup']) == ('bounced', None), everything
    assert 'User unknown in virtual alias table' in verdicts['alias.test']['reason'], everything


def test_the_probe_follows_transport_maps_and_the_services_settings(routed):
    conf, relay, other, wrapped, verdicts = (routed[k] for k in ('conf', 'relay', 'other', 'wrapped', 'verdicts'))
    assert not routed['probe'].get('failed'), routed['probe']
    probes = dict((item['destination'], item) for item in routed['probe']['destinations'])
    for domain, hop, transport in (('routed.test', other, LANE), ('a.parent.test', other, LANE),
                                   ('plain.test', relay, LANE), ('strict.test', other, STRICT),
                                   ('inbound.test', other, INBOUND), ('wrapped.test', wrapped, SMTPS),
                                   ('mailbox.test', other, LANE)):
        probe = probes[domain]
        assert (probe['next_hop'], probe['transport']) == (hop, transport), probe
        assert probe['would_defer'] is (verdicts[domain]['status'] != 'sent'), (probe, _explain(verdicts))
        if verdicts[domain]['lookup']:
            assert [probe['policy_key'], probe['level']] == verdicts[domain]['lookup'], probe
    assert 'transport_maps (texthash:%s/transport: routed.test %s:%s)' % (conf, LANE, other) \
        in probes['routed.test']['route']
    assert probes['a.parent.test']['route'].startswith('transport_maps (texthash:%s/transport: .parent.test :%s)'
                                                       % (conf, other))
    assert probes['plain.test']['route'] == 'relayhost = %s' % relay
    strict = probes['strict.test']
    assert (strict['level'], strict['level_source'], strict['policy_key']) == (
        'secure', 'smtp_tls_security_level', None), strict
    assert 'master.cf %s/unix sets smtp_tls_policy_maps, smtp_tls_security_level' % STRICT in strict['route'], strict
    assert strict['reason'].startswith(verdicts['strict.test']['reason'].split(': ', 1)[-1]), (
        strict, verdicts['strict.test'])
    inbound = probes['inbound.test']
    assert (inbound['level'], inbound['policy_key'], inbound['trust']) == ('may', None, 'untrusted'), inbound
    # its tables are none (B's encrypt entry is not seen); its 'may' is main.cf's level already
    assert inbound['route'] == ('relay_transport = %s:%s (the domain is in relay_domains); master.cf %s/unix sets '
                                'smtp_tls_policy_maps' % (INBOUND, other, INBOUND)), inbound
    smtps = probes['wrapped.test']
    assert (smtps['level'], smtps['trust']) == ('encrypt', 'untrusted') and smtps['tls'], smtps
    assert 'master.cf %s/unix sets smtp_tls_policy_maps, smtp_tls_security_level, smtp_tls_wrappermode' % SMTPS \
        in smtps['route'], smtps
    gone = probes['gone.test']
    assert (gone['transport'], gone['would_defer'], gone['host']) == ('discard', False, None), gone
    assert gone['reason'] == ('not probed: its transport discard (master.cf command discard) delivers no mail '
                              'over SMTP'), gone
    assert probes['mailbox.test']['route'] == ('the domain is in virtual_mailbox_domains: virtual_transport = %s:%s'
                                               % (LANE, other)), probes['mailbox.test']
    here, alias = probes['here.test'], probes['alias.test']
    assert (here['transport'], here['next_hop'], here['would_defer'], here['host']) == ('error', None, False, None), here
    assert here['route'].startswith('the domain is in mydestination: local_transport = error:'), here
    assert here['reason'] == 'not probed: its transport error (master.cf command error) delivers no mail over SMTP'
    assert (alias['transport'], alias['next_hop'], alias['would_defer']) == ('error', None, False), alias
    assert alias['route'].startswith('the domain is in virtual_alias_domains'), alias


def test_the_levels_follow_transport_maps_and_the_services_settings(routed):
    """The preflight's view: a planned entry for a routed domain is never looked up; a
    service that sets its own level keeps it when main.cf's level is raised."""
    result, relay, other = routed['levels'], routed['relay'], routed['other']
    assert not result.get('failed'), result
    items = dict((item['destination'], item) for item in result['destinations'])
    routed_item = items['routed.test']
    assert (routed_item['next_hop'], routed_item['level_before'], routed_item['level'], routed_item['affected']) == (
        other, 'encrypt', 'encrypt', False), routed_item
    assert 'its mail goes to %s, transport_maps' % other in routed_item['not_probed'], routed_item
    strict = items['strict.test']
    assert (strict['level_before'], strict['level'], strict['affected']) == ('secure', 'secure', False), strict
    assert items['gone.test']['not_probed'].startswith('not probed: its transport discard'), items['gone.test']
    assert items['plain.test']['next_hop'] == relay and items['plain.test']['affected'] is False
    for domain in ('here.test', 'alias.test'):
        assert items[domain]['not_probed'].startswith('not probed: its transport error'), items[domain]
    mailbox = items['mailbox.test']
    assert (mailbox['next_hop'], mailbox['level_before'], mailbox['level'], mailbox['affected']) == (
        other, 'encrypt', 'encrypt', False), mailbox


def test_tls_policy_calls_the_entries_postfix_never_looks_up_dead(routed):
    """Each of these entries is in the table and none was looked up for the real message:
    routed and mailbox go to B, plain to the relayhost, here and alias to no SMTP client."""
    result = routed['table']
    assert not result.get('failed') and not result['changed'], result
    dead = dict((w.split("'")[1], w) for w in result['warnings'] if w.startswith('destination '))
    assert sorted(dead) == ['alias.test', 'here.test', 'mailbox.test', 'plain.test', 'routed.test'], result['warnings']
    assert 'the domain is in mydestination' in dead['here.test'] and 'Postfix never looks up this entry' in \
        dead['here.test'], dead['here.test']
    assert "the SMTP client's next hop is %s" % routed['other'] in dead['mailbox.test'], dead['mailbox.test']
    assert 'virtual_alias_domains' in dead['alias.test'], dead['alias.test']
