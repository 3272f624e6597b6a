# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ownership and permissions: never less secure than before.

* A new policy table and its index are owned by root and not writable by
  others (mode 0644), whatever the umask of the Ansible run.
* An existing table keeps its owner, group and mode when it is edited; its
  index gets the same; a backup copy is not more readable than the table.
  (The tables here stay owned by root: run as root, postmap drops its
  privileges to the owner of the source file, who could not write into the
  root-only test directories.  Group and mode show the preservation.)
* main.cf and master.cf keep their owner, group and mode when the postconf
  module edits them.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import grp
import os
import pwd
import stat
import subprocess

import pytest

from reliability_helpers import (
    HAVE_POSTFIX,
    IS_ROOT,
    REAL_POSTMAP,
    Sandbox,
    why,
)

pytestmark = [
    pytest.mark.skipif(not HAVE_POSTFIX, reason='needs the host postconf and postmap'),
    pytest.mark.skipif(not IS_ROOT, reason='needs root (file ownership)'),
]

NOBODY = pwd.getpwnam('nobody').pw_uid
NOGROUP = grp.getgrnam('nogroup').gr_gid


def owner_mode(path):
    st = os.stat(str(path))
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@pytest.fixture
def box(tmp_path):
    return Sandbox(tmp_path)


@pytest.mark.parametrize('umask', [0o000, 0o002, 0o077])
@pytest.mark.parametrize('map_type', ['hash', 'lmdb', 'texthash'])
def test_new_table_and_index_are_root_owned_and_not_world_writable(tmp_path, umask, map_type):
    box = Sandbox(tmp_path, map_type=map_type)
    result = box.tls_policy({'destination': 'example.com', 'level': 'encrypt'},
                            preexec_fn=lambda: os.umask(umask))
    assert result['changed'] is True, why(result)
    files = [str(box.table)] + box.index_files()
    assert len(files) == (1 if map_type == 'texthash' else 2)
    for path in files:
        assert owner_mode(path) == (0, 0, 0o644), path
    assert box.leftovers() == []


def test_edited_table_keeps_owner_and_mode_and_index_follows(box):
    box.table.write_text('old.example may\n')
    subprocess.run([REAL_POSTMAP, '-c', str(box.confdir), box.map_spec], check=True)
    os.chown(str(box.table), 0, NOGROUP)
    os.chmod(str(box.table), 0o640)
    index = box.index_files()[0]
    os.chmod(index, 0o666)                  # a careless earlier postmap: the index follows the table
    result = box.tls_policy({'destination': 'new.example', 'level': 'encrypt', 'backup': True})
    assert result['changed'] is True, why(result)
    assert owner_mode(box.table) == (0, NOGROUP, 0o640)
    assert owner_mode(index) == (0, NOGROUP, 0o640)
    backup_mode = owner_mode(result['backup_file'])[2]
    assert backup_mode & 0o007 == 0, 'the backup is readable by others, the table is not'
    assert box.dump() == {'old.example': 'may', 'new.example': 'encrypt'}


def test_restrictive_mode_of_an_existing_table_is_kept(box):
    box.table.write_text('old.example may\n')
    os.chmod(str(box.table), 0o600)
    result = box.tls_policy({'destination': 'new.example', 'level': 'encrypt'})
    assert result['changed'] is True, why(result)
    assert owner_mode(box.table) == (0, 0, 0o600)
    assert owner_mode(box.index_files()[0]) == (0, 0, 0o600)


def test_symlinked_table_target_keeps_owner_and_mode(box):
    target = box.tmp / 'real-policy.map'
    target.write_text('old.example may\n')
    os.chown(str(target), 0, NOGROUP)
    os.chmod(str(target), 0o640)
    box.table.symlink_to(target)
    result = box.tls_policy({'destination': 'new.example', 'level': 'encrypt'})
    assert result['changed'] is True, why(result)
    assert box.table.is_symlink()
    assert owner_mode(target) == (0, NOGROUP, 0o640)
    assert owner_mode(box.index_files()[0]) == (0, NOGROUP, 0o640)


@pytest.mark.parametrize('config_file, args', [
    ('main.cf', {'name': 'smtp_tls_security_level', 'value': 'encrypt'}),
    ('master.cf', {'service': 'submission/inet', 'name': 'smtpd_tls_security_level', 'value': 'encrypt'}),
])
def test_postconf_keeps_owner_and_mode_of_main_cf_and_master_cf(box, config_file, args):
    path = box.confdir / config_file
    os.chown(str(path), NOBODY, NOGROUP)
    os.chmod(str(path), 0o640)
    result = box.postconf(args)
    assert result['changed'] is True, why(result)
    assert owner_mode(path) == (NOBODY, NOGROUP, 0o640)
