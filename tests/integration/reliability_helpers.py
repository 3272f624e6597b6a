# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared set-up for the reliability and security tests (tests/integration/test_reliability_*.py).

A ``Sandbox`` is a throwaway Postfix configuration (main.cf, master.cf) plus
a maps directory, both under pytest's ``tmp_path`` (so the tests are
xdist-safe), and ways to run the two modules through the real ``ansible`` /
``ansible-playbook`` with arguments passed as JSON.  Shell scripts placed in
``sandbox.bindir`` come first in PATH and so stand in for postmap/postconf
(the modules find their binaries with ``get_bin_path``, which searches PATH
before /usr/sbin).

Observation helpers take byte-level snapshots of whole directories (name,
bytes, mode, owner, inode, mtime) and read tables the way Postfix does
(``postmap -s`` / ``postmap -q``), so "nothing changed" and "Postfix sees
exactly these entries" are asserted, not inferred.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import stat
import subprocess
import textwrap
import time

from ansible_env import ad_hoc_command, ansible_env, run_module, run_playbook

REAL_POSTMAP = '/usr/sbin/postmap'
REAL_POSTCONF = '/usr/sbin/postconf'
TLS_POLICY = 'mailgw.postfix_tls.tls_policy'
POSTCONF = 'mailgw.postfix_tls.postconf'

HAVE_POSTFIX = os.access(REAL_POSTMAP, os.X_OK) and os.access(REAL_POSTCONF, os.X_OK)
IS_ROOT = os.geteuid() == 0

INDEX_SUFFIXES = {'hash': ['.db'], 'btree': ['.db'], 'lmdb': ['.lmdb'], 'cdb': ['.cdb'], 'texthash': []}

MASTER_CF = textwrap.dedent('''\
    smtp      inet  n       -       n       -       -       smtpd
    127.0.0.1:10026 inet n  -       n       -       -       smtpd
      -o smtpd_tls_security_level=none
    submission inet n       -       n       -       -       smtpd
    smtp      unix  -       -       n       -       -       smtp
    ''')


class Sandbox(object):
    """A Postfix config dir with a policy table directory, and ways to run the modules."""

    def __init__(self, tmp_path, map_type='hash', confdir=None, maps_dir=None):
        self.tmp = tmp_path
        self.confdir = confdir or tmp_path / 'postfix'
        self.confdir.mkdir(parents=True, exist_ok=True)
        self.maps_dir = maps_dir or tmp_path / 'maps.d'
        self.maps_dir.mkdir(parents=True, exist_ok=True)
        self.map_type = map_type
        self.main_cf.write_text(self.main_cf_text())
        self.master_cf.write_text(MASTER_CF)
        self.bindir = tmp_path / 'bin'
        self.bindir.mkdir(exist_ok=True)
        self.canary = tmp_path / 'PWNED'

    def main_cf_text(self, extra=''):
        return textwrap.dedent('''\
            # reliability test configuration
            compatibility_level = 3.6
            maps_d_dir = %s
            smtp_tls_policy_maps = %s:${maps_d_dir}/tls-policy.map
            smtpd_tls_security_level = may
            ''') % (self.maps_dir, self.map_type) + extra

    # -- paths -------------------------------------------------------------------

    @property
    def main_cf(self):
        return self.confdir / 'main.cf'

    @property
    def master_cf(self):
        return self.confdir / 'master.cf'

    @property
    def table(self):
        return self.maps_dir / 'tls-policy.map'

    @property
    def map_spec(self):
        return '%s:%s' % (self.map_type, self.table)

    def index_files(self, map_type=None, path=None):
        path = str(path or self.table)
        return [path + suffix for suffix in INDEX_SUFFIXES[map_type or self.map_type]]

    # -- shims ---------------------------------------------------------------------

    def seed(self, text, path=None):
        """Write TEXT as the policy table (or as PATH, a hash table) and index it with the real postmap."""
        path = path or self.table
        path.write_text(text)
        spec = self.map_spec if path == self.table else 'hash:%s' % path
        subprocess.run([REAL_POSTMAP, '-c', str(self.confdir), spec], check=True)
        return self

    def shim(self, name, body):
        """Put an executable shell script NAME first in PATH."""
        path = self.bindir / name
        path.write_text('#!/bin/sh\n' + textwrap.dedent(body))
        path.chmod(0o755)
        return path

    # -- observation -----------------------------------------------------------------

    def snapshot(self, *dirs):
        """Every file under the config and maps dirs (or DIRS): bytes, mode, owner, inode, mtime."""
        return snapshot(*(dirs or (self.confdir, self.maps_dir)))

    def postconf_h(self, name):
        """postconf -h NAME: the value Postfix uses (unexpanded)."""
        proc = run_exact([REAL_POSTCONF, '-c', str(self.confdir), '-h', name])
        assert proc.returncode == 0, proc.stderr
        return proc.stdout[:-1] if proc.stdout.endswith('\n') else proc.stdout

    def postconf_works(self):
        """Whether postconf can still read the whole main.cf (no fatal error)."""
        proc = run_exact([REAL_POSTCONF, '-c', str(self.confdir)])
        return proc.returncode == 0 and 'fatal' not in proc.stderr

    def postmap(self, *args, **kwargs):
        return run_exact([REAL_POSTMAP, '-c', str(self.confdir)] + list(args), **kwargs)

    def dump(self, map_spec=None):
        """Every key -> value of an indexed table, as Postfix reads it (postmap -s)."""
        proc = self.postmap('-s', map_spec or self.map_spec)
        assert proc.returncode == 0 and 'fatal' not in proc.stderr, proc.stderr
        return dict(line.split('\t', 1) for line in proc.stdout.split('\n') if line)

    def query(self, *keys, **kwargs):
        """Look keys up with the real postmap -q: {key: value} for the keys found."""
        proc = self.postmap('-q', '-', kwargs.get('map_spec') or self.map_spec,
                            input=''.join(k + '\n' for k in keys))
        assert 'fatal' not in proc.stderr, proc.stderr
        return dict(line.split('\t', 1) for line in proc.stdout.split('\n') if line)

    def explicit_main_cf(self):
        """main.cf settings as postconf -n prints them (unexpanded)."""
        proc = run_exact([REAL_POSTCONF, '-c', str(self.confdir), '-n'])
        assert proc.returncode == 0, proc.stderr
        return dict(line.split(' = ', 1) if ' = ' in line else (line.rstrip(' ='), '')
                    for line in proc.stdout.split('\n') if line)

    def leftovers(self, directory=None):
        """Names in a directory other than the table, its index and main.cf/master.cf."""
        directory = directory or self.maps_dir
        expected = {'main.cf', 'master.cf', self.table.name}
        expected.update(os.path.basename(i) for i in self.index_files())
        return sorted(set(os.listdir(str(directory))) - expected)

    # -- running Ansible ---------------------------------------------------------------

    def environ(self, path_prefix=None):
        prefix = ([str(path_prefix)] if path_prefix else []) + [str(self.bindir)]
        return ansible_env(self.tmp, path_prefix=prefix)

    def command(self, module, args, check=False, diff=False):
        """argv of the module through the real `ansible` command (for Popen, kills)."""
        args = dict(args)
        args.setdefault('config_dir', str(self.confdir))
        return ad_hoc_command(module, args, check, diff)

    def run(self, module, args, check=False, diff=False, env=None, **popen):
        """Run one module once (see ansible_env.run_module); return its result."""
        args = dict(args)
        args.setdefault('config_dir', str(self.confdir))
        return run_module(module, args, check, diff, env=env or self.environ(), cwd=str(self.tmp),
                          tmp=self.tmp, **popen)

    def tls_policy(self, args, **kwargs):
        return self.run(TLS_POLICY, args, **kwargs)

    def postconf(self, args, **kwargs):
        return self.run(POSTCONF, args, **kwargs)

    def playbook(self, tasks, check=False, diff=False, env=None):
        """Run generated tasks (each may set ignore_errors); return the per-task host results."""
        return run_playbook(tasks, self.tmp, env=env or self.environ(), check=check, diff=diff,
                            name='reliability')[0]

    def task(self, module, args, ignore_errors=True):
        args = dict(args)
        args.setdefault('config_dir', str(self.confdir))
        return {module: args, 'ignore_errors': ignore_errors}


def run_exact(cmd, input=None):
    """Run CMD; stdout/stderr decoded exactly (surrogateescape) and split by callers on "\\n" only.

    Not text=True: universal newlines would turn a CR inside a value into a line break, and
    str.splitlines() would also break at \\f, \\x85, \\u2028 ..., unlike Postfix.
    """
    proc = subprocess.run(cmd, capture_output=True, check=False,
                          input=input.encode('utf-8', 'surrogateescape') if input is not None else None)
    return subprocess.CompletedProcess(cmd, proc.returncode,
                                       proc.stdout.decode('utf-8', 'surrogateescape'),
                                       proc.stderr.decode('utf-8', 'surrogateescape'))


def snapshot(*dirs):
    state = {}
    for top in dirs:
        top = str(top)
        for root, dirnames, filenames in os.walk(top):
            for name in sorted(dirnames + filenames):
                path = os.path.join(root, name)
                st = os.lstat(path)
                content = None
                if stat.S_ISREG(st.st_mode):
                    with open(path, 'rb') as f:
                        content = f.read()
                elif stat.S_ISLNK(st.st_mode):
                    content = os.readlink(path)
                state[path] = (content, stat.S_IMODE(st.st_mode), stat.S_IFMT(st.st_mode),
                               st.st_uid, st.st_gid, st.st_ino, st.st_mtime_ns)
    return state


def describe_difference(before, after):
    """A readable account of what changed between two snapshots (for assertion messages)."""
    lines = []
    for path in sorted(set(before) | set(after)):
        if path not in after:
            lines.append('removed %s' % path)
        elif path not in before:
            lines.append('created %s' % path)
        elif before[path] != after[path]:
            lines.append('changed %s: %r -> %r' % (path, before[path][1:], after[path][1:])
                         if before[path][0] == after[path][0] else 'changed content of %s' % path)
    return '\n'.join(lines)


def assert_unchanged(before, after):
    assert before == after, describe_difference(before, after)


def why(result):
    """The parts of a module result that explain it, for assertion messages."""
    keys = ('failed', 'changed', 'msg', 'warnings', 'added', 'updated', 'removed', 'params',
            'module_stderr', 'stderr')
    return dict((k, result[k]) for k in keys if k in result)


def crashed(result):
    """Whether the module died of an unhandled exception instead of failing cleanly."""
    msg = result.get('msg', '')
    return bool(result.get('module_stderr')) or 'Traceback' in msg or 'MODULE FAILURE' in msg \
        or 'Module failed:' in msg


def assert_failed(result, *fragments):
    assert result.get('failed') is True, why(result)
    for fragment in fragments:
        assert fragment in result.get('msg', ''), (fragment, result.get('msg'))


def chattr(path, flag):
    subprocess.run(['chattr', flag, str(path)], check=True, capture_output=True)


def wait_for(path, proc, timeout=240):
    """Wait until PATH exists (a shim's marker), failing early if PROC ended first."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(str(path)):
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError('process ended before %s appeared:\n%s\n%s' % (path, out, err))
        if time.monotonic() > deadline:
            raise AssertionError('%s did not appear' % path)
        time.sleep(0.05)
