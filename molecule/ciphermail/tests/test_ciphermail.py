# Copyright: (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""CipherMail layout with both directions enforced: the table lives where
CipherMail keeps it, and the content-filter loop (10025 out, 10026 back in)
keeps working. Removing either exception breaks the loop on the wire;
restoring it lets the deferred mail through.

A sequence per gateway, in file order (see molecule/conftest.py).
"""

import pytest

TABLE = "hash:/etc/postfix/maps.d/hash-tls-policy.map"
FILTER_HOP = "[127.0.0.1]:10025"
REINJECTION = "127.0.0.1:10026/inet"

LOOP = [
    {"kind": "session", "name": "plaintext client gets 530 for MAIL FROM",
     "starttls": False, "rcpt": "user@tls.test",
     "expect": {"starttls_offered": True, "mail": 530, "text": "5.7.0 Must issue a STARTTLS command first"}},
    {"kind": "submit", "name": "mail passes 10025 and 10026 and reaches a TLS peer over TLS",
     "rcpt": "user@tls.test", "expect": "delivered", "peer": "tls-peer.test", "via": ["filter.test"], "tls": True},
    {"kind": "submit", "name": "mail for a peer without STARTTLS passes the filter and stays queued",
     "rcpt": "user@plain.test", "expect": "deferred",
     "reason": "TLS is required, but was not offered by host plain-peer.test[127.0.0.2]"},
    {"kind": "submit", "name": "the kept CipherMail entry (legacy.test may) still lets plaintext through",
     "rcpt": "user@legacy.test", "expect": "delivered", "peer": "plain-peer.test", "via": ["filter.test"],
     "tls": False},
]

FILTER_HOP_BLOCKED = [
    {"kind": "submit", "name": "filter-hop-blocked", "rcpt": "user@tls.test", "expect": "deferred",
     "reason": "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]"},
]

REINJECTION_BLOCKED = [
    {"kind": "flush", "name": "flush the queue"},
    {"kind": "await", "name": "the filter's re-injection gets 530, so the mail stays queued before the filter",
     "of": "filter-hop-blocked", "expect": "deferred", "reason": "530 5.7.0 Must issue a STARTTLS command first"},
]

LOOP_RESTORED = [
    {"kind": "flush", "name": "flush the queue"},
    {"kind": "await", "name": "the deferred mail passes 10025 and 10026 and reaches the TLS peer",
     "of": "filter-hop-blocked", "expect": "delivered", "peer": "tls-peer.test", "via": ["filter.test"],
     "tls": True},
]


def test_both_levels_are_encrypt(gateway):
    levels = gateway.postconf("smtpd_tls_security_level", "smtp_tls_security_level")
    assert levels == {"smtpd_tls_security_level": "encrypt", "smtp_tls_security_level": "encrypt"}


def test_table_is_referenced_through_maps_d_dir_as_ciphermail_does(gateway):
    assert gateway.postconf("smtp_tls_policy_maps") == {
        "smtp_tls_policy_maps": "hash:${maps_d_dir}/hash-tls-policy.map"}


def test_content_filter_is_kept(gateway):
    assert gateway.postconf("content_filter") == {"content_filter": "smtp:[127.0.0.1]:10025"}


def test_table_exempts_the_filter_hop(gateway):
    assert gateway.postmap_query(FILTER_HOP, TABLE) == "none"


def test_entry_from_before_the_role_is_kept(gateway):
    assert gateway.postmap_query("legacy.test", TABLE) == "may"


def test_reinjection_service_accepts_plaintext(gateway):
    out = gateway.run("postconf -P %s", REINJECTION + "/smtpd_tls_security_level")
    assert out.strip() == REINJECTION + "/smtpd_tls_security_level = none"


@pytest.fixture(scope="module")
def loop(gateway):
    return gateway.run_steps(LOOP)


@pytest.mark.parametrize("step", [s["name"] for s in LOOP])
def test_enforced_tls_through_the_content_filter_loop(loop, step):
    loop.check(step)


def test_of_that_mail_only_the_one_for_the_peer_without_starttls_is_queued(gateway, loop):
    queued = gateway.queued(loop.recipients())
    assert [(name, address.rpartition("@")[2]) for name, address, _reason in queued] == [
        ("deferred", "plain.test")], queued
    assert "TLS is required, but was not offered" in queued[0][2], queued


def test_removing_the_filter_hop_exception(gateway):
    removed = gateway.module("mailgw.postfix_tls.tls_policy", destination=FILTER_HOP, state="absent")
    assert removed["changed"], removed
    assert gateway.postmap_query(FILTER_HOP, TABLE) is None


def test_without_the_filter_hop_exception_mail_cannot_reach_the_filter(gateway):
    gateway.run_steps(FILTER_HOP_BLOCKED).check("filter-hop-blocked")


def test_restoring_the_filter_hop_exception(gateway):
    restored = gateway.module("mailgw.postfix_tls.tls_policy", destination=FILTER_HOP, level="none")
    assert restored["changed"], restored
    assert gateway.postmap_query(FILTER_HOP, TABLE) == "none"


def test_removing_the_reinjection_override(gateway):
    removed = gateway.module("mailgw.postfix_tls.postconf", service=REINJECTION,
                             name="smtpd_tls_security_level", state="absent")
    assert removed["changed"], removed
    gateway.run("postfix reload")


@pytest.fixture(scope="module")
def reinjection_blocked(gateway):
    return gateway.run_steps(REINJECTION_BLOCKED)


@pytest.mark.parametrize("step", [s["name"] for s in REINJECTION_BLOCKED])
def test_without_the_override_the_filter_cannot_reinject(reinjection_blocked, step):
    reinjection_blocked.check(step)


def test_restoring_the_reinjection_override(gateway):
    restored = gateway.module("mailgw.postfix_tls.postconf", service=REINJECTION,
                              name="smtpd_tls_security_level", value="none")
    assert restored["changed"], restored
    gateway.run("postfix reload")


@pytest.fixture(scope="module")
def loop_restored(gateway):
    return gateway.run_steps(LOOP_RESTORED)


@pytest.mark.parametrize("step", [s["name"] for s in LOOP_RESTORED])
def test_with_both_exceptions_back_the_deferred_mail_completes_the_loop(loop_restored, step):
    loop_restored.check(step)
