# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ownership and permissions of tables written by mailgw.postfix_tls.tls_policy: never less
secure than before.

* A new policy table and its index are owned by root and not writable by
  others (mode 0644), whatever the umask of the run (the module runs directly,
  ``sandbox.tls_policy``, with the umask set in the child process).
* An existing table keeps its owner, group and mode when it is edited; its
  index gets the same; a backup copy is not more readable than the table.
  (The tables here stay owned by root: run as root, postmap drops its
  privileges to the owner of the source file, who could not write into the
  root-only test directories.  Group and mode show the preservation.)
"""

import grp
import os
import stat

import pytest

from postfix_sandbox import needs_postfix, needs_root, why

pytestmark = [needs_postfix, needs_root('file ownership')]

NOGROUP = grp.getgrnam('nogroup').gr_gid


def owner_mode(path):
    st = os.stat(str(path))
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@pytest.mark.parametrize('umask', [0o000, 0o002, 0o077])
@pytest.mark.parametrize('map_type', ['hash', 'lmdb', 'texthash'])
def test_new_table_and_index_are_root_owned_and_not_world_writable(make_sandbox, umask, map_type):
    sandbox = make_sandbox(map_type=map_type)
    result = sandbox.tls_policy({'destination': 'example.com', 'level': 'encrypt'},
                                preexec_fn=lambda: os.umask(umask))
    assert result['changed'] is True, why(result)
    files = [sandbox.table] + sandbox.index_files()
    assert len(files) == (1 if map_type == 'texthash' else 2)
    for path in files:
        assert owner_mode(path) == (0, 0, 0o644), path
    assert sandbox.leftovers() == []


def test_edited_table_keeps_owner_and_mode_and_index_follows(sandbox):
    sandbox.seed('old.example may\n')
    os.chown(str(sandbox.table), 0, NOGROUP)
    os.chmod(str(sandbox.table), 0o640)
    index = sandbox.index_files()[0]
    os.chmod(index, 0o666)                  # a careless earlier postmap: the index follows the table
    result = sandbox.tls_policy({'destination': 'new.example', 'level': 'encrypt', 'backup': True})
    assert result['changed'] is True, why(result)
    assert owner_mode(sandbox.table) == (0, NOGROUP, 0o640)
    assert owner_mode(index) == (0, NOGROUP, 0o640)
    backup_mode = owner_mode(result['backup_file'])[2]
    assert backup_mode & 0o007 == 0, 'the backup is readable by others, the table is not'
    assert sandbox.dump() == {'old.example': 'may', 'new.example': 'encrypt'}


def test_restrictive_mode_of_an_existing_table_is_kept(sandbox):
    sandbox.table.write_text('old.example may\n')
    os.chmod(str(sandbox.table), 0o600)
    result = sandbox.tls_policy({'destination': 'new.example', 'level': 'encrypt'})
    assert result['changed'] is True, why(result)
    assert owner_mode(sandbox.table) == (0, 0, 0o600)
    assert owner_mode(sandbox.index_files()[0]) == (0, 0, 0o600)


def test_symlinked_table_target_keeps_owner_and_mode(sandbox):
    target = sandbox.tmp / 'real-policy.map'
    target.write_text('old.example may\n')
    os.chown(str(target), 0, NOGROUP)
    os.chmod(str(target), 0o640)
    sandbox.table.symlink_to(target)
    result = sandbox.tls_policy({'destination': 'new.example', 'level': 'encrypt'})
    assert result['changed'] is True, why(result)
    assert sandbox.table.is_symlink()
    assert owner_mode(target) == (0, NOGROUP, 0o640)
    assert owner_mode(sandbox.index_files()[0]) == (0, NOGROUP, 0o640)
