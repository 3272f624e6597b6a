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
"""

import os
import shutil
import subprocess

POSTTLS_FINGER = shutil.which('posttls-finger', path='/usr/sbin:/usr/bin:/sbin:/bin')
KINDS = ('plaintext', 'untrusted', 'match', 'mismatch')
LEVELS = ('encrypt', 'verify', 'secure')
MATCH_NAME = 'peer.probe.test'


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
    cert, key = os.path.join(d, 'untrusted.crt'), os.path.join(d, 'untrusted.key')
    _openssl('req', '-x509', *curve, '-keyout', key, '-out', cert, '-days', '30', '-subj', '/CN=%s' % MATCH_NAME,
             '-addext', 'subjectAltName=DNS:%s' % MATCH_NAME)
    pairs['untrusted'] = (cert, key)
    return ca_cert, pairs


class ProbeWorld:
    """The oracle instance, the peers and the verdicts of real delivery."""

    def __init__(self, oracle, ca_cert, keys, verdicts, pools=None):
        self.oracle = oracle
        self.ca_cert = ca_cert
        self.keys = keys                # {(kind, level): policy key}
        self.verdicts = verdicts        # {(kind, level): Verdict}
        self.pools = pools or {}        # {kind: PeerPool}: the sessions each peer saw

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
        pool_of = dict((kind, PeerPool(*pairs[kind])) for kind in KINDS if kind != 'plaintext')
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
        verdicts = oracle.ask(entries)
        cases = [(k, lv) for k in KINDS for lv in LEVELS + ('may',)]
        return ProbeWorld(oracle, ca_cert, keys, dict(zip(cases, verdicts)), pool_of), stop
    except BaseException:
        stop()
        raise


def probe_against_delivery(cert_dir):
    """The tls_probe module's verdict on every (peer, level) of a new probe world, next to
    what Postfix did with the real message: {'version': [...], 'result': {...},
    'cases': {'KIND-LEVEL': {'status', 'reason', 'evidence', 'probe'}}}. Run where the
    Postfix under test is (in_image.probe_in_image: inside a test image)."""
    from ansible_env import run_module
    world, stop = start_probe_world(cert_dir)
    try:
        cases = sorted(world.keys)
        result = run_module('mailgw.postfix_tls.tls_probe', {
            'destinations': [world.keys[case] for case in cases], 'config_dir': world.config_dir,
            'connect_timeout': 5, 'command_timeout': 10, 'concurrency': 4})
        probes = result.get('destinations') or [None] * len(cases)
        out = {}
        for case, probe in zip(cases, probes):
            verdict = world.verdicts[case]
            out['%s-%s' % case] = dict(status=verdict.status, reason=verdict.reason,
                                       evidence=verdict.evidence, probe=probe)
        return dict(version=list(world.oracle.mail_version()), cases=out,
                    result=dict(failed=bool(result.get('failed')), msg=result.get('msg')))
    finally:
        stop()
