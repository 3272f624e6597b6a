# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Faults while mailgw.postfix_tls.tls_policy writes: the previous table survives intact.

* postmap (or postconf) missing (hidden with a bind mount in a private mount
  namespace), not executable, failing, "unsupported dictionary type", or
  building an index that lacks an entry (stand-ins put first in PATH with
  ``sandbox.shim``);
* a full disk (a 64 KiB tmpfs) and an unwritable directory (read-only bind
  mount, immutable directory or file);
* the run SIGKILLed while postmap builds or verifies the new index.

Single calls run the module directly (``sandbox.tls_policy``); runs in a
mount namespace and runs that are killed go through the real ``ansible``
command (``sandbox.command``).  After each fault the table source and its
index hold their previous bytes, ``postmap -q`` returns the previous values
(so the index is not newer than a broken source), the error names what
happened, and no half-written files are left.  These tests need root (mount,
chattr); they are in the ``slow`` group.  Fault helpers: fault_injection.py.
"""

import os
import subprocess

import pytest

from fault_injection import can_unshare, fill, kill_tree, mount_tmpfs, run_without_binary
from postfix_sandbox import (REAL_POSTCONF, REAL_POSTMAP, TLS_POLICY, assert_failed, assert_unchanged, chattr, crashed,
                             needs_postfix, needs_root, wait_for, why)

pytestmark = [pytest.mark.slow, needs_postfix, needs_root('mount, chattr, chown')]

SEEDED = (
    '# TLS policy\n'
    'old.example encrypt\n'
    '[127.0.0.1]:10025 none\n'
)
SEEDED_VIEW = {'old.example': 'encrypt', '[127.0.0.1]:10025': 'none'}
CHANGE = {'entries': [{'destination': 'new.example', 'level': 'secure', 'match': ['nexthop']},
                      {'destination': 'old.example', 'state': 'absent'}]}


def seed(sandbox):
    """Seed and index the table; return its state (see table_state)."""
    sandbox.seed(SEEDED)
    return table_state(sandbox)


def table_state(sandbox):
    """Bytes of the table and its index files."""
    state = {}
    for path in [sandbox.table] + sandbox.index_files():
        state[str(path)] = path.read_bytes()
    return state


def assert_previous_table(sandbox, state):
    assert table_state(sandbox) == state, 'the table or its index changed'
    assert sandbox.query('old.example', '[127.0.0.1]:10025', 'new.example') == SEEDED_VIEW


# ---------------------------------------------------------------------------
# postmap missing, broken, failing, lying
# ---------------------------------------------------------------------------

@pytest.mark.skipif(not can_unshare(), reason='needs unshare --mount')
@pytest.mark.parametrize('binary', [REAL_POSTMAP, REAL_POSTCONF])
def test_missing_binary_fails_clearly_and_changes_nothing(sandbox, binary):
    state = seed(sandbox)
    before = sandbox.snapshot()
    result = run_without_binary(sandbox, binary, TLS_POLICY, CHANGE)
    assert_failed(result, 'Failed to find required executable', os.path.basename(binary))
    assert_unchanged(before, sandbox.snapshot())
    assert_previous_table(sandbox, state)


def run_with_unexecutable_postmap(sandbox):
    # found in PATH (so get_bin_path picks it), but exec fails: its interpreter does not exist
    (sandbox.bindir / 'postmap').write_text('#!/nonexistent/interpreter\n')
    (sandbox.bindir / 'postmap').chmod(0o755)
    return sandbox.tls_policy(CHANGE)


def test_postmap_that_cannot_be_executed_changes_nothing(sandbox):
    state = seed(sandbox)
    before = sandbox.snapshot()
    result = run_with_unexecutable_postmap(sandbox)
    assert result.get('failed') is True, why(result)
    assert_unchanged(before, sandbox.snapshot())
    assert_previous_table(sandbox, state)


def test_postmap_that_cannot_be_executed_is_named_in_the_error(sandbox):
    seed(sandbox)
    result = run_with_unexecutable_postmap(sandbox)
    assert_failed(result, 'postmap')


@pytest.mark.parametrize('message', [
    'postmap: fatal: unsupported dictionary type: hash',
    'postmap: fatal: open database: Permission denied',
])
def test_failing_postmap_leaves_previous_table_and_says_why(sandbox, message):
    state = seed(sandbox)
    before = sandbox.snapshot()
    sandbox.shim('postmap', '''\
        case " $* " in *" -q "*) exec %s "$@";; esac
        echo "%s" >&2
        exit 1
        ''' % (REAL_POSTMAP, message))
    result = sandbox.tls_policy(CHANGE)
    assert_failed(result, 'postmap failed', 'left as they were', message.split(': ', 1)[1])
    assert result.get('changed') is not True
    assert_unchanged(before, sandbox.snapshot())
    assert_previous_table(sandbox, state)


POSTMAP_LIES = {
    # builds nothing at all
    'builds-nothing': ("""\
        case " $* " in *" -q "*) exec {real} "$@";; esac
        exit 0
        """, ['{table}']),
    # builds the index, then silently deletes the new key from it
    'drops-an-entry': ("""\
        case " $* " in *" -q "*) exec {real} "$@";; esac
        {real} "$@" || exit $?
        for last; do :; done
        {real} -c "$2" -d new.example "$last"
        exit 0
        """, ['disagrees', "'new.example' is missing", 'nothing was']),
}


@pytest.mark.parametrize('lie', sorted(POSTMAP_LIES))
def test_postmap_that_lies_is_caught_by_verification(sandbox, lie):
    state = seed(sandbox)
    before = sandbox.snapshot()
    body, fragments = POSTMAP_LIES[lie]
    sandbox.shim('postmap', body.format(real=REAL_POSTMAP))
    result = sandbox.tls_policy(CHANGE)
    assert_failed(result, *[f.format(table=sandbox.table) for f in fragments])
    assert_unchanged(before, sandbox.snapshot())
    assert_previous_table(sandbox, state)


# ---------------------------------------------------------------------------
# full disk
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('room', ['none', 'source-only'])
def test_full_disk_leaves_previous_table_and_says_so(tmp_path, make_sandbox, cleanup, room):
    mnt = mount_tmpfs(tmp_path / 'fs', '64k', cleanup)
    sandbox = make_sandbox(maps_dir=mnt / 'maps.d')
    state = seed(sandbox)
    # "none": not even the new source fits; "source-only": the new source fits, its index does not
    filler = fill(mnt, leave=0 if room == 'none' else 8192)
    result = sandbox.tls_policy(CHANGE)
    assert_failed(result, 'No space left on device')
    if room == 'source-only':
        assert 'postmap failed' in result['msg'] and 'left as they were' in result['msg']
    assert result.get('changed') is not True
    assert_previous_table(sandbox, state)
    # once there is room again, the same task succeeds
    filler.unlink()
    again = sandbox.tls_policy(CHANGE)
    assert again['changed'] is True, why(again)
    assert sandbox.dump() == {'new.example': 'secure match=nexthop', '[127.0.0.1]:10025': 'none'}


def test_full_disk_leaves_no_temporary_files(tmp_path, make_sandbox, cleanup):
    mnt = mount_tmpfs(tmp_path / 'fs', '64k', cleanup)
    sandbox = make_sandbox(maps_dir=mnt / 'maps.d')
    seed(sandbox)
    filler = fill(mnt, leave=8192)
    result = sandbox.tls_policy(CHANGE)
    assert_failed(result, 'No space left on device')
    filler.unlink()
    assert sandbox.leftovers() == []


# ---------------------------------------------------------------------------
# unwritable directory or file
# ---------------------------------------------------------------------------

def test_read_only_maps_directory(sandbox, cleanup):
    state = seed(sandbox)
    before = sandbox.snapshot()
    subprocess.run(['mount', '--bind', str(sandbox.maps_dir), str(sandbox.maps_dir)], check=True)
    cleanup(lambda: subprocess.run(['umount', '-l', str(sandbox.maps_dir)], capture_output=True, check=False))
    subprocess.run(['mount', '-o', 'remount,bind,ro', str(sandbox.maps_dir)], check=True)
    result = sandbox.tls_policy(CHANGE)
    assert_failed(result, 'cannot update %s' % sandbox.table, 'Read-only file system')
    assert_unchanged(before, sandbox.snapshot())
    assert_previous_table(sandbox, state)


def test_immutable_maps_directory(sandbox, cleanup):
    state = seed(sandbox)
    before = sandbox.snapshot()
    chattr(sandbox.maps_dir, '+i')
    cleanup(lambda: chattr(sandbox.maps_dir, '-i'))
    result = sandbox.tls_policy(CHANGE)
    assert_failed(result, 'cannot update %s' % sandbox.table, 'Operation not permitted')
    assert_unchanged(before, sandbox.snapshot())
    assert_previous_table(sandbox, state)


@pytest.mark.parametrize('which', ['source', 'index'])
def test_unreplaceable_file_leaves_table_and_index_consistent(sandbox, cleanup, which):
    state = seed(sandbox)
    target = sandbox.table if which == 'source' else sandbox.index_files()[0]
    chattr(target, '+i')
    cleanup(lambda: chattr(target, '-i'))
    result = sandbox.tls_policy(CHANGE)
    chattr(target, '-i')
    assert sandbox.query('old.example', '[127.0.0.1]:10025', 'new.example') == SEEDED_VIEW
    assert table_state(sandbox) == state
    assert_failed(result, str(target))
    assert not crashed(result), 'unhandled exception instead of a clear error: %s' % result['msg']


# ---------------------------------------------------------------------------
# killed mid-write
# ---------------------------------------------------------------------------

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


def kill_during_postmap(sandbox, phase):
    mark = sandbox.tmp / 'postmap-running'
    sandbox.shim('postmap', POSTMAP_STALL[phase].format(real=REAL_POSTMAP, mark=mark))
    proc = subprocess.Popen(sandbox.command(TLS_POLICY, CHANGE), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=sandbox.environ(), cwd=str(sandbox.tmp))
    try:
        wait_for(mark, proc)
    finally:
        kill_tree(proc)
    (sandbox.bindir / 'postmap').unlink()


@pytest.mark.parametrize('phase', sorted(POSTMAP_STALL))
def test_killed_while_postmap_runs_leaves_previous_table(sandbox, phase):
    state = seed(sandbox)
    kill_during_postmap(sandbox, phase)
    assert_previous_table(sandbox, state)
    # only hidden temporary files of the killed run may remain; the lock died with it
    assert all(name.startswith('.tls-policy.map.') or name.startswith('__db..tls-policy.map.')
               for name in sandbox.leftovers()), sandbox.leftovers()
    again = sandbox.tls_policy(CHANGE)
    assert again['changed'] is True, why(again)
    assert sandbox.dump() == {'new.example': 'secure match=nexthop', '[127.0.0.1]:10025': 'none'}


def test_temporary_files_of_a_killed_run_are_cleaned_up_by_the_next_run(sandbox):
    seed(sandbox)
    kill_during_postmap(sandbox, 'after-build')
    assert sandbox.leftovers() != []        # the killed run's files
    again = sandbox.tls_policy(CHANGE)
    assert again['changed'] is True, why(again)
    assert sandbox.leftovers() == []
