# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Concurrent runs of mailgw.postfix_tls.postconf on different parameters of one main.cf
both land.

postconf edits main.cf under Postfix's own lock.  The runs go through the
real ``ansible`` command, started together (``sandbox.run_together``); the
scenario is repeated a few times, so a lost update would show as a missing
value.
"""

import pytest

from postfix_sandbox import POSTCONF, needs_postfix

pytestmark = [pytest.mark.slow, needs_postfix]

ROUNDS = 3


def test_two_postconf_runs_on_different_parameters_both_land(sandbox):
    for round_ in range(ROUNDS):
        sandbox.run_together([
            (POSTCONF, {'name': 'smtpd_banner', 'value': '$myhostname ESMTP round %d' % round_}),
            (POSTCONF, {'params': {'smtp_tls_loglevel': str(round_ + 1),
                                   'smtp_tls_note_starttls_offer': 'yes' if round_ % 2 else 'no'}}),
        ])
        explicit = sandbox.explicit_main_cf()
        assert explicit['smtpd_banner'] == '$myhostname ESMTP round %d' % round_
        assert explicit['smtp_tls_loglevel'] == str(round_ + 1)
        assert explicit['smtp_tls_note_starttls_offer'] == ('yes' if round_ % 2 else 'no')
        assert explicit['smtp_tls_policy_maps'] == 'hash:${maps_d_dir}/tls-policy.map'
        assert sandbox.leftovers(sandbox.confdir) == []
