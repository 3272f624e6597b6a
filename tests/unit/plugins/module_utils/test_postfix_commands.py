# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The command layer: argument lists, the C locale, errors, output parsing.

A fake AnsibleModule records each command and answers from a script; the
real postconf/postmap run in the integration tests.
"""

import pytest

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import (
    QUERY_BATCH_BYTES,
    Postconf,
    PostfixCommandError,
    Postmap,
    version_tuple,
)


class FakeModule:
    def __init__(self, answers=None):
        self.answers = list(answers or [])
        self.calls = []

    def get_bin_path(self, name, required=False):
        return '/usr/sbin/' + name

    def run_command(self, cmd, data=None, binary_data=False, environ_update=None, handle_exceptions=True):
        self.calls.append(dict(cmd=cmd, data=data, env=environ_update))
        return self.answers.pop(0) if self.answers else (0, '', '')


class UnrunnableModule(FakeModule):
    def run_command(self, cmd, data=None, binary_data=False, environ_update=None, handle_exceptions=True):
        raise OSError(8, 'Exec format error')


def test_every_call_names_the_config_dir_and_runs_in_the_c_locale():
    module = FakeModule([(0, 'hash:/etc/postfix/t\n', '')])
    postconf = Postconf(module, '/etc/postfix-out')
    assert postconf.value('smtp_tls_policy_maps') == 'hash:/etc/postfix/t'
    call = module.calls[0]
    assert call['cmd'] == ['/usr/sbin/postconf', '-c', '/etc/postfix-out', '-x', '-h', 'smtp_tls_policy_maps']
    assert call['env']['LC_ALL'] == 'C' and call['env']['LANG'] == 'C'
    assert postconf.commands == [call['cmd']]
    assert postconf.main_cf == '/etc/postfix-out/main.cf'
    assert postconf.master_cf == '/etc/postfix-out/master.cf'


@pytest.mark.parametrize('kwargs, args', [
    ({}, ['-n']),
    ({'expand': True}, ['-n', '-x']),
    ({'names': ['a', 'b']}, ['a', 'b']),
    ({'names': ['a'], 'expand': True, 'defaults': True}, ['-d', '-x', 'a']),
    ({'defaults': True}, ['-d']),
    ({'names': ['a'], 'overrides': {'b': '1', 'a': 'x y'}}, ['-o', 'a=x y', '-o', 'b=1', 'a']),
])
def test_parameters_is_one_postconf_call(kwargs, args):
    module = FakeModule([(0, 'a = 1\nb =\nc = x = y\n', '')])
    assert Postconf(module, '/p').parameters(**kwargs) == {'a': '1', 'b': '', 'c': 'x = y'}
    assert [c['cmd'] for c in module.calls] == [['/usr/sbin/postconf', '-c', '/p'] + args]


def test_parameters_of_no_names_runs_nothing():
    module = FakeModule()
    assert Postconf(module, '/p').parameters(names=[]) == {}
    assert module.calls == []


def test_reading_services_overrides_map_types_and_version():
    module = FakeModule([
        (0, 'smtp      inet  n       -       y       -       -       smtpd\n', ''),
        (0, 'submission/inet/smtpd_tls_security_level = encrypt\n', ''),
        (0, 'btree\ncidr\nhash\n', ''),
        (0, '3.7.11\n', ''),
    ])
    postconf = Postconf(module, '/p')
    assert postconf.services() == {('smtp', 'inet')}
    assert postconf.service_overrides() == {('submission', 'inet'): {'smtpd_tls_security_level': 'encrypt'}}
    assert postconf.map_types() == {'btree', 'cidr', 'hash'}
    assert postconf.mail_version() == (3, 7, 11)
    assert [c['cmd'][3:] for c in module.calls] == [['-M'], ['-P'], ['-m'], ['-x', '-h', 'mail_version']]


def test_writes_return_the_warnings():
    module = FakeModule([(0, '', 'postconf: warning: /p/main.cf: unused parameter: x=1\nnoise\n'), (0, '', '')])
    postconf = Postconf(module, '/p')
    assert postconf.set_main({'b': '2', 'a': '1'}) == ['postconf: warning: /p/main.cf: unused parameter: x=1']
    assert postconf.remove_overrides('smtp', 'inet', ['b', 'a']) == []
    assert module.calls[0]['cmd'][3:] == ['-e', 'a=1', 'b=2']
    assert module.calls[1]['cmd'][3:] == ['-P', '-X', 'smtp/inet/a', 'smtp/inet/b']


def test_a_failure_carries_cmd_rc_stdout_and_stderr():
    module = FakeModule([(1, 'out', 'postconf: fatal: bad\n')])
    with pytest.raises(PostfixCommandError) as info:
        Postconf(module, '/p').map_types()
    error = info.value
    assert error.cmd == ['/usr/sbin/postconf', '-c', '/p', '-m']
    assert (error.rc, error.stdout, error.stderr) == (1, 'out', 'postconf: fatal: bad\n')
    assert 'postconf -c /p -m failed (exit status 1): postconf: fatal: bad' in str(error)


def test_a_program_that_cannot_be_run_is_an_error_too():
    module = UnrunnableModule()
    with pytest.raises(PostfixCommandError) as info:
        Postmap(module, '/p').build('hash', '/p/t')
    assert 'cannot run /usr/sbin/postmap -c /p hash:/p/t' in str(info.value)


def test_postmap_query_batches_keys_and_tolerates_not_found():
    keys = ['k%05d' % n for n in range(6000)]
    answers = [(1, 'k00000\tmay\n', ''), (0, '', ''), (0, '', '')]
    module = FakeModule(answers)
    commands = []
    postmap = Postmap(module, '/p', commands=commands)
    found, stderr = postmap.query('lmdb', '/p/t', keys)
    assert found == {'k00000': 'may'} and stderr == ''
    assert len(module.calls) == 3
    assert all(len(c['data'].encode()) <= QUERY_BATCH_BYTES for c in module.calls)
    assert ''.join(c['data'] for c in module.calls) == ''.join(k + '\n' for k in keys)
    assert commands[0] == ['/usr/sbin/postmap', '-c', '/p', '-q', '-', 'lmdb:/p/t']


def test_postmap_query_fatal_is_an_error():
    module = FakeModule([(1, '', 'postmap: fatal: open database /p/t.lmdb: No such file\n')])
    with pytest.raises(PostfixCommandError) as info:
        Postmap(module, '/p').query('lmdb', '/p/t', ['a'])
    assert info.value.rc == 1 and 'fatal' in info.value.stderr


def test_version_tuple():
    assert version_tuple('3.10.1') == (3, 10, 1)
    assert version_tuple('3.7.11-RC1') == (3, 7, 11)
    assert version_tuple('') == ()


def test_a_caching_postconf_reads_each_thing_once_and_answers_from_what_it_read():
    module = FakeModule([(0, 'smtp_tls_policy_maps = hash:/etc/postfix/t\nmail_version = 3.7.11\n', ''),
                         (0, 'hash\nlmdb\n', ''), (0, 'x\n', '')])
    postconf = Postconf(module, '/etc/postfix', cache=True)
    raw = postconf.parameters(['smtp_tls_policy_maps', 'mail_version'])
    postconf.remember(raw, expand=False)
    assert postconf.value('smtp_tls_policy_maps', expand=False) == 'hash:/etc/postfix/t'
    assert postconf.parameters(['mail_version']) == {'mail_version': '3.7.11'}
    assert postconf.map_types() == {'hash', 'lmdb'} and postconf.map_types() == {'hash', 'lmdb'}
    assert len(module.calls) == 2
    # what was not read (another name, or the same name expanded) is read
    assert postconf.value('smtp_tls_policy_maps') == 'x'
    assert len(module.calls) == 3 and module.calls[-1]['cmd'][-3:] == ['-x', '-h', 'smtp_tls_policy_maps']


def test_without_cache_every_read_runs_postconf():
    module = FakeModule([(0, 'hash\n', ''), (0, 'hash\n', '')])
    postconf = Postconf(module, '/etc/postfix')
    postconf.remember({'mail_version': '3.7.11'}, expand=True)    # ignored without cache
    postconf.map_types()
    postconf.map_types()
    assert len(module.calls) == 2
