# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tls_policy's main_cf option: the table, then main.cf's parameters, in one task.

Against the host's real postconf and postmap, in a sandbox (tests/integration/conftest.py):
the order (the table is built before main.cf names it), idempotence, the diff of both files,
main.cf's owner and mode kept, a bad name or value refused before anything is written, and a
main.cf write that fails after the table was written. Check mode: test_tls_policy_check_mode.py.
"""

import os
import stat

from postfix_sandbox import assert_failed, assert_ok, assert_unchanged, needs_postfix

pytestmark = needs_postfix

POLICIES = {'example.com': 'secure match=nexthop:dot-nexthop', '[127.0.0.1]:10025': 'none'}


def new_table(sandbox):
    path = sandbox.maps_dir / 'wired.map'
    return path, 'hash:%s' % path


def test_table_then_main_cf_in_one_task_idempotent(make_sandbox):
    sandbox = make_sandbox()
    postmap_calls = sandbox.record('postmap')
    postconf_calls = sandbox.record('postconf')
    path, spec = new_table(sandbox)
    wired_before = sandbox.explicit('smtp_tls_policy_maps')     # hash:${maps_d_dir}/tls-policy.map
    args = {'path': str(path), 'map_type': 'hash', 'policies': POLICIES,
            'main_cf': {'smtp_tls_policy_maps': [spec], 'smtp_tls_security_level': 'encrypt'}}
    first = assert_ok(sandbox.tls_policy(args))
    assert first['changed'] is True and first['table_differs'] is True
    assert sorted(first['added']) == ['[127.0.0.1]:10025', 'example.com']
    assert first['main_cf'] == {
        'changed': True, 'restart_required': False, 'config_file': str(sandbox.main_cf),
        'params': {'smtp_tls_policy_maps': {'before': wired_before, 'after': spec},
                   'smtp_tls_security_level': {'before': None, 'after': 'encrypt'}}}
    # what Postfix reads now: the table built, main.cf naming it
    assert sandbox.query('example.com', '[127.0.0.1]:10025', path=path, map_type='hash') == POLICIES
    assert sandbox.explicit('smtp_tls_policy_maps') == spec
    assert sandbox.explicit('smtp_tls_security_level') == 'encrypt'
    assert len(postmap_calls.builds()) == 1 and len(postconf_calls.writes()) == 1

    before = sandbox.snapshot()
    again = assert_ok(sandbox.tls_policy(dict(args, main_cf={'smtp_tls_policy_maps': spec,
                                                             'smtp_tls_security_level': 'encrypt'})))
    assert again['changed'] is False and again['table_differs'] is False
    assert again['main_cf']['changed'] is False
    assert again['main_cf']['params']['smtp_tls_policy_maps'] == {'before': spec, 'after': spec}
    assert_unchanged(before, sandbox.snapshot())
    assert len(postmap_calls.builds()) == 1 and len(postconf_calls.writes()) == 1


def test_only_main_cf_differs(make_sandbox):
    """The table as asked, main.cf not: a change, table_differs false, no postmap."""
    sandbox = make_sandbox()
    postmap_calls = sandbox.record('postmap')
    assert_ok(sandbox.tls_policy({'policies': POLICIES}))
    built = len(postmap_calls.builds())
    result = assert_ok(sandbox.tls_policy({'policies': POLICIES, 'main_cf': {'smtp_tls_loglevel': 1}}))
    assert result['changed'] is True and result['table_differs'] is False
    assert result['main_cf']['params'] == {'smtp_tls_loglevel': {'before': None, 'after': '1'}}
    assert sandbox.explicit('smtp_tls_loglevel') == '1'
    assert len(postmap_calls.builds()) == built


def test_diff_shows_both_files(make_sandbox):
    sandbox = make_sandbox()
    path, spec = new_table(sandbox)
    wired_before = sandbox.explicit('smtp_tls_policy_maps')
    result = assert_ok(sandbox.tls_policy({'path': str(path), 'map_type': 'hash', 'policies': POLICIES,
                                           'main_cf': {'smtp_tls_policy_maps': spec}}, diff=True))
    table_diff, main_cf_diff = result['diff']
    assert table_diff['after_header'] == str(path) and 'example.com secure' in table_diff['after']
    assert main_cf_diff['after_header'] == str(sandbox.main_cf)
    assert main_cf_diff['before'] == 'smtp_tls_policy_maps = %s\n' % wired_before
    assert main_cf_diff['after'] == 'smtp_tls_policy_maps = %s\n' % spec
    # main.cf as asked: only the table's diff
    again = assert_ok(sandbox.tls_policy({'path': str(path), 'map_type': 'hash',
                                          'policies': dict(POLICIES, **{'b.example': 'may'}),
                                          'main_cf': {'smtp_tls_policy_maps': spec}}, diff=True))
    assert isinstance(again['diff'], dict) and again['diff']['after_header'] == str(path)


def test_main_cf_owner_and_mode_kept(make_sandbox):
    sandbox = make_sandbox()
    os.chmod(str(sandbox.main_cf), 0o640)
    os.chown(str(sandbox.main_cf), 0, 65534)
    assert_ok(sandbox.tls_policy({'policies': POLICIES, 'main_cf': {'smtp_tls_security_level': 'may'}}))
    st = os.stat(str(sandbox.main_cf))
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, 65534)
    assert sandbox.explicit('smtp_tls_security_level') == 'may'


def test_bad_name_or_value_changes_nothing(make_sandbox):
    sandbox = make_sandbox()
    path, spec = new_table(sandbox)
    before = sandbox.snapshot()
    typo = sandbox.tls_policy({'path': str(path), 'map_type': 'hash', 'policies': POLICIES,
                               'main_cf': {'smtp_tls_securty_level': 'encrypt'}})
    assert_failed(typo, 'main_cf: ', 'smtp_tls_securty_level', "did you mean 'smtp_tls_security_level'",
                  'Set it with mailgw.postfix_tls.postconf and allow_unknown=true', 'nothing was changed')
    bad_value = sandbox.tls_policy({'path': str(path), 'map_type': 'hash', 'policies': POLICIES,
                                    'main_cf': {'smtp_tls_policy_maps': 'hash:%s\nsmtpd_banner = x' % path}})
    assert_failed(bad_value, 'main_cf: ', 'smtp_tls_policy_maps', 'nothing was changed')
    bad_name = sandbox.tls_policy({'policies': POLICIES, 'main_cf': {'smtp tls': 'x'}})
    assert_failed(bad_name, 'main_cf: ', "'smtp tls'")
    assert_unchanged(before, sandbox.snapshot())
    assert not path.exists()


def test_main_cf_write_fails_after_the_table(make_sandbox):
    """postconf -e fails: the table stays written and indexed (it is complete on its own),
    main.cf is as it was, and the message says both."""
    sandbox = make_sandbox()
    path, spec = new_table(sandbox)
    sandbox.shim('postconf', '''
        for arg in "$@"; do
          if [ "$arg" = -e ]; then echo "postconf: fatal: open main.cf: No space left on device" >&2; exit 1; fi
        done
        exec /usr/sbin/postconf "$@"
    ''')
    main_cf = sandbox.main_cf.read_bytes()
    result = sandbox.tls_policy({'path': str(path), 'map_type': 'hash', 'policies': POLICIES,
                                 'main_cf': {'smtp_tls_policy_maps': spec}})
    assert_failed(result, 'the TLS policy table %s was written and indexed' % spec,
                  'main_cf could not be set (main.cf was not changed)', 'No space left on device')
    assert result['changed'] is True
    assert sandbox.main_cf.read_bytes() == main_cf
    assert sandbox.query('example.com', path=path, map_type='hash') == {'example.com': POLICIES['example.com']}
