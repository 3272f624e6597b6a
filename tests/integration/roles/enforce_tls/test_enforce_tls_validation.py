# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The enforce_tls role refuses malformed policy variables before it reads or
writes anything on the host.

With bad input the read is skipped and the refusal names the input's problems,
so these run here against localhost (connection local) with a configuration
directory that does not exist: a run that got past the checks would fail on the
missing directory instead, with another message.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import subprocess

import yaml

from ansible_env import ansible_env, tool


def run_role(tmp_path, variables):
    playbook = tmp_path / 'play.yml'
    playbook.write_text(yaml.safe_dump([{
        'hosts': 'localhost', 'gather_facts': False,
        'roles': [{'role': 'mailgw.postfix_tls.enforce_tls'}],
    }]))
    varfile = tmp_path / 'vars.yml'
    varfile.write_text(yaml.safe_dump(dict(variables, enforce_tls_config_dir=str(tmp_path / 'no-such-dir'))))
    proc = subprocess.run([tool('ansible-playbook'), '-i', 'localhost,', '-c', 'local', str(playbook),
                           '-e', '@%s' % varfile], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, env=ansible_env(tmp_path), check=False)
    data = json.loads(proc.stdout)
    failed = [(task['task']['name'], result.get('msg', ''))
              for play in data['plays'] for task in play['tasks']
              for result in task['hosts'].values() if result.get('failed')]
    read = [result for play in data['plays'] for task in play['tasks']
            if task['task']['name'].endswith('Read the Postfix settings, services and files')
            for result in task['hosts'].values()]
    return proc.returncode, failed, read


REFUSE = 'Refuse a change Postfix cannot work with or the preflight finds would defer mail'


def refused_unread(rc, failed, read):
    """The one failure: the refusal, with the read skipped (nothing was read)."""
    assert rc != 0
    (name, msg), = failed
    assert name.endswith(REFUSE), failed
    assert len(read) == 1 and read[0].get('skipped') is True, read
    return msg


def test_every_bad_entry_is_named_in_one_message(tmp_path):
    msg = refused_unread(*run_role(tmp_path, {
        'enforce_tls_policies': [
            {'destination': 'ok.example', 'level': 'verify'},
            {'destination': '  ', 'level': 'may'},
            {'destination': 'gone.example', 'state': 'absent'},
        ],
        'enforce_tls_policies__partners': {'destination': 'not-a-list.example', 'level': 'secure'},
        'enforce_tls_host_policies': [
            {'destination': 'nolevel.example'},
            {'destination': 'fine.example', 'level': 'encrypt'},
        ],
    }))
    assert msg.startswith('3 policy entries are not valid: '), msg
    assert 'enforce_tls_policies[1]: {"destination": "  ", "level": "may"}' in msg
    assert 'enforce_tls_policies__partners (must be a list of entries)' in msg
    assert 'enforce_tls_host_policies[0]: {"destination": "nolevel.example"}' in msg
    # Valid entries (including one being removed) are not reported.
    for good in ('ok.example', 'gone.example', 'fine.example'):
        assert good not in msg


def test_a_long_list_of_bad_entries_is_summarised(tmp_path):
    bad = [{'destination': 'd%d.example' % i} for i in range(25)]
    msg = refused_unread(*run_role(tmp_path, {'enforce_tls_policies': bad}))
    assert msg.startswith('25 policy entries are not valid: ')
    assert 'enforce_tls_policies[19]' in msg and 'enforce_tls_policies[20]' not in msg
    assert '(and 5 more)' in msg


def test_valid_entries_pass_the_checks(tmp_path):
    rc, failed, read = run_role(tmp_path, {'enforce_tls_policies': [
        {'destination': 'd%d.example' % i, 'level': 'verify', 'match': ['nexthop']} for i in range(300)]})
    assert rc != 0
    (name, msg), = failed
    # Past the checks: the host is read, and the run stops where it first needs
    # Postfix's configuration.
    assert len(read) == 1 and not read[0].get('skipped'), read
    assert 'postconf cannot read the configuration' in msg, (name, msg)


def test_an_unquoted_off_preflight_is_off(tmp_path):
    # enforce_tls_preflight: off (unquoted YAML) is the boolean false: the preflight is off, not
    # a bad value (before: "must be off, warn or fail (got false)")
    rc, failed, read = run_role(tmp_path, {'enforce_tls_preflight': False})
    (name, msg), = failed
    assert len(read) == 1 and not read[0].get('skipped'), read
    assert 'postconf cannot read the configuration' in msg and 'enforce_tls_preflight' not in msg, (name, msg)


def test_an_unquoted_octal_map_mode_is_refused(tmp_path):
    # enforce_tls_map_mode: 644 (unquoted) is the number 644: mode 01204 on the table
    msg = refused_unread(*run_role(tmp_path, {'enforce_tls_map_mode': 644}))
    assert 'enforce_tls_map_mode 644' in msg and '(mode 01204)' in msg and 'quote it, "0644"' in msg, msg
