# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ownership and permissions: main.cf and master.cf keep their owner, group and mode when
mailgw.postfix_tls.postconf edits them (``postconf -e`` / ``-P`` recreate them as root 0644;
the module restores them).
"""

import grp
import os
import pwd
import stat

import pytest

from postfix_sandbox import needs_postfix, needs_root, why

pytestmark = [needs_postfix, needs_root('file ownership')]

NOBODY = pwd.getpwnam('nobody').pw_uid
NOGROUP = grp.getgrnam('nogroup').gr_gid


@pytest.mark.parametrize('config_file, args', [
    ('main.cf', {'name': 'smtp_tls_security_level', 'value': 'encrypt'}),
    ('master.cf', {'service': 'submission/inet', 'name': 'smtpd_tls_security_level', 'value': 'encrypt'}),
])
def test_postconf_keeps_owner_and_mode_of_main_cf_and_master_cf(sandbox, config_file, args):
    path = sandbox.confdir / config_file
    os.chown(str(path), NOBODY, NOGROUP)
    os.chmod(str(path), 0o640)
    result = sandbox.postconf(args)
    assert result['changed'] is True, why(result)
    st = os.stat(str(path))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (NOBODY, NOGROUP, 0o640)
