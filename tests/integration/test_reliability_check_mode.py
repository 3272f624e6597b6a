# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check mode writes nothing at all, not even a temporary or lock file.

The configuration and maps directories and every file in them are made
immutable (chattr +i) for the run: any attempt to create, rename or modify
a file there fails with EPERM, which would make the task fail.  Every task
must instead succeed and report the change it would make.  TMPDIR points at
an empty directory that must stay empty, and a postmap stand-in records any
call that would build an index.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from reliability_helpers import (
    HAVE_POSTFIX,
    IS_ROOT,
    POSTCONF,
    REAL_POSTMAP,
    TLS_POLICY,
    Sandbox,
    assert_unchanged,
    chattr,
    why,
)

pytestmark = [
    pytest.mark.skipif(not HAVE_POSTFIX, reason='needs the host postconf and postmap'),
    pytest.mark.skipif(not IS_ROOT, reason='needs root (chattr)'),
]

SEEDED = (
    '# TLS policy\n'
    'old.example encrypt\n'
    'keep.example   may\n'
    '    ciphers=high\n'
    '[127.0.0.1]:10025 none\n'
)


@pytest.fixture
def frozen(tmp_path):
    """A seeded sandbox whose config and maps directories are immutable while the test runs."""
    box = Sandbox(tmp_path).seed(SEEDED)
    box.stale = box.maps_dir / 'stale-policy.map'
    box.seed('stale.example may\n', path=box.stale)
    future = box.stale.stat().st_mtime + 60        # hand-edited after the last postmap
    os.utime(str(box.stale), (future, future))
    box.tmpdir = tmp_path / 'tmpdir'
    box.tmpdir.mkdir()
    box.log = tmp_path / 'postmap-builds.log'
    box.shim('postmap', '''\
        case " $* " in *" -q "*) ;; *) echo "$*" >> {log};; esac
        exec {real} "$@"
        '''.format(log=box.log, real=REAL_POSTMAP))
    frozen_paths = []
    for directory in (box.confdir, box.maps_dir):
        for name in os.listdir(str(directory)):
            frozen_paths.append(directory / name)
        frozen_paths.append(directory)
    box.before = box.snapshot()
    for path in frozen_paths:
        chattr(path, '+i')
    yield box
    for path in reversed(frozen_paths):
        chattr(path, '-i')


def run_check(box, tasks):
    env = box.environ()
    env['TMPDIR'] = str(box.tmpdir)
    results = box.playbook([dict(t, ignore_errors=False) for t in tasks], check=True, diff=True, env=env)
    assert len(results) == len(tasks), 'a task failed in check mode: %s' % why(results[-1])
    for task, result in zip(tasks, results):
        assert result.get('failed') is not True, (task, why(result))
        assert result['changed'] is True, (task, why(result))
    assert_unchanged(box.before, box.snapshot())
    assert os.listdir(str(box.tmpdir)) == []
    assert not box.log.exists() or box.log.read_text() == '', 'postmap built an index in check mode'
    return results


def test_tls_policy_check_mode_writes_nothing(frozen):
    box = frozen
    new_table = box.maps_dir / 'new-policy.map'
    results = run_check(box, [
        box.task(TLS_POLICY, {'destination': 'new.example', 'level': 'secure', 'match': ['nexthop']}),
        box.task(TLS_POLICY, {'destination': 'old.example', 'level': 'dane'}),
        box.task(TLS_POLICY, {'destination': 'old.example', 'state': 'absent'}),
        box.task(TLS_POLICY, {'exclusive': True, 'entries': [{'destination': 'only.example', 'level': 'may'}]}),
        box.task(TLS_POLICY, {'destination': 'new.example', 'level': 'may', 'backup': True, 'mode': '0600'}),
        box.task(TLS_POLICY, {'destination': 'keep.example', 'level': 'may', 'ciphers': 'high',
                              'owner': 'nobody', 'group': 'nogroup'}),
        box.task(TLS_POLICY, {'destination': 'a.example', 'level': 'may', 'path': str(new_table),
                              'map_type': 'hash'}),
        box.task(TLS_POLICY, {'destination': 'a.example', 'level': 'may', 'path': str(new_table),
                              'map_type': 'texthash'}),
        box.task(TLS_POLICY, {'destination': 'stale.example', 'level': 'may', 'path': str(box.stale),
                              'map_type': 'hash'}),
    ])
    assert results[0]['added'] == ['new.example'] and 'new.example secure' in results[0]['diff']['after']
    assert results[1]['updated'] == ['old.example']
    assert results[2]['removed'] == ['old.example']
    assert results[8]['postmap_ran'] is True and results[8]['added'] == []     # stale index, would rebuild
    assert not new_table.exists()


def test_postconf_check_mode_writes_nothing(frozen):
    box = frozen
    results = run_check(box, [
        box.task(POSTCONF, {'name': 'smtp_tls_security_level', 'value': 'encrypt'}),
        box.task(POSTCONF, {'name': 'smtpd_tls_security_level', 'state': 'absent'}),
        box.task(POSTCONF, {'params': {'smtpd_banner': 'x', 'smtp_tls_loglevel': '1'}}),
        box.task(POSTCONF, {'service': 'submission/inet', 'name': 'smtpd_tls_security_level',
                            'value': 'encrypt'}),
        box.task(POSTCONF, {'service': '127.0.0.1:10026/inet', 'name': 'smtpd_tls_security_level',
                            'state': 'absent'}),
    ])
    assert results[0]['params']['smtp_tls_security_level'] == {'before': None, 'after': 'encrypt'}
