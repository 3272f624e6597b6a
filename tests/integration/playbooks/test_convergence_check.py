# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The CI convergence check: playbooks/check-drift, playbooks/check.yml and the
mailgw.postfix_tls.drift_report callback.

The container test starts two gateways of the example fleet with the demo's
own code (``scripts/demo.sh fleet``: edge-1 on bookworm with the plain Postfix
layout, cm-1 on trixie with the CipherMail layout), converges them with
playbooks/site.yml and the example inventory, and then checks that

- a converged fleet passes: exit 0, no drift and no failures in the JSON
  report, a JUnit file without failures;
- drift made by hand (an edited line in edge-1's policy table, a level lowered
  with postconf on cm-1) fails the check with exit 2 and is named in both
  reports: host, task and a diff with the old and the new line, and only
  there (the other host's tasks are not blamed);
- the check changes nothing on the hosts.

The host-only tests exercise the wrapper's exit codes and the report format
on localhost with a throwaway playbook, and a play in check mode by its
keywords (as check.yml) run without --check.
"""

import json
import os
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET

import pytest

from ansible_env import REPO, ansible_env

CHECK_DRIFT = os.path.join(REPO, 'playbooks', 'check-drift')
SITE = os.path.join(REPO, 'playbooks', 'site.yml')
CHECK_YML = os.path.join(REPO, 'playbooks', 'check.yml')
INVENTORY = os.path.join(REPO, 'playbooks', 'inventory')
DEMO = os.path.join(REPO, 'scripts', 'demo.sh')
IMAGE_REPO = 'localhost/mailgw-postfix'


def _env():
    # Default stdout callback: the tests read the human output and the
    # drift_report callback's files.
    return ansible_env(json_output=False, interpreter=None,
                       ANSIBLE_ROLES_PATH=os.path.join(REPO, 'roles'), DRIFT_REPORT_DIR=None)


def run(argv, timeout=900, env=None, cwd=None):
    return subprocess.run(argv, env=env or _env(), cwd=cwd or REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=timeout, check=False)


def check_drift(report_dir, *args):
    proc = run([CHECK_DRIFT, '--report-dir', str(report_dir)] + list(args))
    report = None
    json_path = os.path.join(str(report_dir), 'drift-report.json')
    if os.path.exists(json_path):
        with open(json_path) as handle:
            report = json.load(handle)
    junit = None
    junit_path = os.path.join(str(report_dir), 'drift-report.xml')
    if os.path.exists(junit_path):
        junit = ET.parse(junit_path).getroot()
    return proc, report, junit


def junit_failures(junit):
    """{(host, test name): failure text} of the JUnit report."""
    out = {}
    for suite in junit.iter('testsuite'):
        for case in suite.iter('testcase'):
            for fail in case.findall('failure'):
                out[(suite.get('name'), case.get('name'))] = fail.text or ''
    return out


# --------------------------------------------------------------------------
# Host-only: exit codes and report format with a throwaway localhost playbook

LOCAL_PLAY = '''\
- name: Local drift check
  hosts: all
  gather_facts: false
  tasks:
    - name: Keep the greeting file
      ansible.builtin.copy:
        dest: "{{ target }}"
        content: "hello\\nworld\\n"
        mode: "0644"
    - name: Something that is always fine
      ansible.builtin.debug:
        msg: fine
    - name: A step that fails when asked to
      ansible.builtin.fail:
        msg: "the check could not read the host"
      when: break_it | default(false) | bool
    - name: Notes as the enforce_tls role prints them
      ansible.builtin.assert:
        that: true
        success_msg:
          - "Outgoing TLS stays at secure: not a warning"
          - "WARNING: /etc/postfix/master.cf service smtp/inet runs smtpd with -o smtpd_tls_security_level=may"
        quiet: false
      when: warn_it | default(false) | bool
'''


@pytest.fixture
def local_play(tmp_path):
    play = tmp_path / 'play.yml'
    play.write_text(LOCAL_PLAY)
    target = tmp_path / 'greeting.txt'
    base = ['--playbook', str(play), '-i', 'localhost,', '-c', 'local',
            '-e', 'ansible_python_interpreter=%s' % sys.executable, '-e', 'target=%s' % target]
    return target, base


def test_wrapper_reports_drift_with_host_task_and_diff(tmp_path, local_play):
    target, base = local_play
    target.write_text('hello\nplanet\n')
    proc, report, junit = check_drift(tmp_path / 'r', *base)
    assert proc.returncode == 2, proc.stdout
    assert 'localhost: DRIFT, 1 task(s) would change: Keep the greeting file' in proc.stdout
    assert report['check_mode'] is True and report['converged'] is False and report['verdict'] == 'drift'
    assert report['summary']['hosts_with_drift'] == ['localhost']
    assert report['failures'] == []
    [drift] = report['drift']
    assert drift['host'] == 'localhost'
    assert drift['task'] == 'Keep the greeting file'
    assert drift['action'] == 'ansible.builtin.copy'
    assert drift['path'].endswith('play.yml:5')
    assert '-planet\n' in drift['diff'] and '+world\n' in drift['diff']
    assert '--- before: %s' % target in drift['diff']
    # JUnit: one suite per host, the drifted task is a failure carrying the diff
    assert junit.get('failures') == '1' and junit.get('errors') == '0'
    failures = junit_failures(junit)
    assert list(failures) == [('localhost', 'Keep the greeting file')]
    assert '+world' in failures[('localhost', 'Keep the greeting file')]
    passed = [c.get('name') for c in junit.iter('testcase') if not list(c)]
    assert passed == ['Something that is always fine']
    # check mode: nothing was written
    assert target.read_text() == 'hello\nplanet\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['greeting.txt', 'play.yml', 'r']


def test_wrapper_converged_exits_0_with_empty_report(tmp_path, local_play):
    target, base = local_play
    target.write_text('hello\nworld\n')
    target.chmod(0o644)
    proc, report, junit = check_drift(tmp_path / 'r', *base)
    assert proc.returncode == 0, proc.stdout
    assert report['converged'] is True and report['verdict'] == 'converged'
    assert report['drift'] == [] and report['failures'] == []
    assert report['summary']['changes'] == 0
    assert junit.get('failures') == '0' and junit.get('errors') == '0'
    assert 'fleet converged: nothing would change' in proc.stdout


def test_wrapper_reports_warnings_of_a_converged_host(tmp_path, local_play):
    """A WARNING: line in a task's msg (the role's: a master.cf override that undercuts the
    levels) does not make the host drift; it is in the report, the JUnit system-out and the
    output, and --fail-on-warnings turns it into exit 3."""
    target, base = local_play
    target.write_text('hello\nworld\n')
    target.chmod(0o644)
    warning = 'WARNING: /etc/postfix/master.cf service smtp/inet runs smtpd with -o smtpd_tls_security_level=may'
    proc, report, junit = check_drift(tmp_path / 'r', *(base + ['-e', 'warn_it=true']))
    assert proc.returncode == 0, proc.stdout
    assert report['converged'] is True and report['drift'] == [] and report['verdict'] == 'warnings'
    assert [(w['host'], w['task'], w['warning']) for w in report['warnings']] == [
        ('localhost', 'Notes as the enforce_tls role prints them', warning)]
    assert report['summary']['hosts_with_warnings'] == ['localhost'] and report['summary']['warnings'] == 1
    assert 'localhost: converged\n  %s' % warning in proc.stdout
    assert 'fleet converged: nothing would change; 1 warning(s) on localhost' in proc.stdout
    assert 'check-drift: converged, nothing would change; with warnings' in proc.stdout
    outs = [(c.get('name'), c.find('system-out').text) for c in junit.iter('testcase') if c.find('system-out') is not None]
    assert outs == [('Notes as the enforce_tls role prints them', warning + '\n')]
    assert junit.get('failures') == '0' and junit.get('errors') == '0'
    strict, report, _junit = check_drift(tmp_path / 's', *(['--fail-on-warnings'] + base + ['-e', 'warn_it=true']))
    assert strict.returncode == 3, strict.stdout
    assert 'check-drift: converged, but with warnings (--fail-on-warnings' in strict.stdout
    # no warnings: --fail-on-warnings changes nothing
    clean, report, _junit = check_drift(tmp_path / 'c', *(['--fail-on-warnings'] + base))
    assert clean.returncode == 0 and report['warnings'] == [], clean.stdout


def test_wrapper_failed_check_exits_1_and_reports_the_failure(tmp_path, local_play):
    target, base = local_play
    target.write_text('hello\nworld\n')
    target.chmod(0o644)
    proc, report, junit = check_drift(tmp_path / 'r', *(base + ['-e', 'break_it=true']))
    assert proc.returncode == 1, proc.stdout
    [failure] = report['failures']
    assert failure['host'] == 'localhost'
    assert failure['task'] == 'A step that fails when asked to'
    assert failure['msg'] == 'the check could not read the host'
    assert report['converged'] is False and report['verdict'] == 'failed'
    assert junit.get('errors') == '1'


@pytest.mark.parametrize('lines, expected', [
    # an older callback: no verdict line, the wrapper reads the lists
    (['{', '  "drift": [{"host": "h"}],', '  "failures": []', '}'], 2),
    (['{', '  "drift": [],', '  "failures": [],', '  "warnings": []', '}'], 0),
    # the verdict line wins; one it does not know is a failed check
    (['{', '  "verdict": "drift",', '  "drift": [],', '  "failures": []', '}'], 2),
    (['{', '  "verdict": "bogus",', '  "drift": [],', '  "failures": []', '}'], 1),
])
def test_wrapper_reads_the_verdict_line_or_the_lists(tmp_path, lines, expected):
    """The wrapper takes the report's verdict line, and reads a report without one (an
    installed callback older than the wrapper) with Python. A stand-in ansible-playbook on
    PATH writes the report where the wrapper asks the callback to."""
    stub = tmp_path / 'bin' / 'ansible-playbook'
    stub.parent.mkdir()
    (tmp_path / 'report.json').write_text('\n'.join(lines) + '\n')
    stub.write_text('#!/bin/sh\ncp "%s" "$MAILGW_DRIFT_REPORT_JSON"\n' % (tmp_path / 'report.json'))
    stub.chmod(0o755)
    env = dict(_env())
    env['PATH'] = '%s:%s' % (stub.parent, env['PATH'])
    proc = run([CHECK_DRIFT, '--report-dir', str(tmp_path / 'r')], env=env)
    assert proc.returncode == expected, proc.stdout


def test_wrapper_stale_report_is_not_reused(tmp_path):
    """A playbook that cannot even start leaves no report: exit 1, old files gone."""
    out = tmp_path / 'r'
    out.mkdir()
    (out / 'drift-report.json').write_text('{"failures": [], "drift": []}')
    proc, report, junit = check_drift(out, '--playbook', str(tmp_path / 'missing.yml'), '-i', 'localhost,')
    assert proc.returncode == 1, proc.stdout
    assert report is None and junit is None
    assert 'no drift report was written' in proc.stdout


def test_a_play_in_check_mode_is_a_check_without_the_flag(tmp_path, local_play):
    """check.yml's play keywords (check_mode, diff) make a run without --check --diff the same
    check: nothing is written, and the report says "would change" with the diff."""
    target, base = local_play
    target.write_text('hello\nplanet\n')
    play = tmp_path / 'forced.yml'
    play.write_text(LOCAL_PLAY.replace('  gather_facts: false\n', '  gather_facts: false\n  check_mode: true\n'
                                                                  '  diff: true\n', 1))
    report_path = tmp_path / 'forced.json'
    env = dict(_env(), ANSIBLE_CALLBACKS_ENABLED='mailgw.postfix_tls.drift_report',
               MAILGW_DRIFT_REPORT_JSON=str(report_path))
    proc = run(['ansible-playbook', str(play)] + base[2:], env=env)
    assert proc.returncode == 0, proc.stdout
    report = json.loads(report_path.read_text())
    assert report['check_mode'] is True and report['diff_mode'] is True and report['verdict'] == 'drift'
    [drift] = report['drift']
    assert drift['task'] == 'Keep the greeting file' and '+world\n' in drift['diff']
    assert 'localhost: DRIFT, 1 task(s) would change: Keep the greeting file' in proc.stdout
    assert target.read_text() == 'hello\nplanet\n'


# --------------------------------------------------------------------------
# Containers: two gateways of the example fleet

def _podman_ready():
    if not shutil.which('podman'):
        return 'podman is not installed'
    for suite in ('bookworm', 'trixie'):
        if run(['podman', 'image', 'exists', '%s:%s' % (IMAGE_REPO, suite)]).returncode != 0:
            return 'image %s:%s is missing (./run images)' % (IMAGE_REPO, suite)
    return None


@pytest.fixture(scope='module')
def fleet():
    problem = _podman_ready()
    if problem:
        pytest.fail('container tests need podman and the Postfix images: %s' % problem)
    prefix = 'mailgw-drift-%s' % uuid.uuid4().hex[:8]
    env = _env()
    env['MAILGW_DEMO_PREFIX'] = prefix
    env['MAILGW_DEMO_HOSTS'] = 'edge-1 cm-1'
    try:
        proc = run([DEMO, 'fleet'], env=env)
        assert proc.returncode == 0, proc.stdout
        extra = ['-i', INVENTORY, '--limit', 'edge-1,cm-1', '-e', 'demo_container_prefix=%s' % prefix]
        proc = run(['ansible-playbook', SITE] + extra)
        assert proc.returncode == 0, proc.stdout[-6000:]
        yield prefix, extra
    finally:
        run([DEMO, 'down'], env=env)


def podman_exec(container, *argv):
    proc = run(['podman', 'exec', container] + list(argv))
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


@pytest.mark.container
def test_convergence_check_on_a_fleet(fleet, tmp_path):
    prefix, extra = fleet
    edge, cm = prefix + '-edge-1', prefix + '-cm-1'

    # 1. the converged fleet passes and reports nothing
    proc, report, junit = check_drift(tmp_path / 'converged', *extra)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert report['converged'] is True
    assert report['drift'] == [] and report['failures'] == []
    assert sorted(report['hosts']) == ['cm-1', 'edge-1']
    assert junit.get('failures') == '0' and junit.get('errors') == '0'
    assert sorted(s.get('name') for s in junit.iter('testsuite')) == ['cm-1', 'edge-1']
    assert 'edge-1: converged' in proc.stdout and 'cm-1: converged' in proc.stdout

    # 2. drift by hand: an edited policy line on edge-1, a lowered level on cm-1
    table = podman_exec(edge, 'postconf', '-x', '-h', 'smtp_tls_policy_maps').strip().split(':', 1)[1]
    before = podman_exec(edge, 'cat', table)
    partner = [line for line in before.splitlines() if line.startswith('partner.example ')]
    assert len(partner) == 1, before
    podman_exec(edge, 'sed', '-i', 's/^partner\\.example .*/partner.example may/', table)
    edited = podman_exec(edge, 'cat', table)
    podman_exec(cm, 'postconf', '-e', 'smtp_tls_security_level=may')

    proc, report, junit = check_drift(tmp_path / 'drift', *extra)
    assert proc.returncode == 2, proc.stdout[-6000:]
    assert report['converged'] is False and report['failures'] == []
    assert report['summary']['hosts_with_drift'] == ['cm-1', 'edge-1']
    by_host = {}
    for record in report['drift']:
        by_host.setdefault(record['host'], []).append(record)

    # edge-1: the table task, with the edited line going back to the inventory's
    [table_drift] = [r for r in by_host['edge-1'] if r['action'] == 'mailgw.postfix_tls.tls_policy']
    assert table_drift['task'].endswith('Write and index the TLS policy table, then write main.cf')
    assert table_drift['role'] == 'mailgw.postfix_tls.enforce_tls'
    assert '-partner.example may' in table_drift['diff'], table_drift['diff']
    assert '+' + partner[0] in table_drift['diff'].replace('\t', ' ') or \
        '+partner.example verify' in table_drift['diff'], table_drift['diff']
    assert not any(r['action'] == 'mailgw.postfix_tls.postconf' for r in by_host['edge-1']), by_host['edge-1']

    # cm-1: the main.cf task (no master.cf exemption pending, so it writes the
    # levels), may -> encrypt; its table is not blamed
    [level_drift] = [r for r in by_host['cm-1'] if r['action'] == 'mailgw.postfix_tls.postconf']
    assert level_drift['task'].endswith('Write the policy table wiring, certificate files and TLS levels to main.cf')
    assert level_drift['handler'] is False
    assert 'smtp_tls_security_level' in level_drift['diff']
    assert 'may' in level_drift['diff'] and 'encrypt' in level_drift['diff']
    assert not any(r['action'] == 'mailgw.postfix_tls.tls_policy' for r in by_host['cm-1']), by_host['cm-1']

    # the JUnit report names the same host/task pairs, with the diffs
    failures = junit_failures(junit)
    assert ('edge-1', table_drift['task']) in failures
    assert '-partner.example may' in failures[('edge-1', table_drift['task'])]
    assert ('cm-1', level_drift['task']) in failures
    assert int(junit.get('failures')) == len(report['drift'])
    assert 'edge-1: DRIFT' in proc.stdout and 'cm-1: DRIFT' in proc.stdout

    # check.yml run directly, without --check --diff: the same check (its play keywords)
    direct_json = tmp_path / 'direct.json'
    env = dict(_env(), ANSIBLE_CALLBACKS_ENABLED='mailgw.postfix_tls.drift_report',
               MAILGW_DRIFT_REPORT_JSON=str(direct_json))
    direct = run(['ansible-playbook', CHECK_YML] + extra, env=env)
    assert direct.returncode == 0, direct.stdout[-6000:]
    direct_report = json.loads(direct_json.read_text())
    assert direct_report['check_mode'] is True and direct_report['verdict'] == 'drift'
    assert sorted((r['host'], r['task']) for r in direct_report['drift']) == \
        sorted((r['host'], r['task']) for r in report['drift'])
    assert 'edge-1: DRIFT' in direct.stdout and 'would change' in direct.stdout

    # 3. the checks changed nothing on the hosts
    assert podman_exec(edge, 'cat', table) == edited
    assert podman_exec(cm, 'postconf', '-h', 'smtp_tls_security_level').strip() == 'may'


@pytest.mark.container
def test_unreachable_gateway_fails_the_check(tmp_path):
    """A gateway that cannot be reached has not been shown converged: exit 1."""
    problem = _podman_ready()
    if problem:
        pytest.fail('container tests need podman and the Postfix images: %s' % problem)
    # The podman connection reports a missing container as unreachable (the
    # example inventory's nsenter connection would fail the tasks instead).
    proc, report, junit = check_drift(tmp_path / 'r', '-i', INVENTORY, '--limit', 'edge-2',
                                      '-e', 'demo_container_prefix=mailgw-absent-%s' % uuid.uuid4().hex[:8],
                                      '-e', 'ansible_connection=containers.podman.podman',
                                      '-e', 'ansible_host=mailgw-absent-%s-edge-2' % uuid.uuid4().hex[:8])
    assert proc.returncode == 1, proc.stdout
    [failure] = report['failures']
    assert failure['host'] == 'edge-2' and failure['unreachable'] is True
    assert report['drift'] == []
    assert junit.get('errors') == '1'


@pytest.mark.container
def test_the_example_inventory_reads_each_container_pid_once(fleet, tmp_path):
    """playbooks/inventory/podman_pids.sh reads the PIDs when the inventory is loaded: a
    playbook of three tasks on two gateways enters each container by its own PID and runs
    `podman container inspect` once (not once per task and host); a host whose container
    does not exist (another prefix) still falls back to the per-task look-up and gets 0."""
    prefix, extra = fleet
    real = run(['podman', 'container', 'inspect', '--format', '{{.Name}} {{.State.Pid}}',
                prefix + '-edge-1', prefix + '-cm-1'])
    assert real.returncode == 0, real.stdout
    pids = dict((name.lstrip('/')[len(prefix) + 1:], int(pid))
                for name, pid in (line.split() for line in real.stdout.splitlines()))
    shim = tmp_path / 'bin'
    shim.mkdir()
    calls = tmp_path / 'podman-calls'
    (shim / 'podman').write_text('#!/bin/sh\necho "$*" >> %s\nexec %s "$@"\n' % (calls, shutil.which('podman')))
    (shim / 'podman').chmod(0o755)
    env = _env()
    env['PATH'] = '%s:%s' % (shim, env['PATH'])
    play = tmp_path / 'play.yml'
    play.write_text(json.dumps([{'hosts': 'gateways', 'gather_facts': False, 'tasks': [
        {'ansible.builtin.command': 'cat /etc/hostname', 'changed_when': False},
        {'ansible.builtin.ping': {}},
        {'ansible.builtin.debug': {'msg': 'pid={{ ansible_nsenter_pid }}'}}]}]))
    proc = run(['ansible-playbook', str(play)] + extra, env=env)
    assert proc.returncode == 0, proc.stdout[-4000:]
    for host in ('edge-1', 'cm-1'):
        assert '"msg": "pid=%d"' % pids[host] in proc.stdout.split('ok: [%s]' % host, 3)[-1][:200], proc.stdout
    inspects = [line for line in calls.read_text().splitlines() if line.startswith('container inspect')]
    assert len(inspects) == 1, calls.read_text()
    absent = 'mailgw-absent-%s' % uuid.uuid4().hex[:8]
    proc = run(['ansible', '-i', INVENTORY, 'edge-1', '-m', 'ansible.builtin.debug', '-a', 'var=ansible_nsenter_pid',
                '-e', 'demo_container_prefix=%s' % absent], env=env)
    assert proc.returncode == 0 and '"ansible_nsenter_pid": 0' in proc.stdout, proc.stdout
