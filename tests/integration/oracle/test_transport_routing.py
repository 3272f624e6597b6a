# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""transport_maps decides where a domain's mail goes, and which SMTP client takes it.

trivial-rewrite (resolve.c, transport.c) routes each recipient domain: the
relayhost (or the domain) unless a transport_maps entry says otherwise, and
the SMTP client then looks up the TLS policy of that next hop, with the
settings of the master.cf service the transport names (its ``-o``
overrides). A private Postfix instance (the delivery oracle's) delivers one
real message per case; tls_probe and tls_policy_levels must name the same
next hop, look up the same entry, apply the same level and agree on whether
the mail goes out:

- ``routed.test  lane:[B]:PORT``: to peer B at B's entry (``encrypt``), not at
  the domain's own entry (``secure``, which would defer it);
- ``.parent.test  :[B]:PORT``: a subdomain keeps the transport, goes to B;
- ``strict.test  strict:[B]:PORT``: the ``strict`` service sets
  ``smtp_tls_security_level = secure`` and an empty ``smtp_tls_policy_maps``:
  deferred (B's certificate is not verified), whatever main.cf says;
- ``plain.test``: no transport entry, so the relayhost A, at A's entry;
- ``gone.test  discard:``: no SMTP client takes it (not probed);
- ``inbound.test`` in ``relay_domains``: ``relay_transport = inbound:[B]:PORT``,
  whose service sets ``may`` and no tables: to B at ``may``, not to the
  relayhost at its entry;
- ``wrapped.test  smtps:[C]:PORT``: the ``smtps`` service sets
  ``smtp_tls_wrappermode = yes`` and ``encrypt`` (a port-465 relay); C speaks
  TLS from the first byte, so the probe must too (``-w``).
"""

import os
import subprocess

import pytest

from ansible_env import run_module
from .instance import POSTCONF, POSTFIX, Oracle, Verdict, unavailable_reason
from .peer import PeerPool

LANE = 'tr1'
STRICT = 'strict'
INBOUND = 'inbound'
SMTPS = 'smtps'
DOMAINS = ('routed.test', 'a.parent.test', 'strict.test', 'plain.test', 'gone.test', 'inbound.test', 'wrapped.test')


@pytest.fixture(scope='module')
def routed():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    oracle = Oracle()
    oracle.start()
    implicit = PeerPool(oracle.cert, oracle.key, implicit_tls=True)
    try:
        a, b, c = oracle._new_address(), oracle._new_address(), oracle._new_address()
        oracle.peers.listen(a, oracle.port)
        oracle.peers.listen(b, oracle.port)
        implicit.listen(c, oracle.port)
        relay, other = '[%s]:%d' % (a, oracle.port), '[%s]:%d' % (b, oracle.port)
        wrapped = '[%s]:%d' % (c, oracle.port)
        policy = oracle.table_path()
        oracle.write_table(policy, ['routed.test secure', 'parent.test secure', 'plain.test secure',
                                    '%s encrypt' % relay, '%s encrypt' % other])
        with open(os.path.join(oracle.conf, 'transport'), 'w') as handle:
            handle.write('routed.test %s:%s\n.parent.test :%s\nstrict.test %s:%s\ngone.test discard:\n'
                         'wrapped.test %s:%s\n' % (LANE, other, other, STRICT, other, SMTPS, wrapped))
        with open(os.path.join(oracle.conf, 'master.cf'), 'a') as handle:
            # both services log as the lane, so the oracle reads both (collect)
            handle.write('%-12s unix  -  -  n  -  20  smtp -v\n  -o syslog_name=postfix/%s\n' % (LANE, LANE))
            handle.write('%-12s unix  -  -  n  -  20  smtp -v\n  -o syslog_name=postfix/%s\n'
                         '  -o smtp_tls_security_level=secure\n  -o smtp_tls_policy_maps=\n' % (STRICT, LANE))
            handle.write('%-12s unix  -  -  n  -  20  smtp -v\n  -o syslog_name=postfix/%s\n'
                         '  -o smtp_tls_security_level=may\n  -o smtp_tls_policy_maps=\n' % (INBOUND, LANE))
            handle.write('%-12s unix  -  -  n  -  20  smtp -v\n  -o syslog_name=postfix/%s\n'
                         '  -o smtp_tls_wrappermode=yes\n  -o smtp_tls_security_level=encrypt\n'
                         '  -o smtp_tls_policy_maps=\n' % (SMTPS, LANE))
        subprocess.run([POSTCONF, '-c', oracle.conf, '-e', 'smtp_tls_policy_maps = hash:%s' % policy,
                        'relayhost = %s' % relay, 'default_transport = %s' % LANE,
                        'relay_domains = inbound.test', 'relay_transport = %s:%s' % (INBOUND, other)],
                       check=True, capture_output=True)
        subprocess.run([POSTFIX, '-c', oracle.conf, 'reload'], check=True, capture_output=True)
        for service in (LANE, STRICT, INBOUND, SMTPS):
            oracle._wait_for(lambda: os.path.exists(os.path.join(oracle.queue, 'private', service)), 20, service)
        oracle._wait_for(lambda: oracle._can_connect(oracle.submit_address, oracle.submit_port), 20, 'smtpd')
        verdicts = dict((domain, Verdict(domain, '', 'probe@%s' % domain, None)) for domain in DOMAINS)
        oracle.submit(list(verdicts.values()))
        oracle.collect(list(verdicts.values()), LANE)
        yield oracle, relay, other, wrapped, verdicts
    finally:
        oracle.stop()
        implicit.close()


def _relay(verdict):
    for line in reversed(verdict.evidence):
        if 'relay=' in line:
            return line.split('relay=', 1)[1].split(',', 1)[0]
    return ''


def _probe(oracle, destinations, **args):
    result = run_module('mailgw.postfix_tls.tls_probe', dict(
        destinations=destinations, config_dir=oracle.conf, connect_timeout=5, command_timeout=5, **args))
    assert not result.get('failed'), result
    return dict((item['destination'], item) for item in result['destinations'])


def test_postfix_delivers_as_routed(routed):
    _oracle, relay, other, wrapped, verdicts = routed
    everything = '\n\n'.join(v.explain() for v in verdicts.values())
    for domain, hop, entry in (('routed.test', other, (other, 'encrypt')), ('a.parent.test', other, (other, 'encrypt')),
                               ('plain.test', relay, (relay, 'encrypt')), ('inbound.test', other, None),
                               ('wrapped.test', wrapped, None)):
        assert verdicts[domain].status == 'sent', everything
        assert _relay(verdicts[domain]).endswith(hop[1:]), everything
        assert verdicts[domain].lookup == entry, everything
    assert verdicts['strict.test'].status == 'deferred', everything
    assert verdicts['strict.test'].lookup is None, everything        # no table: the service's level
    assert verdicts['gone.test'].status == 'sent' and 'discard' in ' '.join(verdicts['gone.test'].evidence), everything


def test_the_probe_follows_transport_maps_and_the_services_settings(routed):
    oracle, relay, other, wrapped, verdicts = routed
    probes = _probe(oracle, list(DOMAINS))
    for domain, hop, transport in (('routed.test', other, LANE), ('a.parent.test', other, LANE),
                                   ('plain.test', relay, LANE), ('strict.test', other, STRICT),
                                   ('inbound.test', other, INBOUND), ('wrapped.test', wrapped, SMTPS)):
        probe = probes[domain]
        assert (probe['next_hop'], probe['transport']) == (hop, transport), probe
        assert probe['would_defer'] is (verdicts[domain].status != 'sent'), (probe, verdicts[domain].explain())
        if verdicts[domain].lookup:
            assert (probe['policy_key'], probe['level']) == verdicts[domain].lookup, probe
    assert 'transport_maps (texthash:%s/transport: routed.test %s:%s)' % (oracle.conf, LANE, other) \
        in probes['routed.test']['route']
    assert probes['a.parent.test']['route'].startswith('transport_maps (texthash:%s/transport: .parent.test :%s)'
                                                       % (oracle.conf, other))
    assert probes['plain.test']['route'] == 'relayhost = %s' % relay
    strict = probes['strict.test']
    assert (strict['level'], strict['level_source'], strict['policy_key']) == (
        'secure', 'smtp_tls_security_level', None), strict
    assert 'master.cf %s/unix sets smtp_tls_policy_maps, smtp_tls_security_level' % STRICT in strict['route'], strict
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


def test_the_levels_follow_transport_maps_and_the_services_settings(routed):
    """The preflight's view: a planned entry for a routed domain is never looked up; a
    service that sets its own level keeps it when main.cf's level is raised."""
    oracle, _relay_, other, _wrapped, _verdicts = routed
    result = run_module('mailgw.postfix_tls.tls_policy_levels', {
        'destinations': ['routed.test', 'strict.test', 'gone.test', 'plain.test'],
        'policies': {'routed.test': 'secure', 'plain.test': 'verify'}, 'level': 'encrypt',
        'config_dir': oracle.conf})
    assert not result.get('failed'), result
    items = dict((item['destination'], item) for item in result['destinations'])
    routed_item = items['routed.test']
    assert (routed_item['next_hop'], routed_item['level_before'], routed_item['level'], routed_item['affected']) == (
        other, 'encrypt', 'encrypt', False), routed_item
    assert 'its mail goes to %s, transport_maps' % other in routed_item['not_probed'], routed_item
    strict = items['strict.test']
    assert (strict['level_before'], strict['level'], strict['affected']) == ('secure', 'secure', False), strict
    assert items['gone.test']['not_probed'].startswith('not probed: its transport discard'), items['gone.test']
    assert items['plain.test']['next_hop'] == _relay_ and items['plain.test']['affected'] is False
