# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""pytest plugin of `scripts/test.sh matrix`: the tests run with an older ansible-core line.

Loaded with ``-p matrix_compat`` by scripts/matrix/line.sh, in the venv of
that line (scripts/matrix/requirements-LINE.txt). It changes the test
harness only, never the collection:

* the integration helpers (tests/integration/ansible_env.py) run ``ansible``,
  ``ansible-playbook`` and ``ansible-doc`` from .cache/venv (ansible-core
  2.19); here they run this venv's commands, so every module call goes
  through the ansible-core line under test; the collections in this venv's
  ``collections`` directory (ansible.posix: before 2.19 the tests' json stdout
  callback ``ansible.builtin.json`` redirects to ``ansible.posix.json``) are
  added to the collection path;
* ``ansible.module_utils.testing.patch_module_args`` (the unit tests use it)
  arrived in ansible-core 2.19; on older lines it is provided here, doing
  what those releases' own unit tests did: the arguments as JSON in
  ``ansible.module_utils.basic._ANSIBLE_ARGS``.
"""
import contextlib
import json
import os
import sys
import types
from unittest import mock

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))


@contextlib.contextmanager
def patch_module_args(args=None):
    """ansible-core 2.19's patch_module_args for older lines."""
    from ansible.module_utils import basic  # pylint: disable=import-outside-toplevel
    if not isinstance(args, (dict, type(None))):
        raise TypeError("The `args` arg must be a dict or None.")
    payload = json.dumps({'ANSIBLE_MODULE_ARGS': args or {}}).encode()
    with mock.patch.object(basic, '_ANSIBLE_ARGS', payload):
        yield


def _provide_patch_module_args():
    try:
        import ansible.module_utils.testing  # noqa: F401 pylint: disable=import-outside-toplevel,unused-import
    except ImportError:
        shim = types.ModuleType('ansible.module_utils.testing')
        shim.patch_module_args = patch_module_args
        sys.modules['ansible.module_utils.testing'] = shim
        import ansible.module_utils  # pylint: disable=import-outside-toplevel
        ansible.module_utils.testing = shim


def _point_helpers_at_this_venv():
    helpers = os.path.join(REPO, 'tests', 'integration')
    if helpers not in sys.path:
        sys.path.insert(0, helpers)
    import ansible_env  # pylint: disable=import-outside-toplevel,import-error
    ansible_env.VENV_BIN = VENV_BIN
    ansible_env.MODULE_PYTHON = sys.executable
    extra = os.path.join(sys.prefix, 'collections')
    if os.path.isdir(extra) and extra not in ansible_env.COLLECTIONS.split(os.pathsep):
        ansible_env.COLLECTIONS = os.pathsep.join([ansible_env.COLLECTIONS, extra])


def pytest_configure(config):  # pylint: disable=unused-argument
    """Before any test module is imported (also in each xdist worker)."""
    _provide_patch_module_args()
    _point_helpers_at_this_venv()


def pytest_report_header(config):  # pylint: disable=unused-argument
    """Name the ansible-core under test at the top of the run."""
    from ansible.release import __version__  # pylint: disable=import-outside-toplevel
    return 'matrix: ansible-core %s from %s' % (__version__, VENV_BIN)
