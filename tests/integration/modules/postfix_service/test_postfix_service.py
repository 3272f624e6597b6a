# Copyright (c) 2026, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""mailgw.postfix_tls.postfix_service against a real running Postfix (bookworm container).

The module runs through ansible-playbook over the nsenter connection, as the role's
handler runs it. Whether Postfix was reloaded is read from its log (the master's "reload --
version" line; maillog_file), and the new settings are asked on the wire: a test changes
smtpd_banner in main.cf and reads the greeting of a new SMTP session after the reload. (That
a new session still shows the old banner is no proof of "not reloaded": an smtpd process the
master starts after main.cf changed reads the new main.cf without any reload.) The master's
PID says whether it was restarted.
"""

import json
import shutil
import subprocess
import time
import uuid

import pytest
import yaml

from ansible_env import ansible_env, tool
from postfix_containers import MASTER_PID, settled_count, wait_for_systemd

pytestmark = pytest.mark.container

IMAGE = 'localhost/mailgw-postfix:bookworm'
# Every tested release: bullseye 3.5, bookworm 3.7, trixie 3.10, sid 3.11 (scripts/images.sh)
RELEASES = ('bullseye', 'bookworm', 'trixie', 'sid')
MODULE = 'mailgw.postfix_tls.postfix_service'


def _run(argv, **kwargs):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
                          universal_newlines=True, env=kwargs.pop('env', ansible_env()), **kwargs)


class Host(object):
    """A throwaway container (Postfix started with `postfix start`, so it can be stopped)."""

    def __init__(self, tmp_path, image=IMAGE, command=('sleep', 'infinity')):
        if not shutil.which('podman') or _run(['podman', 'image', 'exists', image]).returncode != 0:
            pytest.fail('container tests need podman and the image %s (./run images)' % image)
        self.name = 'postfix-service-test-%s' % uuid.uuid4().hex[:10]
        self.tmp = tmp_path
        proc = _run(['podman', 'run', '-d', '--name', self.name, '--network', 'none', image] + list(command))
        assert proc.returncode == 0, proc.stderr
        self.pid = _run(['podman', 'container', 'inspect', '-f', '{{.State.Pid}}', self.name]).stdout.strip()
        assert self.pid.isdigit() and self.pid != '0', self.pid
        self.inventory = tmp_path / 'hosts.yml'
        self.inventory.write_text(yaml.safe_dump({'all': {'hosts': {'gw': {
            'ansible_connection': 'community.docker.nsenter', 'ansible_nsenter_pid': int(self.pid),
            'ansible_python_interpreter': '/usr/bin/python3'}}}}))

    def destroy(self):
        _run(['podman', 'rm', '-f', '-t', '0', self.name])

    def sh(self, script, check=True):
        proc = _run(['nsenter', '--ipc', '--mount', '--net', '--pid', '--uts', '--target', self.pid, '--',
                     'sh', '-c', script],
                    env=dict(ansible_env(), PATH='/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'))
        if check:
            assert proc.returncode == 0, '%s: %s%s' % (script, proc.stdout, proc.stderr)
        return proc.stdout

    def banner(self, text):
        """Set smtpd_banner in main.cf (not live until a reload)."""
        self.sh("postconf -e 'smtpd_banner=$myhostname ESMTP %s'" % text)

    def greeting(self):
        """The 220 line of a new SMTP session on port 25."""
        return self.sh('python3 -c "import socket; s = socket.create_connection((\'127.0.0.1\', 25), 10); '
                       'print(s.recv(512).decode().strip())"').strip()

    def start(self):
        """Postfix started, logging to /var/log/postfix.log (not the image's /dev/stdout)."""
        self.sh('postconf -e maillog_file=/var/log/postfix.log && postfix start')

    def reloads(self, expected):
        """How often the master was reloaded (its log's "reload -- version" lines), once the
        count is EXPECTED or 10 s passed (settled_count)."""
        return settled_count(lambda: self.sh('cat /var/log/postfix.log 2>/dev/null || true'),
                             'reload -- version', expected)

    def master_pid(self):
        return self.sh('cat %s' % MASTER_PID).strip()

    def files(self):
        """Everything under the configuration and queue directories, with checksums of files."""
        return self.sh('find /etc/postfix /var/spool/postfix /var/lib/postfix ! -type s ! -type p '
                       '-printf "%p %m %u\\n" | sort; md5sum /etc/postfix/*.cf')

    def task(self, args=None, check=False):
        """One task of MODULE with ARGS; its host result."""
        return self.play([{'name': 'postfix_service', MODULE: args or {}}], check)[0]

    def play(self, tasks, check=False):
        """TASKS as one play; the host result of each task, in order."""
        play = self.tmp / ('play-%s.yml' % uuid.uuid4().hex[:6])
        play.write_text(yaml.safe_dump([{'hosts': 'gw', 'gather_facts': False, 'tasks': tasks}]))
        argv = [tool('ansible-playbook'), '-i', str(self.inventory), str(play)] + (['--check'] if check else [])
        proc = _run(argv, env=ansible_env(interpreter=None))
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError('no JSON from ansible-playbook:\n%s\n%s' % (proc.stdout[-3000:], proc.stderr[-3000:]))
        return [task['hosts']['gw'] for task in data['plays'][0]['tasks']]


@pytest.fixture
def host(tmp_path):
    h = Host(tmp_path)
    try:
        yield h
    finally:
        h.destroy()


@pytest.fixture
def running(host):
    host.start()
    host.banner('before')
    host.sh('postfix reload')
    assert host.greeting().endswith('ESMTP before')
    assert host.reloads(1) == 1
    return host


def _commands(result):
    return [cmd[-1] for cmd in result['commands']]


def test_checks_then_reloads_a_running_postfix(running):
    pid = running.master_pid()
    running.banner('after')
    result = running.task()
    assert not result.get('failed'), result
    assert result['changed'] is True
    assert (result['running'], result['outcome'], result['checked']) == (True, 'reloaded', True)
    assert _commands(result) == ['check', 'status', 'reload']
    assert result['commands'][0][:3] == ['/usr/sbin/postfix', '-c', '/etc/postfix']
    assert result['msg'] == 'Postfix (/etc/postfix) was reloaded.'
    # Reloaded once, live on the wire, and the same master (a reload, not a restart).
    assert running.reloads(2) == 2
    assert running.greeting().endswith('ESMTP after')
    assert running.master_pid() == pid


def test_check_mode_reads_the_status_only_and_predicts_the_reload(running):
    running.banner('after')
    before = running.files()
    result = running.task(check=True)
    assert not result.get('failed'), result
    assert (result['changed'], result['outcome'], result['checked']) == (True, 'reloaded', False)
    assert result['msg'] == 'Postfix (/etc/postfix) would be reloaded.'
    # postfix check writes (create-missing, postsuper): not run; nothing reloaded, nothing written.
    assert _commands(result) == ['status']
    assert running.reloads(1) == 1
    assert running.files() == before


def test_restarted_stops_and_starts_the_master(running):
    pid = running.master_pid()
    running.banner('after')
    result = running.task({'state': 'restarted'})
    assert not result.get('failed'), result
    assert (result['changed'], result['outcome']) == (True, 'restarted')
    assert _commands(result) == ['check', 'status', 'stop', 'start']
    assert result['msg'] == 'Postfix (/etc/postfix) was stopped and started.'
    assert running.master_pid() != pid
    assert running.greeting().endswith('ESMTP after')
    predicted = running.task({'state': 'restarted'}, check=True)
    assert (predicted['changed'], predicted['outcome']) == (True, 'restarted')
    assert predicted['msg'] == 'Postfix (/etc/postfix) would be stopped and started.'


def test_a_failed_check_reloads_nothing(running):
    pid = running.master_pid()
    running.banner('after')
    # The postfix command refuses a mail_owner that does not exist (postfix check exits 1).
    running.sh('postconf -e mail_owner=nosuchuser')
    result = running.task()
    assert result.get('failed'), result
    # Off a terminal Postfix prints nothing; the check is run again on a terminal for its words.
    assert result['msg'] == (
        '/usr/sbin/postfix -c /etc/postfix check failed (exit status 1): postfix: fatal: file /etc/postfix/main.cf: '
        'parameter mail_owner: unknown user name value: nosuchuser; Postfix (/etc/postfix) was not reloaded or '
        'restarted.'), result['msg']
    assert _commands(result) == ['check', 'check']
    running.sh('postconf -e mail_owner=postfix')
    # postfix-script's own fatal error (it logs through postlog), and postconf's warnings once each
    running.sh('mv /etc/postfix/master.cf /etc/postfix/master.cf.away')
    missing = running.task()
    running.sh('mv /etc/postfix/master.cf.away /etc/postfix/master.cf')
    assert missing.get('failed'), missing
    assert missing['msg'] == (
        '/usr/sbin/postfix -c /etc/postfix check failed (exit status 1): postfix/postfix-script: fatal: '
        'no /etc/postfix/master.cf file found; Postfix (/etc/postfix) was not reloaded or restarted.'), missing['msg']
    assert running.reloads(1) == 1
    assert running.master_pid() == pid


def test_a_stopped_postfix_is_left_stopped(host):
    host.banner('after')
    for check in (True, False):
        result = host.task(check=check)
        assert not result.get('failed'), result
        assert (result['changed'], result['running'], result['outcome']) == (False, False, 'none')
        assert result['msg'] == ('Postfix (/etc/postfix) is not running, so it is not reloaded; '
                                 'the new settings apply when it starts.')
    assert _commands(result) == ['check', 'status']
    assert not _postfix_runs(host)


def test_checked_changes_nothing_and_says_whether_postfix_runs(running):
    running.banner('after')
    result = running.task({'state': 'checked'})
    assert not result.get('failed'), result
    assert (result['changed'], result['running'], result['outcome'], result['checked']) == (False, True, 'none', True)
    assert _commands(result) == ['check', 'status']
    assert running.reloads(1) == 1
    unchecked = running.task({'state': 'reloaded', 'check': False})
    assert _commands(unchecked) == ['status', 'reload'] and unchecked['checked'] is False
    assert running.reloads(2) == 2
    assert running.greeting().endswith('ESMTP after')


def test_another_executable_and_config_dir(running):
    running.sh('cp -a /etc/postfix /etc/postfix-copy && ln -s /usr/sbin/postfix /usr/local/sbin/pf')
    result = running.task({'executable': '/usr/local/sbin/pf', 'config_dir': '/etc/postfix-copy', 'state': 'checked'})
    assert not result.get('failed'), result
    assert result['commands'][0] == ['/usr/local/sbin/pf', '-c', '/etc/postfix-copy', 'check']
    missing = running.task({'executable': '/nonexistent/postfix'})
    assert missing.get('failed') and missing['msg'].startswith('cannot run /nonexistent/postfix -c /etc/postfix check'), \
        missing['msg']


def _postfix_runs(host):
    return _run(['nsenter', '--mount', '--pid', '--target', host.pid, '--', '/usr/sbin/postfix', 'status']).returncode == 0


def _restart_when_needed(value):
    """The module's EXAMPLES: postconf reports restart_required for inet_interfaces, and
    postfix_service restarts then."""
    return [
        {'name': 'Listen on loopback only', 'mailgw.postfix_tls.postconf': {
            'name': 'inet_interfaces', 'value': value}, 'register': 'listen'},
        {'name': 'Check and reload or restart Postfix', MODULE: {
            'state': "{{ 'restarted' if listen.restart_required else 'reloaded' }}"}, 'when': 'listen is changed'},
    ]


def test_the_documented_restart_when_postconf_says_so(running):
    pid = running.master_pid()
    # A name the postfix command cannot resolve: the check fails with Postfix's words and the
    # running master is neither stopped nor reloaded.
    wrote, refused = running.play(_restart_when_needed('no-such-host.invalid'))
    assert wrote['changed'] and wrote['restart_required'] is True, wrote
    assert refused.get('failed') and refused['msg'] == (
        '/usr/sbin/postfix -c /etc/postfix check failed (exit status 1): postfix: fatal: config variable '
        'inet_interfaces: host not found: no-such-host.invalid; Postfix (/etc/postfix) was not reloaded or '
        'restarted.'), refused
    # No SMTP greeting is asked for here: the master was left alone, but an smtpd it starts now
    # reads the new main.cf from disk and dies on it ("fatal: config variable inet_interfaces:
    # host not found"); only an smtpd still idle from the fixture's session would answer (CI
    # caught that race).
    assert running.master_pid() == pid and running.reloads(1) == 1
    # Loopback only: restarted (a new master), listening.
    wrote, restarted = running.play(_restart_when_needed('127.0.0.1'))
    assert wrote['changed'] and wrote['restart_required'] is True, wrote
    assert (restarted.get('changed'), restarted.get('outcome')) == (True, 'restarted'), restarted.get('msg')
    assert running.master_pid() != pid
    assert running.greeting().startswith('220 ')
    # Run again: nothing changes, nothing is restarted.
    pid = running.master_pid()
    again, skipped = running.play(_restart_when_needed('127.0.0.1'))
    assert not again['changed'] and skipped.get('skipped'), (again, skipped)
    assert running.master_pid() == pid


@pytest.mark.parametrize('suite', RELEASES)
def test_every_release_is_reloaded_restarted_predicted_and_left_stopped(tmp_path, suite):
    """The same on each tested Postfix release: the postfix-script commands (check, status,
    reload, stop, start) and their exit statuses did not change from 3.5 to 3.11."""
    host = Host(tmp_path, image='localhost/mailgw-postfix:%s' % suite)
    try:
        host.banner('before')
        stopped = host.task()
        assert (stopped['changed'], stopped['running'], stopped['outcome']) == (False, False, 'none'), stopped
        assert not _postfix_runs(host)
        host.start()
        assert host.greeting().endswith('ESMTP before')
        host.banner('after')
        predicted = host.task(check=True)
        assert (predicted['changed'], predicted['outcome'], _commands(predicted)) == (True, 'reloaded', ['status'])
        assert host.reloads(0) == 0
        pid = host.master_pid()
        reloaded = host.task()
        assert not reloaded.get('failed'), reloaded
        assert (reloaded['changed'], reloaded['outcome'], _commands(reloaded)) == (
            True, 'reloaded', ['check', 'status', 'reload'])
        assert host.reloads(1) == 1 and host.master_pid() == pid
        assert host.greeting().endswith('ESMTP after')
        host.banner('restarted')
        restarted = host.task({'state': 'restarted'})
        assert not restarted.get('failed'), restarted
        assert restarted['outcome'] == 'restarted' and host.master_pid() != pid
        assert host.greeting().endswith('ESMTP restarted')
    finally:
        host.destroy()


def test_ansible_doc_renders():
    proc = _run([tool('ansible-doc'), MODULE])
    assert proc.returncode == 0, proc.stderr
    assert 'ERROR' not in proc.stderr and 'WARNING' not in proc.stderr, proc.stderr
    for word in ('state', 'restarted', 'checked', 'executable', 'outcome', 'postlog'):
        assert word in proc.stdout, word


def test_a_master_systemd_started_is_restarted_through_its_unit(tmp_path):
    """Postfix started by systemd (Debian's postfix@-.service): state=restarted restarts the unit
    (systemctl restart), so the unit stays active with the new master in it; postfix stop and
    start would leave the unit stopped and the new master outside it (the module's notes). Check
    mode says so and changes nothing; a reload stays postfix reload, in the same unit."""
    host = Host(tmp_path, image='localhost/mailgw-postfix:bookworm-systemd', command=())
    try:
        wait_for_systemd(lambda script: host.sh(script, check=False))
        unit_group = host.sh('systemctl show -p ControlGroup --value postfix@-').strip()
        assert unit_group.endswith('/postfix@-.service'), unit_group

        def master_group():
            return [line.split(':', 2)[2] for line in host.sh('cat /proc/%s/cgroup' % host.master_pid()).splitlines()
                    if ':name=systemd:' in line or line.startswith('0::')][0]

        pid = host.master_pid()
        assert master_group() == unit_group
        predicted, = host.play([{'name': 'restart', MODULE: {'state': 'restarted'}}], check=True)
        assert (predicted['changed'], predicted['systemd_unit']) == (True, 'postfix@-.service'), predicted
        assert predicted['msg'] == ('Postfix (/etc/postfix) would be restarted through its systemd unit '
                                    'postfix@-.service (systemctl restart).')
        assert host.master_pid() == pid
        restarted, = host.play([{'name': 'restart', MODULE: {'state': 'restarted'}}])
        assert (restarted['changed'], restarted['outcome'], restarted['systemd_unit']) == (
            True, 'restarted', 'postfix@-.service'), restarted
        assert [cmd[-2:] for cmd in restarted['commands']][-1] == ['restart', 'postfix@-.service']
        assert not [cmd for cmd in restarted['commands'] if cmd[-1] in ('stop', 'start')], restarted['commands']
        assert host.sh('systemctl is-active postfix@-').strip() == 'active'
        assert host.master_pid() != pid and master_group() == unit_group
        # a reload is postfix reload: same master, same unit, no unit looked up
        pid = host.master_pid()
        reloaded, = host.play([{'name': 'reload', MODULE: {}}])
        assert (reloaded['outcome'], reloaded['systemd_unit']) == ('reloaded', None), reloaded
        assert [cmd[-1] for cmd in reloaded['commands']] == ['check', 'status', 'reload']
        assert host.master_pid() == pid and master_group() == unit_group
        assert host.sh('systemctl is-active postfix@-').strip() == 'active'
        # what the module avoids, as its notes say: postfix stop and start by hand leave the unit
        # stopped, failed or inactive by the timing of its ExecStop (postmulti -p stop against a
        # master that is gone or going: "kill: No such process"), and the master outside it
        # (start once the old master is gone: on a loaded machine "postfix start" right after
        # "postfix stop" can still find it running)
        host.sh('postfix stop; for i in $(seq 75); do postfix status >/dev/null 2>&1 || break; sleep 0.2; done; '
                'postfix start')
        deadline = time.time() + 15    # systemd runs the unit's ExecStop once it saw the master go
        while host.sh('systemctl is-active postfix@-', check=False).strip() not in ('failed', 'inactive'):
            assert time.time() < deadline, host.sh('systemctl status postfix@- --no-pager', check=False)
            time.sleep(0.2)
        assert master_group() != unit_group
    finally:
        host.destroy()
