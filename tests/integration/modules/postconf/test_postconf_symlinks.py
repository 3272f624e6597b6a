# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""main.cf and master.cf kept as symbolic links (into a configuration repository, say).

``postconf -e`` itself replaces such a link with a regular file and leaves the target as it
was (checked first here, with the real postconf); the postconf module and tls_policy's
main_cf write through the link instead: the target changes atomically, keeps its owner and
mode, the link stays, nothing is left behind.
"""

import os
import stat
import subprocess

from postfix_sandbox import POSTCONF, REAL_POSTCONF, assert_failed, assert_ok, needs_postfix

pytestmark = needs_postfix


def linked(sandbox, name):
    """Move the sandbox's NAME (main.cf or master.cf) into a repository directory and link it."""
    repo = sandbox.tmp / 'repo'
    repo.mkdir(exist_ok=True)
    target = repo / name
    (sandbox.confdir / name).rename(target)
    os.chmod(str(target), 0o640)
    os.chown(str(target), 0, 65534)
    (sandbox.confdir / name).symlink_to(target)
    return target


def assert_link_kept(sandbox, name, target):
    path = sandbox.confdir / name
    assert path.is_symlink() and os.readlink(str(path)) == str(target)
    st = os.stat(str(target))
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, 65534)
    assert os.listdir(str(target.parent)) == [target.name], 'left behind in the repository directory'


def test_postconf_itself_replaces_the_link(sandbox):
    """Why the modules do not simply run postconf -e: the link would be gone."""
    target = linked(sandbox, 'main.cf')
    before = target.read_bytes()
    subprocess.run([REAL_POSTCONF, '-c', str(sandbox.confdir), '-e', 'smtp_tls_loglevel=1'], check=True)
    assert not (sandbox.confdir / 'main.cf').is_symlink()
    assert target.read_bytes() == before


def test_main_cf_written_through_its_link(sandbox):
    target = linked(sandbox, 'main.cf')
    result = assert_ok(sandbox.postconf({'params': {'smtp_tls_security_level': 'encrypt', 'smtp_tls_loglevel': 1}}))
    assert result['changed'] is True
    assert_link_kept(sandbox, 'main.cf', target)
    assert 'smtp_tls_security_level = encrypt\n' in target.read_text()
    assert sandbox.explicit('smtp_tls_loglevel') == '1'
    assert not [n for n in os.listdir(str(target.parent)) if n.startswith('.mailgw-postconf-')]
    again = assert_ok(sandbox.postconf({'params': {'smtp_tls_security_level': 'encrypt', 'smtp_tls_loglevel': 1}}))
    assert again['changed'] is False
    # removal through the link too
    assert_ok(sandbox.postconf({'name': 'smtp_tls_loglevel', 'state': 'absent'}))
    assert_link_kept(sandbox, 'main.cf', target)
    assert sandbox.explicit('smtp_tls_loglevel') is None


def test_master_cf_override_written_through_its_link(sandbox):
    target = linked(sandbox, 'master.cf')
    result = assert_ok(sandbox.postconf({'service': 'submission/inet', 'name': 'smtpd_tls_security_level',
                                         'value': 'encrypt'}))
    assert result['changed'] is True
    assert_link_kept(sandbox, 'master.cf', target)
    assert 'submission/inet/smtpd_tls_security_level = encrypt' in sandbox.real_postconf('-P')
    assert not [n for n in os.listdir(str(target.parent)) if n.startswith('.mailgw-postconf-')]


def test_tls_policy_main_cf_written_through_its_link(sandbox):
    target = linked(sandbox, 'main.cf')
    result = assert_ok(sandbox.tls_policy({'policies': {'example.com': 'encrypt'},
                                           'main_cf': {'smtp_tls_security_level': 'may'}}))
    assert result['main_cf']['changed'] is True
    assert_link_kept(sandbox, 'main.cf', target)
    assert sandbox.explicit('smtp_tls_security_level') == 'may'


def test_a_failed_write_through_the_link_changes_nothing(sandbox):
    target = linked(sandbox, 'main.cf')
    before = target.read_bytes()
    sandbox.shim('postconf', '''
        for arg in "$@"; do
          if [ "$arg" = -e ]; then echo "postconf: fatal: no space" >&2; exit 1; fi
        done
        exec /usr/sbin/postconf "$@"
    ''')
    result = sandbox.postconf({'name': 'smtp_tls_loglevel', 'value': '1'})
    assert_failed(result, 'no space')
    assert result['changed'] is False
    assert target.read_bytes() == before and (sandbox.confdir / 'main.cf').is_symlink()
    assert not [n for n in os.listdir(str(target.parent)) if n.startswith('.mailgw-postconf-')]


def test_a_dangling_link_is_refused(sandbox):
    target = linked(sandbox, 'main.cf')
    text = target.read_text()
    target.unlink()
    result = sandbox.postconf({'name': 'smtp_tls_loglevel', 'value': '1'})
    assert result.get('failed') is True
    assert not target.exists() and (sandbox.confdir / 'main.cf').is_symlink()
    target.write_text(text)


def test_concurrent_writes_through_the_link_lose_nothing(sandbox):
    """Each run edits a copy of the target and renames it over: without the lock on the
    target's directory, the second rename would drop the first run's setting."""
    target = linked(sandbox, 'main.cf')
    names = ['smtp_tls_loglevel', 'smtpd_tls_loglevel', 'smtp_tls_note_starttls_offer',
             'smtpd_tls_received_header', 'smtp_tls_session_cache_timeout', 'smtpd_tls_session_cache_timeout']
    values = ['1', '1', 'yes', 'yes', '3600s', '3600s']
    sandbox.run_together([(POSTCONF, {'config_dir': str(sandbox.confdir), 'name': name, 'value': value})
                          for name, value in zip(names, values)])
    assert_link_kept(sandbox, 'main.cf', target)
    assert {name: sandbox.explicit(name) for name in names} == dict(zip(names, values))
