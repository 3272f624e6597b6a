# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""mailgw.postfix_tls.postconf_info against the host's real postconf, in a throwaway sandbox.

The module runs as the controller finally runs it (ansible_env.run_module);
the last test runs it in a real ansible-playbook together with the
collection's filters, as the enforce_tls role uses them.
"""

import os

from postfix_sandbox import needs_postfix

MODULE = 'mailgw.postfix_tls.postconf_info'

pytestmark = needs_postfix


def info(sandbox, check=False, **args):
    result = sandbox.run(MODULE, args, check=check)
    assert not result.get('failed'), result
    assert result['changed'] is False
    return result


def test_values_as_written_and_expanded(sandbox):
    result = info(sandbox, parameters=['smtp_tls_policy_maps', 'smtpd_tls_security_level',
                                       'smtp_tls_security_level', 'smtpd_tls_key_file'])
    table = 'hash:%s' % sandbox.table
    assert result['parameters'] == {
        'smtp_tls_policy_maps': 'hash:${maps_d_dir}/tls-policy.map',
        'smtpd_tls_security_level': 'may',
        'smtp_tls_security_level': '',                      # Postfix's default
        'smtpd_tls_key_file': '$smtpd_tls_cert_file',        # default, not expanded
    }
    assert result['expanded']['smtp_tls_policy_maps'] == table
    assert result['expanded']['smtpd_tls_key_file'] == sandbox.real_postconf('-x', '-h', 'smtpd_tls_cert_file').strip()
    assert result['unknown_parameters'] == []
    assert result['config_dir'] == str(sandbox.confdir)


def test_user_defined_parameters_are_read_even_when_nothing_references_them(sandbox):
    sandbox.main_cf.write_text(sandbox.main_cf_text('cm_dir = $config_directory/cm\n'))
    # postconf itself does not show an unreferenced user-defined parameter.
    assert 'cm_dir' not in sandbox.real_postconf('-n')
    result = info(sandbox, parameters=['smtp_tls_security_level'], user_parameters=['cm_dir', 'maps_d_dir', 'unset_dir'])
    assert result['parameters']['cm_dir'] == '$config_directory/cm'
    assert result['expanded']['cm_dir'] == '%s/cm' % sandbox.confdir
    assert result['expanded']['maps_d_dir'] == str(sandbox.maps_dir)
    # A user-defined name that main.cf does not set is simply absent, not "unknown".
    assert 'unset_dir' not in result['parameters'] and 'unset_dir' not in result['expanded']
    assert result['unknown_parameters'] == []


def test_unknown_names_are_listed_and_left_out(sandbox):
    result = info(sandbox, parameters=['smtp_tls_security_lvel', 'smtpd_tls_security_level'])
    assert result['unknown_parameters'] == ['smtp_tls_security_lvel']
    assert list(result['parameters']) == ['smtpd_tls_security_level']


def test_services_version_and_map_types(sandbox):
    result = info(sandbox)
    assert result['parameters'] == {} and result['expanded'] == {}
    assert result['services'] == sorted(['smtp/inet', '127.0.0.1:10026/inet', 'submission/inet', 'pickup/unix',
                                         'cleanup/unix', 'qmgr/unix', 'smtp/unix', 'relay/unix'])
    version = sandbox.real_postconf('-h', 'mail_version').strip()
    assert result['version'] == version
    assert result['version_info'] == [int(n) for n in version.split('.')[:3]]
    assert result['map_types'] == sorted(sandbox.real_postconf('-m').split())
    # the command field of each postconf -M line, for every service
    assert result['service_commands'] == dict(
        ('%s/%s' % (f[0], f[1]), f[7]) for f in (line.split() for line in sandbox.real_postconf('-M').splitlines()))
    assert result['service_commands']['smtp/inet'] == 'smtpd' and result['service_commands']['smtp/unix'] == 'smtp'
    assert 'hash' in result['map_types'] and 'texthash' in result['map_types']


def test_service_overrides_as_written(sandbox):
    sandbox.real_postconf('-P', '127.0.0.1:10026/inet/smtpd_tls_security_level=none',
                          '127.0.0.1:10026/inet/smtpd_tls_cert_file=$config_directory/x.pem')
    result = info(sandbox)
    overrides = result['service_parameters']['127.0.0.1:10026/inet']
    assert overrides['smtpd_tls_security_level'] == 'none'
    assert overrides['smtpd_tls_cert_file'] == '$config_directory/x.pem'      # not expanded
    # every service postconf -P lists, and only those
    listed = set(line.split(' =')[0].rsplit('/', 1)[0] for line in sandbox.real_postconf('-P').splitlines())
    assert set(result['service_parameters']) == listed


def test_file_facts_for_paths_and_for_the_files_parameters_name(sandbox, tmp_path):
    tls = tmp_path / 'tls'
    tls.mkdir()
    (tls / 'gw.crt').write_text('-----BEGIN CERTIFICATE-----\n')
    (tls / 'empty.key').write_text('')
    os.symlink(str(tls / 'gw.crt'), str(tls / 'link.crt'))
    os.symlink(str(tls / 'gone'), str(tls / 'dangling.crt'))
    sandbox.main_cf.write_text(sandbox.main_cf_text(
        'smtpd_tls_cert_file = %(d)s/link.crt\nsmtpd_tls_key_file = %(d)s/empty.key\n'
        'tls_dir = %(d)s\nsmtpd_tls_chain_files = ${tls_dir}/gw.crt,${tls_dir}/missing.pem\n'
        '    ${tls_dir}/dangling.crt\n' % {'d': tls}))
    result = info(sandbox, user_parameters=['tls_dir'],
                  file_parameters=['smtpd_tls_cert_file', 'smtpd_tls_key_file', 'smtpd_tls_eccert_file',
                                   'smtpd_tls_chain_files', 'maps_d_dir'],
                  files=[str(sandbox.confdir), str(tmp_path / 'nowhere'), str(tls / 'gw.crt')])
    assert result['parameter_files'] == {
        'smtpd_tls_cert_file': ['%s/link.crt' % tls],
        'smtpd_tls_key_file': ['%s/empty.key' % tls],
        'smtpd_tls_eccert_file': [],                              # empty: no file
        'smtpd_tls_chain_files': ['%s/gw.crt' % tls, '%s/missing.pem' % tls, '%s/dangling.crt' % tls],
        'maps_d_dir': [str(sandbox.maps_dir)],                    # a user-defined name works too
    }
    files = result['files']
    regular = {'exists': True, 'isreg': True, 'isdir': False, 'readable': True}
    missing = {'exists': False, 'isreg': False, 'isdir': False, 'readable': False, 'size': 0}
    assert files['%s/gw.crt' % tls] == dict(regular, size=28)
    assert files['%s/link.crt' % tls] == dict(regular, size=28)      # the link is followed
    assert files['%s/empty.key' % tls] == dict(regular, size=0)
    assert files['%s/missing.pem' % tls] == missing
    assert files['%s/dangling.crt' % tls] == missing
    assert files[str(tmp_path / 'nowhere')] == missing
    for directory in (sandbox.confdir, sandbox.maps_dir):
        assert files[str(directory)]['isdir'] is True and files[str(directory)]['isreg'] is False
    assert len(files) == 8                                           # each path once


def test_reads_only_and_the_same_in_check_mode(sandbox):
    calls = sandbox.record('postconf')
    before = sandbox.snapshot()
    args = dict(parameters=['smtp_tls_policy_maps', 'default_database_type'], user_parameters=['maps_d_dir'],
                file_parameters=['smtpd_tls_cert_file'], files=[str(sandbox.table)])
    real = info(sandbox, **args)
    checked = info(sandbox, check=True, **args)
    assert real == checked
    assert sandbox.snapshot() == before
    # No -e/-X/-P edit and no NAME=VALUE argument except the -o read-time override.
    for call in calls.calls():
        args = call.split()
        assert not {'-e', '-X'} & set(args), call
        assert [a for i, a in enumerate(args) if '=' in a and args[i - 1] != '-o'] == [], call
    # One module call, five postconf runs: as written, expanded, services, their
    # overrides (-P without NAME=VALUE only reads), map types.
    assert len(calls.calls()) == 10


def test_fails_naming_the_configuration_postconf_cannot_read(sandbox, tmp_path):
    empty = tmp_path / 'empty'
    empty.mkdir()
    result = sandbox.run(MODULE, {'config_dir': str(empty), 'parameters': ['smtp_tls_security_level']})
    assert result['failed'] is True
    assert result['msg'].startswith('postconf cannot read the configuration in %s: ' % empty), result['msg']
    assert 'main.cf' in result['msg']
    sandbox.master_cf.unlink()
    result = sandbox.run(MODULE, {})
    assert result['failed'] is True and 'master.cf' in result['msg'], result


def test_refuses_bad_names_and_relative_paths(sandbox):
    result = sandbox.run(MODULE, {'parameters': ['smtp tls'], 'file_parameters': ['x=y'], 'files': ['tls/gw.crt']})
    assert result['failed'] is True
    for fragment in ("parameters: invalid parameter name 'smtp tls'", "file_parameters: invalid parameter name 'x=y'",
                     "files: 'tls/gw.crt' is not an absolute path"):
        assert fragment in result['msg'], result['msg']


def test_in_a_playbook_with_the_filters(sandbox):
    sandbox.main_cf.write_text(sandbox.main_cf_text('smtp_use_tls = yes\nsmtpd_tls_security_level = encrypt\n'))
    tasks = [
        {'name': 'read', 'mailgw.postfix_tls.postconf_info': {
            'config_dir': str(sandbox.confdir),
            'parameters': ['smtp_tls_security_level', 'smtp_use_tls', 'smtp_enforce_tls',
                           'smtp_tls_enforce_peername', 'smtpd_tls_security_level', 'smtp_tls_policy_maps'],
            'user_parameters': ['maps_d_dir']},
         'register': 'postfix'},
        {'name': 'decide', 'ansible.builtin.set_fact': {
            'outgoing': "{{ postfix.expanded | mailgw.postfix_tls.current_tls_level('smtp') }}",
            'incoming': "{{ postfix.expanded | mailgw.postfix_tls.current_tls_level('smtpd') }}",
            'rank': "{{ 'secure' | mailgw.postfix_tls.tls_level_rank('smtp') }}",
            'maps': "{{ postfix.parameters.smtp_tls_policy_maps | mailgw.postfix_tls.policy_maps_with_table("
                    "'lmdb:/etc/postfix/tls_policy', postfix.expanded.smtp_tls_policy_maps) }}",
            'tables': "{{ postfix.expanded.smtp_tls_policy_maps | mailgw.postfix_tls.postfix_list }}"}},
    ]
    results, stats = sandbox.playbook(tasks, check=True)
    assert stats.get('failures', 0) == 0 and stats.get('changed', 0) == 0, results
    facts = results[1]['ansible_facts']
    assert facts['outgoing'] == 'may'          # smtp_use_tls = yes, no security level
    assert facts['incoming'] == 'encrypt'
    assert facts['rank'] == 5
    assert facts['maps'] == 'lmdb:/etc/postfix/tls_policy, hash:${maps_d_dir}/tls-policy.map'
    assert facts['tables'] == ['hash:%s' % sandbox.table]


# -- tls_policy_plan: the plan of a tls_policy task in the same round trip ------------------

POLICIES = {'example.com': 'secure match=nexthop', '[127.0.0.1]:10025': 'none', 'old.example': None}
PLANNED = ('table_differs', 'map', 'path', 'map_type', 'added', 'updated', 'removed', 'postmap_ran')


def plan(sandbox, policies=None, check=False, **extra):
    args = dict(parameters=['smtp_tls_policy_maps', 'default_database_type'], user_parameters=['maps_d_dir'],
                tls_policy_plan=dict(dict(policies=POLICIES if policies is None else policies), **extra))
    return info(sandbox, check=check, **args)['tls_policy_plan']


def test_plan_is_what_tls_policy_does_in_check_mode_and_writes_nothing(sandbox):
    sandbox.seed('example.com encrypt\n# ours\nforeign.example may\n')
    before = sandbox.snapshot()
    planned = plan(sandbox, path=str(sandbox.table))
    checked = sandbox.tls_policy(dict(policies=POLICIES, path=str(sandbox.table)), check=True)
    assert planned['failed'] is False
    assert dict((k, planned[k]) for k in PLANNED) == dict((k, checked[k]) for k in PLANNED)
    assert planned['table_differs'] is True and planned['updated'] == ['example.com']
    assert planned['added'] == ['[127.0.0.1]:10025'] and planned['map'] == sandbox.map_spec
    assert sandbox.snapshot() == before and sandbox.leftovers() == []
    # after the table task, the plan finds nothing to do (and tls_policy in check mode agrees)
    written = sandbox.tls_policy(dict(policies=POLICIES, path=str(sandbox.table)))
    assert written['changed'] is True
    again = plan(sandbox, path=str(sandbox.table))
    assert again['table_differs'] is False and again['added'] == again['updated'] == again['removed'] == []
    # the plan reads nothing the read already read: still five postconf runs in all
    calls = sandbox.record('postconf')
    plan(sandbox, path=str(sandbox.table))
    assert len(calls.calls()) == 5, calls.calls()
    # owner/group/mode count as for tls_policy: another mode is a difference
    assert plan(sandbox, path=str(sandbox.table), mode='0600')['table_differs'] is True
    assert plan(sandbox, path=str(sandbox.table), check=True)['table_differs'] is False


def test_plan_path_with_parameter_references_expanded_as_postfix_does(sandbox):
    sandbox.seed('example.com secure match=nexthop\n[127.0.0.1]:10025 none\n')
    planned = plan(sandbox, path='${maps_d_dir}${maps_d_dir:/nowhere}/$(default_database_type)-x/../%s'
                   % sandbox.table.name, map_type='${default_database_type}')
    assert planned['failed'] is False, planned
    assert planned['path'] == '%s/hash-x/../%s' % (sandbox.maps_dir, sandbox.table.name)
    # a directory that does not exist yet: the table is new, nothing else is checked
    missing = plan(sandbox, path='${maps_d_dir}/new.d/tls_policy')
    assert missing == dict(failed=False, table_differs=True, directory_missing=True,
                           path='%s/new.d/tls_policy' % sandbox.maps_dir)
    unknown = plan(sandbox, path='${no_such_dir}/tls_policy')
    assert unknown['failed'] is True and '$no_such_dir' in unknown['msg'] and 'user_parameters' in unknown['msg']


def test_a_refused_plan_does_not_fail_the_read(sandbox):
    before = sandbox.snapshot()
    result = info(sandbox, parameters=['smtp_tls_security_level'],
                  tls_policy_plan=dict(policies={'x.example': 'tight', 'y.example': 'secure match=nexthop'},
                                       path=str(sandbox.table)))
    assert result['parameters'] == {'smtp_tls_security_level': ''}
    refused = result['tls_policy_plan']
    assert refused['failed'] is True and refused['table_differs'] is True
    assert "destination 'x.example'" in refused['msg'] and 'tight' in refused['msg']
    assert sandbox.snapshot() == before
