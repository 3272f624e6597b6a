# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one sandbox every module integration test works in, and the helpers that observe it.

A ``Sandbox`` is a throwaway Postfix configuration directory (main.cf,
master.cf) plus a maps directory holding the TLS policy table, both under
pytest's ``tmp_path`` (so the tests are xdist-safe), against the host's real
``postconf`` and ``postmap``.  The fixtures that hand it out are in
tests/integration/conftest.py: ``sandbox`` (a hash table), ``make_sandbox``
(another map type, or the directories elsewhere, e.g. on a small tmpfs).

How the modules run:

* ``sandbox.tls_policy(args)`` / ``sandbox.postconf(args)`` run the module
  once through ``ansible_env.run_module``: the module's file run directly,
  its arguments and the controller's check/diff flags as JSON on stdin, as
  the controller finally runs it on a host (``MAILGW_TEST_VIA_ANSIBLE=1``
  sends these calls through the ``ansible`` command instead);
* ``sandbox.playbook(tasks)`` runs tasks with the real ``ansible-playbook``
  (check mode across tasks, ``ignore_errors`` matrices, Jinja variables);
* ``sandbox.command(...)`` is the argv of the real ``ansible`` ad hoc
  command, for runs that are started together or killed.

Shell scripts placed with ``sandbox.shim()`` in ``sandbox.bindir`` come first
in PATH and so stand in for postmap/postconf (the modules find their binaries
with ``get_bin_path``, which searches PATH before /usr/sbin);
``sandbox.record()`` puts a stand-in there that logs its arguments and runs
the real binary, so a test can count the calls that build or write.

Observation helpers take byte-level snapshots of whole directories (name,
bytes, mode, owner, inode, mtime) and read tables and main.cf the way Postfix
does (``postmap -s`` / ``postmap -q`` / ``postconf -n``), so "nothing
changed" and "Postfix sees exactly these entries" are asserted, not inferred.
"""

import os
import pathlib
import stat
import subprocess
import textwrap
import time

import pytest

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.lookup_table_types import index_paths

from ansible_env import ad_hoc_command, ad_hoc_result, ansible_env, run_module, run_playbook

# The real policy tables (tests/data/realworld/tables): lines from public repositories
REALWORLD_TABLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'data', 'realworld', 'tables')

REAL_POSTMAP = '/usr/sbin/postmap'
REAL_POSTCONF = '/usr/sbin/postconf'
TLS_POLICY = 'mailgw.postfix_tls.tls_policy'
POSTCONF = 'mailgw.postfix_tls.postconf'

HAVE_POSTFIX = os.access(REAL_POSTMAP, os.X_OK) and os.access(REAL_POSTCONF, os.X_OK)
IS_ROOT = os.geteuid() == 0

needs_postfix = pytest.mark.skipif(not HAVE_POSTFIX, reason='needs the host postconf and postmap binaries')


def needs_root(what):
    """Skip marker for tests that need root for WHAT (mount, chattr, chown ...)."""
    return pytest.mark.skipif(not IS_ROOT, reason='needs root (%s)' % what)


TABLE_NAME = 'tls-policy.map'

MAIN_CF = textwrap.dedent('''\
    # throwaway test configuration
    compatibility_level = 3.6
    maps_d_dir = {maps_dir}
    smtp_tls_policy_maps = {map_type}:${{maps_d_dir}}/{table}
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


class CallLog:
    """The argument lines of every call of a recording stand-in (see Sandbox.record)."""

    def __init__(self, path):
        self.path = path

    def calls(self):
        return [line for line in self.path.read_text().split('\n') if line]

    def builds(self):
        """postmap calls that build an index (not queries)."""
        return [line for line in self.calls() if ' -q ' not in ' %s ' % line]

    def queries(self):
        """postmap -q calls."""
        return [line for line in self.calls() if ' -q ' in ' %s ' % line]

    def writes(self):
        """postconf calls that edit a file (-e, -X, or NAME=VALUE)."""
        result = []
        for line in self.calls():
            args = line.split()
            if '-e' in args or '-X' in args or any('=' in a for a in args[2:]):
                result.append(line)
        return result


class Sandbox:
    """A Postfix config dir with a policy table directory, and ways to run the modules in it."""

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
        """The sandbox's main.cf (its table listed in smtp_tls_policy_maps), plus EXTRA lines."""
        return MAIN_CF.format(maps_dir=self.maps_dir, map_type=self.map_type, table=TABLE_NAME) + extra

    # -- paths -------------------------------------------------------------------------

    @property
    def main_cf(self):
        return self.confdir / 'main.cf'

    @property
    def master_cf(self):
        return self.confdir / 'master.cf'

    @property
    def table(self):
        return self.maps_dir / TABLE_NAME

    @property
    def map_spec(self):
        return '%s:%s' % (self.map_type, self.table)

    def index_files(self, map_type=None, path=None):
        """The index files postmap builds for the table (or PATH), as the collection names them."""
        return [pathlib.Path(p) for p in index_paths(map_type or self.map_type, str(path or self.table))]

    # -- set-up and stand-ins ----------------------------------------------------------------

    def seed(self, text, path=None):
        """Write TEXT as the policy table (or as PATH, a hash table) and index it with the real postmap."""
        path = path or self.table
        path.write_bytes(text.encode('utf-8', 'surrogateescape'))
        spec = self.map_spec if path == self.table else 'hash:%s' % path
        proc = run_exact([REAL_POSTMAP, '-c', str(self.confdir), spec])
        assert proc.returncode == 0, proc.stderr
        return self

    def shim(self, name, body):
        """Put an executable shell script NAME first in PATH."""
        path = self.bindir / name
        path.write_text('#!/bin/sh\n' + textwrap.dedent(body))
        path.chmod(0o755)
        return path

    def record(self, name):
        """A stand-in NAME that logs its arguments, then runs the real binary; its CallLog."""
        log = CallLog(self.tmp / ('%s.log' % name))
        log.path.write_text('')
        self.shim(name, 'printf "%%s\\n" "$*" >> "%s"\nexec /usr/sbin/%s "$@"\n' % (log.path, name))
        return log

    # -- observation -----------------------------------------------------------------------

    def snapshot(self, *dirs):
        """Every file under the config and maps dirs (or DIRS): bytes, mode, owner, inode, mtime."""
        return snapshot(*(dirs or (self.confdir, self.maps_dir)))

    def real_postconf(self, *args):
        """stdout of the real postconf -c CONFDIR ARGS (which must succeed), decoded exactly."""
        proc = run_exact([REAL_POSTCONF, '-c', str(self.confdir)] + list(args))
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def real_postmap(self, *args, **kwargs):
        """The real postmap -c CONFDIR ARGS (input=...), as a CompletedProcess decoded exactly."""
        return run_exact([REAL_POSTMAP, '-c', str(self.confdir)] + list(args), **kwargs)

    def postconf_h(self, name):
        """postconf -h NAME: the value Postfix uses (unexpanded)."""
        out = self.real_postconf('-h', name)
        return out[:-1] if out.endswith('\n') else out

    def explicit(self, name):
        """The value NAME has in main.cf (postconf -n NAME), or None when it is not set."""
        out = self.real_postconf('-n', name)
        return out.split(' = ', 1)[1].rstrip('\n') if out else None

    def explicit_main_cf(self):
        """main.cf settings as postconf -n prints them (unexpanded)."""
        return dict(line.split(' = ', 1) if ' = ' in line else (line.rstrip(' ='), '')
                    for line in self.real_postconf('-n').split('\n') if line)

    def postconf_works(self):
        """Whether postconf can still read the whole main.cf (no fatal error)."""
        proc = run_exact([REAL_POSTCONF, '-c', str(self.confdir)])
        return proc.returncode == 0 and 'fatal' not in proc.stderr

    def dump(self, map_spec=None):
        """Every key -> value of an indexed table, as Postfix reads it (postmap -s)."""
        proc = self.real_postmap('-s', map_spec or self.map_spec)
        assert proc.returncode == 0 and 'fatal' not in proc.stderr, proc.stderr
        return dict(line.split('\t', 1) for line in proc.stdout.split('\n') if line)

    def query(self, *keys, map_spec=None, path=None, map_type=None):
        """Look keys up with the real postmap -q: {key: value} for the keys found.

        The table is the sandbox's, or MAP_SPEC, or PATH (of MAP_TYPE, default the sandbox's).
        """
        if map_spec is None:
            map_spec = '%s:%s' % (map_type or self.map_type, path or self.table)
        proc = self.real_postmap('-q', '-', map_spec, input=''.join(k + '\n' for k in keys))
        assert 'fatal' not in proc.stderr, proc.stderr
        return dict(line.split('\t', 1) for line in proc.stdout.split('\n') if line)

    def leftovers(self, directory=None):
        """Names in a directory other than the table, its index and main.cf/master.cf."""
        directory = directory or self.maps_dir
        expected = {'main.cf', 'master.cf', self.table.name}
        expected.update(i.name for i in self.index_files())
        return sorted(set(os.listdir(str(directory))) - expected)

    # -- running the modules ---------------------------------------------------------------

    def environ(self, path_prefix=None):
        """The environment of a test run: ansible_env with the stand-ins of bindir first in PATH."""
        prefix = ([str(path_prefix)] if path_prefix else []) + [str(self.bindir)]
        return ansible_env(self.tmp, path_prefix=prefix)

    def _args(self, args):
        args = dict(args)
        args.setdefault('config_dir', str(self.confdir))
        return args

    def command(self, module, args, check=False, diff=False):
        """argv of the module through the real `ansible` command (for Popen, kills)."""
        return ad_hoc_command(module, self._args(args), check, diff)

    def run(self, module, args, check=False, diff=False, env=None, **popen):
        """Run one module once (see ansible_env.run_module); return its result."""
        return run_module(module, self._args(args), check, diff, env=env or self.environ(),
                          cwd=str(self.tmp), tmp=self.tmp, **popen)

    def tls_policy(self, args, **kwargs):
        return self.run(TLS_POLICY, args, **kwargs)

    def postconf(self, args, **kwargs):
        return self.run(POSTCONF, args, **kwargs)

    def playbook(self, tasks, check=False, diff=False, env=None, vars_files=()):
        """Run TASKS with the real ansible-playbook; return (per-task host results, stats)."""
        return run_playbook(tasks, self.tmp, env=env or self.environ(), check=check, diff=diff,
                            name='sandbox', vars_files=vars_files)

    def task(self, module, args, ignore_errors=True):
        """A playbook task running MODULE in this sandbox."""
        return {module: self._args(args), 'ignore_errors': ignore_errors}

    def run_together(self, jobs):
        """Start every (module, args) at once through `ansible`; return their results in order.

        Every run must succeed and report a change.
        """
        procs = [subprocess.Popen(self.command(module, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=self.environ(), cwd=str(self.tmp))
                 for module, args in jobs]
        results = []
        for proc in procs:
            out, err = proc.communicate()
            results.append(ad_hoc_result(subprocess.CompletedProcess(proc.args, proc.returncode, out, err)))
        for result in results:
            assert result.get('failed') is not True, why(result)
            assert result['changed'] is True, why(result)
        return results


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


# -- snapshots and assertions ------------------------------------------------------------------

def snapshot(*dirs):
    """path -> (content, mode, file type, uid, gid, inode, mtime) of everything under DIRS."""
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


def assert_ok(result):
    """RESULT is a success; returned, for use in an expression."""
    assert not result.get('failed'), why(result)
    return result


def assert_failed(result, *fragments):
    """RESULT is a failure whose message contains every fragment."""
    assert result.get('failed') is True, why(result)
    for fragment in fragments:
        assert fragment in result.get('msg', ''), (fragment, result.get('msg'))


def warnings_of(result):
    """The warnings of a result as one text."""
    return '\n'.join(result.get('warnings', []))


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


# -- check mode on a frozen sandbox (see the frozen_sandbox fixture) ----------------------------

def assert_check_mode_writes_nothing(sandbox, tasks):
    """Run TASKS with --check --diff on a frozen sandbox: every task succeeds and reports a
    change, and nothing is written (snapshot, TMPDIR and postmap builds); the results."""
    env = sandbox.environ()
    env['TMPDIR'] = str(sandbox.tmpdir)
    results, dummy = sandbox.playbook([dict(t, ignore_errors=False) for t in tasks], check=True, diff=True,
                                      env=env)
    assert len(results) == len(tasks), 'a task failed in check mode: %s' % why(results[-1])
    for task, result in zip(tasks, results):
        assert result.get('failed') is not True, (task, why(result))
        assert result['changed'] is True, (task, why(result))
    assert_unchanged(sandbox.before, sandbox.snapshot())
    assert os.listdir(str(sandbox.tmpdir)) == []
    assert sandbox.postmap_calls.builds() == [], 'postmap built an index in check mode'
    return results


# -- hostile input ------------------------------------------------------------------------------

CANARY = '@CANARY@'     # replaced by the sandbox's canary path in every value


def shell_payloads(canary):
    """Strings that create CANARY if any shell ever interprets them."""
    return [
        '$(touch %s)' % canary,
        '`touch %s`' % canary,
        ';touch %s' % canary,
        '|touch %s' % canary,
        '&&touch %s' % canary,
        '>%s' % canary,
        'x$(touch${IFS}%s)' % canary,
    ]


def substitute(value, canary):
    """VALUE with every CANARY placeholder replaced by the canary path (recursively)."""
    if isinstance(value, str):
        return value.replace(CANARY, canary)
    if isinstance(value, list):
        return [substitute(v, canary) for v in value]
    if isinstance(value, dict):
        return dict((substitute(k, canary), substitute(v, canary)) for k, v in value.items())
    return value


def assert_all_refused(sandbox, module, cases, base=None):
    """Run every (args, fragments) case as one task of one playbook (ignore_errors), so a
    matrix costs one Ansible start-up.  Each case must

    * fail with a message holding its fragments (the offending value or option), not a crash,
    * leave every file of the config and maps directories byte-identical (same bytes, mode,
      owner, inode and mtime: nothing was even rewritten), and
    * never reach a shell: the canary file that the payloads (shell_payloads, CANARY in any
      value) would create must not exist afterwards.
    """
    canary = str(sandbox.canary)
    before = sandbox.snapshot()
    tasks = []
    for args, dummy in cases:
        merged = dict(base or {})
        merged.update(substitute(args, canary))
        tasks.append(sandbox.task(module, merged))
    results, dummy = sandbox.playbook(tasks)
    assert len(results) == len(cases)
    problems = []
    for (args, fragments), result in zip(cases, results):
        if result.get('failed') is not True:
            problems.append('accepted: %r -> %r' % (args, result))
            continue
        msg = result.get('msg', '')
        missing = [f for f in substitute(fragments, canary) if f not in msg]
        if missing:
            problems.append('%r: message %r lacks %r' % (args, msg, missing))
        if crashed(result):
            problems.append('%r: crashed instead of a clear error: %r' % (args, msg))
    assert not problems, '\n'.join(problems)
    assert_unchanged(before, sandbox.snapshot())
    assert not sandbox.canary.exists(), 'a value reached a shell'
    return results
