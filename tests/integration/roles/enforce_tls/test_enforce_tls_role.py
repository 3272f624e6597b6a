# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The mailgw.postfix_tls.enforce_tls role against throwaway Postfix containers.

Each test starts its own container from localhost/mailgw-postfix:bookworm
(``sleep infinity``, Postfix started with ``postfix start`` where the test
needs it), writes an inventory in tmp_path (group_vars, host_vars) and runs
the role through the real ``ansible-playbook`` with the json callback, so the
tests see which tasks changed. Covered for each recipe: a check run on a fresh
host predicts the real run, the real run converges, a second run and a check
run change nothing; plus refusals (incoming encrypt without a certificate),
downgrade protection, inventory merging and a stopped Postfix.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import shutil
import subprocess
import time
import uuid

import pytest
import yaml

from ansible_env import REPO, ansible_env
from postfix_containers import MASTER_PID, settled_count, wait_for_systemd

IMAGE = 'localhost/mailgw-postfix:bookworm'    # Postfix 3.7
IMAGE_TRIXIE = 'localhost/mailgw-postfix:trixie'  # Postfix 3.10, no smtpd certificate configured
# Postfix 3.7 under systemd as PID 1, started by Debian's units (postfix.service and
# postfix@-.service), logging to /var/log/postfix.log (scripts/images.sh)
IMAGE_SYSTEMD = 'localhost/mailgw-postfix:bookworm-systemd'
ROLE = 'mailgw.postfix_tls.enforce_tls'
EXAMPLE_INVENTORY = os.path.join(REPO, 'roles', 'enforce_tls', 'examples', 'inventory')

pytestmark = [pytest.mark.container, pytest.mark.slow]


def _env():
    return ansible_env(interpreter=None, ANSIBLE_PIPELINING='True')


def run(argv, **kwargs):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False,
                          universal_newlines=True, env=kwargs.pop('env', _env()), **kwargs)


def _podman_problem(image=IMAGE):
    if not shutil.which('podman'):
        return 'podman is not installed'
    if run(['podman', 'image', 'exists', image]).returncode != 0:
        return 'image %s is missing (./run images)' % image
    return None


# The table's task writes main.cf's part too (tls_policy's main_cf) when the table changes;
# MAIN_CF_TASK writes it when the table is already as asked.
TABLE_TASK = 'Write and index the TLS policy table, then write main.cf'
MAIN_CF_TASK = 'Write the policy table wiring, certificate files and TLS levels to main.cf'
REFUSAL_TASK = 'Refuse a change Postfix cannot work with or the preflight finds would defer mail'


def main_cf_written(applied):
    """The main.cf parameters the run set ({name: {before, after}}) and whether it changed
    main.cf: by the table's task (main_cf) or by MAIN_CF_TASK."""
    for name, result in reversed(applied.tasks):
        if name == TABLE_TASK and 'main_cf' in result:
            return result['main_cf']['params'], result['main_cf']['changed']
        if name == MAIN_CF_TASK and not result.get('skipped'):
            return result['params'], result['changed']
    return {}, False


class Result(object):
    """One ansible-playbook run, read from the json callback."""

    def __init__(self, proc):
        self.rc = proc.returncode
        self.output = proc.stdout + (proc.stderr or '')
        try:
            self.data = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError('no json output from ansible-playbook:\n%s' % self.output[-6000:])
        self.tasks = []  # (name, host result) in run order
        for play in self.data['plays']:
            for task in play['tasks']:
                for result in task['hosts'].values():
                    self.tasks.append((task['task']['name'].split(' : ', 1)[-1], result))

    @property
    def stats(self):
        return list(self.data['stats'].values())[0]

    @property
    def changed(self):
        return [name for name, r in self.tasks if r.get('changed')]

    @property
    def failed(self):
        return [(name, r.get('msg')) for name, r in self.tasks if r.get('failed')]

    def messages(self):
        """Messages of tasks that ran, including those of loop items."""
        out = []
        for name, r in self.tasks:
            for item in [r] + list(r.get('results') or []):
                if item.get('msg') and not item.get('skipped'):
                    # a task that reports several lines (the notes) gives them as a list
                    out.extend(item['msg'] if isinstance(item['msg'], list) else [item['msg']])
        return out

    def result_of(self, name):
        found = [r for n, r in self.tasks if n == name]
        assert found, 'task %r did not run' % name
        return found[-1]


class Gateway(object):
    """A throwaway Postfix container with an inventory pointing at it."""

    def __init__(self, tmp_path, start_postfix=True, image=IMAGE, systemd=False):
        self.name = 'enforce-tls-role-test-%s' % uuid.uuid4().hex[:10]
        self.tmp = tmp_path
        # systemd: the image's own command (/sbin/init), which starts Postfix through its units
        command = [] if systemd else ['sleep', 'infinity']
        proc = run(['podman', 'run', '-d', '--name', self.name, image] + command)
        assert proc.returncode == 0, proc.stdout
        # Ansible and the helpers below enter the container's namespaces with
        # nsenter (as the Molecule scenarios do): milliseconds, where each
        # podman exec costs 0.3 to 0.8 s.
        self.pid = run(['podman', 'container', 'inspect', '-f', '{{.State.Pid}}', self.name]).stdout.strip()
        assert self.pid.isdigit() and self.pid != '0', self.pid
        if systemd:
            wait_for_systemd(lambda script: self.sh(script, check=False))
        elif start_postfix:
            self.sh('postfix start')
        self.inventory = tmp_path / 'inventory'
        (self.inventory / 'group_vars').mkdir(parents=True)
        (self.inventory / 'host_vars').mkdir()
        self.write_inventory()
        self.playbook = tmp_path / 'play.yml'
        self.playbook.write_text(yaml.safe_dump([{
            'name': 'Apply enforce_tls', 'hosts': 'gateways', 'gather_facts': False,
            'roles': [{'role': ROLE}]}]))

    def master_pid(self):
        return self.sh('cat %s' % MASTER_PID).strip()

    def log_count(self, text, expected):
        """settled_count of TEXT in /var/log/postfix.log."""
        return settled_count(lambda: self.sh('cat /var/log/postfix.log'), text, expected)

    def write_inventory(self, **host_extra):
        host = {'ansible_host': self.name}
        host.update(host_extra)
        (self.inventory / 'hosts.yml').write_text(yaml.safe_dump({'gateways': {
            'hosts': {'gw': host},
            'vars': {'ansible_connection': 'community.docker.nsenter',
                     'ansible_nsenter_pid': int(self.pid),
                     'ansible_python_interpreter': '/usr/bin/python3'}}}))

    def group_vars(self, data, group='gateways'):
        (self.inventory / 'group_vars' / ('%s.yml' % group)).write_text(yaml.safe_dump(data))

    def host_vars(self, data):
        (self.inventory / 'host_vars' / 'gw.yml').write_text(yaml.safe_dump(data))

    def destroy(self):
        # Under heavy load a removal can fail transiently: retry, then say so.
        for _attempt in range(5):
            run(['podman', 'rm', '-f', '-t', '0', self.name])
            if run(['podman', 'container', 'exists', self.name]).returncode != 0:
                return
            time.sleep(2)
        raise AssertionError('container %s could not be removed' % self.name)

    def exec(self, argv):
        """Run ARGV inside the container (its mount, network, PID, IPC and UTS namespaces)."""
        return run(['nsenter', '--ipc', '--mount', '--net', '--pid', '--uts', '--target', self.pid, '--']
                   + list(argv), env=dict(_env(), PATH='/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'))

    def sh(self, script, check=True):
        proc = self.exec(['sh', '-c', script])
        if check:
            assert proc.returncode == 0, '%s: %s' % (script, proc.stdout)
        return proc.stdout

    def play(self, *extra, **kwargs):
        argv = ['ansible-playbook', '-i', str(self.inventory), str(self.playbook), '--diff']
        if kwargs.get('check'):
            argv.append('--check')
        for key, value in kwargs.get('extra_vars', {}).items():
            argv += ['-e', json.dumps({key: value})]
        # json on stdout, warnings on stderr: keep them apart.
        proc = subprocess.run(argv + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              check=False, universal_newlines=True, env=_env())
        return Result(proc)

    def converge(self, **kwargs):
        """Fresh check run, real run, second run, check run: return the real run."""
        predicted = self.play(check=True, **kwargs)
        assert predicted.rc == 0, predicted.failed or predicted.output[-4000:]
        assert self.snapshot() == self.before, 'check mode changed files on the host'
        applied = self.play(**kwargs)
        assert applied.rc == 0, applied.failed or applied.output[-4000:]
        # The same tasks report a change in check mode (the reload handler too: predicted
        # from postfix status).
        assert predicted.changed == applied.changed, (predicted.changed, applied.changed)
        again = self.play(**kwargs)
        assert again.rc == 0, again.failed
        assert again.changed == [], again.changed
        checked = self.play(check=True, **kwargs)
        assert checked.rc == 0, checked.failed
        assert checked.changed == [], checked.changed
        return applied

    config_dirs = ('/etc/postfix',)

    def snapshot(self):
        return ''.join(self.sh('cd %s && find . -type f | sort | xargs md5sum; postconf -c %s -n; postconf -c %s -P'
                               % (d, d, d)) for d in self.config_dirs)

    def take_before(self):
        self.before = self.snapshot()

    def refused(self, **kwargs):
        """A check run and a real run, each stopped by the role's refusal task before anything
        is written: nothing changed, the host as before (take_before). Returns their refusal
        messages."""
        messages = []
        for check in (True, False):
            result = self.play(check=check, **kwargs)
            assert result.rc != 0
            (name, msg), = result.failed
            assert name == REFUSAL_TASK, result.failed
            assert result.changed == [] and self.snapshot() == self.before
            messages.append(msg)
        return messages

    def postconf(self, name):
        return self.sh('postconf -h %s' % name).strip()

    def query(self, key, table):
        proc = self.exec(['postmap', '-q', key, table])
        return proc.stdout.strip() if proc.returncode == 0 else None

    def make_certificate(self):
        self.sh('mkdir -p /etc/postfix/tls && openssl req -x509 -newkey rsa:2048 -nodes -days 30 '
                '-subj /CN=gateway.test -keyout /etc/postfix/tls/gw.key -out /etc/postfix/tls/gw.crt '
                '2>/dev/null && chmod 600 /etc/postfix/tls/gw.key')

    def add_reinjection_service(self, config_dir='/etc/postfix'):
        self.sh("printf '127.0.0.1:10026 inet n - n - - smtpd\\n  -o content_filter=\\n' "
                '>> %s/master.cf' % config_dir)

    def add_secondary_instance(self, start):
        """An "mta" instance /etc/postfix-out as postmulti creates it: its smtpd on 127.0.0.1:2525
        (the primary has 25), its log in /var/log/postfix-out.log, a re-injection service; started
        with the shell command START, then the certificate made and every configuration directory
        taken as the state before. Returns its configuration directory."""
        out = '/etc/postfix-out'
        self.sh('postmulti -e init && postmulti -I postfix-out -G mta -e create && postmulti -i postfix-out -e enable'
                ' && postconf -c {o} -X master_service_disable'
                ' && postconf -c {o} -e inet_interfaces=127.0.0.1 maillog_file=/var/log/postfix-out.log'
                ' && postconf -c {o} -M# smtp/inet && postconf -c {o} -Me "2525/inet=2525 inet n - y - - smtpd"'
                .format(o=out))
        self.add_reinjection_service(out)
        self.sh(start)
        self.make_certificate()
        self.config_dirs = ('/etc/postfix', out)
        self.take_before()
        return out

    def smtp_reply_to_mail_from(self, port):
        """The reply to MAIL FROM on a plaintext session (no STARTTLS)."""
        out = self.sh('swaks --server 127.0.0.1 --port %d --from a@client.test --to b@gateway.test '
                      '--quit-after MAIL 2>&1' % port, check=False)
        replies = [line for line in out.splitlines() if line.startswith(('<-', '<**'))]
        return replies[-2] if len(replies) >= 2 else out


def _gateway(tmp_path, image=IMAGE, start_postfix=True, systemd=False):
    """A Gateway for one test, removed afterwards (a generator for the fixtures)."""
    problem = _podman_problem(image)
    if problem:
        pytest.fail('container tests need podman and the Postfix image: %s' % problem)
    gw = Gateway(tmp_path, start_postfix=start_postfix, image=image, systemd=systemd)
    gw.take_before()
    try:
        yield gw
    finally:
        gw.destroy()


@pytest.fixture
def gateway(tmp_path):
    """bookworm (Postfix 3.7), Postfix running."""
    yield from _gateway(tmp_path)


@pytest.fixture
def stopped_gateway(tmp_path):
    """bookworm, Postfix not started."""
    yield from _gateway(tmp_path, start_postfix=False)


@pytest.fixture
def systemd_gateway(tmp_path):
    """bookworm under systemd: Postfix started by its units, logging to /var/log/postfix.log."""
    yield from _gateway(tmp_path, image=IMAGE_SYSTEMD, systemd=True)


@pytest.fixture
def trixie_gateway(tmp_path):
    """trixie (Postfix 3.10, no smtpd certificate configured), Postfix running."""
    yield from _gateway(tmp_path, image=IMAGE_TRIXIE)


def test_opportunistic_default(gateway):
    applied = gateway.converge()
    assert gateway.postconf('smtp_tls_security_level') == 'may'
    assert gateway.postconf('smtpd_tls_security_level') == 'may'
    assert gateway.postconf('smtp_tls_policy_maps') == 'hash:/etc/postfix/tls_policy'
    assert gateway.query('[127.0.0.1]:10025', 'hash:/etc/postfix/tls_policy') == 'none'
    # Table written, then main.cf pointed at it, then a reload (Postfix runs).
    assert applied.changed == [TABLE_TASK, 'Check and reload Postfix (enforce_tls)']
    assert main_cf_written(applied)[0]['smtp_tls_policy_maps']['after'] == 'hash:/etc/postfix/tls_policy'
    gateway.sh('postfix status')  # exit 0: still running after the reload
    # The image's snakeoil certificate is usable: no warning about STARTTLS.
    assert not [m for m in applied.messages() if 'WARNING' in str(m)]


def test_a_level_change_alone_is_the_main_cf_task(gateway):
    """The table already as asked: main.cf's part is written by its own postconf task (the
    table's task, which carries it otherwise, is skipped), then one reload."""
    gateway.converge()
    gateway.take_before()
    gateway.group_vars({'enforce_tls_outgoing_level': 'encrypt'})
    applied = gateway.converge()
    assert applied.changed == [MAIN_CF_TASK, 'Check and reload Postfix (enforce_tls)'], applied.changed
    assert applied.result_of(TABLE_TASK).get('skipped')
    params, changed = main_cf_written(applied)
    assert changed is True and params == {'smtp_tls_security_level': {'before': 'may', 'after': 'encrypt'}}
    assert gateway.postconf('smtp_tls_security_level') == 'encrypt'


def test_policies_merge_group_and_host_vars(gateway):
    gateway.group_vars({
        'enforce_tls_policies': [
            {'destination': 'example.com', 'level': 'verify'},
            {'destination': '[tls.example.com]', 'level': 'verify', 'match': ['alternative.com']},
            {'destination': 'partner.example', 'level': 'encrypt'},
        ]})
    gateway.group_vars({'enforce_tls_policies__partners': [
        {'destination': 'partner.example', 'level': 'secure', 'match': ['nexthop']},
        {'destination': 'bank.example', 'level': 'secure', 'protocols': '>=TLSv1.2'},
    ]}, group='all')
    gateway.host_vars({'enforce_tls_host_policies': [
        {'destination': 'EXAMPLE.com', 'level': 'secure', 'match': ['nexthop', 'dot-nexthop']},
        {'destination': 'local.example', 'level': 'may'},
    ]})
    # An entry written by hand stays unless the inventory owns the table.
    gateway.sh("printf 'manual.example encrypt\\n' > /etc/postfix/tls_policy && postmap /etc/postfix/tls_policy")
    gateway.take_before()

    gateway.converge()
    table = 'hash:/etc/postfix/tls_policy'
    assert gateway.query('example.com', table) == 'secure match=nexthop:dot-nexthop'  # host wins
    assert gateway.query('[tls.example.com]', table) == 'verify match=alternative.com'
    assert gateway.query('partner.example', table) == 'secure match=nexthop'  # extra var after group
    assert gateway.query('bank.example', table) == 'secure protocols=>=TLSv1.2'
    assert gateway.query('local.example', table) == 'may'
    assert gateway.query('[127.0.0.1]:10025', table) == 'none'
    assert gateway.query('manual.example', table) == 'encrypt'
    content = gateway.sh('cat /etc/postfix/tls_policy')
    assert content.lower().count('example.com ') == 1, content

    exclusive = gateway.play(extra_vars={'enforce_tls_exclusive': True})
    assert exclusive.rc == 0, exclusive.failed
    assert gateway.query('manual.example', table) is None
    # the hand-written encrypt is gone: mail to manual.example falls back to may, said out loud
    text = ' '.join(str(m) for m in exclusive.messages())
    assert ('WARNING: this run lowers the TLS policy of 1 destination in /etc/postfix/tls_policy: '
            'manual.example encrypt -> no entry (smtp_tls_security_level=may)') in text, text
    assert gateway.query('example.com', table) == 'secure match=nexthop:dot-nexthop'
    again = gateway.play(extra_vars={'enforce_tls_exclusive': True})
    assert again.changed == []


def test_bad_policy_entry_is_refused_before_anything_changes(gateway):
    gateway.host_vars({'enforce_tls_host_policies': [{'level': 'verify'}]})
    result = gateway.play()
    assert result.rc != 0
    assert gateway.snapshot() == gateway.before
    gateway.host_vars({'enforce_tls_host_policies': [
        {'destination': 'example.com', 'level': 'may', 'match': ['x.example']}]})
    result = gateway.play()
    assert result.rc != 0
    text = ' '.join(str(msg) for name, msg in result.failed)
    assert 'match' in text, result.failed
    assert gateway.snapshot() == gateway.before


def test_enforce_outgoing(gateway):
    gateway.group_vars({'enforce_tls_outgoing_level': 'encrypt',
                        'enforce_tls_internal_nexthops': ['[127.0.0.1]:10025', '[10.0.0.5]:2525']})
    applied = gateway.converge()
    assert gateway.postconf('smtp_tls_security_level') == 'encrypt'
    table = 'hash:/etc/postfix/tls_policy'
    assert gateway.query('[127.0.0.1]:10025', table) == 'none'
    assert gateway.query('[10.0.0.5]:2525', table) == 'none'
    # The exception is in the table before main.cf points at it and raises the
    # level, both in one postconf run (one atomic main.cf write): no master.cf
    # service to exempt, so no reload in between and one reload in all.
    assert applied.changed == [TABLE_TASK, 'Check and reload Postfix (enforce_tls)'], applied.changed
    written, dummy = main_cf_written(applied)
    assert {name: value['after'] for name, value in written.items()} == {
        'smtp_tls_policy_maps': table, 'smtp_tls_security_level': 'encrypt'}, written
    assert [name for name, _r in applied.tasks].count('Check and reload Postfix (enforce_tls)') == 1
    assert applied.result_of('Set the global TLS security levels').get('skipped')


def test_stricter_levels_are_kept(gateway):
    gateway.sh('postconf smtp_tls_security_level=secure smtpd_tls_security_level=encrypt')
    gateway.take_before()
    gateway.group_vars({'enforce_tls_outgoing_level': 'encrypt', 'enforce_tls_incoming_level': 'may'})
    applied = gateway.converge()
    assert gateway.postconf('smtp_tls_security_level') == 'secure'
    assert gateway.postconf('smtpd_tls_security_level') == 'encrypt'
    text = ' '.join(str(m) for m in applied.messages())
    assert 'Outgoing TLS stays at "secure"' in text
    assert 'Incoming TLS stays at "encrypt"' in text
    lowered = gateway.play(extra_vars={'enforce_tls_allow_downgrade': True})
    assert lowered.rc == 0, lowered.failed
    assert gateway.postconf('smtp_tls_security_level') == 'encrypt'
    assert gateway.postconf('smtpd_tls_security_level') == 'may'
    assert gateway.play(extra_vars={'enforce_tls_allow_downgrade': True}).changed == []


def test_outgoing_tls_refused_when_main_cf_reuses_connections_without_tlsproxy(gateway):
    """Debian's master.cf has tlsproxy commented out; with smtp_tls_connection_reuse = yes the
    SMTP client hands every TLS connection to it and defers (smtp_tls_policy.c policy_create,
    the delivery oracle's tlsproxy rounds), so raising the level from none is refused."""
    gateway.sh('postconf -e smtp_tls_connection_reuse=yes smtp_tls_security_level=none')
    gateway.take_before()
    for msg in gateway.refused():
        assert msg.startswith('Refusing smtp_tls_security_level=may in /etc/postfix: main.cf sets '
                              'smtp_tls_connection_reuse = yes and master.cf has no tlsproxy service'), msg
    # with the service the level is raised
    gateway.sh('postconf -M tlsproxy/unix="tlsproxy unix - - y - 0 tlsproxy"')
    gateway.take_before()
    gateway.converge()
    assert gateway.postconf('smtp_tls_security_level') == 'may'


def test_enforce_incoming_refused_without_certificate(gateway):
    gateway.sh('rm -f /etc/ssl/private/ssl-cert-snakeoil.key')
    gateway.take_before()
    gateway.group_vars({'enforce_tls_incoming_level': 'encrypt'})
    for msg in gateway.refused():
        assert msg.startswith('Refusing smtpd_tls_security_level=encrypt in /etc/postfix: '), msg
        assert '/etc/ssl/private/ssl-cert-snakeoil.key does not exist' in msg
        assert '454 4.7.0 TLS not available' in msg
    # The explicit override lets it through.
    forced = gateway.play(check=True, extra_vars={'enforce_tls_skip_certificate_check': True})
    assert forced.rc == 0, forced.failed
    assert TABLE_TASK in forced.changed
    assert main_cf_written(forced)[0]['smtpd_tls_security_level']['after'] == 'encrypt'
    # At may the same missing key is not fatal (mail still flows), but STARTTLS
    # would fail and mail arrive in the clear: the run says so.
    opportunistic = gateway.play(extra_vars={'enforce_tls_incoming_level': 'may'})
    assert opportunistic.rc == 0, opportunistic.failed
    warning, = [m for m in opportunistic.messages() if str(m).startswith('WARNING: smtpd_tls_security_level=may')]
    assert 'smtpd_tls_security_level=may' in warning
    assert '/etc/ssl/private/ssl-cert-snakeoil.key does not exist' in warning
    assert 'arrives unencrypted' in warning


def test_enforce_incoming_with_certificate(gateway):
    gateway.make_certificate()
    gateway.add_reinjection_service()
    gateway.sh('postfix reload')
    gateway.take_before()
    # the new certificate with the host's key (snakeoil): files fine, pair unusable in OpenSSL
    gateway.group_vars({'enforce_tls_incoming_level': 'encrypt', 'enforce_tls_smtpd_cert_file': '/etc/postfix/tls/gw.crt'})
    mismatched = gateway.play(check=True)
    assert mismatched.rc != 0
    (name, msg), = mismatched.failed
    assert 'OpenSSL cannot load /etc/postfix/tls/gw.crt with the key /etc/ssl/private/ssl-cert-snakeoil.key' in msg, msg
    assert 'KEY_VALUES_MISMATCH' in msg and gateway.snapshot() == gateway.before
    gateway.group_vars({
        'enforce_tls_incoming_level': 'encrypt',
        'enforce_tls_smtpd_cert_file': '/etc/postfix/tls/gw.crt',
        'enforce_tls_smtpd_key_file': '/etc/postfix/tls/gw.key',
        'enforce_tls_reinjection_services': ['127.0.0.1:10026/inet', '127.0.0.1:10099/inet'],
    })
    applied = gateway.converge()
    assert gateway.postconf('smtpd_tls_security_level') == 'encrypt'
    assert gateway.postconf('smtpd_tls_cert_file') == '/etc/postfix/tls/gw.crt'
    assert '127.0.0.1:10026/inet/smtpd_tls_security_level = none' in gateway.sh('postconf -P')
    text = ' '.join(str(m) for m in applied.messages())
    assert '127.0.0.1:10099/inet is not a service' in text
    # The exemption is live (reloaded) before the level is raised; the levels wait
    # for their own postconf run, with a second check and reload after it.
    order = applied.changed
    assert order == [TABLE_TASK, 'Exempt re-injection services from incoming TLS enforcement',
                     'Check and reload Postfix (enforce_tls)', 'Set the global TLS security levels',
                     'Check and reload Postfix (enforce_tls)'], order
    assert 'smtpd_tls_security_level' not in main_cf_written(applied)[0]
    # On the wire: port 25 demands STARTTLS, the re-injection port does not.
    assert '530 5.7.0 Must issue a STARTTLS command first' in gateway.smtp_reply_to_mail_from(25)
    assert gateway.smtp_reply_to_mail_from(10026).startswith('<-  250')


def test_an_exemption_already_in_master_cf_is_made_live_before_smtpd_is_raised(gateway):
    """master.cf has the re-injection service's exemption, but the master has not re-read it
    (a run that stopped before its reload, a hand edit): raising smtpd to encrypt reloads
    first, then writes the level, then reloads again."""
    gateway.make_certificate()
    gateway.add_reinjection_service()
    gateway.sh('postfix reload && postconf -P 127.0.0.1:10026/inet/smtpd_tls_security_level=none')
    gateway.take_before()
    gateway.group_vars({
        'enforce_tls_incoming_level': 'encrypt',
        'enforce_tls_smtpd_cert_file': '/etc/postfix/tls/gw.crt',
        'enforce_tls_smtpd_key_file': '/etc/postfix/tls/gw.key',
        'enforce_tls_reinjection_services': ['127.0.0.1:10026/inet'],
    })
    applied = gateway.converge()
    assert applied.changed == [
        TABLE_TASK,
        "Make the re-injection services' exemptions live before smtpd is raised",
        'Check and reload Postfix (enforce_tls)', 'Set the global TLS security levels', 'Check and reload Postfix (enforce_tls)'], \
        applied.changed
    assert 'smtpd_tls_security_level' not in main_cf_written(applied)[0]
    assert '530 5.7.0 Must issue a STARTTLS command first' in gateway.smtp_reply_to_mail_from(25)
    assert gateway.smtp_reply_to_mail_from(10026).startswith('<-  250')


def test_ciphermail_layout(gateway):
    gateway.add_reinjection_service()
    gateway.take_before()
    gateway.group_vars({'enforce_tls_layout': 'ciphermail', 'enforce_tls_outgoing_level': 'encrypt',
                        'enforce_tls_policies': [{'destination': 'example.com', 'level': 'verify'}]})
    gateway.converge()
    assert gateway.postconf('maps_d_dir') == '/etc/postfix/maps.d'
    assert gateway.postconf('smtp_tls_policy_maps') == 'hash:${maps_d_dir}/hash-tls-policy.map'
    table = 'hash:/etc/postfix/maps.d/hash-tls-policy.map'
    assert gateway.query('[127.0.0.1]:10025', table) == 'none'
    assert gateway.query('example.com', table) == 'verify'


def test_ciphermail_keeps_existing_maps_d_dir(gateway):
    gateway.sh("mkdir -p /etc/postfix/cm && postconf 'maps_d_dir = /etc/postfix/cm' "
               "'smtp_tls_policy_maps = hash:${maps_d_dir}/hash-tls-policy.map' && "
               "printf 'old.example encrypt\\n' > /etc/postfix/cm/hash-tls-policy.map && "
               'postmap /etc/postfix/cm/hash-tls-policy.map')
    gateway.take_before()
    gateway.group_vars({'enforce_tls_layout': 'ciphermail'})
    applied = gateway.converge()
    assert 'Set maps_d_dir in main.cf (ciphermail layout)' not in applied.changed
    assert MAIN_CF_TASK not in applied.changed and main_cf_written(applied)[1] is False
    assert gateway.postconf('maps_d_dir') == '/etc/postfix/cm'
    table = 'hash:/etc/postfix/cm/hash-tls-policy.map'
    assert gateway.query('old.example', table) == 'encrypt'
    assert gateway.query('[127.0.0.1]:10025', table) == 'none'


def test_example_inventory(gateway):
    """The role's example inventory works as given (host names swapped for the container)."""
    for sub in ('group_vars', 'host_vars'):
        shutil.rmtree(str(gateway.inventory / sub))
        shutil.copytree(os.path.join(EXAMPLE_INVENTORY, sub), str(gateway.inventory / sub))
    hosts = yaml.safe_load(open(os.path.join(EXAMPLE_INVENTORY, 'hosts.yml')))
    host = sorted(hosts['gateways']['hosts'])[0]
    os.rename(str(gateway.inventory / 'host_vars' / ('%s.yml' % host)),
              str(gateway.inventory / 'host_vars' / 'gw.yml'))
    for other in (gateway.inventory / 'host_vars').glob('*.yml'):
        if other.name != 'gw.yml':
            other.unlink()
    gateway.make_certificate()
    gateway.add_reinjection_service()
    gateway.sh('postfix reload')
    gateway.take_before()
    gateway.converge()
    assert gateway.postconf('smtp_tls_security_level') == 'encrypt'


def test_a_configuration_postfix_check_refuses_is_not_reloaded(gateway):
    """A configuration postconf reads but postfix check refuses (maillog_file set, the postlog
    service gone from master.cf, as after an upgrade done halfway): the role writes its
    changes, the reload handler's postfix check fails with Postfix's own words, and the
    running Postfix is not reloaded."""
    gateway.sh('postconf -MX postlog/unix-dgram && postconf maillog_file | grep -q /')
    master = gateway.master_pid()
    gateway.group_vars({'enforce_tls_outgoing_level': 'encrypt'})
    result = gateway.play()
    assert result.rc != 0
    (name, msg), = result.failed
    assert name == 'Check and reload Postfix (enforce_tls)', msg
    assert msg.endswith("check failed (exit status 1): postfix/postfix-script: fatal: missing 'postlog' service in "
                        "master.cf - run 'postfix upgrade-configuration'; Postfix (/etc/postfix) was not reloaded "
                        "or restarted."), msg
    assert 'Check and reload Postfix (enforce_tls)' not in result.changed
    # written (new daemons read main.cf as it is on disk), but nothing reloaded: only the check
    # ran (twice: again on a terminal for its words), and the same master runs
    handler = result.result_of('Check and reload Postfix (enforce_tls)')
    assert [cmd[-1] for cmd in handler['commands']] == ['check', 'check'], handler
    assert gateway.postconf('smtp_tls_security_level') == 'encrypt'
    assert gateway.master_pid() == master


def test_stopped_postfix_is_not_started(stopped_gateway):
    result = stopped_gateway.play()
    assert result.rc == 0, result.failed
    assert 'Leave a stopped Postfix stopped (enforce_tls)' in [
        name for name, r in result.tasks if not r.get('skipped')]
    assert 'Check and reload Postfix (enforce_tls)' not in result.changed
    status = stopped_gateway.exec(['postfix', 'status'])
    assert status.returncode != 0, 'postfix was started'
    assert stopped_gateway.play().changed == []


SYSTEMD_HANDLERS = ('Check and reload Postfix (enforce_tls)', 'Leave a stopped Postfix stopped (enforce_tls)',
                    'Reload Postfix through systemd (enforce_tls)', 'Restart Postfix through systemd (enforce_tls)')


@pytest.mark.parametrize('manager', ['systemd', 'postfix'])
def test_systemd_reloads_postfix_through_its_unit(systemd_gateway, manager):
    """A gateway whose Postfix systemd started. enforce_tls_service_manager=systemd: the handler
    only checks the configuration (postfix check and status, no postfix reload) and systemd
    reloads the unit (its journal says so). The default, postfix: the handler reloads with
    postfix reload, and the unit stays active with the same master in it. Either way the
    master logs one reload and keeps its PID, and check mode predicts exactly the tasks the
    real run changes."""
    gw = systemd_gateway
    gw.group_vars({'enforce_tls_service_manager': manager, 'enforce_tls_outgoing_level': 'encrypt',
                   'enforce_tls_policies': [{'destination': 'partner.example', 'level': 'secure'}]})
    master = gw.master_pid()
    assert gw.log_count('reload -- version', 0) == 0
    applied = gw.converge()
    ran = [name for name, r in applied.tasks if name in SYSTEMD_HANDLERS and not r.get('skipped')]
    handler = applied.result_of('Check and reload Postfix (enforce_tls)')
    assert handler['running'] is True, handler
    if manager == 'systemd':
        assert 'Reload Postfix through systemd (enforce_tls)' in applied.changed, applied.changed
        assert ran == ['Check and reload Postfix (enforce_tls)', 'Reload Postfix through systemd (enforce_tls)'], ran
        assert [cmd[-1] for cmd in handler['commands']] == ['check', 'status'], handler
    else:
        assert ran == ['Check and reload Postfix (enforce_tls)'], ran
        assert [cmd[-1] for cmd in handler['commands']] == ['check', 'status', 'reload'], handler
    # one reload (by systemd: postfix@-.service's ExecReload, reached through postfix.service),
    # and the same master; the second run and the check runs reloaded nothing
    assert gw.log_count('reload -- version', 1) == 1
    journal = gw.sh('journalctl -u postfix@- --no-pager -o cat')
    reloads_by_systemd = journal.count('Reloading postfix@-.service') + journal.count(
        'Reloading Postfix Mail Transport Agent')
    assert reloads_by_systemd == (1 if manager == 'systemd' else 0), journal
    assert gw.master_pid() == master
    assert gw.sh('systemctl is-active postfix@-').strip() == 'active'
    assert gw.postconf('smtp_tls_security_level') == 'encrypt'
    assert gw.query('partner.example', 'hash:/etc/postfix/tls_policy') == 'secure'


def test_systemd_leaves_a_stopped_postfix_stopped(systemd_gateway):
    """A Postfix its unit stopped is not started, reloaded or restarted by the systemd handlers
    (systemctl reload of a stopped postfix.service would fail; restart would start it)."""
    gw = systemd_gateway
    gw.sh('systemctl stop postfix@- postfix')
    gw.take_before()
    gw.group_vars({'enforce_tls_service_manager': 'systemd'})
    predicted = gw.play(check=True)
    applied = gw.play()
    for result in (predicted, applied):
        assert result.rc == 0, result.failed
        ran = [name for name, r in result.tasks if name in SYSTEMD_HANDLERS and not r.get('skipped')]
        assert ran == ['Check and reload Postfix (enforce_tls)', 'Leave a stopped Postfix stopped (enforce_tls)'], ran
    assert predicted.changed == applied.changed, (predicted.changed, applied.changed)
    assert gw.exec(['postfix', 'status']).returncode != 0, 'postfix was started'
    assert gw.exec(['systemctl', 'is-active', 'postfix@-']).stdout.strip() == 'inactive'


def test_systemd_reloads_only_the_instance_its_unit_names(systemd_gateway):
    """A multi-instance gateway under systemd: the role applied to the secondary instance with
    enforce_tls_service_name=postfix@postfix-out reloads that instance's unit only (twice: the
    re-injection service's exemption goes live before smtpd is raised), as docs/enforce_tls.md
    says from Debian's unit file; the primary (postfix@-) is not reloaded."""
    gw = systemd_gateway
    out = gw.add_secondary_instance('systemctl start postfix@postfix-out && postmulti -i postfix-out -p status')
    gw.group_vars({
        'enforce_tls_service_manager': 'systemd',
        'enforce_tls_service_name': 'postfix@postfix-out',
        'enforce_tls_config_dir': out,
        'enforce_tls_outgoing_level': 'encrypt',
        'enforce_tls_incoming_level': 'encrypt',
        'enforce_tls_smtpd_cert_file': '/etc/postfix/tls/gw.crt',
        'enforce_tls_smtpd_key_file': '/etc/postfix/tls/gw.key',
    })
    applied = gw.converge()
    assert applied.changed.count('Reload Postfix through systemd (enforce_tls)') == 2, applied.changed
    assert gw.sh('cat /var/log/postfix-out.log').count('reload -- version') == 2
    assert 'reload' not in gw.sh('cat /var/log/postfix.log')
    assert gw.sh('journalctl -u postfix@postfix-out --no-pager -o cat').count('Reloading') == 2
    assert 'Reloading' not in gw.sh('journalctl -u postfix@- --no-pager -o cat')
    assert '530 5.7.0 Must issue a STARTTLS command first' in gw.smtp_reply_to_mail_from(2525)
    assert gw.smtp_reply_to_mail_from(25).startswith('<-  250')


def test_postfix_310_lmdb_ciphermail_and_no_certificate(trixie_gateway):
    gw = trixie_gateway
    gw.group_vars({'enforce_tls_layout': 'ciphermail', 'enforce_tls_map_type': 'lmdb',
                   'enforce_tls_outgoing_level': 'encrypt', 'enforce_tls_incoming_level': 'encrypt'})
    refused = gw.play()
    assert refused.rc != 0
    (name, msg), = refused.failed
    assert 'no smtpd certificate is configured' in msg
    assert gw.snapshot() == gw.before
    gw.group_vars({'enforce_tls_layout': 'ciphermail', 'enforce_tls_map_type': 'lmdb',
                   'enforce_tls_outgoing_level': 'encrypt'})
    applied = gw.converge()
    # Incoming stays opportunistic, with no certificate: warned, not refused.
    assert any('WARNING: smtpd_tls_security_level=may' in str(m) and 'no smtpd certificate is configured'
               in str(m) for m in applied.messages()), applied.messages()
    assert gw.postconf('smtp_tls_policy_maps') == 'lmdb:${maps_d_dir}/lmdb-tls-policy.map'
    assert gw.query('[127.0.0.1]:10025', 'lmdb:/etc/postfix/maps.d/lmdb-tls-policy.map') == 'none'
    assert gw.postconf('smtp_tls_security_level') == 'encrypt'


def test_the_role_twice_in_one_play(gateway):
    # A play that applies the role twice to the same host (include_role per instance or
    # per step, as playbooks/rollout.yml does): the second pass sees the first pass's
    # registered results and facts, which must not stand in for its own (the second
    # pass's plan is of its own table, not the first pass's).
    first_path = '/etc/postfix/tls_policy_first'
    gateway.playbook.write_text(yaml.safe_dump([{
        'name': 'enforce_tls twice', 'hosts': 'gateways', 'gather_facts': False,
        'tasks': [
            {'name': 'first pass', 'ansible.builtin.include_role': {'name': ROLE},
             'vars': {'enforce_tls_outgoing_level': 'may', 'enforce_tls_map_path': first_path,
                      'enforce_tls_policies': [{'destination': 'first.example', 'level': 'encrypt'}]}},
            {'name': 'second pass', 'ansible.builtin.include_role': {'name': ROLE},
             'vars': {'enforce_tls_outgoing_level': 'encrypt',
                      'enforce_tls_policies': [{'destination': 'second.example', 'level': 'secure'}]}},
        ]}]))
    for run_number in (1, 2):
        applied = gateway.play()
        assert applied.rc == 0, applied.failed or applied.output[-4000:]
        plans = [r['tls_policy_plan']['path'] for n, r in applied.tasks
                 if n == 'Read the Postfix settings, services and files']
        assert plans == [first_path, '/etc/postfix/tls_policy'], plans
        reports = [r['ansible_facts']['enforce_tls_preflight_report'] for n, r in applied.tasks
                   if n == 'Decide levels, policy table, wiring and certificates']
        assert reports[-1]['host'] == 'gw'
    assert gateway.query('first.example', 'hash:' + first_path) == 'encrypt'
    assert gateway.query('second.example', 'hash:/etc/postfix/tls_policy') == 'secure'
    assert gateway.query('first.example', 'hash:/etc/postfix/tls_policy') is None
    assert gateway.postconf('smtp_tls_security_level') == 'encrypt'


def test_a_secondary_postmulti_instance(gateway):
    """A multi-instance gateway (postmulti): the role applied to the secondary instance
    (enforce_tls_config_dir) writes that instance's table, main.cf and master.cf, reloads
    that instance only, and leaves the primary as it was, on disk and on the wire."""
    # the primary's log in a file of its own; the secondary as add_secondary_instance makes it
    gateway.sh('postfix stop && postconf -e maillog_file=/var/log/postfix-primary.log && postfix start')
    out = gateway.add_secondary_instance('postmulti -i postfix-out -p start')
    primary = gateway.sh('md5sum /etc/postfix/main.cf /etc/postfix/master.cf; ls /etc/postfix')
    gateway.group_vars({
        'enforce_tls_config_dir': out,
        'enforce_tls_outgoing_level': 'encrypt',
        'enforce_tls_incoming_level': 'encrypt',
        'enforce_tls_smtpd_cert_file': '/etc/postfix/tls/gw.crt',
        'enforce_tls_smtpd_key_file': '/etc/postfix/tls/gw.key',
        'enforce_tls_policies': [{'destination': 'example.com', 'level': 'verify', 'match': 'mx.example.com'}],
    })
    applied = gateway.converge()
    assert gateway.sh('md5sum /etc/postfix/main.cf /etc/postfix/master.cf; ls /etc/postfix') == primary
    assert gateway.postconf('smtp_tls_security_level') == 'may'
    assert gateway.sh('postconf -c %s -h smtp_tls_policy_maps' % out).strip() == 'hash:%s/tls_policy' % out
    assert gateway.sh('postconf -c %s -h smtp_tls_security_level smtpd_tls_security_level' % out).split() == [
        'encrypt', 'encrypt']
    assert '127.0.0.1:10026/inet/smtpd_tls_security_level = none' in gateway.sh('postconf -c %s -P' % out)
    assert gateway.query('example.com', 'hash:%s/tls_policy' % out) == 'verify match=mx.example.com'
    assert gateway.query('[127.0.0.1]:10025', 'hash:%s/tls_policy' % out) == 'none'
    # The handlers checked and reloaded the secondary (twice: the exemption goes live first).
    assert applied.changed.count('Check and reload Postfix (enforce_tls)') == 2, applied.changed
    log = gateway.sh('cat /var/log/postfix-out.log')
    assert log.count('reload -- version') == 2, log
    primary_log = gateway.sh('cat /var/log/postfix-primary.log')
    assert 'daemon started' in primary_log and 'reload' not in primary_log, primary_log
    # On the wire: the secondary's smtpd demands STARTTLS, its re-injection port does not,
    # and the primary's port 25 still takes plaintext mail.
    assert '530 5.7.0 Must issue a STARTTLS command first' in gateway.smtp_reply_to_mail_from(2525)
    assert gateway.smtp_reply_to_mail_from(10026).startswith('<-  250')
    assert gateway.smtp_reply_to_mail_from(25).startswith('<-  250')


def test_master_cf_overrides_that_undercut_the_levels_are_named(gateway):
    """master.cf -o overrides beat main.cf: smtp/inet with -o smtpd_tls_security_level=may
    still takes plaintext mail after the role raised main.cf to encrypt, and an smtp/unix
    transport with its own level sends at that level, as does another SMTP client transport
    (partner-out, for mail transport_maps routes there). The role says so on every run (and
    in check mode), naming the service and the override; the loopback re-injection
    service it exempts itself is not named, nor the content filter's transport
    (smtp-amavis, at none: it hands mail to a filter on this host)."""
    gateway.make_certificate()
    gateway.add_reinjection_service()
    gateway.sh('postconf -Me "partner-out/unix=partner-out unix - - y - - smtp" '
               '"smtp-amavis/unix=smtp-amavis unix - - y - 2 smtp" '
               '&& postconf -P smtp/inet/smtpd_tls_security_level=may smtp/unix/smtp_tls_security_level=may '
               'partner-out/unix/smtp_tls_security_level=may smtp-amavis/unix/smtp_tls_security_level=none '
               "'smtp/inet/content_filter=smtp-amavis:[127.0.0.1]:10024' "
               '&& postfix reload')
    gateway.take_before()
    gateway.group_vars({
        'enforce_tls_incoming_level': 'encrypt', 'enforce_tls_outgoing_level': 'encrypt',
        'enforce_tls_smtpd_cert_file': '/etc/postfix/tls/gw.crt',
        'enforce_tls_smtpd_key_file': '/etc/postfix/tls/gw.key',
    })
    applied = gateway.converge()
    for result in (applied, gateway.play(check=True)):
        warnings = [m for m in result.messages() if str(m).startswith('WARNING: /etc/postfix/master.cf')]
        assert len(warnings) == 3, result.messages()
        assert warnings[0].startswith('WARNING: /etc/postfix/master.cf service smtp/inet runs smtpd with '
                                      '-o smtpd_tls_security_level=may: it accepts mail at TLS level "may"')
        assert warnings[1].startswith('WARNING: /etc/postfix/master.cf transport smtp/unix (the SMTP client '
                                      'remote mail takes) runs with -o smtp_tls_security_level=may')
        assert warnings[2].startswith('WARNING: /etc/postfix/master.cf transport partner-out/unix (an SMTP '
                                      'client for the mail transport_maps, a sender-dependent map or another '
                                      '*_transport setting sends there) runs with '
                                      '-o smtp_tls_security_level=may: it sends mail to '
                                      'destinations without a policy entry at TLS level "may"')
    assert gateway.postconf('smtpd_tls_security_level') == 'encrypt'
    # What the warning says, on the wire: port 25 takes mail without STARTTLS.
    assert gateway.smtp_reply_to_mail_from(25).startswith('<-  250')
    # Without the overrides the warnings go, and port 25 enforces; without the content filter
    # that takes mail through it, smtp-amavis is one more SMTP client transport at "none".
    gateway.sh('postconf -PX smtp/inet/smtpd_tls_security_level smtp/unix/smtp_tls_security_level '
               'partner-out/unix/smtp_tls_security_level smtp/inet/content_filter && postfix reload')
    unfiltered = gateway.play()
    named = [m for m in unfiltered.messages() if 'master.cf' in str(m)]
    assert len(named) == 1 and named[0].startswith(
        'WARNING: /etc/postfix/master.cf transport smtp-amavis/unix (an SMTP client for the mail transport_maps, '
        'a sender-dependent map or another *_transport setting sends there) runs with '
        '-o smtp_tls_security_level=none'), named
    gateway.sh('postconf -PX smtp-amavis/unix/smtp_tls_security_level && postfix reload')
    clean = gateway.play()
    assert clean.rc == 0 and not [m for m in clean.messages() if 'master.cf' in str(m)], clean.messages()
    assert '530 5.7.0 Must issue a STARTTLS command first' in gateway.smtp_reply_to_mail_from(25)
