# Copyright: (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Opportunistic TLS on the wire: STARTTLS is offered but required in neither
direction (the role's defaults, starting from Postfix's built-in defaults)."""

import pytest

OPPORTUNISTIC = [
    {"kind": "session", "name": "plaintext client is offered STARTTLS and its MAIL FROM is accepted",
     "starttls": False, "rcpt": "user@plain.test",
     "expect": {"starttls_offered": True, "mail": 250, "data": 250}},
    {"kind": "submit", "name": "plaintext client, mail to a peer without STARTTLS is delivered in plaintext",
     "starttls": False, "rcpt": "user@plain.test", "expect": "delivered", "peer": "plain-peer.test", "tls": False},
    {"kind": "submit", "name": "STARTTLS client, mail to a peer offering STARTTLS is delivered over TLS",
     "starttls": True, "rcpt": "user@tls.test", "expect": "delivered", "peer": "tls-peer.test", "tls": True},
    {"kind": "submit", "name": "the internal hop [127.0.0.1]:10025 (no STARTTLS) gets mail in plaintext",
     "rcpt": "user@internal.test", "expect": "delivered", "peer": "internal-sink.test", "tls": False},
]


def test_both_levels_are_may(gateway):
    levels = gateway.postconf("smtpd_tls_security_level", "smtp_tls_security_level")
    assert levels == {"smtpd_tls_security_level": "may", "smtp_tls_security_level": "may"}


@pytest.fixture(scope="module")
def opportunistic(gateway):
    return gateway.run_steps(OPPORTUNISTIC)


@pytest.mark.parametrize("step", [s["name"] for s in OPPORTUNISTIC])
def test_opportunistic_tls_in_both_directions(opportunistic, step):
    opportunistic.check(step)


def test_none_of_that_mail_stays_queued(gateway, opportunistic):
    queued = gateway.queued(opportunistic.recipients())
    assert queued == [], queued
