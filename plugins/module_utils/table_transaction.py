# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Write a Postfix lookup table and its postmap index as one transaction.

Postfix reads the index (``hash:``, ``lmdb:``, ...) that ``postmap`` built
from the source file, and warns when the source is newer. Replacing both
so that Postfix never sees a broken or inconsistent table takes these
steps, held by TableTransaction:

* DirectoryLock serializes writers of tables in one directory (``flock``
  on the directory itself, no lock file);
* temporary files of an interrupted run are removed (``clean_up``), and an
  index older than its source counts as stale (``needs_build``);
* the new source is written to a temporary file next to the table, postmap
  builds its index from it, the index is queried (``postmap -q``) against
  the intended entries, then the index and afterwards the source are renamed
  into place; a failed rename puts the previous index back (``commit``);
* owner, group and mode are copied from the current source before anything
  is visible, file options (owner/group/mode/SELinux/attributes) applied to
  the source and the index files follow the source (``apply_attributes``).

Failures raise TableTransactionError; the table and its index are then left
as they were. ``restore_owner_mode`` is shared with the postconf module,
which must undo the owner and mode postconf gives the files it rewrites.
"""

import errno
import fcntl
import grp
import inspect
import os
import pwd
import re
import shutil
import stat
import struct
import tempfile
import time

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_types import (
    HOT_FILE_TYPES,
    index_paths,
    is_indexed,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import PostfixCommandError

DEFAULT_NEW_FILE_MODE = 0o644
LOCK_TIMEOUT = 300
# How far verify_cooled dates a temporary source back (Postfix wants 2 s).
COOL_DOWN_SECONDS = 10


def move_keeping_own_attributes(module, src, dest, unsafe_writes):
    """module.atomic_move(src, dest), DEST keeping the owner and mode of SRC, not taking those
    of the file it replaces. keep_dest_attrs=False says so from ansible-core 2.17 on; before,
    atomic_move always copies the replaced file's owner and mode, so they are set back after."""
    if 'keep_dest_attrs' in inspect.signature(module.atomic_move).parameters:
        module.atomic_move(src, dest, unsafe_writes=unsafe_writes, keep_dest_attrs=False)
        return
    own = os.stat(src) if os.path.exists(dest) else None
    module.atomic_move(src, dest, unsafe_writes=unsafe_writes)
    if own is not None:     # a new DEST gets the same mode from atomic_move in every release
        os.chown(dest, own.st_uid, own.st_gid)
        os.chmod(dest, stat.S_IMODE(own.st_mode))


# The magic number of a Berkeley DB file's metadata page (offset 12, in the byte order of
# the host that wrote it), per access method: what postmap writes for hash: and btree:.
BERKELEY_DB_MAGIC = {'hash': 0x061561, 'btree': 0x053162}


def berkeley_db_of_type(path, map_type):
    """False when PATH is a Berkeley DB file of another access method than MAP_TYPE (hash,
    btree) or too short to be one; True otherwise (other map types are not looked at)."""
    magic = BERKELEY_DB_MAGIC.get(map_type)
    if magic is None:
        return True
    try:
        with open(path, 'rb') as f:
            head = f.read(16)
    except (IOError, OSError):
        return True         # postmap will say what is wrong with it
    if len(head) < 16:
        return False
    return magic in struct.unpack('<I', head[12:16]) + struct.unpack('>I', head[12:16])


class TableTransactionError(Exception):
    """The table could not be written; ``details`` go into the module result (rc, stderr)."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.details = details


def owner_group_problem(owner, group):
    """Why the file options OWNER and GROUP (names or ids, or None) cannot apply, or None.

    Checked before anything is written, so a typo changes nothing.
    """
    if owner is not None and not owner.isdigit():
        try:
            pwd.getpwnam(owner)
        except KeyError:
            return 'owner %r: no such user; nothing was changed' % owner
    if group is not None and not group.isdigit():
        try:
            grp.getgrnam(group)
        except KeyError:
            return 'group %r: no such group; nothing was changed' % group
    return None


def directory_problem(path, check_mode, warnings):
    """Why the table PATH cannot be written (its directory is missing, it is not a
    regular file), or None. A check run predicts a new table in a directory that
    does not exist yet (an earlier task of the play creates it, which a check run
    does not), with a note in WARNINGS."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        if not check_mode:
            return 'directory %s of the table %s does not exist' % (directory, path)
        if os.path.lexists(directory):
            return '%s, the directory of the table %s, is not a directory' % (directory, path)
        warnings.append('directory %s of the table %s does not exist (yet): this check run '
                        'assumes an earlier task creates it; a real run fails if none does'
                        % (directory, path))
    if os.path.exists(path) and not os.path.isfile(path):
        return '%s exists and is not a regular file' % path
    return None


def restore_owner_mode(path, before, owner_required=True):
    """Give PATH the owner, group and permission bits recorded in BEFORE (an os.stat_result).

    Only what differs is changed (owner first: a chown may clear set-id bits).
    With ``owner_required=False`` a chown this user may not make (EPERM) is
    skipped, as when an unprivileged user rewrites a file of another owner.
    """
    st = os.stat(path)
    if (st.st_uid, st.st_gid) != (before.st_uid, before.st_gid):
        try:
            os.chown(path, before.st_uid, before.st_gid)
        except OSError as e:
            if owner_required or e.errno != errno.EPERM:
                raise
    if stat.S_IMODE(st.st_mode) != stat.S_IMODE(before.st_mode):
        os.chmod(path, stat.S_IMODE(before.st_mode))


def copy_owner_mode(reference, target):
    """Give TARGET the owner and mode of the file REFERENCE (mode 0644 and ours when None)."""
    if reference is None:
        os.chmod(target, DEFAULT_NEW_FILE_MODE)
        return
    restore_owner_mode(target, os.stat(reference), owner_required=False)


class DirectoryLock:
    """An exclusive flock on a directory: serializes read-modify-write of
    tables in it without creating a lock file."""

    def __init__(self, directory, timeout=LOCK_TIMEOUT):
        self.directory = directory
        self.timeout = timeout
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.directory, os.O_RDONLY)
        deadline = time.time() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except (IOError, OSError) as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.time() > deadline:
                    os.close(self.fd)
                    raise OSError(errno.ETIMEDOUT, 'timed out after %ss waiting for the lock on %s'
                                  % (self.timeout, self.directory))
                time.sleep(0.05)

    def __exit__(self, *exc):
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)
        return False


class TableLock:
    """DirectoryLock on the directory of PATH and, when PATH is a symbolic link into another
    one, on that directory too (in a fixed order): the source and its temporary files live
    where the link points, so two tables linked to one shared source (two Postfix instances)
    serialize on it, as two tasks on one table do."""

    def __init__(self, path, timeout=LOCK_TIMEOUT):
        directories = set([os.path.dirname(path)])
        linked = os.path.dirname(os.path.realpath(path))
        if os.path.isdir(linked):
            directories.add(linked)
        self.locks = [DirectoryLock(directory, timeout) for directory in sorted(directories)]
        self.held = []

    def __enter__(self):
        try:
            for lock in self.locks:
                lock.__enter__()
                self.held.append(lock)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        while self.held:
            self.held.pop().__exit__()
        return False


def _equal(a, b):
    return a == b


class TableTransaction:
    """One lookup table ``MAP_TYPE:PATH`` of an AnsibleModule with file options.

    PATH is the name Postfix is configured with; a symlink is written
    through to its target (``source``), the index files belong next to PATH.
    WARNINGS (a list) receives what the caller should pass on. FILE_PARAMS: the
    owner, group, mode, ... options (add_file_common_args); default the module's.
    """

    def __init__(self, module, postmap, path, map_type, warnings=None, file_params=None):
        self.module = module
        # owner, group, mode, ... (add_file_common_args): the module's, or those given
        self.file_params = module.params if file_params is None else file_params
        self.postmap = postmap
        self.path = path
        self.map_type = map_type
        self.source = os.path.realpath(path) if os.path.islink(path) else path
        self.indexes = index_paths(map_type, path)
        self.warnings = [] if warnings is None else warnings
        self.exists = os.path.exists(self.source)
        self.leftovers = []

    # -- reading ---------------------------------------------------------------------

    def read(self):
        """The current source as text ('' when there is none); bytes that are not UTF-8 are kept.
        An index without its source is refused: Postfix uses the index, and a table written
        from nothing would drop, unreported, every entry Postfix enforces."""
        if not self.exists:
            orphans = [index for index in self.indexes if os.path.exists(index)]
            if orphans:
                raise TableTransactionError(
                    '%s does not exist, but its index %s does, and Postfix uses that index: writing the '
                    'table from nothing would drop every entry it holds, unreported; nothing was changed. '
                    'Restore the source (postmap -s %s:%s prints what the index holds) or remove the index'
                    % (self.path, ', '.join(orphans), self.map_type, self.path))
            return ''
        with open(self.source, 'rb') as f:
            data = f.read()
        if b'\0' in data:
            raise TableTransactionError('%s contains NUL bytes: it is not a text lookup table (an index '
                                        'file?); nothing was changed' % self.path)
        return data.decode('utf-8', 'surrogateescape')

    def clean_up(self):
        """Remove temporary files of an interrupted run (the caller holds the lock: nobody else owns
        them). In check mode they are only named: a real run removes them and rebuilds the index
        (needs_build), and check mode predicts that."""
        pattern = re.compile(r'^(?:__db\.)?\.%s\.[a-z0-9_]{8}\.tmp(?:\..*)?$'
                             % re.escape(os.path.basename(self.source)))
        found = []
        for directory in sorted(set([os.path.dirname(self.source), os.path.dirname(self.path)])):
            if not os.path.isdir(directory):
                continue        # check mode: a directory an earlier task of the play creates
            for name in os.listdir(directory):
                if pattern.match(name):
                    if not self.module.check_mode:
                        self.module.cleanup(os.path.join(directory, name))
                    found.append(name)
        if found:
            self.warnings.append('%s temporary files of an interrupted run: %s'
                                 % ('would remove' if self.module.check_mode else 'removed',
                                    ', '.join(sorted(found))))
        self.leftovers = found
        return found

    def needs_build(self, write_source, create):
        """Whether postmap must (re)build the index: the source changes, an interrupted
        run may have renamed its index but not its source, or the index is missing or older."""
        if not is_indexed(self.map_type) or not (self.exists or create):
            return False
        return write_source or bool(self.leftovers) or self.index_stale()

    def index_stale(self):
        """Whether an index is missing, older than the source, empty, or (hash, btree: both
        write PATH.db) a Berkeley DB file of the other type, which Postfix cannot open
        ("unexpected file type or format") and which postmap rebuilds."""
        try:
            source_mtime = os.stat(self.source).st_mtime
        except OSError:
            return False
        for index in self.indexes:
            try:
                st = os.stat(index)
            except OSError:
                return True
            if st.st_mtime < source_mtime or st.st_size == 0 or not berkeley_db_of_type(index, self.map_type):
                return True
        return False

    # -- writing ---------------------------------------------------------------------

    def update(self, before, after, create, expected, same=_equal, backup=False, result=None):
        """Bring the table from the text BEFORE (as read) to AFTER, in check mode only predict.

        CREATE: whether a missing table is to be created. The source is written
        when its text changes, the index built when needs_build() says so, then
        the file options are applied. Sets postmap_ran, backup_file (when one
        was made) and changed in RESULT (a dict, filled as the steps go, so a
        failure result holds them too) and returns it.
        """
        module = self.module
        write_source = after != before or create
        build = self.needs_build(write_source, create)
        changed = write_source or build
        result = {} if result is None else result
        result['postmap_ran'] = build
        if not module.check_mode and changed:
            if write_source and self.exists and backup:
                result['backup_file'] = module.backup_local(self.source)
            self.commit(after, write_source, build, expected, same=same)
        result['changed'] = self.apply_attributes(self.exists or (create and not module.check_mode),
                                                  created=create, changed=changed)
        return result

    def commit(self, text, write_source, build, expected, same=_equal):
        """Temp source -> postmap -> verify -> index into place -> source into place.

        EXPECTED maps each key to check to its value, or None for a key that
        must be absent; SAME(found, wanted) compares values.
        """
        directory = os.path.dirname(self.source)
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(self.source), suffix='.tmp', dir=directory)
        tmp_prefix = os.path.basename(tmp)
        try:
            with os.fdopen(fd, 'wb') as f:
                f.write(text.encode('utf-8', 'surrogateescape'))
                f.flush()
                os.fsync(f.fileno())
            self.prepare_attributes(tmp)
            tmp_indexes = index_paths(self.map_type, tmp)
            if build:
                self.build(tmp, tmp_indexes)
            if build or (write_source and self.map_type == 'texthash'):
                if self.map_type in HOT_FILE_TYPES:
                    self.verify_cooled(tmp, expected, same)
                else:
                    self.verify(tmp, expected, same)
            if build and not write_source:
                # Only the index is rebuilt: never leave it older than a source whose
                # mtime lies in the future (Postfix would warn, and the next run rebuild).
                source_mtime = os.stat(self.source).st_mtime
                for tmp_index in tmp_indexes:
                    if os.stat(tmp_index).st_mtime < source_mtime:
                        os.utime(tmp_index, (source_mtime, source_mtime))
            self.move_into_place(tmp, tmp_prefix, tmp_indexes if build else [],
                                 self.indexes if build else [], write_source)
        finally:
            for folder in set([directory, os.path.dirname(self.path)]):
                for name in os.listdir(folder):
                    if tmp_prefix in name:
                        self.module.cleanup(os.path.join(folder, name))

    def build(self, tmp, tmp_indexes):
        """postmap the temporary source; its warnings are passed on under the table's name."""
        try:
            stderr = self.postmap.build(self.map_type, tmp)
        except PostfixCommandError as e:
            raise TableTransactionError(
                'postmap failed for %s:%s, the table and its index were left as they were: %s'
                % (self.map_type, self.path, (e.stderr or '').replace(tmp, self.path).strip() or e),
                rc=e.rc, stderr=e.stderr)
        for line in (stderr or '').splitlines():
            line = line.replace(tmp, self.path).strip()
            if line and 'duplicate entry' not in line:
                self.warnings.append(line)
        for tmp_index in tmp_indexes:
            copy_owner_mode(tmp, tmp_index)

    def verify_cooled(self, tmp, expected, same):
        """verify() on a source Postfix reads only when cool (HOT_FILE_TYPES).

        postmap -q would wait up to 2 s for the just-written temporary file to
        cool down; it is complete (written and fsynced, and only this module
        knows its name), so it is dated back for the query and its own times
        are put back before it is renamed into place.
        """
        st = os.stat(tmp)
        cooled = st.st_mtime - COOL_DOWN_SECONDS
        os.utime(tmp, (cooled, cooled))
        try:
            self.verify(tmp, expected, same)
        finally:
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))

    def verify(self, tmp, expected, same):
        """Query every expected key in the new table with one postmap -q -."""
        try:
            found, dummy = self.postmap.query(self.map_type, tmp, list(expected))
        except PostfixCommandError as e:
            raise TableTransactionError('verifying the new %s:%s with postmap -q failed, nothing was changed: %s'
                                        % (self.map_type, self.path, e.stderr.replace(tmp, self.path).strip() or e))
        problems = []
        for key, value in expected.items():
            got = found.get(key)
            if value is None and got is not None:
                problems.append('%r is still present (%r)' % (key, got))
            elif value is not None and got is None:
                problems.append('%r is missing' % key)
            elif value is not None and not same(got, value):
                problems.append('%r maps to %r instead of %r' % (key, got, value))
        if problems:
            raise TableTransactionError('postmap -q on the new %s:%s disagrees with the intended table, '
                                        'nothing was changed: %s'
                                        % (self.map_type, self.path, '; '.join(problems[:20])))

    def move_into_place(self, tmp, tmp_prefix, tmp_indexes, indexes, write_source):
        """Rename the new index files, then the new source, into place.

        Index first: a rename keeps the temporary source's mtime, which predates
        the index, so the source on disk is never newer than its index. When a
        later rename fails, the index files already replaced are put back (from
        a hard link, or a copy, of the previous ones), so table and index stay
        consistent.
        """
        module = self.module
        unsafe_writes = self.file_params.get('unsafe_writes', False)
        replaced = []           # (index, saved previous index or None)
        current = None
        try:
            for tmp_index, index in zip(tmp_indexes, indexes):
                current = index
                saved = None
                if os.path.exists(index):
                    saved = os.path.join(os.path.dirname(index), tmp_prefix + '.previous' +
                                         index[len(os.path.splitext(index)[0]):])
                    try:
                        os.link(index, saved)
                    except OSError:
                        shutil.copy2(index, saved)
                move_keeping_own_attributes(module, tmp_index, index, unsafe_writes)
                replaced.append((index, saved))
            if write_source:
                current = self.source
                move_keeping_own_attributes(module, tmp, self.source, unsafe_writes)
        except Exception as e:  # atomic_move raises plain Exception
            problems = []
            for index, saved in reversed(replaced):
                try:
                    if saved:
                        os.rename(saved, index)
                    else:
                        os.unlink(index)
                except OSError as undo_error:
                    problems.append('%s: %s' % (index, undo_error))
            reason = to_native(e)
            if e.__cause__ is not None:
                reason = '%s (%s)' % (reason, to_native(e.__cause__))
            if problems:
                raise TableTransactionError('cannot replace %s: %s; putting the previous index back failed too '
                                            '(%s): run postmap on the table' % (current, reason, '; '.join(problems)))
            raise TableTransactionError('cannot replace %s: %s; the table and its index were left as they were'
                                        % (current, reason))

    # -- owner, group, mode, attributes ----------------------------------------------

    def prepare_attributes(self, tmp):
        """Give the new source its final owner, group and mode before it is visible.

        Starts from the current source (0644 for a new file), then applies
        owner/group/mode/SELinux options, so a bad value fails here, before
        anything is renamed into place. (chattr attributes are applied after
        the rename: an immutable temporary file could not be renamed.)
        """
        copy_owner_mode(self.source if self.exists else None, tmp)
        tmp_args = self.module.load_file_common_arguments(self.file_params, path=tmp)
        tmp_args['attributes'] = None
        self.module.set_fs_attributes_if_different(tmp_args, False)

    def apply_attributes(self, present, created, changed):
        """Apply the file options to the source, and the source's owner, group and mode to
        the index files; PRESENT: whether the source exists (or, in check mode, would)."""
        module = self.module
        if not present:
            return changed
        file_args = module.load_file_common_arguments(self.file_params, path=self.source)
        if created and file_args.get('mode') is None:
            file_args['mode'] = DEFAULT_NEW_FILE_MODE
        changed = module.set_fs_attributes_if_different(file_args, changed)
        if not os.path.exists(self.source):
            return changed
        st = os.stat(self.source)
        for index in self.indexes:
            if not os.path.exists(index):
                continue
            index_args = dict(file_args, path=index, mode=stat.S_IMODE(st.st_mode),
                              owner=str(st.st_uid), group=str(st.st_gid))
            if module.check_mode:
                # The source may be about to change too: compare with what it will be.
                for name in ('mode', 'owner', 'group'):
                    if file_args.get(name) is not None:
                        index_args[name] = file_args[name]
            changed = module.set_fs_attributes_if_different(index_args, changed)
        return changed
