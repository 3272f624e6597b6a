# Copyright: (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The helper scripts of the preflight and the rollout, run as the playbooks run them.

roles/enforce_tls/files/preflight_levels.py (which destinations a run makes
stricter) against a throwaway configuration directory read with the host's
real postconf and postmap; playbooks/files/rollout_settings.py (save and
restore the TLS settings byte for byte) on a directory tree; the rollout's
rollout_deferrals filter on postqueue -j records.
"""

import base64
import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible_env import REPO

LEVELS = os.path.join(REPO, 'roles', 'enforce_tls', 'files', 'preflight_levels.py')
SETTINGS = os.path.join(REPO, 'playbooks', 'files', 'rollout_settings.py')

needs_postfix = pytest.mark.skipif(not shutil.which('postmap', path='/usr/sbin:/sbin:' + os.environ.get('PATH', '')),
                                   reason='needs Postfix (postconf, postmap)')


def run_json(argv):
    proc = subprocess.run([sys.executable] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def confdir(tmp_path):
    conf = tmp_path / 'postfix'
    conf.mkdir()
    (conf / 'tls_policy').write_text('[127.0.0.1]:10025 none\nkept.example may\nstrict.example verify\n')
    (conf / 'main.cf').write_text('smtp_tls_security_level = may\nsmtp_tls_policy_maps = texthash:%s/tls_policy\n' % conf)
    return conf


def levels(confdir, **request):
    request.setdefault('config_dir', str(confdir))
    encoded = base64.b64encode(json.dumps(request).encode('utf-8')).decode('ascii')
    return dict((d['destination'], d) for d in run_json([LEVELS, encoded])['destinations'])


@needs_postfix
def test_raising_the_global_level_affects_destinations_without_an_entry(confdir):
    found = levels(confdir, destinations=['[127.0.0.1]:10025', 'kept.example', 'new.example', 'strict.example'],
                   global_after='encrypt')
    assert found['new.example']['level_before'] == 'may' and found['new.example']['level'] == 'encrypt'
    assert found['new.example']['affected'] and found['new.example']['probe']
    # entries in the current table keep their level (postmap -q finds them)
    for kept in ('[127.0.0.1]:10025', 'kept.example', 'strict.example'):
        assert not found[kept]['affected'], found[kept]
        assert found[kept]['source_before'].startswith('texthash:'), found[kept]
    assert found['kept.example']['not_probed'] == 'not probed: level stays may'


@needs_postfix
def test_new_entries_removed_entries_and_exclusive(confdir):
    found = levels(confdir, destinations=['kept.example', 'strict.example', 'other.example'],
                   entries=[{'destination': 'KEPT.example', 'level': 'secure'},
                            {'destination': 'strict.example', 'state': 'absent'}],
                   global_after='may')
    assert found['kept.example']['level'] == 'secure' and found['kept.example']['affected']
    assert found['strict.example']['level'] == 'may' and not found['strict.example']['affected']
    assert found['strict.example']['not_probed'] == 'not probed: level lowered to may'
    exclusive = levels(confdir, destinations=['kept.example'], global_after='encrypt', exclusive=True)
    assert exclusive['kept.example']['level'] == 'encrypt' and exclusive['kept.example']['affected']


@needs_postfix
def test_subdomain_patterns_and_the_limit_are_not_probed(confdir):
    found = levels(confdir, destinations=['.sub.example', 'a.example', 'b.example'], global_after='encrypt', max=1)
    assert found['.sub.example']['affected'] and not found['.sub.example']['probe']
    assert 'names no host' in found['.sub.example']['not_probed']
    assert found['a.example']['probe'] and not found['b.example']['probe']
    assert 'enforce_tls_preflight_max' in found['b.example']['not_probed']


def tree(root):
    out = {}
    for top, dirs, files in os.walk(str(root)):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            content = open(path, 'rb').read() if os.path.isfile(path) else None
            out[os.path.relpath(path, str(root))] = (st.st_mode, content)
    return out


def test_restore_puts_back_every_byte_and_mode_and_removes_new_files(tmp_path):
    conf = tmp_path / 'postfix'
    (conf / 'maps.d').mkdir(parents=True)
    (conf / 'main.cf').write_bytes(b'smtp_tls_security_level = may\n')
    (conf / 'maps.d' / 'tls-policy.map').write_bytes(b'[127.0.0.1]:10025 none\n')
    (conf / 'maps.d' / 'tls-policy.map.db').write_bytes(b'\x00\x01index')
    os.chmod(str(conf / 'main.cf'), 0o640)
    os.symlink('main.cf', str(conf / 'link.cf'))
    outside = tmp_path / 'elsewhere'
    outside.mkdir()
    (outside / 'table').write_bytes(b'a.example encrypt\n')
    before, table_before = tree(conf), (outside / 'table').read_bytes()

    saved = run_json([SETTINGS, 'save', str(tmp_path / 'snap'), str(conf),
                      str(outside / 'table'), str(outside / 'table.db')])
    assert saved['roots'] == [str(conf)]
    assert str(outside / 'table') in saved['files']

    (conf / 'main.cf').write_bytes(b'smtp_tls_security_level = encrypt\n')
    os.chmod(str(conf / 'main.cf'), 0o644)
    (conf / 'maps.d' / 'tls-policy.map.db').unlink()
    (conf / 'new.d').mkdir()
    (conf / 'new.d' / 'tls_policy').write_bytes(b'x\n')
    (outside / 'table').write_bytes(b'a.example verify\n')
    (outside / 'table.db').write_bytes(b'index')

    restored = run_json([SETTINGS, 'restore', str(tmp_path / 'snap')])
    expected = [str(conf / 'main.cf'), str(conf / 'maps.d' / 'tls-policy.map.db'), str(outside / 'table')]
    assert sorted(restored['restored']) == sorted(expected)
    assert restored['removed'] == sorted([str(conf / 'new.d'), str(conf / 'new.d' / 'tls_policy'),
                                          str(outside / 'table.db')])
    assert tree(conf) == before
    assert (outside / 'table').read_bytes() == table_before and not (outside / 'table.db').exists()
    # a second restore has nothing to do
    again = run_json([SETTINGS, 'restore', str(tmp_path / 'snap')])
    assert again['restored'] == [] and again['removed'] == []


def test_rollout_deferrals_are_the_tls_reasons_of_postqueue_j():
    sys.path.insert(0, os.path.join(REPO, 'playbooks', 'filter_plugins'))
    try:
        from rollout import rollout_deferrals  # pylint: disable=import-error
    finally:
        sys.path.pop(0)
    lines = '\n'.join(json.dumps(record) for record in [
        {'queue_name': 'deferred', 'queue_id': 'A1', 'recipients': [
            {'address': 'u@plain.test', 'delay_reason': 'TLS is required, but was not offered by host x[127.0.0.2]'},
            {'address': 'v@down.test', 'delay_reason': 'connect to x[127.0.0.9]:25: Connection refused'}]},
        {'queue_name': 'active', 'queue_id': 'B2', 'recipients': [{'address': 'w@ok.test'}]},
    ])
    found = rollout_deferrals(lines + '\n\n', r'(?i)(TLS|STARTTLS|certificate|handshake)')
    assert [(f['key'], f['reason'][:15]) for f in found] == [('A1 u@plain.test', 'TLS is required')]
