# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's side of the oracle: what the module accepts, and writing
tables through the real ``mailgw.postfix_tls.tls_policy`` module."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
INTEGRATION = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(INTEGRATION))
for _path in (INTEGRATION, os.path.join(REPO, '.cache', 'collections')):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from ansible_collections.mailgw.postfix_tls.plugins.module_utils import tls_policy_grammar as grammar  # noqa: E402

MODULE = 'mailgw.postfix_tls.tls_policy'
ATTRIBUTES = ('match', 'tafile', 'ciphers', 'protocols', 'exclude', 'servername',
              'connection_reuse', 'enable_rpk')


class ModuleView(object):
    """The module's verdict on one entry: accepted (with the key and value it
    writes, and its warnings) or refused (with its message)."""

    def __init__(self, accepted, key=None, value=None, message=None, warnings=()):
        self.accepted = accepted
        self.key, self.value = key, value
        self.message = message
        self.warnings = list(warnings)

    def __repr__(self):
        if self.accepted:
            return 'accepts %r %r' % (self.key, self.value)
        return 'refuses (%s)' % self.message


def _version_gate(policy, version):
    """The module refuses features newer than the target Postfix (tls_policy.py
    check_postfix_support); None when the policy fits VERSION."""
    if version is None:
        return None
    needed = policy.minimum_postfix_version()
    if needed and tuple(version) < tuple(needed[0]):
        return '%s needs Postfix %s or later; this Postfix is %s' % (
            needed[1], '.'.join(map(str, needed[0])), '.'.join(map(str, version)))
    return None


def view_line(key, value, version=None):
    """How the module's grammar reads a table line KEY VALUE (existing entries) on
    Postfix VERSION (what the module reads from mail_version; None: a current one)."""
    try:
        folded, warnings = grammar.normalize_destination(key)
        policy = grammar.parse_policy(value, version)
    except grammar.PolicyError as exc:
        return ModuleView(False, message=str(exc))
    gate = _version_gate(policy, version)
    if gate:
        return ModuleView(False, message=gate)
    return ModuleView(True, folded, policy.render(), warnings=warnings)


def view_params(destination, level, version=None, **attributes):
    """How the module's grammar takes module options (desired entries)."""
    try:
        folded, warnings = grammar.normalize_destination(destination)
        policy = grammar.build_policy(level, **attributes)
    except grammar.PolicyError as exc:
        return ModuleView(False, message=str(exc))
    except TypeError as exc:            # an attribute this grammar does not know
        return ModuleView(False, message=str(exc))
    gate = _version_gate(policy, version)
    if gate:
        return ModuleView(False, message=gate)
    return ModuleView(True, folded, policy.render(), warnings=warnings)


def module_writer(items, tmp=None):
    """A writer for Oracle.ask that writes ITEMS (module entry dicts) with the module.

    Returns writer(path, map_type, entries): one module run with
    ``entries`` and ``exclusive: true``; raises AssertionError with the
    module's message when it fails.
    """
    from ansible_env import ansible_env, run_module

    def writer(path, map_type, _entries, conf=None):
        args = dict(entries=items, exclusive=True, path=path, map_type=map_type,
                    config_dir=writer.config_dir)
        env = ansible_env(tmp)
        result = run_module(MODULE, args, env=env, tmp=tmp)
        writer.result = result
        if result.get('failed'):
            raise AssertionError('the tls_policy module failed to write the oracle table: %s\n%s'
                                 % (result.get('msg'), result.get('module_stderr', '')))
        return result
    writer.config_dir = None
    writer.result = None
    return writer
