# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tls_policy_levels with probe: the destinations a planned change makes stricter, probed in the
same run at the level and with the policy entry each gets after the change.

The peers and the instance are probe_world's (conftest.py): every peer has a ``may`` entry in
the instance's policy table; the instance trusts the test CA, whose certificates are for
peer.probe.test (``match``) and other.probe.test (``mismatch``).
"""

import pytest

from ansible_env import run_module


def _levels(probe_world, check=False, **args):
    args.setdefault('connect_timeout', 5)
    result = run_module('mailgw.postfix_tls.tls_policy_levels',
                        dict(args, config_dir=probe_world.config_dir, probe=True), check=check)
    assert not result.get('failed'), result
    return result


def test_a_planned_match_is_probed_as_planned(probe_world):
    """A planned `secure match=NAME` is probed with NAME: the peer whose certificate is for
    other.probe.test passes when the plan names other.probe.test and defers when it names
    peer.probe.test. tls_probe at the level alone (the planned entry not yet written) probes
    with today's entry, which has no match, so the SMTP client's default match (the next
    hop, an IP address here) fails it: only the planned entry tells the two plans apart."""
    mismatch = probe_world.keys[('mismatch', 'may')]
    right = _levels(probe_world, destinations=[mismatch], policies={mismatch: 'secure match=other.probe.test'})
    wrong = _levels(probe_world, destinations=[mismatch], policies={mismatch: 'secure match=peer.probe.test'})
    for result, would_defer in ((right, False), (wrong, True)):
        (item,) = result['destinations']
        assert (item['level_before'], item['level'], item['probe']) == ('may', 'secure', True), item
        (probe,) = result['probes']
        assert probe['destination'] == mismatch and probe['level'] == 'secure'
        assert probe['level_source'] == 'policy table' and probe['policy_key'] == mismatch
        assert probe['would_defer'] is would_defer, probe
        assert result['deferring'] == ([mismatch] if would_defer else [])
    assert right['probes'][0]['policy'] == 'secure match=other.probe.test'
    assert right['probes'][0]['trust'] == 'verified'
    assert wrong['probes'][0]['reason'].startswith('Server certificate not verified'), wrong['probes'][0]
    alone = run_module('mailgw.postfix_tls.tls_probe', {
        'levels': {mismatch: 'secure'}, 'config_dir': probe_world.config_dir, 'connect_timeout': 5})
    assert alone['destinations'][0]['would_defer'] is True, alone


@pytest.mark.parametrize('servername', ['nexthop', 'hostname', 'sni.probe.test'])
def test_a_planned_servername_is_sent_as_the_smtp_client_sends_it(probe_world, servername):
    """The peer sees the SNI of the planned entry: for a [host]:port next hop both keywords
    name the host (Postfix's tls_client.c resolves them: hostname the server's name, nexthop
    the next hop without brackets and port), else the name given."""
    matching = probe_world.keys[('match', 'may')]
    address = matching[1:matching.index(']')]
    seen = len(probe_world.sessions('match', matching))
    result = _levels(probe_world, destinations=[matching], policies={matching: 'encrypt servername=%s' % servername})
    (probe,) = result['probes']
    assert probe['policy'] == 'encrypt servername=%s' % servername and probe['would_defer'] is False, probe
    new = probe_world.sessions('match', matching)[seen:]
    assert [s['sni'] for s in new if s['tls']] == [address if servername in ('nexthop', 'hostname') else servername], new


def test_only_the_destinations_made_stricter_are_probed_and_check_mode_is_the_same(probe_world):
    """A global level of encrypt makes the peers without an entry of their own stricter; the
    plaintext peer's planned `none` keeps it out of the probe; the others are probed at encrypt
    with their planned entries; check mode probes just the same."""
    plain = probe_world.keys[('plaintext', 'may')]
    untrusted = probe_world.keys[('untrusted', 'may')]
    matching = probe_world.keys[('match', 'may')]
    closed = '[127.%d.201.2]:%d' % (probe_world.oracle.net, probe_world.oracle.port)
    results = [_levels(probe_world, check=check, destinations=[plain, untrusted, matching, closed],
                       policies={plain: 'none', untrusted: 'encrypt', matching: 'verify match=peer.probe.test'},
                       level='encrypt')
               for check in (False, True)]
    for result in results:
        marked = [(i['destination'], i['probe']) for i in result['destinations']]
        assert marked == [(plain, False), (untrusted, True), (matching, True), (closed, True)], result
        got = [(p['destination'], p['level'], p['level_source'], p['would_defer'], p['reachable'])
               for p in result['probes']]
        assert got == [(untrusted, 'encrypt', 'policy table', False, True),
                       (matching, 'verify', 'policy table', False, True),
                       (closed, 'encrypt', 'smtp_tls_security_level', True, False)], result
        assert result['deferring'] == [closed]
        assert result['changed'] is False
        assert any(cmd[0].endswith('posttls-finger') for cmd in result['commands'])


def test_without_probe_nothing_is_probed(probe_world):
    untrusted = probe_world.keys[('untrusted', 'may')]
    result = run_module('mailgw.postfix_tls.tls_policy_levels', {
        'destinations': [untrusted], 'policies': {untrusted: 'verify'}, 'config_dir': probe_world.config_dir})
    assert not result.get('failed'), result
    assert result['destinations'][0]['probe'] is True
    assert 'probes' not in result and 'deferring' not in result
    assert not any(cmd[0].endswith('posttls-finger') for cmd in result['commands'])


@pytest.mark.parametrize('name', ['connect_timeout', 'command_timeout', 'concurrency'])
def test_bad_probe_options_are_named(tmp_path, name):
    result = run_module('mailgw.postfix_tls.tls_policy_levels', {
        'destinations': ['example.com'], 'probe': True, name: 0, 'config_dir': str(tmp_path)})
    assert result.get('failed') and '%s: 0 is not allowed, it must be at least 1' % name in result['msg'], result
