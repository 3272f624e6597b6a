# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check mode of mailgw.postfix_tls.postconf writes nothing at all, not even a temporary file.

The ``frozen_sandbox`` fixture (tests/integration/conftest.py) makes the
configuration directory, main.cf and master.cf immutable (chattr +i) for the
run: any write fails with EPERM, which would make the task fail.  The tasks
run as one ``--check --diff`` play through the real ``ansible-playbook``;
every task must succeed and report the change it would make, and TMPDIR (an
empty directory) must stay empty (postfix_sandbox.assert_check_mode_writes_nothing).
"""

from postfix_sandbox import POSTCONF, assert_check_mode_writes_nothing, needs_postfix, needs_root

pytestmark = [needs_postfix, needs_root('chattr')]


def test_postconf_check_mode_writes_nothing(frozen_sandbox):
    sandbox = frozen_sandbox
    results = assert_check_mode_writes_nothing(sandbox, [
        sandbox.task(POSTCONF, {'name': 'smtp_tls_security_level', 'value': 'encrypt'}),
        sandbox.task(POSTCONF, {'name': 'smtpd_tls_security_level', 'state': 'absent'}),
        sandbox.task(POSTCONF, {'params': {'smtpd_banner': 'x', 'smtp_tls_loglevel': '1'}}),
        sandbox.task(POSTCONF, {'service': 'submission/inet', 'name': 'smtpd_tls_security_level',
                                'value': 'encrypt'}),
        sandbox.task(POSTCONF, {'service': '127.0.0.1:10026/inet', 'name': 'smtpd_tls_security_level',
                                'state': 'absent'}),
    ])
    assert results[0]['params']['smtp_tls_security_level'] == {'before': None, 'after': 'encrypt'}
