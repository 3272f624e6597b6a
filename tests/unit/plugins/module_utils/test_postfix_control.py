# Copyright (c) 2026, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""postfix check / status / reload / stop / start: argument lists, errors, the outcome.

A fake AnsibleModule answers; the real postfix runs in
tests/integration/modules/postfix_service.
"""

import pytest

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import PostfixCommandError
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_control import PostfixControl, outcome, service_unit_of

# the fake AnsibleModule of the command layer's tests: records each command, answers from a script
from test_postfix_commands import FakeModule


def test_commands_name_the_config_dir_and_run_in_the_c_locale():
    module = FakeModule()
    commands = []
    postfix = PostfixControl(module, '/etc/postfix-out', commands)
    assert postfix.check() == []
    assert postfix.running() is True
    postfix.reload()
    postfix.restart()
    assert commands == [['/usr/sbin/postfix', '-c', '/etc/postfix-out', name]
                        for name in ('check', 'status', 'reload', 'stop', 'start')]
    assert all(call['env']['LC_ALL'] == 'C' for call in module.calls)


def test_the_executable_given_is_run():
    postfix = PostfixControl(FakeModule(), '/etc/postfix', executable='/opt/postfix/sbin/postfix')
    postfix.running()
    assert postfix.commands == [['/opt/postfix/sbin/postfix', '-c', '/etc/postfix', 'status']]


def test_status_other_than_zero_is_not_running():
    assert PostfixControl(FakeModule([(1, '', '')])).running() is False


def test_check_returns_postconf_warnings_each_once():
    err = ('postconf: warning: /etc/postfix/main.cf, line 9: overriding earlier entry: smtpd_banner=x\n'
           'some other line\n') * 3
    warnings = PostfixControl(FakeModule([(0, '', err)])).check()
    assert warnings == ['postconf: warning: /etc/postfix/main.cf, line 9: overriding earlier entry: smtpd_banner=x']


def _terminal(rc, text):
    calls = []

    def run(cmd, environ_update, timeout=60):
        calls.append((cmd, environ_update))
        return rc, text
    return run, calls


def test_a_failed_check_is_run_again_on_a_terminal_for_its_reasons():
    postfix = PostfixControl(FakeModule([(1, '', 'postconf: warning: x\n' * 3)]), '/etc/postfix')
    postfix.run_on_terminal, calls = _terminal(1, (
        'postconf: warning: x\r\n'
        'postfix/postfix-script: fatal: no /etc/postfix/master.cf file found\r\n'
        'postfix/postfix-script: fatal: no /etc/postfix/master.cf file found\r\n'))
    with pytest.raises(PostfixCommandError) as info:
        postfix.check()
    assert str(info.value) == ('/usr/sbin/postfix -c /etc/postfix check failed (exit status 1): '
                               'postfix/postfix-script: fatal: no /etc/postfix/master.cf file found')
    assert calls == [(['/usr/sbin/postfix', '-c', '/etc/postfix', 'check'], {'LANG': 'C', 'LC_ALL': 'C',
                                                                             'LC_MESSAGES': 'C'})]
    # the re-run is listed with the commands run
    assert postfix.commands == [['/usr/sbin/postfix', '-c', '/etc/postfix', 'check']] * 2


def test_a_failed_check_without_reasons_says_where_they_went():
    postfix = PostfixControl(FakeModule([(1, '', '')]), '/etc/postfix')
    postfix.run_on_terminal, _calls = _terminal(1, '')
    with pytest.raises(PostfixCommandError) as info:
        postfix.check()
    assert str(info.value) == (
        '/usr/sbin/postfix -c /etc/postfix check failed (exit status 1): postfix-script logs its reasons through '
        'postlog, which writes to stderr only on a terminal: run "postfix -c /etc/postfix check" by hand or '
        'read the mail log')
    assert info.value.rc == 1


def test_a_failed_check_with_only_warnings_names_each_once():
    postfix = PostfixControl(FakeModule([(1, '', 'postconf: warning: open master.cf\n' * 4)]), '/etc/postfix')
    postfix.run_on_terminal, _calls = _terminal(None, 'postfix: fatal: not seen, the run timed out')
    with pytest.raises(PostfixCommandError) as info:
        postfix.check()
    assert str(info.value).endswith('check failed (exit status 1): postconf: warning: open master.cf')


def test_reasons_of_keeps_fatal_error_and_panic_lines_once():
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_control import reasons_of
    text = 'a\r\npostfix: fatal: x\r\npostfix: fatal: x\nb: error: y\nc: panic: z\nd: warning: w\n'
    assert reasons_of(text) == ['postfix: fatal: x', 'b: error: y', 'c: panic: z']


def test_a_failed_command_with_output_names_it():
    with pytest.raises(PostfixCommandError) as info:
        PostfixControl(FakeModule([(0, '', ''), (1, '', 'postfix: fatal: unknown command\n')])).restart()
    assert str(info.value) == '/usr/sbin/postfix -c /etc/postfix start failed (exit status 1): postfix: fatal: unknown command'


def test_a_command_that_cannot_run_is_named():
    class Unrunnable(FakeModule):
        def run_command(self, cmd, **kwargs):
            raise OSError(2, 'No such file or directory')
    with pytest.raises(PostfixCommandError) as info:
        PostfixControl(Unrunnable(), executable='/nonexistent/postfix').check()
    assert str(info.value).startswith('cannot run /nonexistent/postfix -c /etc/postfix check: ')


@pytest.mark.parametrize('state, running, check_mode, expected', [
    ('reloaded', True, False, (True, 'reloaded', 'Postfix (/etc/postfix) was reloaded.')),
    ('reloaded', True, True, (True, 'reloaded', 'Postfix (/etc/postfix) would be reloaded.')),
    ('restarted', True, False, (True, 'restarted', 'Postfix (/etc/postfix) was stopped and started.')),
    ('restarted', True, True, (True, 'restarted', 'Postfix (/etc/postfix) would be stopped and started.')),
    ('checked', True, False, (False, 'none', 'Postfix (/etc/postfix) is running; it was not reloaded (state=checked).')),
    ('reloaded', False, False, (False, 'none', 'Postfix (/etc/postfix) is not running, so it is not reloaded; '
                                               'the new settings apply when it starts.')),
    ('restarted', False, True, (False, 'none', 'Postfix (/etc/postfix) is not running, so it is not restarted; '
                                               'the new settings apply when it starts.')),
    ('checked', False, False, (False, 'none', 'Postfix (/etc/postfix) is not running, so it is not reloaded; '
                                              'the new settings apply when it starts.')),
])
def test_outcome(state, running, check_mode, expected):
    assert outcome('/etc/postfix', state, running, check_mode) == expected


def test_run_on_terminal_gives_the_program_a_terminal_and_its_exit_status():
    import sys
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_control import run_on_terminal
    rc, text = run_on_terminal([sys.executable, '-c', 'import os, sys; sys.stderr.write("%s %s\\n" % '
                                '(os.isatty(2), os.environ["LC_ALL"])); sys.exit(3)'], {'LC_ALL': 'C'})
    assert (rc, text.replace('\r', '')) == (3, 'True C\n')


def test_run_on_terminal_kills_a_program_that_does_not_end():
    import sys
    from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_control import run_on_terminal
    rc, _text = run_on_terminal([sys.executable, '-c', 'import time; time.sleep(30)'], {}, timeout=0.5)
    assert rc is None


# -- a master that systemd started ---------------------------------------------------------------

CGROUP_V1_HYBRID = (  # bookworm with systemd as PID 1 in a podman container on a cgroup v1 host
    '9:name=systemd:/libpod_parent/libpod-da27/system.slice/system-postfix.slice/postfix@-.service\n'
    '8:pids:/libpod_parent/libpod-da27\n'
    '1:cpu:/libpod_parent/libpod-da27\n'
    '0::/libpod_parent/libpod-da27\n')


@pytest.mark.parametrize('text, expected', [
    (CGROUP_V1_HYBRID, ('postfix@-.service', '/libpod_parent/libpod-da27/system.slice/system-postfix.slice/'
                                             'postfix@-.service')),
    ('0::/system.slice/postfix.service\n', ('postfix.service', '/system.slice/postfix.service')),
    ('0::/system.slice/system-postfix.slice/postfix@postfix-out.service\n',
     ('postfix@postfix-out.service', '/system.slice/system-postfix.slice/postfix@postfix-out.service')),
    # started by hand in a login session, or in a container without systemd
    ('0::/user.slice/user-0.slice/session-3.scope\n', None),
    ('0::/\n', None),
    ('9:name=systemd:/libpod_parent/libpod-da27\n0::/libpod_parent/libpod-da27\n', None),
    ('', None),
])
def test_service_unit_of_reads_systemds_own_hierarchy(text, expected):
    assert service_unit_of(text) == expected


def _systemd_postfix(answers, cgroup=CGROUP_V1_HYBRID, booted=True, pid_text='        330\n'):
    """A PostfixControl whose master (PID 330 in /var/spool/postfix/pid/master.pid) is in CGROUP."""
    module = FakeModule(answers)
    postfix = PostfixControl(module, '/etc/postfix')
    files = {'/var/spool/postfix/pid/master.pid': pid_text, '/proc/330/cgroup': cgroup}
    postfix.read_text = files.get
    postfix.systemd_running = lambda: booted
    return postfix, module


UNIT_PATH = '/libpod_parent/libpod-da27/system.slice/system-postfix.slice/postfix@-.service'


def test_a_master_systemd_started_is_found_and_confirmed_by_systemd():
    postfix, module = _systemd_postfix([(0, '/var/spool/postfix\n', ''), (0, UNIT_PATH + '\n', '')])
    assert postfix.systemd_unit() == 'postfix@-.service'
    assert postfix.commands == [['/usr/sbin/postconf', '-c', '/etc/postfix', '-x', '-h', 'queue_directory'],
                                ['/usr/sbin/systemctl', 'show', '-p', 'ControlGroup', '--value', 'postfix@-.service']]


@pytest.mark.parametrize('case', ['systemd says another group', 'systemd does not know it', 'not booted with systemd',
                                  'no master.pid', 'a session scope'])
def test_no_unit_unless_systemd_confirms_it(case):
    answers = [(0, '/var/spool/postfix\n', ''), (0, UNIT_PATH + '\n', '')]
    kwargs = {}
    if case == 'systemd says another group':
        answers[1] = (0, '/system.slice/system-postfix.slice/postfix@-.service\n', '')
    elif case == 'systemd does not know it':
        answers[1] = (1, '', 'Failed to connect to bus: No such file or directory\n')
    elif case == 'not booted with systemd':
        kwargs['booted'] = False
    elif case == 'no master.pid':
        kwargs['pid_text'] = None
    else:
        kwargs['cgroup'] = '0::/user.slice/user-0.slice/session-3.scope\n'
    postfix, _module = _systemd_postfix(answers, **kwargs)
    assert postfix.systemd_unit() is None


def test_a_restart_through_the_unit_is_systemctl_restart():
    postfix, module = _systemd_postfix([])
    postfix.restart('postfix@-.service')
    assert postfix.commands == [['/usr/sbin/systemctl', 'restart', 'postfix@-.service']]
    assert module.calls[0]['env']['LC_ALL'] == 'C'


def test_a_failed_restart_through_the_unit_says_so():
    postfix, _module = _systemd_postfix([(1, '', 'Job for postfix@-.service failed because the control process '
                                                 'exited with error code.\n')])
    with pytest.raises(PostfixCommandError) as info:
        postfix.restart('postfix@-.service')
    assert str(info.value) == ('/usr/sbin/systemctl restart postfix@-.service failed (exit status 1): Job for '
                               'postfix@-.service failed because the control process exited with error code.')


def test_the_outcome_names_the_unit_of_a_restart():
    assert outcome('/etc/postfix', 'restarted', True, False, 'postfix@-.service') == (
        True, 'restarted', 'Postfix (/etc/postfix) was restarted through its systemd unit postfix@-.service '
                           '(systemctl restart).')
    assert outcome('/etc/postfix', 'restarted', True, True, 'postfix@-.service')[2] == (
        'Postfix (/etc/postfix) would be restarted through its systemd unit postfix@-.service (systemctl restart).')
