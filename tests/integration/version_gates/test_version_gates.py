# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Version gates of the tls_policy module on real Postfix binaries.

Two throwaway containers: localhost/mailgw-postfix:bullseye (Debian's Postfix
3.5, Python 3.9) and :sid (Postfix 3.11). One ansible-playbook run drives the
module on both at once (nsenter connection, the images' /usr/bin/python3), so
the module reads the version from the real postconf and the table is indexed
by the real postmap. On 3.5 the entries 3.5 cannot read are refused, naming
the version found and the one needed, and nothing is written; the same
entries are written on 3.11, where postmap -q returns them. Entries 3.5 does
read (the exclusion form of protocols, connection_reuse from 3.5.4) are
written on both; a hand-written line only a newer Postfix can read is kept
and named on 3.5 and not on 3.11.
"""

import json
import os
import re
import shutil
import subprocess
import uuid

import pytest
import yaml

from ansible_env import ansible_env

IMAGE_REPO = 'localhost/mailgw-postfix'
SUITES = ('bullseye', 'sid')
TABLE = '/etc/postfix/tls_policy'
MAP = 'lmdb:' + TABLE      # postfix-lmdb is in every image (hash is deprecated on sid)
HAND_WRITTEN = 'hand.example encrypt protocols=>=TLSv1.2\n'

pytestmark = [pytest.mark.container, pytest.mark.slow]

TASKS = [
    ('range', {'destination': 'range.example', 'level': 'encrypt', 'protocols': ['>=TLSv1.2']}),
    ('rpk', {'destination': 'rpk.example', 'level': 'encrypt', 'enable_rpk': True}),
    ('exclusion', {'destination': 'old.example', 'level': 'encrypt',
                   'protocols': ['!SSLv2', '!SSLv3', '!TLSv1', '!TLSv1.1']}),
    ('reuse', {'destination': 'reuse.example', 'level': 'encrypt', 'connection_reuse': True}),
]


def _env():
    return ansible_env(interpreter=None, ANSIBLE_PIPELINING='True')


def run(argv, **kwargs):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False,
                          universal_newlines=True, env=kwargs.pop('env', _env()), **kwargs)


class Host(object):
    """A throwaway container of one suite (sleep infinity; Postfix need not run)."""

    def __init__(self, suite):
        self.suite = suite
        self.name = 'mailgw-version-gates-%s%s-%s' % (
            suite, os.environ.get('MAILGW_MOLECULE_SUFFIX', ''), uuid.uuid4().hex[:8])
        proc = run(['podman', 'run', '-d', '--network', 'none', '--name', self.name,
                    '%s:%s' % (IMAGE_REPO, suite), 'sleep', 'infinity'])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        self.pid = run(['podman', 'container', 'inspect', '-f', '{{.State.Pid}}', self.name]).stdout.strip()
        assert self.pid.isdigit() and self.pid != '0', self.pid

    def sh(self, script):
        proc = run(['nsenter', '--ipc', '--mount', '--net', '--pid', '--uts', '--target', self.pid, '--',
                    'sh', '-c', script],
                   env=dict(_env(), PATH='/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'))
        assert proc.returncode == 0, '%s: %s %s' % (script, proc.stdout, proc.stderr)
        return proc.stdout

    def query(self, key):
        return self.sh('postmap -q %s %s || true' % (key, MAP)).strip() or None

    def destroy(self):
        run(['podman', 'rm', '-f', '-t', '0', self.name])


@pytest.fixture(scope='module')
def hosts(tmp_path_factory):
    if not shutil.which('podman'):
        pytest.fail('the version gate tests need podman')
    for suite in SUITES:
        if run(['podman', 'image', 'exists', '%s:%s' % (IMAGE_REPO, suite)]).returncode != 0:
            pytest.fail('image %s:%s is missing (scripts/images.sh builds it)' % (IMAGE_REPO, suite))
    started = {}
    try:
        for suite in SUITES:
            started[suite] = Host(suite)
        yield started
    finally:
        for host in started.values():
            host.destroy()


@pytest.fixture(scope='module')
def facts(hosts):
    """{suite: (mail_version, python version)} read in the container."""
    out = {}
    for suite, host in hosts.items():
        version = host.sh('postconf -h mail_version').strip()
        python = host.sh('python3 -c "import sys; print(\'%d.%d\' % sys.version_info[:2])"').strip()
        out[suite] = (version, python)
    return out


@pytest.fixture(scope='module')
def results(hosts, tmp_path_factory):
    """{task: {suite: host result}} of one playbook over both containers."""
    tmp = tmp_path_factory.mktemp('version-gates')
    for host in hosts.values():
        host.sh("printf '%%s' '%s' > %s && postmap %s" % (HAND_WRITTEN, TABLE, MAP))
        # connection_reuse=yes needs the tlsproxy service, which Debian ships commented out
        # (without it the module refuses the entry: the SMTP client would defer the mail)
        host.sh("postconf -M tlsproxy/unix='tlsproxy unix - - y - 0 tlsproxy'")
    inventory = {'gateways': {
        'hosts': dict((suite, {'ansible_nsenter_pid': int(host.pid)}) for suite, host in hosts.items()),
        'vars': {'ansible_connection': 'community.docker.nsenter',
                 'ansible_python_interpreter': '/usr/bin/python3'}}}
    (tmp / 'hosts.yml').write_text(yaml.safe_dump(inventory))
    tasks = [{'name': name, 'mailgw.postfix_tls.tls_policy': dict(args, path=TABLE, map_type='lmdb'),
              'ignore_errors': True} for name, args in TASKS]
    (tmp / 'play.yml').write_text(yaml.safe_dump([{'name': 'version gates', 'hosts': 'gateways',
                                                   'gather_facts': False, 'tasks': tasks}]))
    proc = run(['ansible-playbook', '-i', str(tmp / 'hosts.yml'), str(tmp / 'play.yml')],
               env=dict(_env(), ANSIBLE_LOCAL_TEMP=str(tmp / 'local'), ANSIBLE_HOME=str(tmp / 'home')),
               cwd=str(tmp))
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError('no JSON from ansible-playbook (rc %d):\n%s\n%s'
                             % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    out = {}
    for task in data['plays'][0]['tasks']:
        out[task['task']['name']] = task['hosts']
    return out


def _warnings(result):
    out = []
    for item in result.get('warnings') or []:
        if isinstance(item, dict):
            item = (item.get('event') or {}).get('msg') or item.get('msg') or json.dumps(item)
        out.append(item)
    return '\n'.join(out)


def check_images(facts):
    problems = []
    if not re.match(r'^3\.5\.\d+$', facts['bullseye'][0]) or facts['bullseye'][1] != '3.9':
        problems.append('bullseye is not Postfix 3.5 with Python 3.9: %s' % (facts['bullseye'],))
    if tuple(int(n) for n in facts['sid'][0].split('.')[:2]) < (3, 11):
        problems.append('sid is not Postfix 3.11 or later: %s' % (facts['sid'],))
    return problems


def check_refused_on_3_5(results, facts, hosts):
    """The range form and enable_rpk: refused on 3.5, naming both versions; nothing written."""
    problems = []
    for task, needed, feature in (('range', '3.6 or later', 'the protocols range form (">=" / "<=")'),
                                  ('rpk', '3.9 or later', 'the enable_rpk attribute')):
        result = results[task]['bullseye']
        message = result.get('msg', '')
        for fragment in ('%s needs Postfix %s' % (feature, needed), 'this Postfix is %s' % facts['bullseye'][0],
                         'nothing was changed'):
            if not result.get('failed') or fragment not in message:
                problems.append('3.5, %s: expected a failure with %r, got %s' % (task, fragment, json.dumps(result)))
        destination = dict(TASKS)[task]['destination']
        if hosts['bullseye'].query(destination) is not None or destination in hosts['bullseye'].sh('cat %s' % TABLE):
            problems.append('3.5, %s: %s was written' % (task, destination))
    return problems


def check_written(results, hosts, suite, task, value):
    result = results[task][suite]
    if result.get('failed') or not result.get('changed'):
        return ['%s, %s: expected a change, got %s' % (suite, task, json.dumps(result))]
    found = hosts[suite].query(dict(TASKS)[task]['destination'])
    return [] if found == value else ['%s, %s: postmap -q gives %r, expected %r' % (suite, task, found, value)]


def check_hand_written_line(results, hosts, facts):
    """A hand-written range line: kept everywhere, named as unusable on 3.5 only."""
    problems = []
    warnings = _warnings(results['exclusion']['bullseye'])
    for fragment in ('line 1: hand.example', 'needs Postfix 3.6 or later', facts['bullseye'][0]):
        if fragment not in warnings:
            problems.append('3.5: no warning with %r about the hand-written line: %r' % (fragment, warnings))
    if hosts['bullseye'].sh('head -n 1 %s' % TABLE) != HAND_WRITTEN:
        problems.append('3.5: the hand-written line was not kept')
    if 'hand.example' in _warnings(results['exclusion']['sid']):
        problems.append('3.11 warned about a line it reads: %r' % _warnings(results['exclusion']['sid']))
    if hosts['sid'].query('hand.example') != 'encrypt protocols=>=TLSv1.2':
        problems.append('3.11: the hand-written line is not readable')
    return problems


def test_version_gates_on_postfix_3_5_and_3_11(results, facts, hosts):
    """One test (not one per check): pytest-xdist would start a container pair per worker."""
    problems = check_images(facts) + check_refused_on_3_5(results, facts, hosts)
    # the same entries are written where the version supports them
    problems += check_written(results, hosts, 'sid', 'range', 'encrypt protocols=>=TLSv1.2')
    problems += check_written(results, hosts, 'sid', 'rpk', 'encrypt enable_rpk=yes')
    # what 3.5 reads is written on both
    for suite in SUITES:
        problems += check_written(results, hosts, suite, 'exclusion', 'encrypt protocols=!SSLv2:!SSLv3:!TLSv1:!TLSv1.1')
        problems += check_written(results, hosts, suite, 'reuse', 'encrypt connection_reuse=yes')
    problems += check_hand_written_line(results, hosts, facts)
    assert not problems, '\n'.join(problems)
