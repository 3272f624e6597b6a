# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""mailgw.postfix_tls.postconf_info against the host's real postconf, in a throwaway sandbox.

The module runs as the controller finally runs it (ansible_env.run_module);
the last test runs it in a real ansible-playbook together with the
collection's filters, as the enforce_tls role uses them.
"""

import os
import subprocess

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


def _key_pair(directory, name):
    """A self-signed certificate and its key made by the host's openssl."""
    cert, key = directory / (name + '.crt'), directory / (name + '.key')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj',
                    '/CN=%s.example' % name, '-keyout', str(key), '-out', str(cert)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return str(cert), str(key)


def test_smtpd_key_pairs_are_loaded_with_openssl(sandbox, tmp_path):
    cert, key = _key_pair(tmp_path, 'gw')
    other_cert, other_key = _key_pair(tmp_path, 'other')
    combined = tmp_path / 'combined.pem'
    combined.write_text(open(key).read() + open(cert).read())
    garbage = tmp_path / 'garbage.pem'
    garbage.write_text('not a certificate\n')
    sandbox.main_cf.write_text(sandbox.main_cf_text('smtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\n'
                                                    % (cert, key)))
    # main.cf's pair
    assert info(sandbox, smtpd_key_pairs={})['smtpd_key_pairs'] == [dict(cert=cert, key=key, problem=None)]
    # the inventory's certificate with main.cf's key: another certificate's key
    [pair] = info(sandbox, smtpd_key_pairs={'cert_file': other_cert})['smtpd_key_pairs']
    assert (pair['cert'], pair['key']) == (other_cert, key) and 'KEY_VALUES_MISMATCH' in pair['problem'], pair
    assert info(sandbox, smtpd_key_pairs={'cert_file': other_cert, 'key_file': other_key})[
        'smtpd_key_pairs'][0]['problem'] is None
    # garbage; a key that is in the certificate file ($smtpd_tls_cert_file, Postfix's default)
    [pair] = info(sandbox, smtpd_key_pairs={'cert_file': str(garbage), 'key_file': key})['smtpd_key_pairs']
    assert pair['problem'] and 'PEM' in pair['problem'], pair
    sandbox.main_cf.write_text(sandbox.main_cf_text('smtpd_tls_cert_file = %s\n'
                                                    'smtpd_tls_key_file = $smtpd_tls_cert_file\n' % combined))
    assert info(sandbox, smtpd_key_pairs={})['smtpd_key_pairs'] == [
        dict(cert=str(combined), key=str(combined), problem=None)]
    # a missing file is the stat facts' business, not a pair problem
    assert info(sandbox, smtpd_key_pairs={'cert_file': str(tmp_path / 'gone.crt'), 'key_file': key})[
        'smtpd_key_pairs'][0]['problem'] is None


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


def test_plan_warns_about_entries_an_earlier_table_answers(sandbox):
    """A table listed before the planned one answers a planned key first: Postfix never uses
    that entry. The plan gives tls_policy's warning in the read (the enforce_tls role keeps
    an existing smtp_tls_policy_maps order)."""
    earlier = sandbox.tmp / 'earlier.regexp'
    earlier.write_text('/^example\\.com$/ verify\n')
    sandbox.real_postconf('-e', 'smtp_tls_policy_maps = regexp:%s, %s' % (earlier, sandbox.map_spec))
    args = dict(parameters=['smtp_tls_policy_maps'], tls_policy_plan=dict(policies=POLICIES, path=str(sandbox.table)))
    result = info(sandbox, **args)
    assert result['tls_policy_plan']['failed'] is False
    assert ["destination 'example.com': regexp:%s, listed before %s in smtp_tls_policy_maps, answers first (verify): "
            "Postfix uses that answer and never this entry; remove the key there or list %s first"
            % (earlier, sandbox.map_spec, sandbox.map_spec)] == [w for w in result.get('warnings', [])
                                                                 if 'listed before' in w]


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


def test_a_missing_tafile_refuses_the_plan_of_a_real_run_only(sandbox, tmp_path):
    # as the table task: refused in a real run (it would fail there after the read), a warning
    # in a check run (an earlier task of the play may create the file)
    policies = {'t.example': 'secure match=t.example tafile=%s' % (tmp_path / 'missing-ta.pem')}
    real = info(sandbox, tls_policy_plan=dict(policies=policies, path=str(sandbox.table)))['tls_policy_plan']
    assert real['failed'] is True and 'missing-ta.pem' in real['msg'] and 'does not exist' in real['msg'], real
    check = info(sandbox, check=True, tls_policy_plan=dict(policies=policies, path=str(sandbox.table)))
    assert check['tls_policy_plan']['failed'] is False, check['tls_policy_plan']
    assert any('an earlier task may create it' in str(w) for w in check.get('warnings', [])), check


# -- tls_policy_levels: the preflight's levels in the same round trip -----------------------

LEVEL_TABLE = 'example.com encrypt\nkept.example may\n[127.0.0.1]:10025 none\n'
STANDALONE = 'mailgw.postfix_tls.tls_policy_levels'
COMPARED = ('destinations', 'affected', 'level_before', 'level', 'table', 'policy_maps')


def read_with_levels(sandbox, policies, check=False, plan_extra=None, **levels):
    args = dict(parameters=['smtp_tls_security_level'], user_parameters=['maps_d_dir'],
                tls_policy_plan=dict(dict(policies=policies, path=str(sandbox.table)), **(plan_extra or {})),
                tls_policy_levels=levels)
    return info(sandbox, check=check, **args)


def test_levels_in_the_read_are_what_tls_policy_levels_returns(sandbox):
    sandbox.seed(LEVEL_TABLE)
    with sandbox.main_cf.open('a') as handle:
        handle.write('smtp_tls_security_level = may\n')
    policies = {'example.com': 'verify match=nexthop', 'new.example': 'encrypt', 'kept.example': None}
    before = sandbox.snapshot()
    for check in (False, True):
        # the planned entries' destinations are looked at without being listed
        destinations = ['other.example'] + list(policies)
        result = read_with_levels(sandbox, policies, check=check, destinations=['other.example'],
                                  level='encrypt', only_when_changing=True)
        got = result['tls_policy_levels']
        # the table, entries and exclusive are the plan's; the module given them explicitly agrees
        alone = sandbox.run(STANDALONE, dict(destinations=destinations, policies=policies,
                                             table=sandbox.map_spec, level='encrypt'))
        assert got['failed'] is False and got['skipped'] is False, got
        assert dict((k, got[k]) for k in COMPARED) == dict((k, alone[k]) for k in COMPARED)
        assert got['change'] == 'the table %s changes' % sandbox.map_spec
        found = dict((d['destination'], d) for d in got['destinations'])
        assert (found['example.com']['level_before'], found['example.com']['level']) == ('encrypt', 'verify')
        assert found['other.example']['affected'] is True and found['kept.example']['level'] == 'encrypt'
        assert got['smtpd_level_before'] == got['smtpd_level']
    assert sandbox.snapshot() == before and sandbox.leftovers() == []


def test_a_converged_read_skips_the_levels_and_runs_no_postmap(sandbox):
    policies = {'example.com': 'encrypt', 'kept.example': 'may', '[127.0.0.1]:10025': 'none'}
    sandbox.seed(LEVEL_TABLE)
    with sandbox.main_cf.open('a') as handle:
        handle.write('smtp_tls_security_level = encrypt\nsmtpd_tls_security_level = encrypt\n')
    postmap = sandbox.record('postmap')
    finger = sandbox.record('posttls-finger')
    result = read_with_levels(sandbox, policies, destinations=['other.example'], level='encrypt',
                              smtpd_level='encrypt', only_when_changing=True, log=True, probe=True)
    got = result['tls_policy_levels']
    assert got['skipped'] is True and got['change'] is None and 'nothing' in got['skip_reason']
    assert (got['level_before'], got['level']) == ('encrypt', 'encrypt')
    assert postmap.calls() == [] and finger.calls() == [] and 'destinations' not in got
    # each thing that can change a lookup opens the gate, and says which
    cases = [
        (dict(level='secure'), 'smtp_tls_security_level goes from encrypt to secure'),
        (dict(level='may'), 'smtp_tls_security_level goes from encrypt to may'),
        (dict(level='may', keep_stricter_level=True), None),      # encrypt is kept: no change
    ]
    for levels, change in cases:
        got = read_with_levels(sandbox, policies, only_when_changing=True, **levels)['tls_policy_levels']
        assert got['change'] == change, (levels, got)
        assert got['skipped'] is (change is None)
    kept = read_with_levels(sandbox, policies, level='may', keep_stricter_level=True)['tls_policy_levels']
    assert kept['level'] == 'encrypt' and kept['skipped'] is False and kept['affected'] == []
    # smtpd raised to encrypt (only from below encrypt)
    sandbox.real_postconf('-e', 'smtpd_tls_security_level = may')
    got = read_with_levels(sandbox, policies, smtpd_level='encrypt', only_when_changing=True)['tls_policy_levels']
    assert got['change'] == 'smtpd_tls_security_level goes from may to encrypt'
    assert (got['smtpd_level_before'], got['smtpd_level']) == ('may', 'encrypt')
    # a table smtp_tls_policy_maps does not list yet
    sandbox.real_postconf('-e', 'smtp_tls_policy_maps =')
    got = read_with_levels(sandbox, policies, only_when_changing=True)['tls_policy_levels']
    assert got['change'] == 'smtp_tls_policy_maps gets %s' % sandbox.map_spec and got['skipped'] is False


def test_levels_problems_do_not_fail_the_read(sandbox):
    sandbox.seed(LEVEL_TABLE)
    # an option tls_policy_levels refuses
    result = read_with_levels(sandbox, {'example.com': 'encrypt'}, destinations=['bad key with spaces'], max=-1)
    got = result['tls_policy_levels']
    assert got['failed'] is True and 'tls_policy_levels.max: -1' in got['msg'] and 'tls_policy_levels.destinations' in got['msg']
    assert got['skipped'] is False
    assert result['parameters']['smtp_tls_security_level'] == ''
    # a refused plan: nothing is worked out, the plan says why
    result = read_with_levels(sandbox, {'x.example': 'tight'}, level='encrypt')
    assert result['tls_policy_plan']['failed'] is True
    assert result['tls_policy_levels']['skipped'] is True and 'refused' in result['tls_policy_levels']['skip_reason']
    # a table that is not a key/value file
    got = read_with_levels(sandbox, {'example.com': 'encrypt'}, table='pcre:/etc/x')['tls_policy_levels']
    assert got['failed'] is True and got['msg'].startswith('tls_policy_levels.table:'), got


def test_what_would_end_tls_policy_levels_is_the_results_failure_not_the_reads(sandbox, tmp_path):
    """tls_policy_levels (the module) fails on a log file that is not there; inside the read the
    same failure is tls_policy_levels.failed with the module's message, and the read succeeds."""
    sandbox.seed(LEVEL_TABLE)
    missing = str(tmp_path / 'no-such-mail.log')
    options = dict(level='encrypt', log=True, log_source='file', log_files=[missing])
    alone = sandbox.run(STANDALONE, dict(options, policies={'example.com': 'verify'}, table=sandbox.map_spec))
    assert alone.get('failed') and alone['msg'] == 'log_files: %s does not exist' % missing, alone
    result = read_with_levels(sandbox, {'example.com': 'verify'}, **options)
    got = result['tls_policy_levels']
    assert got['failed'] is True and got['skipped'] is False and got['msg'] == alone['msg'], got
    assert result['parameters']['smtp_tls_security_level'] == '' and result['tls_policy_plan']['failed'] is False


def test_levels_take_exclusive_from_the_plan(sandbox):
    """An exclusive plan removes the table's other entries: their destinations fall back to the
    global level, and the read's levels (exclusive taken from the plan) look at them."""
    sandbox.seed(LEVEL_TABLE)
    with sandbox.main_cf.open('a') as handle:
        handle.write('smtp_tls_security_level = encrypt\n')
    policies = {'example.com': 'encrypt', '[127.0.0.1]:10025': 'none'}
    got = read_with_levels(sandbox, policies, plan_extra=dict(exclusive=True),
                           only_when_changing=True)['tls_policy_levels']
    assert got['skipped'] is False and got['change'] == 'the table %s changes' % sandbox.map_spec, got
    found = dict((d['destination'], d) for d in got['destinations'])
    # kept.example loses its "may" entry: encrypt from then on, so it is affected
    assert (found['kept.example']['level_before'], found['kept.example']['level']) == ('may', 'encrypt')
    assert got['affected'] == ['kept.example']
    # without exclusive the entry stays and nothing gets stricter
    kept = read_with_levels(sandbox, policies, only_when_changing=True)['tls_policy_levels']
    assert kept['skipped'] is True and kept['change'] is None, kept
