# Copyright: (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What playbooks/rollout.yml left on each gateway of the fleet.

converge.yml ran the rollout twice (its exit status and report are asserted
there; the output of each run is kept in /root/rollout-*.out): with
enforce_tls_preflight=fail, which stopped before any change, then at the
default (warn). Gateway 1 (the canary) converged; gateway 2, whose
plain.test goes to a plaintext-only peer, was rolled back to the prepared
configuration byte for byte (/root/prepared-postfix is the copy made in
prepare) and still delivers to that peer; gateway 3 was never touched.
"""

import re
import time

import pytest

SNAPSHOTS = "/var/lib/mailgw-rollout"


@pytest.fixture(scope="module")
def number(gateway):
    return int(re.match(r"^mgw-rollout-(\d)", gateway.name).group(1))


@pytest.fixture(scope="module")
def output(gateway):
    return gateway.run("cat /root/rollout-warn.out")


def test_preflight_report_of_this_gateway(gateway, number, output):
    line = re.search(r"Preflight on %s: ([^\"]*)" % re.escape(gateway.name), output)
    assert line, "no preflight report for %s in the rollout output" % gateway.name
    if number == 2:
        assert line.group(1).startswith("1 would defer: [plain-peer.test]:25 at encrypt "
                                        "(TLS is required, but was not offered by host plain-peer.test[127.0.0.2])"), line.group(1)
    else:
        assert line.group(1).startswith("no destination would defer (1 affected)"), line.group(1)


def test_the_failed_preflight_changed_nothing(gateway):
    out = gateway.run("cat /root/rollout-fail.out")
    assert "nothing was changed on mgw-rollout-2" in out
    assert "PLAY [Roll out, canary first]" not in out


def test_outgoing_level(gateway, number):
    level = gateway.postconf("smtp_tls_security_level")["smtp_tls_security_level"]
    assert level == ("encrypt" if number == 1 else "may")


def test_configuration_is_the_prepared_one_unless_converged(gateway, number):
    diff = gateway.host.run("diff -r /root/prepared-postfix /etc/postfix")
    if number == 1:
        assert diff.rc == 1 and "main.cf" in diff.stdout, diff.stdout
    else:
        assert diff.rc == 0, "differs from the prepared configuration: %s" % diff.stdout


def test_main_cf_is_byte_identical_after_the_rollback(gateway, number):
    if number == 1:
        pytest.skip("gateway 1 converged")
    sums = gateway.run("sha256sum /root/prepared-postfix/main.cf /etc/postfix/main.cf /root/prepared-postfix/tls_policy.db "
                       "/etc/postfix/tls_policy.db").split()
    assert sums[0] == sums[2] and sums[4] == sums[6], sums


def test_snapshot_only_where_the_rollout_reached(gateway, number):
    found = gateway.host.run("ls %s" % SNAPSHOTS)
    if number == 3:
        assert found.rc != 0, "gateway 3 was touched: %s" % found.stdout
    else:
        assert found.rc == 0 and found.stdout.strip(), "no saved settings on %s" % gateway.name


def test_the_converged_canary_exempts_the_internal_hop(gateway, number):
    if number != 1:
        pytest.skip("only gateway 1 converged")
    assert gateway.postmap_query("[127.0.0.1]:10025", "hash:/etc/postfix/tls_policy") == "none"


STEPS = [
    {"kind": "submit", "name": "mail to the STARTTLS peer is delivered over TLS",
     "rcpt": "user@tls.test", "expect": "delivered", "peer": "tls-peer.test", "tls": True},
]
ROLLED_BACK = STEPS + [
    {"kind": "submit", "name": "mail to the plaintext-only peer is delivered again",
     "rcpt": "user@plain.test", "expect": "delivered", "peer": "plain-peer.test", "tls": False},
]


def test_mail_flows(gateway, number):
    results = gateway.run_steps(ROLLED_BACK if number == 2 else STEPS)
    for step in (ROLLED_BACK if number == 2 else STEPS):
        results.check(step["name"])


def test_mail_deferred_during_the_rollout_goes_out_after_the_rollback(gateway, number):
    """Gateway 2's message queued before the rollout (deferred at encrypt by the
    rollout's flush, which its health check saw) is delivered once flushed."""
    if number != 2:
        pytest.skip("only gateway 2 had mail queued")
    gateway.run("postqueue -f")
    deadline = time.time() + 40
    while gateway.queued({"queued@plain.test"}) and time.time() < deadline:
        time.sleep(0.5)
    assert not gateway.queued({"queued@plain.test"}), gateway.queued({"queued@plain.test"})
    assert gateway.run("grep -rl queued@plain.test /var/spool/mailgw-test/ || true").strip(), \
        "the plaintext-only peer did not receive queued@plain.test"
