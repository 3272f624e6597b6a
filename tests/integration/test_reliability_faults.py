# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Faults while the modules write: the previous configuration survives intact.

* postmap missing (hidden with a bind mount in a private mount namespace),
  not executable, failing, "unsupported dictionary type", or building an
  index that lacks an entry;
* a full disk (a 64 KiB tmpfs) and an unwritable directory (read-only bind
  mount, immutable directory or file);
* the module SIGKILLed while postmap builds or verifies the new index, or
  while postconf writes main.cf.

After each fault the table source and its index hold their previous bytes,
``postmap -q`` returns the previous values (so the index is not newer than a
broken source), the error names what happened, and no half-written files
are left (except where pinned as a bug below).  These tests need root
(mount, chattr); they are in the ``slow`` group.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import signal
import subprocess

import pytest

from ansible_env import ad_hoc_result
from reliability_helpers import (
    HAVE_POSTFIX,
    IS_ROOT,
    POSTCONF,
    REAL_POSTCONF,
    REAL_POSTMAP,
    TLS_POLICY,
    Sandbox,
    assert_failed,
    assert_unchanged,
    chattr,
    crashed,
    wait_for,
    why,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not HAVE_POSTFIX, reason='needs the host postconf and postmap'),
    pytest.mark.skipif(not IS_ROOT, reason='needs root (mount, chattr, chown)'),
]

SEEDED = (
    '# TLS policy\n'
    'old.example encrypt\n'
    '[127.0.0.1]:10025 none\n'
)
SEEDED_VIEW = {'old.example': 'encrypt', '[127.0.0.1]:10025': 'none'}
CHANGE = {'entries': [{'destination': 'new.example', 'level': 'secure', 'match': ['nexthop']},
                      {'destination': 'old.example', 'state': 'absent'}]}


def seed(box):
    box.table.write_text(SEEDED)
    subprocess.run([REAL_POSTMAP, '-c', str(box.confdir), box.map_spec], check=True)
    return table_state(box)


def table_state(box):
    """Bytes of the table and its index files."""
    state = {}
    for path in [str(box.table)] + box.index_files():
        with open(path, 'rb') as f:
            state[path] = f.read()
    return state


def assert_previous_table(box, state):
    assert table_state(box) == state, 'the table or its index changed'
    assert box.query('old.example', '[127.0.0.1]:10025', 'new.example') == SEEDED_VIEW


@pytest.fixture
def box(tmp_path):
    return Sandbox(tmp_path)


@pytest.fixture
def cleanup():
    """Run registered undo actions (chattr -i, umount) even when the test fails."""
    actions = []
    yield actions.append
    for action in reversed(actions):
        try:
            action()
        except Exception:
            pass


def mount_tmpfs(path, size, cleanup):
    path.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s,mode=0755' % size, 'tmpfs', str(path)],
                   check=True, capture_output=True)
    cleanup(lambda: subprocess.run(['umount', '-l', str(path)], capture_output=True, check=False))
    return path


def fill(directory, leave=0):
    """Fill a file system with a filler file, then free LEAVE bytes again."""
    filler = directory / 'filler'
    with open(str(filler), 'wb', buffering=0) as f:
        try:
            while True:
                f.write(b'\0' * 4096)
                f.flush()
        except OSError:
            pass
    if leave:
        os.truncate(str(filler), max(0, filler.stat().st_size - leave))
    return filler


def _can_unshare():
    if not IS_ROOT:
        return False
    proc = subprocess.run(['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
                           'mount --bind /dev/null /usr/sbin/postmap && test ! -x /usr/sbin/postmap'],
                          capture_output=True, check=False)
    return proc.returncode == 0


def without_binary(binary, cmd):
    """CMD run in a private mount namespace where BINARY is an empty, non-executable file."""
    return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
            'mount --bind /dev/null "$0" && exec "$@"', binary] + cmd


# ---------------------------------------------------------------------------
# postmap missing, broken, failing, lying
# ---------------------------------------------------------------------------

@pytest.mark.skipif(not _can_unshare(), reason='needs unshare --mount')
@pytest.mark.parametrize('module, binary, args', [
    (TLS_POLICY, REAL_POSTMAP, CHANGE),
    (TLS_POLICY, REAL_POSTCONF, CHANGE),
    (POSTCONF, REAL_POSTCONF, {'name': 'smtp_tls_security_level', 'value': 'encrypt'}),
])
def test_missing_binary_fails_clearly_and_changes_nothing(box, module, binary, args):
    state = seed(box)
    before = box.snapshot()
    cmd = without_binary(binary, box.command(module, args))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=box.environ(), cwd=str(box.tmp))
    result = ad_hoc_result(proc)
    assert_failed(result, 'Failed to find required executable', os.path.basename(binary))
    assert_unchanged(before, box.snapshot())
    assert_previous_table(box, state)


def run_with_unexecutable_postmap(box):
    # found in PATH (so get_bin_path picks it), but exec fails: its interpreter does not exist
    (box.bindir / 'postmap').write_text('#!/nonexistent/interpreter\n')
    (box.bindir / 'postmap').chmod(0o755)
    return box.tls_policy(CHANGE)


def test_postmap_that_cannot_be_executed_changes_nothing(box):
    state = seed(box)
    before = box.snapshot()
    result = run_with_unexecutable_postmap(box)
    assert result.get('failed') is True, why(result)
    assert_unchanged(before, box.snapshot())
    assert_previous_table(box, state)


def test_postmap_that_cannot_be_executed_is_named_in_the_error(box):
    seed(box)
    result = run_with_unexecutable_postmap(box)
    assert_failed(result, 'postmap')


@pytest.mark.parametrize('message', [
    'postmap: fatal: unsupported dictionary type: hash',
    'postmap: fatal: open database: Permission denied',
])
def test_failing_postmap_leaves_previous_table_and_says_why(box, message):
    state = seed(box)
    before = box.snapshot()
    box.shim('postmap', '''\
        case " $* " in *" -q "*) exec %s "$@";; esac
        echo "%s" >&2
        exit 1
        ''' % (REAL_POSTMAP, message))
    result = box.tls_policy(CHANGE)
    assert_failed(result, 'postmap failed', 'left as they were', message.split(': ', 1)[1])
    assert result.get('changed') is not True
    assert_unchanged(before, box.snapshot())
    assert_previous_table(box, state)


def test_postmap_that_builds_nothing_is_caught_by_verification(box):
    state = seed(box)
    before = box.snapshot()
    box.shim('postmap', '''\
        case " $* " in *" -q "*) exec %s "$@";; esac
        exit 0
        ''' % REAL_POSTMAP)
    result = box.tls_policy(CHANGE)
    assert_failed(result, str(box.table))
    assert_unchanged(before, box.snapshot())
    assert_previous_table(box, state)


def test_postmap_that_drops_an_entry_is_caught_by_verification(box):
    state = seed(box)
    before = box.snapshot()
    # builds the index, then silently deletes the new key from it
    box.shim('postmap', '''\
        case " $* " in *" -q "*) exec %s "$@";; esac
        %s "$@" || exit $?
        for last; do :; done
        %s -c "$2" -d new.example "$last"
        exit 0
        ''' % (REAL_POSTMAP, REAL_POSTMAP, REAL_POSTMAP))
    result = box.tls_policy(CHANGE)
    assert_failed(result, 'disagrees', "'new.example' is missing", 'nothing was')
    assert_unchanged(before, box.snapshot())
    assert_previous_table(box, state)


# ---------------------------------------------------------------------------
# full disk
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('room', ['none', 'source-only'])
def test_full_disk_leaves_previous_table_and_says_so(tmp_path, cleanup, room):
    mnt = mount_tmpfs(tmp_path / 'fs', '64k', cleanup)
    box = Sandbox(tmp_path, maps_dir=mnt / 'maps.d')
    state = seed(box)
    # "none": not even the new source fits; "source-only": the new source fits, its index does not
    filler = fill(mnt, leave=0 if room == 'none' else 8192)
    result = box.tls_policy(CHANGE)
    assert_failed(result, 'No space left on device')
    if room == 'source-only':
        assert 'postmap failed' in result['msg'] and 'left as they were' in result['msg']
    assert result.get('changed') is not True
    assert_previous_table(box, state)
    # once there is room again, the same task succeeds
    filler.unlink()
    again = box.tls_policy(CHANGE)
    assert again['changed'] is True, why(again)
    assert box.dump() == {'new.example': 'secure match=nexthop', '[127.0.0.1]:10025': 'none'}


def test_full_disk_leaves_no_temporary_files(tmp_path, cleanup):
    mnt = mount_tmpfs(tmp_path / 'fs', '64k', cleanup)
    box = Sandbox(tmp_path, maps_dir=mnt / 'maps.d')
    seed(box)
    filler = fill(mnt, leave=8192)
    result = box.tls_policy(CHANGE)
    assert_failed(result, 'No space left on device')
    filler.unlink()
    assert box.leftovers() == []


def test_full_disk_under_main_cf_leaves_it_intact(tmp_path, cleanup):
    mnt = mount_tmpfs(tmp_path / 'fs', '64k', cleanup)
    box = Sandbox(tmp_path, confdir=mnt / 'postfix')
    before = box.main_cf.read_bytes()
    filler = fill(mnt)
    result = box.postconf({'name': 'smtpd_banner', 'value': 'x' * 300})
    assert_failed(result, 'No space left on device')
    assert box.main_cf.read_bytes() == before
    filler.unlink()
    assert box.leftovers(box.confdir) == []
    assert box.postconf_works()


def test_failed_postconf_write_does_not_report_changed(tmp_path, cleanup):
    mnt = mount_tmpfs(tmp_path / 'fs', '64k', cleanup)
    box = Sandbox(tmp_path, confdir=mnt / 'postfix')
    fill(mnt)
    result = box.postconf({'name': 'smtpd_banner', 'value': 'x' * 300})
    assert_failed(result, 'No space left on device')
    assert result.get('changed') is not True


# ---------------------------------------------------------------------------
# unwritable directory or file
# ---------------------------------------------------------------------------

def test_read_only_maps_directory(box, cleanup):
    state = seed(box)
    before = box.snapshot()
    subprocess.run(['mount', '--bind', str(box.maps_dir), str(box.maps_dir)], check=True)
    cleanup(lambda: subprocess.run(['umount', '-l', str(box.maps_dir)], capture_output=True, check=False))
    subprocess.run(['mount', '-o', 'remount,bind,ro', str(box.maps_dir)], check=True)
    result = box.tls_policy(CHANGE)
    assert_failed(result, 'cannot update %s' % box.table, 'Read-only file system')
    assert_unchanged(before, box.snapshot())
    assert_previous_table(box, state)


def test_immutable_maps_directory(box, cleanup):
    state = seed(box)
    before = box.snapshot()
    chattr(box.maps_dir, '+i')
    cleanup(lambda: chattr(box.maps_dir, '-i'))
    result = box.tls_policy(CHANGE)
    assert_failed(result, 'cannot update %s' % box.table, 'Operation not permitted')
    assert_unchanged(before, box.snapshot())
    assert_previous_table(box, state)


def test_immutable_config_directory_for_postconf(box, cleanup):
    before = box.snapshot()
    chattr(box.confdir, '+i')
    cleanup(lambda: chattr(box.confdir, '-i'))
    result = box.postconf({'name': 'smtp_tls_security_level', 'value': 'encrypt'})
    assert_failed(result, 'main.cf')
    assert_unchanged(before, box.snapshot())


@pytest.mark.parametrize('which', ['source', 'index'])
def test_unreplaceable_file_leaves_table_and_index_consistent(box, cleanup, which):
    state = seed(box)
    target = box.table if which == 'source' else box.index_files()[0]
    chattr(target, '+i')
    cleanup(lambda: chattr(target, '-i'))
    result = box.tls_policy(CHANGE)
    chattr(target, '-i')
    assert box.query('old.example', '[127.0.0.1]:10025', 'new.example') == SEEDED_VIEW
    assert table_state(box) == state
    assert_failed(result, str(target))
    assert not crashed(result), 'unhandled exception instead of a clear error: %s' % result['msg']


# ---------------------------------------------------------------------------
# killed mid-write
# ---------------------------------------------------------------------------

def descendants(pid):
    """PIDs of every process below PID (read from /proc)."""
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except (IOError, OSError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc):
    """SIGKILL a process we started and everything below it, by PID."""
    for pid in [proc.pid] + descendants(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate()


POSTMAP_STALL = {
    # stop before postmap builds the new index
    'before-build': '''\
        case " $* " in *" -q "*) exec {real} "$@";; esac
        touch {mark}; exec sleep 600
        ''',
    # the new index is built next to the table, not yet renamed into place
    'after-build': '''\
        case " $* " in *" -q "*) exec {real} "$@";; esac
        {real} "$@" || exit $?
        touch {mark}; exec sleep 600
        ''',
    # while the new index is being verified with postmap -q
    'during-verify': '''\
        case " $* " in *" -q "*) touch {mark}; sleep 600; exec {real} "$@";; esac
        exec {real} "$@"
        ''',
}


def kill_during_postmap(box, phase):
    mark = box.tmp / 'postmap-running'
    box.shim('postmap', POSTMAP_STALL[phase].format(real=REAL_POSTMAP, mark=mark))
    proc = subprocess.Popen(box.command(TLS_POLICY, CHANGE), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=box.environ(), cwd=str(box.tmp))
    try:
        wait_for(mark, proc)
    finally:
        kill_tree(proc)
    (box.bindir / 'postmap').unlink()


@pytest.mark.parametrize('phase', sorted(POSTMAP_STALL))
def test_killed_while_postmap_runs_leaves_previous_table(box, phase):
    state = seed(box)
    kill_during_postmap(box, phase)
    assert_previous_table(box, state)
    # only hidden temporary files of the killed run may remain; the lock died with it
    assert all(name.startswith('.tls-policy.map.') or name.startswith('__db..tls-policy.map.')
               for name in box.leftovers()), box.leftovers()
    again = box.tls_policy(CHANGE)
    assert again['changed'] is True, why(again)
    assert box.dump() == {'new.example': 'secure match=nexthop', '[127.0.0.1]:10025': 'none'}


def test_temporary_files_of_a_killed_run_are_cleaned_up_by_the_next_run(box):
    seed(box)
    kill_during_postmap(box, 'after-build')
    assert box.leftovers() != []        # the killed run's files
    again = box.tls_policy(CHANGE)
    assert again['changed'] is True, why(again)
    assert box.leftovers() == []


def test_killed_while_postconf_writes_leaves_main_cf(box):
    before = box.snapshot()
    mark = box.tmp / 'postconf-running'
    # read-only postconf calls pass through; the writing one (-e) stalls first
    box.shim('postconf', '''\
        case " $* " in *" -e "*) touch {mark}; sleep 600;; esac
        exec {real} "$@"
        '''.format(real=REAL_POSTCONF, mark=mark))
    proc = subprocess.Popen(box.command(POSTCONF, {'name': 'smtp_tls_security_level', 'value': 'encrypt'}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=box.environ(),
                            cwd=str(box.tmp))
    try:
        wait_for(mark, proc)
    finally:
        kill_tree(proc)
    (box.bindir / 'postconf').unlink()
    assert_unchanged(before, box.snapshot())
    again = box.postconf({'name': 'smtp_tls_security_level', 'value': 'encrypt'})
    assert again['changed'] is True, why(again)
    assert box.postconf_h('smtp_tls_security_level') == 'encrypt'
    assert box.leftovers(box.confdir) == []
