# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ways to make writing fail, for the fault tests of both modules (root only).

A small tmpfs filled up, a binary hidden in a private mount namespace, and
killing the whole process tree of an Ansible run. Mounts are undone through
the ``cleanup`` fixture (tests/integration/conftest.py).
"""

import os
import signal
import subprocess

from ansible_env import ad_hoc_result
from postfix_sandbox import IS_ROOT


def mount_tmpfs(path, size, cleanup):
    """A tmpfs of SIZE at PATH (created), unmounted by CLEANUP."""
    path.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s,mode=0755' % size, 'tmpfs', str(path)],
                   check=True, capture_output=True)
    cleanup(lambda: subprocess.run(['umount', '-l', str(path)], capture_output=True, check=False))
    return path


def fill(directory, leave=0):
    """Fill a file system with a filler file, then free LEAVE bytes again."""
    filler = directory / 'filler'
    with open(str(filler), 'wb', buffering=0) as f:
        try:
            while True:
                f.write(b'\0' * 4096)
                f.flush()
        except OSError:
            pass
    if leave:
        os.truncate(str(filler), max(0, filler.stat().st_size - leave))
    return filler


def can_unshare():
    """Whether this host lets a private mount namespace hide /usr/sbin/postmap."""
    if not IS_ROOT:
        return False
    proc = subprocess.run(['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
                           'mount --bind /dev/null /usr/sbin/postmap && test ! -x /usr/sbin/postmap'],
                          capture_output=True, check=False)
    return proc.returncode == 0


def without_binary(binary, cmd):
    """CMD run in a private mount namespace where BINARY is an empty, non-executable file."""
    return ['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
            'mount --bind /dev/null "$0" && exec "$@"', binary] + cmd


def run_without_binary(sandbox, binary, module, args):
    """The result of MODULE run through `ansible` in SANDBOX while BINARY is hidden."""
    proc = subprocess.run(without_binary(binary, sandbox.command(module, args)), capture_output=True, text=True,
                          check=False, env=sandbox.environ(), cwd=str(sandbox.tmp))
    return ad_hoc_result(proc)


def descendants(pid):
    """PIDs of every process below PID (read from /proc)."""
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except (IOError, OSError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(proc):
    """SIGKILL a process we started and everything below it, by PID."""
    for pid in [proc.pid] + descendants(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate()
