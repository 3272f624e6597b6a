# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures shared by the integration tests, and the import path of their helpers.

tests/integration is put on sys.path so that every test below it, in any
subdirectory, imports the two helper modules by name:

* ``ansible_env``: the environment Ansible runs in, ``run_module`` (a
  module's file run directly, arguments as JSON on stdin) and
  ``run_playbook`` (the real ansible-playbook);
* ``postfix_sandbox``: the throwaway Postfix configuration the module tests
  work in, and the snapshot and assertion helpers.

Fixtures: ``sandbox`` (a Sandbox with a hash policy table), ``make_sandbox``
(a factory for other map types or directories), ``frozen_sandbox`` (a seeded
sandbox whose directories are immutable, for check mode), ``cleanup``
(undo actions run after the test, also when it fails).
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from postfix_sandbox import Sandbox, chattr  # noqa: E402 (needs HERE on sys.path)

FROZEN_TABLE = (
    '# TLS policy\n'
    'old.example encrypt\n'
    'keep.example   may\n'
    '    ciphers=high\n'
    '[127.0.0.1]:10025 none\n'
)


@pytest.fixture
def sandbox(tmp_path):
    """A throwaway Postfix config dir and maps dir with the host's real postconf/postmap."""
    return Sandbox(tmp_path)


@pytest.fixture
def make_sandbox(tmp_path):
    """make_sandbox(map_type=..., confdir=..., maps_dir=...): a Sandbox other than the default one."""
    return lambda **kwargs: Sandbox(tmp_path, **kwargs)


@pytest.fixture
def cleanup():
    """Register undo actions (chattr -i, umount ...); they run after the test, also when it fails."""
    actions = []
    yield actions.append
    for action in reversed(actions):
        try:
            action()
        except Exception:
            pass


@pytest.fixture
def frozen_sandbox(sandbox, cleanup):
    """A seeded sandbox (plus a table with a stale index) whose config and maps directories and
    every file in them are immutable (chattr +i) while the test runs: any write fails.

    ``before`` is the snapshot taken before freezing, ``tmpdir`` an empty directory for TMPDIR,
    ``postmap_calls`` the log of a recording postmap (see postfix_sandbox.assert_check_mode_writes_nothing).
    """
    sandbox.seed(FROZEN_TABLE)
    sandbox.stale = sandbox.maps_dir / 'stale-policy.map'
    sandbox.seed('stale.example may\n', path=sandbox.stale)
    future = sandbox.stale.stat().st_mtime + 60        # hand-edited after the last postmap
    os.utime(str(sandbox.stale), (future, future))
    sandbox.tmpdir = sandbox.tmp / 'tmpdir'
    sandbox.tmpdir.mkdir()
    sandbox.postmap_calls = sandbox.record('postmap')
    frozen_paths = []
    for directory in (sandbox.confdir, sandbox.maps_dir):
        for name in os.listdir(str(directory)):
            frozen_paths.append(directory / name)
        frozen_paths.append(directory)
    sandbox.before = sandbox.snapshot()
    for path in frozen_paths:
        chattr(path, '+i')
        cleanup(lambda path=path: chattr(path, '-i'))
    return sandbox
