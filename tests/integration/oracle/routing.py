# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The routing world of test_transport_routing.py: transport_maps decides where a domain's mail goes, and which SMTP client takes it.

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
  TLS from the first byte, so the probe must too (``-w``);
- ``here.test`` in ``mydestination``: local delivery (the oracle's
  ``local_transport`` is ``error:``, so it bounces), no SMTP client, whatever
  its ``secure`` entry says;
- ``alias.test`` in ``virtual_alias_domains``, with no alias for the
  recipient: refused by trivial-rewrite ("User unknown in virtual alias
  table"), although transport_maps routes it to B (not asked for this class);
- ``mailbox.test`` in ``virtual_mailbox_domains``: ``virtual_transport =
  lane:[B]:PORT``, so to B at B's entry (``encrypt``), not at its own
  (``secure``, which would defer it).

smtpd accepts every recipient (``smtpd_reject_unlisted_recipient = no``), so
trivial-rewrite alone decides. (``local_recipient_maps`` keeps its default: set
empty, it drops ``proxy:unix:passwd.byname`` from ``proxy_read_maps``, and an
smtpd started before the change, still asking proxymap for that table, is
refused and throttles the service for a minute.)
"""

import os
import subprocess

from .instance import POSTCONF, POSTFIX, Oracle, Verdict
from .peer import PeerPool

LANE = 'tr1'
STRICT = 'strict'
INBOUND = 'inbound'
SMTPS = 'smtps'
DOMAINS = ('routed.test', 'a.parent.test', 'strict.test', 'plain.test', 'gone.test', 'inbound.test', 'wrapped.test',
           'here.test', 'alias.test', 'mailbox.test')
# the preflight's question: these destinations, this planned table and global level
LEVELS_ARGS = {'destinations': ['routed.test', 'strict.test', 'gone.test', 'plain.test', 'here.test', 'alias.test',
                                'mailbox.test'],
               'policies': {'routed.test': 'secure', 'plain.test': 'verify', 'here.test': 'secure',
                            'alias.test': 'secure', 'mailbox.test': 'secure'}, 'level': 'encrypt'}


def _relay(verdict):
    for line in reversed(verdict.evidence):
        if 'relay=' in line:
            return line.split('relay=', 1)[1].split(',', 1)[0]
    return ''


def routing_against_delivery():
    """Set the routing world up on a new oracle instance, deliver one real message per domain,
    and ask tls_probe and tls_policy_levels about the same domains. JSON-able: {version,
    conf, relay, other, wrapped (the peers' next hops), verdicts {domain: {status, reason,
    lookup, relay, evidence}}, probe (tls_probe's result), levels (tls_policy_levels')}.
    Run where the Postfix under test is (in_image.routing_in_image: inside a test image)."""
    from ansible_env import run_module
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
                                    'here.test secure', 'alias.test secure', 'mailbox.test secure',
                                    '%s encrypt' % relay, '%s encrypt' % other])
        with open(os.path.join(oracle.conf, 'transport'), 'w') as handle:
            handle.write('routed.test %s:%s\n.parent.test :%s\nstrict.test %s:%s\ngone.test discard:\n'
                         'wrapped.test %s:%s\nalias.test %s:%s\n'
                         % (LANE, other, other, STRICT, other, SMTPS, wrapped, LANE, other))
        with open(os.path.join(oracle.conf, 'master.cf'), 'a') as handle:
            # every service logs as the lane, so the oracle reads them all (collect)
            for service, options in ((LANE, ()),
                                     (STRICT, ('smtp_tls_security_level=secure', 'smtp_tls_policy_maps=')),
                                     (INBOUND, ('smtp_tls_security_level=may', 'smtp_tls_policy_maps=')),
                                     (SMTPS, ('smtp_tls_wrappermode=yes', 'smtp_tls_security_level=encrypt',
                                              'smtp_tls_policy_maps='))):
                handle.write('%-12s unix  -  -  n  -  20  smtp -v\n  -o syslog_name=postfix/%s\n' % (service, LANE))
                handle.write(''.join('  -o %s\n' % option for option in options))
        subprocess.run([POSTCONF, '-c', oracle.conf, '-e', 'smtp_tls_policy_maps = hash:%s' % policy,
                        'relayhost = %s' % relay, 'default_transport = %s' % LANE,
                        'relay_domains = inbound.test', 'relay_transport = %s:%s' % (INBOUND, other),
                        'mydestination = here.test', 'smtpd_reject_unlisted_recipient = no',
                        'virtual_alias_domains = alias.test', 'virtual_mailbox_domains = mailbox.test',
                        'virtual_transport = %s:%s' % (LANE, other)],
                       check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        subprocess.run([POSTFIX, '-c', oracle.conf, 'reload'], check=True, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
        for service in (LANE, STRICT, INBOUND, SMTPS):
            oracle._wait_for(lambda: os.path.exists(os.path.join(oracle.queue, 'private', service)), 20, service)
        oracle._wait_for(lambda: oracle._can_connect(oracle.submit_address, oracle.submit_port), 20, 'smtpd')
        verdicts = dict((domain, Verdict(domain, '', 'probe@%s' % domain, None)) for domain in DOMAINS)
        oracle.submit(list(verdicts.values()))
        oracle.collect(list(verdicts.values()), LANE)
        probe = run_module('mailgw.postfix_tls.tls_probe', {
            'destinations': list(DOMAINS), 'config_dir': oracle.conf, 'connect_timeout': 5, 'command_timeout': 5})
        levels = run_module('mailgw.postfix_tls.tls_policy_levels', dict(LEVELS_ARGS, config_dir=oracle.conf))
        # tls_policy's view of the same entries (check mode: the table as it is): which are dead
        table = run_module('mailgw.postfix_tls.tls_policy', {
            'path': policy, 'config_dir': oracle.conf,
            'policies': {'routed.test': 'secure', 'plain.test': 'secure', 'here.test': 'secure',
                         'alias.test': 'secure', 'mailbox.test': 'secure'}}, check=True)
        return dict(version=list(oracle.mail_version()), conf=oracle.conf, relay=relay, other=other,
                    wrapped=wrapped, probe=probe, levels=levels, table=table,
                    verdicts=dict((domain, dict(status=v.status, reason=v.reason, relay=_relay(v),
                                                lookup=list(v.lookup) if v.lookup else None,
                                                evidence=v.evidence))
                                  for domain, v in verdicts.items()))
    finally:
        oracle.stop()
        implicit.close()
