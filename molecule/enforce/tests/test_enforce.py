# Copyright: (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Enforced TLS on the wire, both directions, and proof that the policy entry
"[127.0.0.1]:10025 none" is what keeps the internal hop working.

A sequence per gateway, in file order: the enforced state, the wire checks,
the exception removed with the tls_policy module (mail to the internal hop
then stays queued), restored (the queued mail goes out after a flush).
"""

import pytest

INTERNAL_HOP = "[127.0.0.1]:10025"

ENFORCED = [
    {"kind": "session", "name": "plaintext client gets 530 for MAIL FROM",
     "starttls": False, "rcpt": "user@tls.test",
     "expect": {"starttls_offered": True, "mail": 530, "text": "5.7.0 Must issue a STARTTLS command first"}},
    {"kind": "session",
     "name": "the same client after STARTTLS (gateway certificate from the test CA) is accepted",
     "starttls": True, "rcpt": "user@tls.test", "expect": {"starttls": 220, "mail": 250, "data": 250}},
    {"kind": "submit", "name": "mail to a peer without STARTTLS stays queued",
     "rcpt": "user@plain.test", "expect": "deferred",
     "reason": "TLS is required, but was not offered by host plain-peer.test[127.0.0.2]"},
    {"kind": "submit", "name": "mail to a peer offering STARTTLS is delivered over TLS",
     "rcpt": "user@tls.test", "expect": "delivered", "peer": "tls-peer.test", "tls": True},
    {"kind": "submit", "name": "mail to the internal hop [127.0.0.1]:10025 is delivered in plaintext",
     "rcpt": "user@internal.test", "expect": "delivered", "peer": "internal-sink.test", "tls": False},
]

WITHOUT_EXCEPTION = [
    {"kind": "submit", "name": "internal-without-exception", "rcpt": "user@internal.test",
     "expect": "deferred", "reason": "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]"},
]

RESTORED = [
    {"kind": "flush", "name": "flush the queue"},
    {"kind": "await", "name": "the mail deferred without the exception is delivered in plaintext",
     "of": "internal-without-exception", "expect": "delivered", "peer": "internal-sink.test", "tls": False},
]


@pytest.fixture(scope="module")
def table(gateway):
    return gateway.postconf("smtp_tls_policy_maps")["smtp_tls_policy_maps"]


def test_both_levels_are_encrypt(gateway):
    levels = gateway.postconf("smtpd_tls_security_level", "smtp_tls_security_level")
    assert levels == {"smtpd_tls_security_level": "encrypt", "smtp_tls_security_level": "encrypt"}


def test_policy_table_exempts_the_internal_hop(gateway, table):
    # no table before the role: its type is the host's default_database_type
    # (hash up to trixie, cdb on Debian's Postfix 3.11, which deprecates hash)
    default_type = gateway.postconf("default_database_type")["default_database_type"]
    assert table == "%s:/etc/postfix/tls_policy" % default_type
    assert gateway.postmap_query(INTERNAL_HOP, table) == "none"


@pytest.fixture(scope="module")
def enforced(gateway):
    return gateway.run_steps(ENFORCED)


@pytest.mark.parametrize("step", [s["name"] for s in ENFORCED])
def test_enforced_tls_with_the_internal_hop_exception(enforced, step):
    enforced.check(step)


def test_of_that_mail_only_the_one_for_the_peer_without_starttls_is_queued(gateway, enforced):
    queued = gateway.queued(enforced.recipients())
    assert [(name, address.rpartition("@")[2]) for name, address, _reason in queued] == [
        ("deferred", "plain.test")], queued
    assert "TLS is required, but was not offered" in queued[0][2], queued


def test_removing_the_exception_with_tls_policy(gateway, table):
    removed = gateway.module("mailgw.postfix_tls.tls_policy", destination=INTERNAL_HOP, state="absent")
    assert removed["changed"] and removed["postmap_ran"], removed
    assert gateway.postmap_query(INTERNAL_HOP, table) is None


def test_without_the_exception_the_internal_hop_gets_no_mail(gateway):
    gateway.run_steps(WITHOUT_EXCEPTION).check("internal-without-exception")


def test_restoring_the_exception_with_tls_policy(gateway, table):
    restored = gateway.module("mailgw.postfix_tls.tls_policy", destination=INTERNAL_HOP, level="none")
    assert restored["changed"], restored
    assert gateway.postmap_query(INTERNAL_HOP, table) == "none"


@pytest.fixture(scope="module")
def restored(gateway):
    return gateway.run_steps(RESTORED)


@pytest.mark.parametrize("step", [s["name"] for s in RESTORED])
def test_with_the_exception_restored_the_deferred_mail_goes_out(restored, step):
    restored.check(step)
