# Copyright: (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""REQUIRETLS (RFC 8689) on Postfix 3.11 through the CipherMail content-filter
loop, after the role enforced TLS both ways (ciphermail layout).

What is proven on the wire:

* A message submitted over STARTTLS with ``MAIL FROM:<...> REQUIRETLS`` goes
  out to the filter on 10025 (``tls=none/requiretls:none``: the default
  smtp_requiretls_policy treats a numeric next hop as internal, and the role's
  ``[127.0.0.1]:10025 none`` entry stays usable), carries the
  ``Require-TLS-ESMTP: yes`` header Postfix adds (requiretls_esmtp_header), comes
  back in on 10026 (plaintext, the role's ``-o smtpd_tls_security_level=none``)
  and is delivered to the internal mail store (``mailstore.gateway.test``, below
  ``$mydomain``: opportunistic) with the REQUIRETLS request still on it
  (``tls=encrypt/requiretls:none``, where the same mail without REQUIRETLS logs
  ``tls=encrypt``).
* At an external peer (``tls-peer.test``: STARTTLS, no REQUIRETLS, no DANE or
  MTA-STS policy) Postfix's default ``enforce`` returns the message to the
  sender (``dsn=5.7.10``, ``!requiretls:nocertmatch``: the role's
  ``encrypt`` does no certificate matching), while the same mail without
  REQUIRETLS is delivered there over TLS.
"""

import pytest

TABLE = "cdb:/etc/postfix/maps.d/cdb-tls-policy.map"
FILTER_HOP = "[127.0.0.1]:10025"
REINJECTION = "127.0.0.1:10026/inet"
FILTER_SPOOL = "/var/spool/mailgw-test/filter.test"

WIRE = [
    {"kind": "submit", "name": "REQUIRETLS mail passes 10025 and 10026 and reaches the internal store",
     "rcpt": "user@internal.gateway.test", "mail_options": ["REQUIRETLS"], "expect": "delivered",
     "peer": "mailstore.gateway.test", "via": ["filter.test"], "tls": True,
     "delivery_log": "tls=encrypt/requiretls:none"},
    {"kind": "submit", "name": "the same mail without REQUIRETLS reaches the internal store",
     "rcpt": "plain@internal.gateway.test", "expect": "delivered",
     "peer": "mailstore.gateway.test", "via": ["filter.test"], "tls": True,
     "delivery_log": "tls=encrypt, "},
    {"kind": "submit", "name": "REQUIRETLS mail for an external peer without REQUIRETLS is returned",
     "rcpt": "user@tls.test", "mail_options": ["REQUIRETLS"], "expect": "bounced", "via": ["filter.test"],
     "reason": "tls=encrypt?/!requiretls:nocertmatch, dsn=5.7.10, status=bounced"},
    {"kind": "submit", "name": "the same mail without REQUIRETLS reaches the external peer over TLS",
     "rcpt": "plain@tls.test", "expect": "delivered", "peer": "tls-peer.test", "via": ["filter.test"],
     "tls": True},
]


def test_postfix_3_11_with_its_requiretls_defaults(gateway):
    version = tuple(int(n) for n in gateway.postconf("mail_version")["mail_version"].split(".")[:2])
    assert version >= (3, 11), version
    assert gateway.postconf("requiretls_enable", "requiretls_esmtp_header") == {
        "requiretls_enable": "yes", "requiretls_esmtp_header": "yes"}
    # the role leaves smtp_requiretls_policy alone: Postfix's default is in force
    assert gateway.run("postconf -n smtp_requiretls_policy").strip() == ""


def test_smtpd_announces_requiretls_after_starttls(gateway):
    out = gateway.run(
        "python3 -c %s",
        "import smtplib, ssl\n"
        "s = smtplib.SMTP('127.0.0.1', 25, local_hostname='probe.test')\n"
        "s.ehlo(); before = s.has_extn('requiretls')\n"
        "ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n"
        "s.starttls(context=ctx); s.ehlo(); print(before, s.has_extn('requiretls')); s.quit()\n")
    assert out.split() == ["False", "True"], out


def test_role_state(gateway):
    assert gateway.postconf("smtpd_tls_security_level", "smtp_tls_security_level") == {
        "smtpd_tls_security_level": "encrypt", "smtp_tls_security_level": "encrypt"}
    assert gateway.postmap_query(FILTER_HOP, TABLE) == "none"
    out = gateway.run("postconf -P %s", REINJECTION + "/smtpd_tls_security_level")
    assert out.strip() == REINJECTION + "/smtpd_tls_security_level = none"


@pytest.fixture(scope="module")
def wire(gateway):
    return gateway.run_steps(WIRE)


@pytest.mark.parametrize("step", [s["name"] for s in WIRE])
def test_requiretls_through_the_content_filter_loop(wire, step):
    wire.check(step)


def test_the_filter_got_the_requiretls_request_as_a_header(gateway, wire):
    rcpt = [r["rcpt"] for r in wire.results if r["name"] == WIRE[0]["name"]][0]
    plain = [r["rcpt"] for r in wire.results if r["name"] == WIRE[1]["name"]][0]
    with_header = gateway.run("grep -l -e 'Require-TLS-ESMTP: yes' -r %s || true", FILTER_SPOOL)
    files = with_header.split()
    assert files, "no message at the filter carried Require-TLS-ESMTP: yes"
    carried = gateway.run("cat %s" % " ".join(files))
    assert rcpt in carried
    assert plain not in carried
