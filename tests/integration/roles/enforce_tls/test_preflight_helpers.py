# Copyright: (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The helpers of the rollout, run as the playbooks run them.

playbooks/files/rollout_settings.py (save and restore the TLS settings byte
for byte) on a directory tree; the rollout's rollout_deferrals filter on
postqueue -j records. Which destinations a run makes stricter (the
preflight's levels) is the module mailgw.postfix_tls.tls_policy_levels, tested
in tests/integration/modules/tls_policy_levels.
"""

import json
import os
import subprocess
import sys

from ansible_env import REPO

SETTINGS = os.path.join(REPO, 'playbooks', 'files', 'rollout_settings.py')


def run_json(argv):
    proc = subprocess.run([sys.executable] + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


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
