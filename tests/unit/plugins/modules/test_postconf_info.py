# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""postconf_info without Postfix: its postconf calls (a fake Postconf), file facts and results.

The real postconf is exercised in tests/integration/modules/postconf_info/.
"""

import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import PostfixCommandError
from ansible_collections.mailgw.postfix_tls.plugins.modules import postconf_info


class FakePostconf:
    """Answers like postconf for a main.cf with maps_d_dir set but not referenced."""

    RAW = {'smtp_tls_security_level': 'may', 'smtpd_tls_key_file': '$smtpd_tls_cert_file',
           'smtpd_tls_cert_file': '/etc/ssl/gw.pem', 'smtpd_tls_chain_files': '/a.pem, /b.pem\t/c.pem',
           'maps_d_dir': '$config_directory/maps.d', 'mail_version': '3.7.11'}
    EXPANDED = dict(RAW, smtpd_tls_key_file='/etc/ssl/gw.pem', maps_d_dir='/etc/postfix/maps.d')
    USER = {'maps_d_dir'}

    calls = []
    failures = []     # raised by the next call when set

    def __init__(self, module, config_dir, cache=False):
        self.config_dir = config_dir
        self.commands = []

    def remember(self, values, expand):
        pass

    def parameters(self, names=None, expand=False, defaults=False, overrides=None):
        type(self).calls.append(('parameters', list(names), expand, overrides))
        if self.failures:
            raise self.failures[0]
        referenced = set()
        for value in (overrides or {}).values():
            referenced.update(n for n in self.USER if '${%s}' % n in value)
        values = self.EXPANDED if expand else self.RAW
        return dict((n, values[n]) for n in names if n in values and (n not in self.USER or n in referenced))

    def services(self):
        type(self).calls.append(('services',))
        return {('smtp', 'inet'), ('127.0.0.1:10026', 'inet'), ('cleanup', 'unix')}

    def service_commands(self):
        type(self).calls.append(('service_commands',))
        return {('smtp', 'inet'): 'smtpd', ('127.0.0.1:10026', 'inet'): 'smtpd', ('cleanup', 'unix'): 'cleanup'}

    def service_overrides(self):
        type(self).calls.append(('service_overrides',))
        return {('127.0.0.1:10026', 'inet'): {'smtpd_tls_security_level': 'none', 'content_filter': ''}}

    def map_types(self):
        type(self).calls.append(('map_types',))
        return {'texthash', 'hash', 'lmdb'}


@pytest.fixture
def fake(monkeypatch):
    FakePostconf.calls = []
    FakePostconf.failures = []
    monkeypatch.setattr(postconf_info, 'Postconf', FakePostconf)
    return FakePostconf


def run(capsys, args):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            postconf_info.main()
    result = json.loads(capsys.readouterr().out)
    result['rc_exit'] = exit_info.value.code
    return result


def test_one_read_of_everything(fake, capsys, tmp_path):
    result = run(capsys, {'config_dir': str(tmp_path), 'parameters': ['smtp_tls_security_level', 'bogus'],
                          'user_parameters': ['maps_d_dir', 'unset_dir'],
                          'file_parameters': ['smtpd_tls_key_file', 'smtpd_tls_chain_files', 'maps_d_dir'],
                          'files': [str(tmp_path)]})
    assert result['rc_exit'] == 0 and result['changed'] is False
    reference = {'mailgw_postconf_info_reference': '${maps_d_dir} ${unset_dir}'}
    names = ['smtp_tls_security_level', 'bogus', 'smtpd_tls_key_file', 'smtpd_tls_chain_files',
             'maps_d_dir', 'unset_dir']
    assert fake.calls == [('parameters', names + ['mail_version'], False, reference),
                          ('parameters', names, True, reference),
                          ('services',), ('service_commands',), ('service_overrides',), ('map_types',)]
    assert result['parameters'] == {'smtp_tls_security_level': 'may', 'smtpd_tls_key_file': '$smtpd_tls_cert_file',
                                    'smtpd_tls_chain_files': '/a.pem, /b.pem\t/c.pem',
                                    'maps_d_dir': '$config_directory/maps.d'}
    assert result['expanded']['maps_d_dir'] == '/etc/postfix/maps.d'
    assert result['unknown_parameters'] == ['bogus']          # unset_dir is user-defined: not unknown
    assert result['services'] == ['127.0.0.1:10026/inet', 'cleanup/unix', 'smtp/inet']
    assert result['service_commands'] == {
        '127.0.0.1:10026/inet': 'smtpd', 'cleanup/unix': 'cleanup', 'smtp/inet': 'smtpd'}
    assert result['service_parameters'] == {
        '127.0.0.1:10026/inet': {'smtpd_tls_security_level': 'none', 'content_filter': ''}}
    assert result['map_types'] == ['hash', 'lmdb', 'texthash']
    assert result['version'] == '3.7.11' and result['version_info'] == [3, 7, 11]
    assert result['parameter_files'] == {'smtpd_tls_key_file': ['/etc/ssl/gw.pem'],
                                         'smtpd_tls_chain_files': ['/a.pem', '/b.pem', '/c.pem'],
                                         'maps_d_dir': ['/etc/postfix/maps.d']}
    assert list(result['files']) == [str(tmp_path), '/etc/ssl/gw.pem', '/a.pem', '/b.pem', '/c.pem',
                                     '/etc/postfix/maps.d']
    assert result['files'][str(tmp_path)]['isdir'] is True


def test_mail_version_requested_is_kept_and_read_once(fake, capsys):
    result = run(capsys, {'parameters': ['mail_version']})
    assert fake.calls[0] == ('parameters', ['mail_version'], False, None)
    assert result['parameters'] == {'mail_version': '3.7.11'}


def test_no_user_parameters_no_override(fake, capsys):
    result = run(capsys, {})
    assert fake.calls[0] == ('parameters', ['mail_version'], False, None)
    assert result['parameters'] == {} and result['parameter_files'] == {} and result['files'] == {}


def test_postconf_failure_names_the_directory(fake, capsys):
    fake.failures = [PostfixCommandError('postconf failed', cmd=['postconf', '-c', '/x'], rc=1,
                                         stderr='postconf: fatal: open /x/main.cf: No such file or directory\n')]
    result = run(capsys, {'config_dir': '/x'})
    assert result['failed'] is True and result['rc_exit'] == 1
    assert result['msg'] == ('postconf cannot read the configuration in /x: '
                             'postconf: fatal: open /x/main.cf: No such file or directory')
    assert result['rc'] == 1


def test_files_of():
    assert postconf_info.files_of('smtpd_tls_chain_files', ' /a.pem,/b.pem  /c.pem ') == ['/a.pem', '/b.pem', '/c.pem']
    # Only *_files values are lists: a single file name is taken whole.
    assert postconf_info.files_of('smtpd_tls_cert_file', ' /etc/ssl/a b.pem ') == ['/etc/ssl/a b.pem']
    assert postconf_info.files_of('smtpd_tls_cert_file', '') == []
    assert postconf_info.files_of('smtpd_tls_cert_file', None) == []


def test_file_stat(tmp_path):
    regular = tmp_path / 'f'
    regular.write_text('abc')
    assert postconf_info.file_stat(str(regular)) == {'exists': True, 'isreg': True, 'isdir': False,
                                                     'readable': True, 'size': 3}
    assert postconf_info.file_stat(str(tmp_path))['isdir'] is True
    os.symlink(str(tmp_path / 'none'), str(tmp_path / 'dangling'))
    assert postconf_info.file_stat(str(tmp_path / 'dangling'))['exists'] is False


def test_unique_keeps_the_first_place():
    assert postconf_info.unique(['b', 'a', 'b', 'c', 'a']) == ['b', 'a', 'c']
