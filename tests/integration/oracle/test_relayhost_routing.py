# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""With a relayhost and no transport_maps, Postfix never looks up a domain's policy entry.

trivial-rewrite (resolve.c) makes the relayhost the next hop of every remote
delivery, and the SMTP client looks up the next hop's entry. A private Postfix
instance (the delivery oracle's) proves it on the wire: a message to a domain
whose entry would defer it (``secure``, the peer's certificate names another
host) is delivered through the relayhost at the relayhost's entry
(``encrypt``), and the SMTP client's log shows that entry looked up. The
tls_policy module warns about exactly such an entry, and not when
transport_maps routes the domain itself; tls_probe and tls_policy_levels
probe and look up the relayhost for such a domain.
"""

import os
import subprocess

import pytest

from ansible_env import run_module
from .instance import POSTCONF, POSTFIX, Oracle, Verdict, unavailable_reason
from .peer import PeerPool

LANE = 'rh1'


def _relayed_instance(domain, settings=(), implicit_tls=False):
    """An oracle instance whose only route is a relayhost (a peer of its own, SMTPS with
    IMPLICIT_TLS), the policy table 'DOMAIN secure' and 'RELAYHOST encrypt', SETTINGS applied;
    one real message to DOMAIN delivered. Returns (oracle, relayhost, verdict)."""
    oracle = Oracle()
    oracle.start()
    try:
        address = oracle._new_address()
        if implicit_tls:
            pool = PeerPool(oracle.cert, oracle.key, implicit_tls=True)
            oracle.extra_pools = [pool]
            pool.listen(address, oracle.port)
        else:
            oracle.peers.listen(address, oracle.port)
        relay = '[%s]:%d' % (address, oracle.port)
        path = oracle.table_path()
        oracle.write_table(path, ['%s secure' % domain, '%s encrypt' % relay])
        with open(os.path.join(oracle.conf, 'master.cf'), 'a') as handle:
            handle.write('%-12s unix  -  -  n  -  20  smtp -v\n  -o syslog_name=postfix/%s\n' % (LANE, LANE))
        subprocess.run([POSTCONF, '-c', oracle.conf, '-e', 'smtp_tls_policy_maps = hash:%s' % path,
                        'relayhost = %s' % relay, 'transport_maps =', 'default_transport = %s' % LANE]
                       + list(settings), check=True, capture_output=True)
        subprocess.run([POSTFIX, '-c', oracle.conf, 'reload'], check=True, capture_output=True)
        oracle._wait_for(lambda: os.path.exists(os.path.join(oracle.queue, 'private', LANE)), 20, 'the lane')
        oracle._wait_for(lambda: oracle._can_connect(oracle.submit_address, oracle.submit_port), 20, 'smtpd')
        verdict = Verdict(domain, 'secure', 'probe@%s' % domain, relay)
        oracle.submit([verdict])
        oracle.collect([verdict], LANE)
        return oracle, relay, verdict
    except BaseException:
        _stop(oracle)
        raise


def _stop(oracle):
    oracle.stop()
    for pool in getattr(oracle, 'extra_pools', []):
        pool.close()


@pytest.fixture(scope='module')
def relayed():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    oracle, relay, verdict = _relayed_instance('relayed.test')
    try:
        yield oracle, relay, verdict
    finally:
        _stop(oracle)


def test_mail_to_a_domain_goes_to_the_relayhost_at_the_relayhosts_level(relayed):
    _oracle, relay, verdict = relayed
    assert verdict.status == 'sent', '\n'.join(verdict.evidence)
    assert verdict.lookup == (relay, 'encrypt'), '\n'.join(verdict.evidence)
    assert not any('relayed.test = secure' in line for line in verdict.evidence), '\n'.join(verdict.evidence)


def test_tls_policy_warns_that_the_domain_entry_is_never_looked_up(relayed, tmp_path):
    oracle, relay, _verdict = relayed
    table = str(tmp_path / 'policy')
    args = {'entries': [{'destination': 'relayed.test', 'level': 'secure'},
                        {'destination': relay, 'level': 'encrypt'}],
            'path': table, 'map_type': 'hash', 'config_dir': oracle.conf}
    result = run_module('mailgw.postfix_tls.tls_policy', args, check=True)
    assert not result.get('failed'), result
    warnings = [w for w in result.get('warnings', []) if 'never this one' in w]
    assert len(warnings) == 1 and "destination 'relayed.test': relayhost = %s" % relay in warnings[0], result
    # transport_maps without an entry for the domain: still the relayhost; with 'relayed.test smtp:'
    # the next hop is the domain again (transport.c update_entry), so its entry is used: no warning
    transport = tmp_path / 'transport'
    subprocess.run([POSTCONF, '-c', oracle.conf, '-e', 'transport_maps = texthash:%s' % transport],
                   check=True, capture_output=True)
    try:
        for text, warned in (('', 1), ('relayed.test smtp:\n', 0)):
            transport.write_text(text)
            result = run_module('mailgw.postfix_tls.tls_policy', args, check=True)
            assert not result.get('failed'), result
            assert len([w for w in result.get('warnings', []) if 'never this one' in w]) == warned, (text, result)
    finally:
        subprocess.run([POSTCONF, '-c', oracle.conf, '-e', 'transport_maps ='], check=True, capture_output=True)


def test_tls_policy_warns_about_a_domain_that_transport_maps_routes_elsewhere(relayed, tmp_path):
    """transport_maps with an exact entry for the domain and a next hop: the SMTP client looks
    up that next hop's entry (the oracle's every round depends on it: each recipient domain is
    routed by a transport entry to a next hop spelled like the policy key under test)."""
    oracle, relay, _verdict = relayed
    transport = tmp_path / 'transport'
    transport.write_text('routed.test smtp:%s\nplain.test smtp:\n' % relay)
    subprocess.run([POSTCONF, '-c', oracle.conf, '-e', 'transport_maps = texthash:%s' % transport],
                   check=True, capture_output=True)
    try:
        result = run_module('mailgw.postfix_tls.tls_policy', {
            'entries': [{'destination': 'routed.test', 'level': 'secure'},
                        {'destination': 'plain.test', 'level': 'secure'}],
            'path': str(tmp_path / 'policy'), 'map_type': 'hash', 'config_dir': oracle.conf}, check=True)
        assert not result.get('failed'), result
        warnings = [w for w in result.get('warnings', []) if 'never this one' in w]
        assert len(warnings) == 1 and warnings[0].startswith(
            "destination 'routed.test': transport_maps (texthash:%s) routes this domain to smtp:%s" % (transport, relay)), \
            result
    finally:
        subprocess.run([POSTCONF, '-c', oracle.conf, '-e', 'transport_maps ='], check=True, capture_output=True)


def test_the_probe_and_the_levels_follow_the_mail_to_the_relayhost(relayed):
    """tls_probe and tls_policy_levels (the preflight) take the next hop Postfix takes: the
    relayhost, at its entry; the domain's own entry (secure, which would defer) plays no part,
    and a planned stricter entry for the domain changes nothing, so it is not probed."""
    oracle, relay, verdict = relayed
    result = run_module('mailgw.postfix_tls.tls_probe', {
        'destinations': ['relayed.test'], 'config_dir': oracle.conf, 'connect_timeout': 5})
    (probe,) = result['destinations']
    assert (probe['next_hop'], probe['policy_key'], probe['level']) == (relay, relay, 'encrypt'), probe
    assert probe['would_defer'] is (verdict.status != 'sent') is False, probe
    assert probe['host'].endswith(relay.split(']')[1]) and relay[1:].split(']')[0] in probe['host'], probe
    levels = run_module('mailgw.postfix_tls.tls_policy_levels', {
        'destinations': ['relayed.test'], 'policies': {'relayed.test': 'verify'}, 'config_dir': oracle.conf,
        'probe': True, 'connect_timeout': 5})
    assert not levels.get('failed'), levels
    # the relayhost is a destination of its own (no level changes there either)
    items = dict((i['destination'], i) for i in levels['destinations'])
    assert list(items) == ['relayed.test', relay], levels['destinations']
    item = items['relayed.test']
    assert (item['next_hop'], item['level_before'], item['level'], item['affected']) == (
        relay, 'encrypt', 'encrypt', False), item
    assert 'goes to the relayhost %s' % relay in item['not_probed'], item
    assert (items[relay]['level_before'], items[relay]['affected']) == ('encrypt', False), items[relay]
    assert levels['probes'] == [], levels


def test_an_smtps_relayhost_is_probed_in_wrapper_mode():
    """relayhost on an SMTPS port with smtp_tls_wrappermode = yes (TLS from the first byte):
    Postfix delivers through it; the probe speaks the same (posttls-finger -w) and says so,
    where a STARTTLS probe would find no SMTP greeting at all."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    oracle, relay, verdict = _relayed_instance('wrapped.test', ['smtp_tls_wrappermode = yes',
                                                                'smtp_tls_security_level = encrypt'],
                                               implicit_tls=True)
    try:
        assert verdict.status == 'sent', '\n'.join(verdict.evidence)
        result = run_module('mailgw.postfix_tls.tls_probe', {
            'destinations': ['wrapped.test'], 'config_dir': oracle.conf, 'connect_timeout': 5,
            'command_timeout': 5})
        (probe,) = result['destinations']
        assert (probe['next_hop'], probe['level'], probe['would_defer']) == (relay, 'encrypt', False), probe
        assert probe['trust'] == 'untrusted' and probe['tls'], probe
        assert any('-w' in cmd for cmd in result['commands']), result['commands']
        # below encrypt the SMTP client refuses wrapper mode: so does the probe, without a connection
        result = run_module('mailgw.postfix_tls.tls_probe', {
            'destinations': ['wrapped.test'], 'level': 'may', 'config_dir': oracle.conf})
        (probe,) = result['destinations']
        assert probe['would_defer'] is True and 'smtp_tls_wrappermode requires' in probe['reason'], probe
    finally:
        _stop(oracle)
