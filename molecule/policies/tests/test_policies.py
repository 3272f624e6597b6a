# Copyright: (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-destination policies on the wire: certificates are checked per entry.

Postfix defers both certificate failures with "Server certificate not
verified"; its log tells them apart (hostname mismatch / untrusted issuer),
and the probe checks that line too. lax.test is "encrypt" in the group list
(delivered despite the untrusted CA); the trixie gateway overrides it with
"verify" in its host list (deferred): the expectation is the host variable
mailgw_expect_lax of the scenario's inventory.
"""

import pytest

UNTRUSTED = {"expect": "deferred", "reason": "Server certificate not verified",
             "log": "untrusted issuer /CN=mailgw rogue CA"}

STEPS = [
    {"kind": "submit", "name": "verify: certificate from the trusted CA naming the next hop is delivered",
     "rcpt": "user@good.test", "expect": "delivered", "peer": "good-peer.test", "tls": True},
    {"kind": "submit", "name": "verify: trusted certificate with the wrong name is deferred",
     "rcpt": "user@wrongname.test", "expect": "deferred", "reason": "Server certificate not verified",
     "log": "num=62:hostname mismatch"},
    {"kind": "submit", "name": "verify match=mx.partner.test: the same peer is delivered, SNI from servername",
     "rcpt": "user@alias.test", "expect": "delivered", "peer": "partner-peer.test", "tls": True,
     "sni": "mx.partner.test"},
    dict(UNTRUSTED, kind="submit", name="verify: certificate from an untrusted CA is deferred",
         rcpt="user@untrusted.test"),
    {"kind": "submit", "name": "secure on the bracketed key [good.test]:25 is delivered",
     "rcpt": "user@bracket.test", "expect": "delivered", "peer": "good-peer.test", "tls": True},
    dict(UNTRUSTED, kind="submit",
         name="lax.test: encrypt (group) delivers despite the untrusted CA, verify (host override) defers",
         rcpt="user@lax.test", peer="rogue-peer.test", tls=True),
]


def expected_levels(variables):
    """{table key: level} from the group list with the host list winning (keys are case-folded)."""
    levels = {}
    for entry in variables.get("enforce_tls_policies", []) + variables.get("enforce_tls_host_policies", []):
        levels[entry["destination"].lower()] = entry["level"]
    return levels


def test_every_policy_entry_is_in_the_table(gateway):
    table = gateway.run("postconf -x -h smtp_tls_policy_maps").strip()
    expected = expected_levels(gateway.vars)
    # postmap -q - reads the keys from stdin and prints "key<TAB>value" for the ones it finds
    out = gateway.run("printf '%%s\\n'" + " %s" * len(expected) + " | postmap -q - %s", *expected, table)
    found = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    levels = {key: value.split()[0] for key, value in found.items()}
    assert levels == expected, "table %s: %s" % (table, found)
    assert sorted(found["alias.test"].split()[1:]) == ["match=mx.partner.test", "servername=mx.partner.test"], found


def for_this_gateway(steps, postfix):
    """STEPS with the words this Postfix uses.

    Postfix before 3.6 (3.5 on bullseye) defers a certificate from an unknown
    CA with "Server certificate not trusted" (3.6 and later: "not verified",
    smtp_proto.c), and matches names itself without logging a verification
    error at smtp_tls_loglevel 1: a wrong name shows as a "Trusted" (chain
    good, name not matched) connection followed by "not verified".
    """
    out = []
    for step in steps:
        step = dict(step)
        if postfix < (3, 6) and "untrusted issuer" in step.get("log", ""):
            step["reason"] = "Server certificate not trusted"
        if postfix < (3, 6) and step.get("log") == "num=62:hostname mismatch":
            step["log"] = "Trusted TLS connection established to"
        out.append(step)
    return out


@pytest.fixture(scope="module")
def policies(gateway):
    postfix = tuple(int(n) for n in gateway.postconf("mail_version")["mail_version"].split(".")[:2])
    steps = for_this_gateway(STEPS, postfix)
    steps[-1]["expect"] = gateway.vars["mailgw_expect_lax"]
    return gateway.run_steps(steps)


@pytest.mark.parametrize("step", [s["name"] for s in STEPS])
def test_per_destination_certificate_checks(policies, step):
    policies.check(step)
