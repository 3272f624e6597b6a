# -*- coding: utf-8 -*-
# SPDX-License-Identifier: GPL-3.0-or-later
"""The environment every integration test runs ansible / ansible-playbook in.

One place for it: the tool venv on PATH, the collection found through
.cache/collections (scripts/setup.sh links this working tree there), no
colour, no deprecation or localhost chatter, no retry files, no ANSIBLE_CONFIG
or callbacks from the caller's shell, and optionally the json stdout callback
and private temp/home directories, so a test can assert that nothing is left
behind.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, '.cache', 'venv', 'bin')
COLLECTIONS = os.path.join(REPO, '.cache', 'collections')
CONTAINERS_CONF = os.path.join(REPO, 'containers.conf')
# The interpreter modules run with on the test host: the system python3 (what
# a managed Debian host has), else the one running the tests.
TARGET_PYTHON = '/usr/bin/python3' if os.access('/usr/bin/python3', os.X_OK) else sys.executable


def tool(name):
    """Path of a tool from the venv (ansible, ansible-playbook, ...)."""
    path = os.path.join(VENV_BIN, name)
    return path if os.access(path, os.X_OK) else shutil.which(name)


def ansible_env(tmp=None, path_prefix=(), json_output=True, interpreter=TARGET_PYTHON, **extra):
    """os.environ plus the settings for a test run of Ansible.

    tmp            a directory (str or Path) for Ansible's local and remote
                   temp directories and ANSIBLE_HOME, kept out of ~/.ansible
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
        )
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env
