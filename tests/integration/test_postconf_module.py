# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""mailgw.postfix_tls.postconf against the host's real postconf.

Every test works in its own throwaway config directory and runs the module
through the real ``ansible`` / ``ansible-playbook`` commands, so argument
handling, check mode and --diff are exercised as users hit them. A logging
``postconf`` wrapper placed first in PATH records every invocation, so the
tests can count the ones that write.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import concurrent.futures
import os
import subprocess
import sys
import textwrap

import pytest

from ansible_env import REPO, ansible_env, run_module, run_playbook, tool

REAL_POSTCONF = '/usr/sbin/postconf'
MODULE = 'mailgw.postfix_tls.postconf'
# The module runs under the system Python, as on a managed host (interpreter
# discovery can pick a broken pyenv shim here).

pytestmark = pytest.mark.skipif(not os.access(REAL_POSTCONF, os.X_OK),
                                reason='needs the host postconf binary')

MAIN_CF = textwrap.dedent('''\
    # throwaway test configuration
    compatibility_level = 3.6
    smtp_tls_policy_maps = hash:${maps_d_dir}/hash-tls-policy.map
    maps_d_dir = /etc/postfix/maps.d
    smtpd_tls_security_level = may
    mynetworks = 127.0.0.0/8,[::1]/128
    smtpd_banner = $myhostname  ESMTP
    ''')

MASTER_CF = textwrap.dedent('''\
    smtp      inet  n       -       n       -       -       smtpd
    127.0.0.1:10026 inet n  -       n       -       -       smtpd
      -o smtpd_tls_security_level=none
      -o content_filter=
    submission inet n       -       n       -       -       smtpd
    pickup    unix  n       -       n       60      1       pickup
    cleanup   unix  n       -       n       -       0       cleanup
    qmgr      unix  n       -       n       300     1       qmgr
    smtp      unix  -       -       n       -       -       smtp
    relay     unix  -       -       n       -       -       smtp
    ''')


class Env:
    """A config dir plus a logging postconf wrapper and ways to run the module."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.confdir = tmp_path / 'postfix'
        self.confdir.mkdir()
        (self.confdir / 'main.cf').write_text(MAIN_CF)
        (self.confdir / 'master.cf').write_text(MASTER_CF)
        self.bindir = tmp_path / 'bin'
        self.bindir.mkdir()
        self.log = tmp_path / 'postconf.log'
        self.log.write_text('')
        shim = self.bindir / 'postconf'
        shim.write_text('#!/bin/sh\nprintf "%%s\\n" "$*" >> "%s"\nexec %s "$@"\n'
                        % (self.log, REAL_POSTCONF))
        shim.chmod(0o755)

    # -- observation ---------------------------------------------------------

    @property
    def main_cf(self):
        return self.confdir / 'main.cf'

    @property
    def master_cf(self):
        return self.confdir / 'master.cf'

    def snapshot(self):
        """Bytes, inode and mtime of every file in the config dir."""
        state = {}
        for entry in sorted(os.listdir(self.confdir)):
            path = self.confdir / entry
            st = path.stat()
            state[entry] = (path.read_bytes(), st.st_ino, st.st_mtime_ns)
        return state

    def invocations(self):
        return [line for line in self.log.read_text().splitlines() if line]

    def writes(self):
        """postconf invocations that edit a file (-e, -X, or NAME=VALUE)."""
        result = []
        for line in self.invocations():
            args = line.split()
            if '-e' in args or '-X' in args or any('=' in a for a in args[2:]):
                result.append(line)
        return result

    def postconf(self, *args):
        return subprocess.run([REAL_POSTCONF, '-c', str(self.confdir)] + list(args),
                              check=True, capture_output=True, text=True).stdout

    def explicit(self, name):
        out = self.postconf('-n', name)
        return out.split(' = ', 1)[1].rstrip('\n') if out else None

    # -- running Ansible ---------------------------------------------------------

    def environ(self):
        return ansible_env(self.tmp, path_prefix=[self.bindir])

    def run(self, args, check=False, diff=False, with_dir=True):
        """Run the module once (see ansible_env.run_module); return its result (dict)."""
        args = dict(args)
        if with_dir:
            args.setdefault('config_dir', str(self.confdir))
        return run_module(MODULE, args, check, diff, env=self.environ(), cwd=str(self.tmp), tmp=self.tmp)

    def playbook(self, tasks, check=False, diff=False):
        """Run a generated playbook; return (per-task results, stats)."""
        return run_playbook(tasks, self.tmp, env=self.environ(), check=check, diff=diff, name='postconf')


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path)


def assert_failed(result, *fragments):
    assert result.get('failed') is True, result
    for fragment in fragments:
        assert fragment in result['msg'], (fragment, result['msg'])


# --- main.cf: set, change, no-op, remove ----------------------------------------------

def test_set_new_parameter(env):
    result = env.run({'name': 'smtp_tls_security_level', 'value': 'encrypt'})
    assert result['changed'] is True
    assert result['params'] == {'smtp_tls_security_level': {'before': None, 'after': 'encrypt'}}
    assert result['restart_required'] is False
    assert result['config_file'] == str(env.main_cf)
    assert env.explicit('smtp_tls_security_level') == 'encrypt'
    assert 'smtp_tls_security_level = encrypt\n' in env.main_cf.read_text()
    assert len(env.writes()) == 1
    # the rest of main.cf is untouched
    assert env.main_cf.read_text().startswith(MAIN_CF)


def test_change_existing_parameter(env):
    result = env.run({'name': 'smtpd_tls_security_level', 'value': 'encrypt'})
    assert result['changed'] is True
    assert result['params']['smtpd_tls_security_level'] == {'before': 'may', 'after': 'encrypt'}
    assert env.explicit('smtpd_tls_security_level') == 'encrypt'
    assert 'smtpd_tls_security_level = may' not in env.main_cf.read_text()


def test_same_value_is_a_no_op_and_writes_nothing(env):
    before = env.snapshot()
    result = env.run({'name': 'smtpd_tls_security_level', 'value': 'may'})
    assert result['changed'] is False
    assert result['params']['smtpd_tls_security_level'] == {'before': 'may', 'after': 'may'}
    assert env.snapshot() == before
    assert env.writes() == []


def test_set_then_repeat_is_idempotent(env):
    assert env.run({'name': 'smtp_tls_loglevel', 'value': '1'})['changed'] is True
    after_first = env.snapshot()
    assert env.run({'name': 'smtp_tls_loglevel', 'value': 1})['changed'] is False
    assert env.snapshot() == after_first


LIST_SPELLINGS = [
    '127.0.0.0/8, [::1]/128',
    '127.0.0.0/8 [::1]/128',
    ' 127.0.0.0/8,[::1]/128 ',
    ['127.0.0.0/8', '[::1]/128'],
]


def test_list_value_equal_under_postfix_splitting_is_not_rewritten(env):
    # main.cf has "mynetworks = 127.0.0.0/8,[::1]/128"
    before = env.snapshot()
    results, stats = env.playbook([
        {MODULE: {'config_dir': str(env.confdir), 'name': 'mynetworks', 'value': value}}
        for value in LIST_SPELLINGS])
    assert [r['changed'] for r in results] == [False] * len(LIST_SPELLINGS), results
    assert stats['failures'] == 0
    assert env.snapshot() == before
    assert env.writes() == []


def test_list_with_other_items_is_rewritten_joined_with_comma_space(env):
    result = env.run({'name': 'mynetworks', 'value': ['127.0.0.0/8', '192.0.2.0/24']})
    assert result['changed'] is True
    assert 'mynetworks = 127.0.0.0/8, 192.0.2.0/24\n' in env.main_cf.read_text()


def test_scalar_whitespace_difference_is_a_change(env):
    result = env.run({'name': 'smtpd_banner', 'value': '$myhostname ESMTP'})
    assert result['changed'] is True
    assert result['params']['smtpd_banner'] == {'before': '$myhostname  ESMTP',
                                                'after': '$myhostname ESMTP'}


def test_remove_parameter_then_no_op(env):
    result = env.run({'name': 'smtpd_tls_security_level', 'state': 'absent'})
    assert result['changed'] is True
    assert result['params']['smtpd_tls_security_level'] == {'before': 'may', 'after': None}
    assert env.explicit('smtpd_tls_security_level') is None
    assert 'smtpd_tls_security_level' not in env.main_cf.read_text()
    before = env.snapshot()
    again = env.run({'name': 'smtpd_tls_security_level', 'state': 'absent'})
    assert again['changed'] is False
    assert env.snapshot() == before


def test_empty_value_is_set_explicitly(env):
    result = env.run({'name': 'relayhost', 'value': ''})
    assert result['changed'] is True
    assert result['params']['relayhost'] == {'before': None, 'after': ''}
    assert 'relayhost = \n' in env.main_cf.read_text()
    assert env.run({'name': 'relayhost', 'value': ''})['changed'] is False


def test_boolean_is_written_as_yes_no(env):
    env.run({'name': 'smtpd_tls_auth_only', 'value': True})
    assert env.explicit('smtpd_tls_auth_only') == 'yes'


# --- params: several names, one read, one write ----------------------------------------

def test_params_batch_is_one_write(env):
    params = {
        'smtpd_tls_security_level': 'encrypt',      # changed
        'smtp_tls_security_level': 'may',           # new
        'smtp_tls_loglevel': '1',                   # new
        'mynetworks': ['127.0.0.0/8', '[::1]/128'],  # equal already
    }
    result = env.run({'params': params})
    assert result['changed'] is True
    assert result['params'] == {
        'smtpd_tls_security_level': {'before': 'may', 'after': 'encrypt'},
        'smtp_tls_security_level': {'before': None, 'after': 'may'},
        'smtp_tls_loglevel': {'before': None, 'after': '1'},
        'mynetworks': {'before': '127.0.0.0/8,[::1]/128', 'after': '127.0.0.0/8,[::1]/128'},
    }
    writes = env.writes()
    assert len(writes) == 1, writes
    assert 'mynetworks' not in writes[0]
    assert env.explicit('smtpd_tls_security_level') == 'encrypt'
    assert env.explicit('smtp_tls_security_level') == 'may'
    assert env.explicit('smtp_tls_loglevel') == '1'
    assert env.explicit('mynetworks') == '127.0.0.0/8,[::1]/128'

    before = env.snapshot()
    again = env.run({'params': params})
    assert again['changed'] is False
    assert env.snapshot() == before
    assert len(env.writes()) == 1


def test_params_absent_ignores_values_and_removes_in_one_write(env):
    result = env.run({'params': {'smtpd_tls_security_level': None, 'smtpd_banner': 'ignored',
                                 'smtp_tls_security_level': None},
                      'state': 'absent'})
    assert result['changed'] is True
    assert result['params'] == {
        'smtpd_tls_security_level': {'before': 'may', 'after': None},
        'smtpd_banner': {'before': '$myhostname  ESMTP', 'after': None},
        'smtp_tls_security_level': {'before': None, 'after': None},
    }
    assert len(env.writes()) == 1
    text = env.main_cf.read_text()
    assert 'smtpd_tls_security_level' not in text and 'smtpd_banner' not in text


def test_check_mode_changes_nothing_and_reports_the_change(env):
    before = env.snapshot()
    result = env.run({'params': {'smtpd_tls_security_level': 'encrypt',
                                 'smtp_tls_security_level': 'encrypt'}},
                     check=True, diff=True)
    assert result['changed'] is True
    assert result['params']['smtpd_tls_security_level'] == {'before': 'may', 'after': 'encrypt'}
    assert env.snapshot() == before  # bytes, inode and mtime; no temp file left
    assert env.writes() == []
    assert env.invocations()  # it did read


def test_check_mode_removal_writes_nothing(env):
    before = env.snapshot()
    result = env.run({'name': 'smtpd_tls_security_level', 'state': 'absent'}, check=True)
    assert result['changed'] is True
    assert env.snapshot() == before
    assert env.writes() == []


def test_diff_shows_main_cf_lines(env):
    result = env.run({'params': {'smtpd_tls_security_level': 'encrypt',
                                 'smtp_tls_security_level': 'may',
                                 'mynetworks': '127.0.0.0/8, [::1]/128'}}, diff=True)
    diff = result['diff']
    assert diff['before'] == 'smtpd_tls_security_level = may\n'
    assert diff['after'] == ('smtp_tls_security_level = may\n'
                             'smtpd_tls_security_level = encrypt\n')
    assert diff['before_header'] == str(env.main_cf)


def test_diff_of_removal(env):
    result = env.run({'name': 'smtpd_banner', 'state': 'absent'}, diff=True, check=True)
    assert result['diff']['before'] == 'smtpd_banner = $myhostname  ESMTP\n'
    assert result['diff']['after'] == ''


def test_playbook_check_diff_then_apply_then_idempotent(env):
    task = {'name': 'TLS settings', MODULE: {
        'config_dir': str(env.confdir),
        'params': {'smtpd_tls_security_level': 'encrypt',
                   'smtpd_tls_protocols': ['>=TLSv1.2'],
                   'smtp_tls_policy_maps': 'hash:${maps_d_dir}/hash-tls-policy.map'}}}
    before = env.snapshot()
    results, stats = env.playbook([task], check=True, diff=True)
    assert stats['changed'] == 1 and stats['failures'] == 0
    assert 'smtpd_tls_protocols = >=TLSv1.2\n' in results[0]['diff']['after']
    assert env.snapshot() == before

    results, stats = env.playbook([task])
    assert stats['changed'] == 1 and stats['failures'] == 0
    assert env.explicit('smtpd_tls_protocols') == '>=TLSv1.2'

    results, stats = env.playbook([task], diff=True)
    assert stats['changed'] == 0 and stats['failures'] == 0


# --- master.cf service overrides -------------------------------------------------------

def test_service_override_set_noop_remove(env):
    svc = '127.0.0.1:10026/inet'
    result = env.run({'service': svc, 'name': 'smtpd_tls_security_level', 'value': 'encrypt'},
                     diff=True)
    assert result['changed'] is True
    assert result['params']['smtpd_tls_security_level'] == {'before': 'none', 'after': 'encrypt'}
    assert result['restart_required'] is False
    assert result['config_file'] == str(env.master_cf)
    assert result['diff']['before'] == '127.0.0.1:10026/inet/smtpd_tls_security_level = none\n'
    assert result['diff']['after'] == '127.0.0.1:10026/inet/smtpd_tls_security_level = encrypt\n'
    assert '127.0.0.1:10026/inet/smtpd_tls_security_level = encrypt' in env.postconf('-P')
    assert len(env.writes()) == 1
    # main.cf is not touched by a service override
    assert env.main_cf.read_text() == MAIN_CF

    before = env.snapshot()
    again = env.run({'service': svc, 'name': 'smtpd_tls_security_level', 'value': 'encrypt'})
    assert again['changed'] is False
    assert env.snapshot() == before

    removed = env.run({'service': svc, 'name': 'content_filter', 'state': 'absent'})
    assert removed['changed'] is True
    assert removed['params']['content_filter'] == {'before': '', 'after': None}
    assert 'content_filter' not in env.postconf('-P')
    assert env.run({'service': svc, 'name': 'content_filter',
                    'state': 'absent'})['changed'] is False


def test_service_override_batch_is_one_write(env):
    result = env.run({'service': 'submission/inet',
                      'params': {'smtpd_tls_security_level': 'encrypt',
                                 'smtpd_sasl_auth_enable': 'yes',
                                 'syslog_name': 'postfix/submission'}})
    assert result['changed'] is True
    assert len(env.writes()) == 1
    overrides = env.postconf('-P')
    assert 'submission/inet/smtpd_sasl_auth_enable = yes' in overrides
    assert 'submission/inet/syslog_name = postfix/submission' in overrides


def test_service_override_check_mode(env):
    before = env.snapshot()
    result = env.run({'service': 'submission/inet', 'name': 'smtpd_tls_security_level',
                      'value': 'encrypt'}, check=True, diff=True)
    assert result['changed'] is True
    assert result['diff']['after'] == 'submission/inet/smtpd_tls_security_level = encrypt\n'
    assert env.snapshot() == before
    assert env.writes() == []


def test_nonexistent_service_fails_clearly(env):
    before = env.snapshot()
    result = env.run({'service': '127.0.0.1:10099/inet', 'name': 'smtpd_tls_security_level',
                      'value': 'none'})
    assert_failed(result, 'service 127.0.0.1:10099/inet not found', 'master.cf',
                  '127.0.0.1:10026/inet')
    assert env.snapshot() == before
    assert env.writes() == []


def test_unknown_name_fails_with_did_you_mean(env):
    before = env.snapshot()
    result = env.run({'name': 'smtp_tls_polcy_maps', 'value': 'hash:/etc/postfix/tls_policy'})
    assert_failed(result, "unknown Postfix parameter 'smtp_tls_polcy_maps'",
                  "did you mean 'smtp_tls_policy_maps'", 'allow_unknown')
    assert env.snapshot() == before
    assert env.writes() == []


def test_unknown_service_override_name_fails(env):
    result = env.run({'service': 'submission/inet', 'name': 'smtpd_tls_securty_level',
                      'value': 'encrypt'})
    assert_failed(result, "did you mean 'smtpd_tls_security_level'", 'submission/inet')


def test_unknown_removal_of_unset_name_fails(env):
    result = env.run({'name': 'smtpd_tls_securty_level', 'state': 'absent'})
    assert_failed(result, "did you mean 'smtpd_tls_security_level'")


def test_removal_of_set_unknown_name_is_accepted(env):
    env.main_cf.write_text(MAIN_CF + 'smtpd_tls_securty_level = encrypt\n')
    result = env.run({'name': 'smtpd_tls_securty_level', 'state': 'absent'})
    assert result['changed'] is True
    assert 'securty' not in env.main_cf.read_text()


LEGITIMATE = [
    ('smtp_tls_policy_maps', 'lmdb:/etc/postfix/tls_policy'),
    ('tls_high_cipherlist', 'ECDHE+AESGCM:!aNULL'),
    ('maillog_file', '/dev/stdout'),
    ('lmdb_map_size', '16777216'),                        # dynamically loaded map type
    ('relay_destination_concurrency_limit', '5'),         # derived from master.cf "relay"
    ('smtpd_tls_mandatory_protocols', '>=TLSv1.2'),
]


def test_legitimate_names_are_accepted(env):
    results, stats = env.playbook(
        [{MODULE: {'config_dir': str(env.confdir), 'name': name, 'value': value},
          'ignore_errors': True} for name, value in LEGITIMATE], check=True)
    for (name, dummy), result in zip(LEGITIMATE, results):
        assert result.get('failed') is not True, (name, result)
        assert result['changed'] is True, (name, result)
    assert stats['failures'] == 0


def test_referenced_user_defined_name_is_accepted(env):
    # maps_d_dir is referenced by smtp_tls_policy_maps = hash:${maps_d_dir}/...
    result = env.run({'name': 'maps_d_dir', 'value': '/etc/postfix/maps.d/tls'})
    assert result['changed'] is True
    assert env.explicit('maps_d_dir') == '/etc/postfix/maps.d/tls'


def test_name_referenced_in_the_same_call_is_accepted(env):
    env.main_cf.write_text('compatibility_level = 3.6\n')
    result = env.run({'params': {
        'smtp_tls_policy_maps': 'hash:${maps_d_dir}/hash-tls-policy.map',
        'maps_d_dir': '/etc/postfix/maps.d'}})
    assert result['changed'] is True
    assert env.explicit('maps_d_dir') == '/etc/postfix/maps.d'


def test_unreferenced_user_defined_name_needs_allow_unknown(env):
    env.main_cf.write_text('compatibility_level = 3.6\n')
    result = env.run({'name': 'maps_d_dir', 'value': '/etc/postfix/maps.d'})
    assert_failed(result, "unknown Postfix parameter 'maps_d_dir'")
    assert env.main_cf.read_text() == 'compatibility_level = 3.6\n'

    result = env.run({'name': 'maps_d_dir', 'value': '/etc/postfix/maps.d',
                      'allow_unknown': True})
    assert result['changed'] is True
    assert 'maps_d_dir = /etc/postfix/maps.d\n' in env.main_cf.read_text()
    # postconf -n hides unused parameters; the module still sees the value
    before = env.snapshot()
    again = env.run({'name': 'maps_d_dir', 'value': '/etc/postfix/maps.d',
                     'allow_unknown': True})
    assert again['changed'] is False
    assert env.snapshot() == before


def test_restriction_class_is_a_known_name(env):
    result = env.run({'params': {'smtpd_restriction_classes': 'tls_only',
                                 'tls_only': 'reject_plaintext_session'}})
    assert result['changed'] is True
    assert env.explicit('tls_only') == 'reject_plaintext_session'


# --- refused input: nothing runs, nothing changes ------------------------------------

# Each case: task arguments and fragments the error message must contain.
REFUSED = [
    ({'name': 'smtp_tls_security_level', 'value': 'may\nsmtpd_tls_security_level = none'},
     ['newline', 'smtp_tls_security_level']),
    ({'name': 'smtp_tls_security_level', 'value': 'may\r'},
     ['carriage return', 'smtp_tls_security_level']),
    ({'name': 'smtp_tls_security_level', 'value': 'may\x00'},
     ['NUL', 'smtp_tls_security_level']),
    ({'name': 'smtp_tls_security_level', 'value': ['may', 'x\ny']},
     ['newline', 'smtp_tls_security_level']),
    ({'params': {'smtp_tls_security_level': 'encrypt',
                 'smtpd_tls_security_level': 'encrypt\nx = y'}},
     ['newline', 'smtpd_tls_security_level']),
    ({'name': 'smtp-tls-security-level', 'value': 'encrypt'},
     ['invalid parameter name', 'letters, digits']),
    ({'name': 'smtp_tls_security_level=x', 'value': 'encrypt'},
     ['invalid parameter name', 'letters, digits']),
    ({'name': 'a b', 'value': 'encrypt'}, ['invalid parameter name']),
    ({'name': 'smtp_tls_security_level\n', 'value': 'encrypt'}, ['invalid parameter name']),
    ({'params': {'smtpd_tls_security_level': None, 'smtp_tls_loglevel': '1'}},
     ['smtpd_tls_security_level', 'null', 'state=absent']),
    ({'params': {'smtp_tls_loglevel': {'nested': 1}}}, ['smtp_tls_loglevel', 'expected a string']),
    ({'name': 'smtpd_tls_security_level'}, ['value is required']),
    ({'name': 'a', 'value': 'b', 'params': {'c': 'd'}}, ['mutually exclusive']),
    ({'service': 'submission', 'name': 'smtpd_tls_security_level', 'value': 'none'},
     ['SERVICE/TYPE']),
    ({'service': 'submission/tcp', 'name': 'smtpd_tls_security_level', 'value': 'none'},
     ["unknown service type 'tcp'"]),
    ({'service': 'submission/inet', 'name': 'smtpd_banner', 'value': 'a b'},
     ['whitespace', 'smtpd_banner']),
    ({'name': 'smtpd_banner', 'value': '$(touch x)'},
     ['smtpd_banner', "'$(touch x)'", 'attribute name syntax error', 'letters, digits']),
    ({'name': 'smtp_tls_policy_maps', 'value': ['hash:${maps_d_dir/policy']},
     ['smtp_tls_policy_maps', 'truncated']),
    ({'params': {'smtpd_tls_security_level': 'encrypt', 'smtpd_banner': 'costs $ 5'}},
     ['smtpd_banner', 'empty macro name', '"$$"']),
    ({'service': 'submission/inet', 'name': 'smtpd_tls_security_level', 'value': '${level'},
     ['smtpd_tls_security_level', 'truncated']),
    ({'name': 'smtpd_banner', 'value': 'gw\x0cx'}, ['smtpd_banner', 'control character']),
    ({'name': 'smtpd_banner', 'value': 'gw\x0bx'}, ['smtpd_banner', 'control character']),
]


def test_refused_input_runs_nothing_and_changes_nothing(env):
    """Bad names, values and specs are refused before postconf runs at all."""
    before = env.snapshot()
    tasks = [{MODULE: dict(args, config_dir=str(env.confdir)), 'ignore_errors': True}
             for args, dummy in REFUSED]
    results, stats = env.playbook(tasks)
    assert len(results) == len(REFUSED)
    for (args, fragments), result in zip(REFUSED, results):
        assert result.get('failed') is True, (args, result)
        for fragment in fragments:
            assert fragment in result['msg'], (args, fragment, result['msg'])
    assert env.snapshot() == before  # byte-identical, same inode and mtime
    assert env.invocations() == []


# --- $ macros: the module refuses exactly what Postfix cannot expand -----------------

# Checked one by one against the real postconf below; each is a value of
# smtpd_banner (a parameter Postfix expands when it reads main.cf).
MACRO_CORPUS = [
    'hash:${maps_d_dir}/x', '$myhostname ESMTP $mail_name', '${config_directory}/tls',
    '$(name)', '${ name }', '$$', '$$(touch x)', 'a$$b', '${a}}', '$(a))', '$_',
    '${name?x}', '${name:x}', '${name?{x}:{y}}', '${name?{x}:y:z}', '${a? {x} : {y} }',
    '${a?(}', '$(a?{x}:{y})', '${{a}=={b}}', '${{a} == {b}?{x}:{y}}', '${ {1}=={2}}',
    '${{3}==level {3} ? {a} : {b}}', '${{3.6.1} <level {3}}', '${{ 3.6} <level {3.6}}',
    '${{$compatibility_level} <level {3.6} ? {md5} : {sha256}}',
    '$(touch x)', '${unclosed', '$(a', '$(a}', '${a?${b}', '$', 'x$', 'a $ b', '$-x',
    '${}', '$\u00e9', '${name x}', '${a(}', '${a)}', '$((a))', '${a?$(c d)}',
    '${a?{x}:{$(c d)}}', '${a?$}', '${name?{x} z}', '${name:{x}z}', '${a?{x}:{y}:{z}}',
    '${{a}?{b}}', '${{1}}', '${{a}==b}', '${{1}!=LEVEL{2}}', '${{1}==}', '${{1}=={2} x}',
    '${{a} <level {3.6}}', '${{3.} <level {3}}', '${{99999999999999999999}<{1}}',
]
# postconf's own display warnings about {} in list-like text are not macro errors.
_NOT_MACRO_WARNINGS = ('undefined parameter', 'unused parameter', "missing '}'",
                       "syntax error after '}'")


def _postconf_refuses(confdir, value):
    confdir.mkdir()
    (confdir / 'master.cf').write_text('')
    (confdir / 'main.cf').write_text('compatibility_level = 3.6\nsmtpd_banner = %s\n' % value)
    proc = subprocess.run([REAL_POSTCONF, '-c', str(confdir), '-h', 'smtpd_banner'],
                          capture_output=True, text=True, check=False)
    warnings = [line for line in proc.stderr.splitlines()
                if not any(w in line for w in _NOT_MACRO_WARNINGS)]
    return proc.returncode != 0 or bool(warnings), proc.stderr


def _random_macro_values(count, seed):
    import random
    tokens = ['$', '$', '$$', '{', '}', '(', ')', '?', ':', 'a', 'b_1', ' ', '==', '<',
              '<level', '3.6', '1', '${', '$(', '${a}', '$a', '${{1}=={2}', '?{', '}:{',
              'level', 'x']
    rng = random.Random(seed)
    values = []
    while len(values) < count:
        value = ''.join(rng.choice(tokens) for dummy in range(rng.randint(1, 8))).strip()
        if value:
            values.append(value)
    return values


def test_macro_check_agrees_with_the_real_postconf(tmp_path):
    """Our mac_parse/mac_expand model and postconf agree, value by value."""
    sys.path.insert(0, os.path.join(REPO, '.cache', 'collections'))
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import (
        macro_syntax_error,
    )
    values = MACRO_CORPUS + _random_macro_values(150, seed=3)
    # postconf sleeps a second before it exits on a fatal error: run them side by side.
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        verdicts = list(pool.map(lambda item: _postconf_refuses(tmp_path / str(item[0]), item[1]),
                                 enumerate(values)))
    disagree = []
    for value, (refused, stderr) in zip(values, verdicts):
        reason = macro_syntax_error(value)
        if refused != (reason is not None):
            disagree.append('%r: postconf %s (%s), module %s'
                            % (value, 'refuses' if refused else 'accepts', stderr.strip(),
                               reason or 'accepts'))
    assert not disagree, '\n'.join(disagree)


def test_expandable_macro_values_are_written_and_idempotent(env):
    # "${ {" rather than "${{", which Ansible would take for a Jinja2 expression.
    values = ['${ {$compatibility_level} <level {3.6} ? {md5} : {sha256}}',
              '$myhostname ESMTP ${mail_name?{$mail_name}:{Postfix}} $$5']
    tasks = []
    for value in values:
        task = {MODULE: {'name': 'smtpd_banner', 'value': value, 'config_dir': str(env.confdir)}}
        tasks += [task, task]
    results, dummy = env.playbook(tasks)
    assert [r['changed'] for r in results] == [True, False] * len(values), results
    assert env.explicit('smtpd_banner') == values[-1]
    env.postconf()      # Postfix reads the whole main.cf without a fatal error


# --- how main.cf is read: "\n" only, any bytes ------------------------------------------

@pytest.mark.parametrize('char', ['\x85', '\u2028', '\u2029'])
def test_unicode_line_separators_in_a_value_round_trip(env, char):
    value = 'gw%srelayhost = [evil.example]' % char
    task = {MODULE: {'name': 'smtpd_banner', 'value': value, 'config_dir': str(env.confdir)}}
    results, dummy = env.playbook([task, task])
    assert [r['changed'] for r in results] == [True, False], results
    assert env.postconf('-h', 'smtpd_banner').rstrip('\n') == value
    assert env.postconf('-n', 'relayhost') == ''


def test_continuation_lines_are_read_as_postfix_reads_them(env):
    env.main_cf.write_text(MAIN_CF + 'smtpd_banner = $myhostname\n\tESMTP\n')
    result = env.run({'name': 'smtpd_banner', 'value': '$myhostname\tESMTP'})
    assert result['changed'] is False, result
    result = env.run({'name': 'smtpd_banner', 'value': '$myhostname ESMTP'})
    assert result['changed'] is True
    assert result['params']['smtpd_banner']['before'] == '$myhostname\tESMTP'


def test_main_cf_that_is_not_utf8(env):
    latin1 = b'# Gr\xfc\xdfe aus M\xfcnchen\nmyorigin = m\xfcnchen.example\n'
    env.main_cf.write_bytes(env.main_cf.read_bytes() + latin1)
    result = env.run({'params': {'smtpd_banner': 'gateway', 'myorigin': 'muenchen.example'}},
                     diff=True)
    assert result['changed'] is True, result
    assert result['params']['myorigin'] == {'before': 'm\\xfcnchen.example',
                                            'after': 'muenchen.example'}
    assert 'myorigin = m\\xfcnchen.example' in result['diff']['before']
    data = env.main_cf.read_bytes()
    assert b'# Gr\xfc\xdfe aus M\xfcnchen\n' in data
    assert env.explicit('smtpd_banner') == 'gateway'
    again = env.run({'params': {'smtpd_banner': 'gateway', 'myorigin': 'muenchen.example'}})
    assert again['changed'] is False, again
    assert env.main_cf.read_bytes() == data


def test_missing_config_dir(env):
    missing = env.tmp / 'no-such-postfix'
    result = env.run({'name': 'smtp_tls_security_level', 'value': 'may',
                      'config_dir': str(missing)})
    assert_failed(result, str(missing), 'does not exist')
    assert not missing.exists()


def test_config_dir_without_main_cf(env):
    empty = env.tmp / 'empty'
    empty.mkdir()
    result = env.run({'name': 'smtp_tls_security_level', 'value': 'may',
                      'config_dir': str(empty)})
    assert_failed(result, str(empty / 'main.cf'), 'does not exist')
    assert os.listdir(empty) == []


# --- restart versus reload ----------------------------------------------------------

def test_restart_required_for_inet_interfaces(env):
    result = env.run({'name': 'inet_interfaces', 'value': ['127.0.0.1', '::1']})
    assert result['changed'] is True
    assert result['restart_required'] is True
    assert env.explicit('inet_interfaces') == '127.0.0.1, ::1'
    again = env.run({'name': 'inet_interfaces', 'value': '127.0.0.1,::1'})
    assert again['changed'] is False
    assert again['restart_required'] is False


def test_restart_required_in_batch_and_not_for_tls(env):
    result = env.run({'params': {'smtpd_tls_security_level': 'encrypt',
                                 'inet_protocols': 'ipv4'}}, check=True)
    assert result['restart_required'] is True
    result = env.run({'params': {'smtpd_tls_security_level': 'encrypt'}}, check=True)
    assert result['restart_required'] is False


# --- documentation ---------------------------------------------------------------------

def test_ansible_doc_renders(env):
    proc = subprocess.run([tool('ansible-doc'), MODULE], capture_output=True, text=True,
                          env=env.environ(), check=False)
    assert proc.returncode == 0, proc.stderr
    assert 'ERROR' not in proc.stderr and 'WARNING' not in proc.stderr, proc.stderr
    assert 'restart_required' in proc.stdout
    assert 'allow_unknown' in proc.stdout
