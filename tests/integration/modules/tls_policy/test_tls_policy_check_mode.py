# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Check mode of mailgw.postfix_tls.tls_policy writes nothing at all, not even a temporary or lock file.

The ``frozen_sandbox`` fixture (tests/integration/conftest.py) makes the
configuration and maps directories and every file in them immutable
(chattr +i) for the run: any attempt to create, rename or modify a file there
fails with EPERM, which would make the task fail.  The tasks run as one
``--check --diff`` play through the real ``ansible-playbook``; every task
must succeed and report the change it would make.  TMPDIR points at an empty
directory that must stay empty, and a recording postmap shows that no index
was built (postfix_sandbox.assert_check_mode_writes_nothing).
"""

from postfix_sandbox import TLS_POLICY, assert_check_mode_writes_nothing, needs_postfix, needs_root

pytestmark = [needs_postfix, needs_root('chattr')]


def test_tls_policy_check_mode_writes_nothing(frozen_sandbox):
    sandbox = frozen_sandbox
    new_table = sandbox.maps_dir / 'new-policy.map'
    results = assert_check_mode_writes_nothing(sandbox, [
        sandbox.task(TLS_POLICY, {'destination': 'new.example', 'level': 'secure', 'match': ['nexthop']}),
        sandbox.task(TLS_POLICY, {'destination': 'old.example', 'level': 'dane'}),
        sandbox.task(TLS_POLICY, {'destination': 'old.example', 'state': 'absent'}),
        sandbox.task(TLS_POLICY, {'exclusive': True, 'entries': [{'destination': 'only.example', 'level': 'may'}]}),
        sandbox.task(TLS_POLICY, {'destination': 'new.example', 'level': 'may', 'backup': True, 'mode': '0600'}),
        sandbox.task(TLS_POLICY, {'destination': 'keep.example', 'level': 'may', 'ciphers': 'high',
                                  'owner': 'nobody', 'group': 'nogroup'}),
        sandbox.task(TLS_POLICY, {'destination': 'a.example', 'level': 'may', 'path': str(new_table),
                                  'map_type': 'hash'}),
        sandbox.task(TLS_POLICY, {'destination': 'a.example', 'level': 'may', 'path': str(new_table),
                                  'map_type': 'texthash'}),
        sandbox.task(TLS_POLICY, {'destination': 'stale.example', 'level': 'may', 'path': str(sandbox.stale),
                                  'map_type': 'hash'}),
        # the table and main.cf (main_cf): neither written
        sandbox.task(TLS_POLICY, {'destination': 'new.example', 'level': 'may', 'path': str(new_table),
                                  'map_type': 'hash', 'main_cf': {'smtp_tls_policy_maps': 'hash:%s' % new_table,
                                                                  'smtp_tls_security_level': 'encrypt'}}),
    ])
    assert results[0]['added'] == ['new.example'] and 'new.example secure' in results[0]['diff']['after']
    assert results[1]['updated'] == ['old.example']
    assert results[2]['removed'] == ['old.example']
    assert results[8]['postmap_ran'] is True and results[8]['added'] == []     # stale index, would rebuild
    # what the enforce_tls role's check-mode plan reads: every one of these would change the table
    # (entries, index, owner/mode, a new file)
    assert [r['table_differs'] for r in results] == [r['changed'] for r in results] == [True] * len(results)
    assert not new_table.exists()
    main_cf = results[9]['main_cf']
    assert main_cf['changed'] is True and main_cf['params']['smtp_tls_security_level']['after'] == 'encrypt'
    assert [d['after_header'] for d in results[9]['diff']] == [str(new_table), str(sandbox.main_cf)]
