# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Faults while mailgw.postfix_tls.postconf writes: main.cf survives intact.

* postconf missing (hidden with a bind mount in a private mount namespace);
* a full disk under main.cf (a 64 KiB tmpfs) and an immutable config
  directory;
* the run SIGKILLed while postconf writes main.cf.

Single calls run the module directly (``sandbox.postconf``); runs in a mount
namespace and runs that are killed go through the real ``ansible`` command
(``sandbox.command``).  After each fault main.cf holds its previous bytes,
Postfix can still read it, the error names what happened, and no
half-written files are left.  These tests need root (mount, chattr); they
are in the ``slow`` group.  Fault helpers: fault_injection.py.
"""

import subprocess

import pytest

from fault_injection import can_unshare, fill, kill_tree, mount_tmpfs, run_without_binary
from postfix_sandbox import (POSTCONF, REAL_POSTCONF, assert_failed, assert_unchanged, chattr, needs_postfix, needs_root,
                             wait_for, why)

pytestmark = [pytest.mark.slow, needs_postfix, needs_root('mount, chattr')]


@pytest.mark.skipif(not can_unshare(), reason='needs unshare --mount')
def test_missing_binary_fails_clearly_and_changes_nothing(sandbox):
    before = sandbox.snapshot()
    result = run_without_binary(sandbox, REAL_POSTCONF, POSTCONF, {'name': 'smtp_tls_security_level',
                                                                   'value': 'encrypt'})
    assert_failed(result, 'Failed to find required executable', 'postconf')
    assert_unchanged(before, sandbox.snapshot())


def test_full_disk_under_main_cf_leaves_it_intact(tmp_path, make_sandbox, cleanup):
    mnt = mount_tmpfs(tmp_path / 'fs', '64k', cleanup)
    sandbox = make_sandbox(confdir=mnt / 'postfix')
    before = sandbox.main_cf.read_bytes()
    filler = fill(mnt)
    result = sandbox.postconf({'name': 'smtpd_banner', 'value': 'x' * 300})
    assert_failed(result, 'No space left on device')
    assert sandbox.main_cf.read_bytes() == before
    filler.unlink()
    assert sandbox.leftovers(sandbox.confdir) == []
    assert sandbox.postconf_works()


def test_failed_postconf_write_does_not_report_changed(tmp_path, make_sandbox, cleanup):
    mnt = mount_tmpfs(tmp_path / 'fs', '64k', cleanup)
    sandbox = make_sandbox(confdir=mnt / 'postfix')
    fill(mnt)
    result = sandbox.postconf({'name': 'smtpd_banner', 'value': 'x' * 300})
    assert_failed(result, 'No space left on device')
    assert result.get('changed') is not True


def test_immutable_config_directory_for_postconf(sandbox, cleanup):
    before = sandbox.snapshot()
    chattr(sandbox.confdir, '+i')
    cleanup(lambda: chattr(sandbox.confdir, '-i'))
    result = sandbox.postconf({'name': 'smtp_tls_security_level', 'value': 'encrypt'})
    assert_failed(result, 'main.cf')
    assert_unchanged(before, sandbox.snapshot())


def test_killed_while_postconf_writes_leaves_main_cf(sandbox):
    before = sandbox.snapshot()
    mark = sandbox.tmp / 'postconf-running'
    # read-only postconf calls pass through; the writing one (-e) stalls first
    sandbox.shim('postconf', '''\
        case " $* " in *" -e "*) touch {mark}; sleep 600;; esac
        exec {real} "$@"
        '''.format(real=REAL_POSTCONF, mark=mark))
    proc = subprocess.Popen(sandbox.command(POSTCONF, {'name': 'smtp_tls_security_level', 'value': 'encrypt'}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=sandbox.environ(),
                            cwd=str(sandbox.tmp))
    try:
        wait_for(mark, proc)
    finally:
        kill_tree(proc)
    (sandbox.bindir / 'postconf').unlink()
    assert_unchanged(before, sandbox.snapshot())
    again = sandbox.postconf({'name': 'smtp_tls_security_level', 'value': 'encrypt'})
    assert again['changed'] is True, why(again)
    assert sandbox.postconf_h('smtp_tls_security_level') == 'encrypt'
    assert sandbox.leftovers(sandbox.confdir) == []
