# Copyright (c) 2026, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The ``postfix`` command for one configuration directory: check, status, reload, stop, start.

What each does, from postfix-script (conf/postfix-script in the Postfix sources):

- ``check`` runs ``post-install create-missing`` (creates missing queue directories and
  fixes their ownership), ``postsuper`` (moves misplaced queue files) and then warns about
  file ownership and permissions. So it writes, and is not run in check mode.
- ``status`` exits 0 when the master runs and 1 when it does not (or when the configuration
  is so broken that the ``postfix`` command refuses it).
- ``reload`` re-reads the configuration (``kill -HUP`` of the master); a parameter the
  master reads only at start (for example ``inet_interfaces``) needs ``stop`` and ``start``.
- The script's own messages (``the Postfix mail system is not running``, ``fatal: ...``)
  go through ``postlog``, which writes to stderr only when stderr is a terminal
  (src/postlog/postlog.c: ``isatty(STDERR_FILENO)``); otherwise they are in the mail log or
  nowhere. The ``postfix`` command's own fatal errors (a ``main.cf`` it cannot use) are not
  printed off a terminal either. Warnings of ``postconf`` (which the script runs) do come on
  stderr. So when ``postfix check`` fails, it is run once more with a pseudo-terminal for its
  output (run_on_terminal): the only command here not run through ``run_command``, which
  has no terminal to give; an argument list all the same, never a shell.

Under systemd (Debian's ``postfix@INSTANCE.service``: ``ExecStart=postmulti -i %i -p start``,
``Type=forking``), ``postfix stop`` makes the unit run its ``ExecStop`` against a master that
is gone or going: the unit ends ``failed`` or ``inactive`` (which one depends on timing), and
``postfix start`` then runs a master outside it (in the caller's control group). Seen on
bookworm with systemd as PID 1. So a restart of a master
that runs in a systemd service unit's control group (``/proc/PID/cgroup``), confirmed by
systemd itself (``systemctl show -p ControlGroup``), is ``systemctl restart UNIT`` instead
(systemd_unit, restart). A reload is ``postfix reload`` either way: the master re-reads its
files and stays the same process, in its unit.
"""

import os
import pty
import select
import subprocess
import time

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import (
    C_LOCALE,
    Postconf,
    PostfixCommand,
    PostfixCommandError,
    warnings_of,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import unique

# state -> what a running Postfix gets
ACTIONS = {'reloaded': 'reloaded', 'restarted': 'restarted', 'checked': 'none'}

LOGGED_ELSEWHERE = ('postfix-script logs its reasons through postlog, which writes to stderr only '
                    'on a terminal: run "postfix -c %s %s" by hand or read the mail log')

# Words of a Postfix diagnostic that says why a command failed.
REASON_MARKERS = ('fatal:', 'error:', 'panic:')


def reasons_of(text):
    """The fatal/error/panic lines of a Postfix program's output, each once."""
    return unique(line.strip() for line in text.replace('\r', '').splitlines()
                  if any(marker in line for marker in REASON_MARKERS))


def service_unit_of(cgroup_text):
    """(unit, control group) of the systemd service unit a process is in, from its
    ``/proc/PID/cgroup`` (CGROUP_TEXT), or None. Read from systemd's own hierarchy:
    ``N:name=systemd:PATH`` (cgroup v1) or ``0::PATH`` (cgroup v2); the unit is the last
    component of PATH when it ends in ``.service`` (``.../system-postfix.slice/postfix@-.service``)."""
    lines = [line.split(':', 2) for line in cgroup_text.splitlines() if line.count(':') >= 2]
    for wanted in ('name=systemd', ''):
        for hierarchy, controllers, path in lines:
            if controllers == wanted and (wanted or hierarchy == '0'):
                unit = path.rstrip('/').rsplit('/', 1)[-1]
                return (unit, path) if unit.endswith('.service') else None
    return None


def systemd_running():
    """Whether systemd is the init system here (sd_booted(): /run/systemd/system exists)."""
    return os.path.isdir('/run/systemd/system')


def read_text(path):
    """The contents of PATH, or None when it cannot be read."""
    try:
        with open(path) as f:
            return f.read()
    except (IOError, OSError):
        return None


def run_on_terminal(cmd, environ_update, timeout=60):
    """(exit status, output) of the argument list CMD with stdout and stderr on a new
    pseudo-terminal (stdin /dev/null), so that Postfix programs print what they log; None as
    the status when it did not end within TIMEOUT seconds (then it is killed)."""
    env = dict(os.environ)
    env.update(environ_update)
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=env,
                                close_fds=True)
    finally:
        os.close(slave)
    chunks = []
    deadline = time.time() + timeout
    timed_out = False
    try:
        while True:
            left = deadline - time.time()
            if left <= 0 or not select.select([master], [], [], left)[0]:
                proc.kill()
                timed_out = True
                break
            try:
                data = os.read(master, 65536)
            except OSError:     # EIO: every process holding the terminal has closed it
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    rc = proc.wait()
    return (None if timed_out else rc), b''.join(chunks).decode('utf-8', 'replace')


class PostfixControl(PostfixCommand):
    """``postfix -c CONFIG_DIR COMMAND``; EXECUTABLE, when given, is the ``postfix`` to run."""

    program = 'postfix'

    def __init__(self, module, config_dir='/etc/postfix', commands=None, executable=None):
        super(PostfixControl, self).__init__(module, config_dir, commands)
        if executable:
            self._binary = executable
        # how a failed check is run again for its reasons, and how files are read (tests give others)
        self.run_on_terminal = run_on_terminal
        self.read_text = read_text
        self.systemd_running = systemd_running

    def _command(self, name):
        """Run ``postfix -c CONFIG_DIR NAME``; (rc, stdout, stderr), any exit status."""
        return self._run([name], ok_rcs=None)

    def failure(self, name, rc, out, err, text=None):
        """A PostfixCommandError for the last command run (``postfix NAME``, or the
        ``systemctl restart`` of a restart through systemd) that exited RC, naming TEXT
        (default: its output) or, when there is none (the usual case off a terminal), where its
        reasons went."""
        text = ((err or '') + (out or '')).strip() if text is None else text
        return PostfixCommandError('%s failed (exit status %s): %s' % (
            ' '.join(self.commands[-1]), rc, text or LOGGED_ELSEWHERE % (self.config_dir, name)),
            cmd=self.commands[-1], rc=rc, stdout=out, stderr=err)

    def check(self):
        """``postfix check``; its warnings (postconf's, on stderr), each once. Raises
        PostfixCommandError, with the reasons ``postfix check`` gives on a terminal."""
        rc, out, err = self._command('check')
        if rc != 0:
            failed = self.commands[-1]
            self.commands.append(list(failed))
            try:
                again, text = self.run_on_terminal(failed, C_LOCALE)
            except (OSError, IOError):
                again, text = None, ''
            reasons = reasons_of(text) if again else []
            if reasons:
                raise self.failure('check', rc, out, err, '; '.join(reasons))
            raise self.failure('check', rc, out, '\n'.join(unique((err or '').splitlines())))
        return unique(warnings_of(err))

    def running(self):
        """True when ``postfix status`` says the master runs (exit status 0)."""
        return self._command('status')[0] == 0

    def reload(self):
        self._require('reload')

    def master_pid(self):
        """The PID in QUEUE_DIRECTORY/pid/master.pid, or None."""
        queue = Postconf(self.module, self.config_dir, self.commands).value('queue_directory')
        text = self.read_text(os.path.join(queue, 'pid', 'master.pid'))
        return int(text) if text and text.strip().isdigit() else None

    def systemd_unit(self):
        """The systemd service unit the running master is in, or None: the unit of its control
        group (/proc/PID/cgroup), when systemd runs (/run/systemd/system) and says that unit
        has that control group (``systemctl show -p ControlGroup --value UNIT``). A control
        group named like a unit that systemd here does not know (a container started by a
        unit of the host's systemd) is not one."""
        if not self.systemd_running():
            return None
        systemctl = self.module.get_bin_path('systemctl')
        pid = self.master_pid()
        found = service_unit_of(self.read_text('/proc/%d/cgroup' % pid) or '') if systemctl and pid else None
        if not found:
            return None
        unit, path = found
        cmd = [systemctl, 'show', '-p', 'ControlGroup', '--value', unit]
        self.commands.append(cmd)
        rc, out, _err = self.module.run_command(cmd, environ_update=C_LOCALE)
        return unit if rc == 0 and out.strip() == path else None

    def restart(self, unit=None):
        """``postfix stop`` then ``postfix start`` (start runs the checks of ``postfix check``);
        ``systemctl restart UNIT`` for a master in the systemd unit UNIT (systemd_unit)."""
        if unit:
            cmd = [self.module.get_bin_path('systemctl', required=True), 'restart', unit]
            self.commands.append(cmd)
            rc, out, err = self.module.run_command(cmd, environ_update=C_LOCALE)
            if rc != 0:
                raise self.failure('restart', rc, out, err,
                                   (err or out).strip() or 'see "systemctl status %s"' % unit)
            return
        self._require('stop')
        self._require('start')

    def _require(self, name):
        rc, out, err = self._command(name)
        if rc != 0:
            raise self.failure(name, rc, out, err)


def outcome(config_dir, state, running, check_mode, unit=None):
    """(changed, action, msg) of bringing STATE to a Postfix that is RUNNING (or not), whose
    master is in the systemd unit UNIT (restarted through it) or in none.

    STATE: ``reloaded``, ``restarted`` or ``checked``. A Postfix that is not running is
    left stopped: it reads the new configuration when it starts."""
    action = ACTIONS[state] if running else 'none'
    if not running:
        msg = ('Postfix (%s) is not running, so it is not %s; the new settings apply when it starts.'
               % (config_dir, 'reloaded' if state != 'restarted' else 'restarted'))
    elif action == 'none':
        msg = 'Postfix (%s) is running; it was not reloaded (state=checked).' % config_dir
    else:
        what = 'stopped and started' if action == 'restarted' else 'reloaded'
        if action == 'restarted' and unit:
            what = 'restarted through its systemd unit %s (systemctl restart)' % unit
        msg = 'Postfix (%s) %s %s.' % (config_dir, 'would be' if check_mode else 'was', what)
    return action != 'none', action, msg
