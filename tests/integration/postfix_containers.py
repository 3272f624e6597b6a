# Copyright (c) 2026, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Waiting on a Postfix container, for the tests that run one (postfix_service, the role).

Each takes the test's own way into the container as a callable, so the module tests (podman
run + nsenter) and the role tests (their Gateway) share the waiting rules.
"""

import time

MASTER_PID = '/var/spool/postfix/pid/master.pid'


def settled_count(read_log, text, expected, timeout=10):
    """How often TEXT is in the log READ_LOG() returns, once the count is EXPECTED (read again
    a second later, so that one more has the time to show) or TIMEOUT seconds passed. The
    master logs "reload -- version" through postlogd after the reload command returned, so a
    reload shows a moment later, and one that was not expected needs the time to show too."""
    deadline = time.time() + timeout
    while True:
        count = read_log().count(text)
        if count == expected:
            time.sleep(1)
            return read_log().count(text)
        if time.time() > deadline:
            return count
        time.sleep(0.2)


def wait_for_systemd(sh, timeout=60):
    """Until systemd as PID 1 finished starting its units (Postfix among them), at most TIMEOUT
    seconds; it must end "running" (a "degraded" start names its failed units). SH(script)
    runs a shell command in the container and returns its output, whatever its exit status."""
    deadline = time.time() + timeout
    while True:
        state = sh('systemctl is-system-running').strip()
        if state in ('running', 'degraded'):
            assert state == 'running', sh('systemctl --failed --no-pager')
            return
        assert time.time() < deadline, 'systemd did not finish starting: %s' % state
        time.sleep(0.3)
