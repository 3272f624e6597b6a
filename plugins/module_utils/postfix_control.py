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
"""

import os
import pty
import select
import subprocess
import time

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import (
    C_LOCALE,
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
        # how a failed check is run again for its reasons (tests give another)
        self.run_on_terminal = run_on_terminal

    def _command(self, name):
        """Run ``postfix -c CONFIG_DIR NAME``; (rc, stdout, stderr), any exit status."""
        return self._run([name], ok_rcs=None)

    def failure(self, name, rc, out, err, text=None):
        """A PostfixCommandError for ``postfix NAME`` that exited RC, naming TEXT (default: its
        output) or, when there is none (the usual case off a terminal), where its reasons went."""
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

    def restart(self):
        """``postfix stop`` then ``postfix start`` (start runs the checks of ``postfix check``)."""
        self._require('stop')
        self._require('start')

    def _require(self, name):
        rc, out, err = self._command(name)
        if rc != 0:
            raise self.failure(name, rc, out, err)


def outcome(config_dir, state, running, check_mode):
    """(changed, action, msg) of bringing STATE to a Postfix that is RUNNING (or not).

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
        msg = 'Postfix (%s) %s %s.' % (config_dir, 'would be' if check_mode else 'was', what)
    return action != 'none', action, msg
