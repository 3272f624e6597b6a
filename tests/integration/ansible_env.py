# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How every integration test runs Ansible and the collection's modules.

``ansible_env()``: the environment, in one place: the tool venv on PATH, the
collection found through .cache/collections (scripts/setup.sh links this
working tree there), no colour, no deprecation or localhost chatter, no retry
files, no ANSIBLE_CONFIG or callbacks from the caller's shell, and optionally
the json stdout callback and private temp/home directories, so a test can
assert that nothing is left behind.

``run_module()``: one module call, its file run directly with the arguments
as JSON on stdin (``MAILGW_TEST_VIA_ANSIBLE=1``: through ``ansible``).
``run_playbook()``: tasks as one play through the real ``ansible-playbook``.
``ad_hoc_command()`` / ``ad_hoc_result()``: the real ``ansible`` command, for
runs that are started together or killed.
"""

import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, '.cache', 'venv', 'bin')
COLLECTIONS = os.path.join(REPO, '.cache', 'collections')
CONTAINERS_CONF = os.path.join(REPO, 'containers.conf')
# The interpreter modules run with on the test host: the system python3 (what
# a managed Debian host has), else the one running the tests.
TARGET_PYTHON = '/usr/bin/python3' if os.access('/usr/bin/python3', os.X_OK) else sys.executable
# A module run directly needs ansible's module_utils: the venv's Python has them.
# MAILGW_MODULE_PYTHON names another interpreter (the delivery oracle inside a
# Postfix container: the container's python3, module_utils on its PYTHONPATH).
MODULE_PYTHON = os.environ.get('MAILGW_MODULE_PYTHON') or (
    os.path.join(VENV_BIN, 'python') if os.access(os.path.join(VENV_BIN, 'python'), os.X_OK) else sys.executable)


def tool(name):
    """Path of a tool from the venv (ansible, ansible-playbook, ...)."""
    path = os.path.join(VENV_BIN, name)
    return path if os.access(path, os.X_OK) else shutil.which(name)


def ansible_env(tmp=None, path_prefix=(), json_output=True, interpreter=TARGET_PYTHON, **extra):
    """os.environ plus the settings for a test run of Ansible.

    tmp            a directory (str or Path) for Ansible's local and remote
                   temp directories and ANSIBLE_HOME, kept out of ~/.ansible,
                   and TMPDIR (the AnsiballZ payload directory of a module a
                   test kills stays in the test's directory, not in /tmp)
    path_prefix    directories searched before the venv (shims of postmap ...)
    json_output    use the ansible.builtin.json stdout callback
    interpreter    ANSIBLE_PYTHON_INTERPRETER, or None for discovery (containers)
    extra          further variables, set last (None removes a variable)
    """
    env = dict(os.environ)
    for name in ('ANSIBLE_CONFIG', 'ANSIBLE_CALLBACKS_ENABLED', 'ANSIBLE_STDOUT_CALLBACK'):
        env.pop(name, None)
    env['PATH'] = os.pathsep.join([str(p) for p in path_prefix] + [VENV_BIN, env.get('PATH', '/usr/bin:/bin')])
    env.update(
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
        CONTAINERS_CONF=CONTAINERS_CONF,
        ANSIBLE_NOCOLOR='1',
        ANSIBLE_FORCE_COLOR='0',
        ANSIBLE_DEPRECATION_WARNINGS='False',
        ANSIBLE_LOCALHOST_WARNING='False',
        ANSIBLE_INVENTORY_UNPARSED_WARNING='False',
        ANSIBLE_RETRY_FILES_ENABLED='False',
        ANSIBLE_HOST_KEY_CHECKING='False',
    )
    if json_output:
        env.update(ANSIBLE_STDOUT_CALLBACK='ansible.builtin.json', ANSIBLE_LOAD_CALLBACK_PLUGINS='1')
    if interpreter:
        env['ANSIBLE_PYTHON_INTERPRETER'] = interpreter
    if tmp is not None:
        tmp = str(tmp)
        env.update(
            ANSIBLE_LOCAL_TEMP=os.path.join(tmp, 'ansible-local'),
            ANSIBLE_REMOTE_TEMP=os.path.join(tmp, 'ansible-remote'),
            ANSIBLE_HOME=os.path.join(tmp, 'ansible-home'),
            TMPDIR=tmp,
        )
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


# -- running one module --------------------------------------------------------------
#
# Most module tests run the module the way Ansible's controller finally runs
# it on a host: its Python file, with the arguments (and the controller's
# _ansible_check_mode / _ansible_diff flags) as JSON on stdin, in the given
# environment, against the real postconf/postmap. That skips about 2 s of
# controller start-up per call. MAILGW_TEST_VIA_ANSIBLE=1 sends every such
# call through the real `ansible` command instead; tests that need the
# controller (playbooks, check mode across tasks, killed process trees, the
# role, Molecule) always use it.

VIA_ANSIBLE = os.environ.get('MAILGW_TEST_VIA_ANSIBLE', '') not in ('', '0')


def ad_hoc_command(module, args, check=False, diff=False):
    """argv of `ansible localhost -m MODULE -a JSON` (connection local)."""
    # Module arguments as one JSON document: no key=value quoting to get wrong.
    cmd = [tool('ansible'), 'localhost', '-i', 'localhost,', '-c', 'local',
           '-m', module, '-a', json.dumps(args)]
    if check:
        cmd.append('--check')
    if diff:
        cmd.append('--diff')
    return cmd


def ad_hoc_result(proc):
    """The host result of an `ansible` ad hoc run with the json callback."""
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError('no JSON from ansible (rc %d):\n%s\n%s'
                             % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return data['plays'][0]['tasks'][0]['hosts']['localhost']


def _messages(items):
    """Warnings/deprecations as strings (modules emit structured events)."""
    out = []
    for item in items or []:
        if isinstance(item, dict):
            item = (item.get('event') or {}).get('msg') or item.get('msg') or json.dumps(item)
        out.append(item)
    return out


def direct_result(proc):
    """The result of a module run directly: as the controller would report it."""
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        return {'failed': True, 'msg': 'MODULE FAILURE (rc %d)' % proc.returncode,
                'module_stdout': proc.stdout, 'module_stderr': proc.stderr, 'rc': proc.returncode}
    result.pop('invocation', None)
    for key in ('warnings', 'deprecations'):
        if key in result:
            result[key] = _messages(result[key])
    if proc.returncode != 0:
        result.setdefault('failed', True)
    result.setdefault('changed', False)
    return result


def run_module(module, args, check=False, diff=False, env=None, cwd=None, tmp=None, wrapper=(), **popen):
    """Run MODULE (a mailgw.postfix_tls FQCN) once; return its result dict.

    wrapper: a command prefix (the oracle's namespace_argv, say).
    popen: further subprocess arguments (preexec_fn to set a umask, ...).
    """
    env = dict(env if env is not None else ansible_env(tmp))
    wrapper = list(wrapper)
    if VIA_ANSIBLE:
        proc = subprocess.run(wrapper + ad_hoc_command(module, args, check, diff), capture_output=True,
                              text=True, env=env, cwd=cwd, check=False, **popen)
        return ad_hoc_result(proc)
    namespace, name, short = module.split('.')
    payload = dict(args, _ansible_check_mode=bool(check), _ansible_diff=bool(diff),
                   _ansible_module_name=module)
    if tmp is not None:
        payload['_ansible_remote_tmp'] = os.path.join(str(tmp), 'ansible-remote')
    env['PYTHONPATH'] = os.pathsep.join(p for p in (COLLECTIONS, env.get('PYTHONPATH')) if p)
    argv = [MODULE_PYTHON, '-m', 'ansible_collections.%s.%s.plugins.modules.%s' % (namespace, name, short)]
    proc = subprocess.run(wrapper + argv, input=json.dumps({'ANSIBLE_MODULE_ARGS': payload}), capture_output=True,
                          text=True, env=env, cwd=cwd, check=False, **popen)
    return direct_result(proc)


def run_playbook(tasks, tmp, env=None, check=False, diff=False, name='test', vars_files=()):
    """Run TASKS as one play on localhost (connection local) with the real
    ansible-playbook; return (per-task host results, stats of localhost).

    vars_files: files the play loads its variables from (Jinja in TASKS may use them).
    """
    play = [{'name': name, 'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}]
    if vars_files:
        play[0]['vars_files'] = [str(path) for path in vars_files]
    path = os.path.join(str(tmp), 'play-%d.json' % time.monotonic_ns())
    with open(path, 'w') as handle:
        json.dump(play, handle)
    cmd = [tool('ansible-playbook'), '-i', 'localhost,', '-c', 'local', path]
    if check:
        cmd.append('--check')
    if diff:
        cmd.append('--diff')
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env=env if env is not None else ansible_env(tmp), cwd=str(tmp))
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError('no JSON from ansible-playbook (rc %d):\n%s\n%s'
                             % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    results = [t['hosts'].get('localhost', {}) for t in data['plays'][0]['tasks']]
    return results, data['stats'].get('localhost', {})
