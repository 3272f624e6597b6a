# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The table transaction: lock, leftovers, staleness, temporary source, build,
verify, index-then-source rename with rollback, owner and mode.

A real AnsibleModule (file options, atomic_move) and a fake postmap that
"indexes" a table by copying ``KEY VALUE`` lines into TABLE.db as JSON; the
real postmap runs in the integration tests.
"""

import json
import os
import stat
import struct
import time

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import PostfixCommandError
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.table_transaction import (
    DirectoryLock,
    TableLock,
    TableTransaction,
    TableTransactionError,
    copy_owner_mode,
    restore_owner_mode,
)


class FakePostmap:
    """build: TABLE -> TABLE.db (JSON of the first value per key); query: read it back."""

    def __init__(self, fail_build=None, lie=None):
        self.fail_build = fail_build
        self.lie = lie or {}
        self.built = []
        self.queried = []

    def build(self, map_type, path):
        self.built.append(path)
        if self.fail_build:
            raise PostfixCommandError('postmap failed', cmd=['postmap'], rc=1,
                                      stderr='postmap: fatal: %s: %s' % (path, self.fail_build))
        entries = {}
        with open(path) as f:
            for line in f:
                if line.strip() and not line.startswith(('#', ' ', '\t')):
                    key, dummy, value = line.strip().partition(' ')
                    entries.setdefault(key, value)
        entries.update(self.lie)
        with open(path + '.db', 'w') as f:
            json.dump(entries, f)
        return 'postmap: warning: %s: a warning\n' % path

    def query(self, map_type, path, keys):
        self.queried.append((path, list(keys)))
        if map_type == 'texthash':
            index = {}
            with open(path) as f:
                for line in f:
                    key, dummy, value = line.strip().partition(' ')
                    index.setdefault(key, value)
        else:
            with open(path + '.db') as f:
                index = json.load(f)
        return dict((k, index[k]) for k in keys if k in index), ''


def make_module(check_mode=False, **file_options):
    args = dict(file_options)
    if check_mode:
        args['_ansible_check_mode'] = True
    with patch_module_args(args):
        return AnsibleModule(argument_spec={}, add_file_common_args=True, supports_check_mode=True)


@pytest.fixture
def table(tmp_path):
    path = tmp_path / 'tls_policy'
    path.write_text('a.example may\n')
    return path


def transaction(path, postmap=None, map_type='hash', module=None, warnings=None):
    return TableTransaction(module or make_module(), postmap or FakePostmap(), str(path), map_type, warnings)


def names(directory):
    return sorted(os.listdir(str(directory)))


# --- reading ------------------------------------------------------------------

def test_read_keeps_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / 't'
    path.write_bytes(b'caf\xe9.example may\n')
    text = transaction(path).read()
    assert text.encode('utf-8', 'surrogateescape') == b'caf\xe9.example may\n'


def test_missing_table_reads_empty(tmp_path):
    t = transaction(tmp_path / 'new')
    assert not t.exists and t.read() == ''


def test_nul_bytes_are_refused(tmp_path):
    path = tmp_path / 't'
    path.write_bytes(b'\x00\x01\x02')
    with pytest.raises(TableTransactionError, match='contains NUL bytes'):
        transaction(path).read()


def test_leftovers_of_an_interrupted_run_are_removed_with_a_warning(table):
    directory = table.parent
    for name in ('.tls_policy.abcd1234.tmp', '.tls_policy.abcd1234.tmp.db', '__db..tls_policy.zz_z9999.tmp',
                 '.tls_policy.short.tmp', 'tls_policy.db', '.other.abcd1234.tmp'):
        (directory / name).write_text('x')
    warnings = []
    t = transaction(table, warnings=warnings)
    assert sorted(t.clean_up()) == ['.tls_policy.abcd1234.tmp', '.tls_policy.abcd1234.tmp.db',
                                    '__db..tls_policy.zz_z9999.tmp']
    assert names(directory) == ['.other.abcd1234.tmp', '.tls_policy.short.tmp', 'tls_policy', 'tls_policy.db']
    assert warnings == ['removed temporary files of an interrupted run: .tls_policy.abcd1234.tmp, '
                        '.tls_policy.abcd1234.tmp.db, __db..tls_policy.zz_z9999.tmp']
    assert t.needs_build(write_source=False, create=False)     # leftovers: the index may be newer


def test_leftovers_are_named_not_removed_in_check_mode(table):
    directory = table.parent
    (directory / '.tls_policy.abcd1234.tmp').write_text('x')
    warnings = []
    t = transaction(table, warnings=warnings, module=make_module(check_mode=True))
    assert t.clean_up() == ['.tls_policy.abcd1234.tmp']
    assert '.tls_policy.abcd1234.tmp' in names(directory)
    assert warnings == ['would remove temporary files of an interrupted run: .tls_policy.abcd1234.tmp']
    assert t.needs_build(write_source=False, create=False)     # predicted as the real run does it


# --- staleness ----------------------------------------------------------------

def test_needs_build(table):
    t = transaction(table)
    assert t.needs_build(write_source=False, create=False)     # no index yet
    index = table.parent / 'tls_policy.db'
    # a Berkeley DB hash file's metadata page: the magic number at offset 12 (little endian here)
    hash_header = b'\0' * 12 + struct.pack('<I', 0x061561) + b'\0' * 16
    index.write_bytes(hash_header)
    assert not t.needs_build(write_source=False, create=False)
    assert t.needs_build(write_source=True, create=False)
    # a btree file (hash: and btree: both write .db), an empty or a truncated one: rebuilt
    btree_header = b'\0' * 12 + struct.pack('>I', 0x053162) + b'\0' * 16
    for data in (btree_header, b'', b'short'):
        index.write_bytes(data)
        assert t.needs_build(write_source=False, create=False), data
    index.write_bytes(btree_header)
    assert not transaction(table, map_type='btree').needs_build(write_source=False, create=False)
    index.write_bytes(hash_header)
    old = time.time() - 100
    os.utime(str(index), (old, old))
    assert t.needs_build(write_source=False, create=False)     # index older than the source
    assert not transaction(table, map_type='texthash').needs_build(write_source=True, create=False)
    assert not transaction(table.parent / 'new').needs_build(write_source=False, create=False)
    assert transaction(table.parent / 'new').needs_build(write_source=True, create=True)


# --- commit -------------------------------------------------------------------

def test_commit_writes_source_and_index_and_verifies(table):
    postmap = FakePostmap()
    warnings = []
    t = transaction(table, postmap, warnings=warnings)
    t.commit('a.example encrypt\nb.example may\n', write_source=True, build=True,
             expected={'a.example': 'encrypt', 'c.example': None})
    assert table.read_text() == 'a.example encrypt\nb.example may\n'
    assert json.loads((table.parent / 'tls_policy.db').read_text()) == {'a.example': 'encrypt', 'b.example': 'may'}
    assert names(table.parent) == ['tls_policy', 'tls_policy.db']          # no temporary file left
    assert postmap.queried[0][1] == ['a.example', 'c.example']
    assert postmap.built[0] != str(table)                                   # built from the temporary source
    assert warnings == ['postmap: warning: %s: a warning' % table]         # under the table's name
    assert os.stat(str(table)).st_mtime <= os.stat(str(table) + '.db').st_mtime


def test_new_table_gets_mode_0644(tmp_path):
    path = tmp_path / 'new'
    t = transaction(path)
    t.commit('a b\n', write_source=True, build=True, expected={'a': 'b'})
    assert stat.S_IMODE(os.stat(str(path)).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(str(path) + '.db').st_mode) == 0o644


def test_existing_mode_is_kept_for_source_and_index(table):
    os.chmod(str(table), 0o640)
    t = transaction(table)
    t.commit('a.example encrypt\n', write_source=True, build=True, expected={})
    # atomic_move gives a new index the umask's mode; the index follows the source here
    t.apply_attributes(present=True, created=False, changed=True)
    assert stat.S_IMODE(os.stat(str(table)).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(str(table) + '.db').st_mode) == 0o640


def test_texthash_is_verified_without_a_build(table):
    postmap = FakePostmap()
    t = transaction(table, postmap, map_type='texthash')
    t.commit('a.example secure\n', write_source=True, build=False, expected={'a.example': 'secure'})
    assert postmap.built == [] and len(postmap.queried) == 1
    assert names(table.parent) == ['tls_policy']


class AgeRecordingPostmap(FakePostmap):
    """Records how old (in whole seconds, as Postfix sees st_mtime) each queried
    file is; with wrong_answer, every query finds the key mapped to 'may'."""

    def __init__(self, wrong_answer=False, **kwargs):
        super().__init__(**kwargs)
        self.wrong_answer = wrong_answer
        self.ages = []

    def query(self, map_type, path, keys):
        self.ages.append(int(time.time()) - int(os.stat(path).st_mtime))
        found, stderr = super().query(map_type, path, keys)
        if self.wrong_answer:
            found = dict((key, 'may') for key in keys)
        return found, stderr


@pytest.mark.parametrize('verified', [True, False])
def test_texthash_is_queried_cool_and_keeps_the_time_it_was_written(table, monkeypatch, verified):
    # dict_thash_open re-reads a source modified in this or the previous second
    # (0.3 s naps, up to 2 s): the temporary file is queried dated back, and
    # its own times are put back whether the verification passes or not.
    postmap = AgeRecordingPostmap(wrong_answer=not verified)
    mtimes = []
    real_utime = os.utime

    def utime(path, *args, **kwargs):
        real_utime(path, *args, **kwargs)
        mtimes.append(os.stat(path).st_mtime)
    monkeypatch.setattr(os, 'utime', utime)
    t = transaction(table, postmap, map_type='texthash')
    before = int(time.time())
    if verified:
        t.commit('a.example secure\n', write_source=True, build=False, expected={'a.example': 'secure'})
        assert table.read_text() == 'a.example secure\n'
        assert os.stat(str(table)).st_mtime >= before
    else:
        with pytest.raises(TableTransactionError, match='disagrees'):
            t.commit('a.example secure\n', write_source=True, build=False, expected={'a.example': 'secure'})
        assert table.read_text() == 'a.example may\n' and names(table.parent) == ['tls_policy']
    assert postmap.ages == [postmap.ages[0]] and postmap.ages[0] >= 2
    assert len(mtimes) == 2 and mtimes[0] < before - 1 and mtimes[1] >= before


def test_hash_source_is_not_dated_back(table):
    postmap = AgeRecordingPostmap()
    t = transaction(table, postmap)
    before = time.time()
    t.commit('a.example secure\n', write_source=True, build=True, expected={'a.example': 'secure'})
    assert os.stat(str(table)).st_mtime >= int(before)
    assert os.stat(str(table) + '.db').st_mtime >= int(before)


def test_index_only_rebuild_is_never_older_than_a_future_source(table):
    future = time.time() + 3600
    os.utime(str(table), (future, future))
    t = transaction(table)
    t.commit(table.read_text(), write_source=False, build=True, expected={'a.example': 'may'})
    assert os.stat(str(table) + '.db').st_mtime >= future
    assert os.stat(str(table)).st_mtime == future


def test_symlinked_table_is_written_through_index_next_to_the_link(tmp_path):
    target_dir = tmp_path / 'real'
    target_dir.mkdir()
    target = target_dir / 'policy'
    target.write_text('a may\n')
    link = tmp_path / 'tls_policy'
    link.symlink_to(target)
    t = transaction(link)
    assert t.source == str(target)
    t.commit('a encrypt\n', write_source=True, build=True, expected={'a': 'encrypt'})
    assert link.is_symlink() and target.read_text() == 'a encrypt\n'
    assert (tmp_path / 'tls_policy.db').exists()
    assert not (target_dir / 'policy.db').exists()


def test_custom_comparison(table):
    t = transaction(table)
    t.commit('a.example SECURE\n', write_source=True, build=True, expected={'a.example': 'secure'},
             same=lambda got, wanted: got.lower() == wanted.lower())
    assert table.read_text() == 'a.example SECURE\n'


# --- failures leave the previous table -----------------------------------------

def previous(table):
    (table.parent / 'tls_policy.db').write_text('{"a.example": "may"}')
    return dict((name, (table.parent / name).read_bytes()) for name in names(table.parent))


def current(table):
    return dict((name, (table.parent / name).read_bytes()) for name in names(table.parent))


def test_failed_build_changes_nothing(table):
    before = previous(table)
    t = transaction(table, FakePostmap(fail_build='unsupported dictionary type: hash'))
    with pytest.raises(TableTransactionError) as info:
        t.commit('a.example encrypt\n', write_source=True, build=True, expected={})
    assert 'postmap failed for hash:%s, the table and its index were left as they were' % table in str(info.value)
    assert 'postmap: fatal: %s: unsupported' % table in str(info.value)        # the table's name, not the temp file's
    assert info.value.details['rc'] == 1
    assert current(table) == before


def test_verification_mismatch_changes_nothing(table):
    before = previous(table)
    t = transaction(table, FakePostmap(lie={'b.example': 'none'}))
    with pytest.raises(TableTransactionError) as info:
        t.commit('a.example encrypt\n', write_source=True, build=True,
                 expected={'a.example': 'secure', 'b.example': None, 'c.example': 'may'})
    message = str(info.value)
    assert 'disagrees with the intended table, nothing was changed' in message
    assert "'a.example' maps to 'encrypt' instead of 'secure'" in message
    assert "'b.example' is still present ('none')" in message
    assert "'c.example' is missing" in message
    assert current(table) == before


def module_failing_to_replace(path, monkeypatch):
    """A module whose atomic_move fails for PATH (the source) and works for the rest."""
    module = make_module()
    real_move = module.atomic_move

    def atomic_move(src, dest, **kwargs):
        if dest == str(path):
            raise Exception('disk on fire')
        return real_move(src, dest, **kwargs)

    monkeypatch.setattr(module, 'atomic_move', atomic_move)
    return module


def test_failed_source_rename_puts_the_previous_index_back(table, monkeypatch):
    before = previous(table)
    t = transaction(table, module=module_failing_to_replace(table, monkeypatch))
    with pytest.raises(TableTransactionError) as info:
        t.commit('a.example encrypt\n', write_source=True, build=True, expected={'a.example': 'encrypt'})
    assert str(info.value) == ('cannot replace %s: disk on fire; the table and its index were left as they were'
                               % table)
    assert current(table) == before


def test_failed_rename_of_a_new_index_removes_it(table, monkeypatch):
    t = transaction(table, module=module_failing_to_replace(table, monkeypatch))
    with pytest.raises(TableTransactionError):
        t.commit('a.example encrypt\n', write_source=True, build=True, expected={})
    assert names(table.parent) == ['tls_policy']
    assert table.read_text() == 'a.example may\n'


# --- attributes ---------------------------------------------------------------

def test_apply_attributes_sets_the_source_mode_and_the_index_follows(table):
    t = transaction(table, module=make_module(mode='0600'))
    t.commit('a.example encrypt\n', write_source=True, build=True, expected={})
    assert t.apply_attributes(present=True, created=False, changed=False) is True
    assert stat.S_IMODE(os.stat(str(table)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(str(table) + '.db').st_mode) == 0o600
    assert t.apply_attributes(present=True, created=False, changed=False) is False


def test_apply_attributes_in_check_mode_changes_nothing(table):
    (table.parent / 'tls_policy.db').write_text('{}')
    os.chmod(str(table), 0o644)
    os.chmod(str(table) + '.db', 0o644)
    t = transaction(table, module=make_module(check_mode=True, mode='0600'))
    assert t.apply_attributes(present=True, created=False, changed=False) is True
    assert stat.S_IMODE(os.stat(str(table)).st_mode) == 0o644
    assert t.apply_attributes(present=False, created=False, changed=False) is False


def test_restore_owner_mode(tmp_path):
    reference = tmp_path / 'ref'
    reference.write_text('')
    os.chmod(str(reference), 0o600)
    target = tmp_path / 'target'
    target.write_text('')
    os.chmod(str(target), 0o644)
    restore_owner_mode(str(target), os.stat(str(reference)))
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o600
    copy_owner_mode(None, str(target))
    assert stat.S_IMODE(os.stat(str(target)).st_mode) == 0o644


# --- lock ---------------------------------------------------------------------

def test_a_table_linked_into_another_directory_locks_that_one_too(tmp_path):
    # two Postfix instances whose tables link to one shared source: a run on either holds the
    # shared directory (its temporary files live there), so they serialize
    shared, one, two = tmp_path / 'shared', tmp_path / 'one', tmp_path / 'two'
    for directory in (shared, one, two):
        directory.mkdir()
    (shared / 'tls_policy').write_text('a.example may\n')
    for directory in (one, two):
        (directory / 'tls_policy').symlink_to(shared / 'tls_policy')
    with TableLock(str(one / 'tls_policy')):
        with pytest.raises(OSError, match='waiting for the lock on %s' % shared):
            with TableLock(str(two / 'tls_policy'), timeout=0.1):
                pass
        with DirectoryLock(str(two), timeout=0.1):      # only the shared directory is contended
            pass
    with TableLock(str(two / 'tls_policy'), timeout=0.1):
        pass
    # a plain table: its own directory only
    assert [lock.directory for lock in TableLock(str(shared / 'tls_policy')).locks] == [str(shared)]


def test_directory_lock_is_exclusive_and_times_out(tmp_path):
    with DirectoryLock(str(tmp_path)):
        with pytest.raises(OSError) as info:
            with DirectoryLock(str(tmp_path), timeout=0.1):
                pass
        assert 'timed out after 0.1s waiting for the lock on %s' % tmp_path in str(info.value)
    with DirectoryLock(str(tmp_path), timeout=0.1):
        assert os.listdir(str(tmp_path)) == []          # no lock file
