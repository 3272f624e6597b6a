# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Settings written with ``postconf``: main.cf parameters and master.cf ``-o`` overrides.

The steps the postconf module takes, shared with tls_policy's ``main_cf`` option (the
table and the main.cf parameters that wire it in, in one task):

* ``setting_text``: a value as postconf writes it, refused when Postfix could not read it;
* ``unknown_name_errors``: names Postfix neither knows nor finds referenced;
* ``compare_settings``: what is set against what is wanted (lists item by item);
* ``settings_diff``: the diff of the changed lines;
* ``write_settings``: one postconf run that writes, the file's owner and mode kept
  (postconf replaces the file with a new one, root's, mode 0644), the file read back
  and compared with what was asked; a main.cf or master.cf that is a symbolic link is
  written through it (postconf itself would replace the link with a file).

Failures raise PostconfSettingsError; its ``changed`` says whether the file on disk was
replaced.
"""

import os
import shutil
import stat
import tempfile

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import (
    ALLOW_UNKNOWN,
    check_name,
    check_setting,
    format_line,
    is_list_parameter,
    list_items,
    printable,
    referenced_names,
    restart_required,
    to_postconf_value,
    unknown_name_message,
    values_equal,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_commands import (
    Postconf,
    PostfixCommandError,
)
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postfix_syntax import split_list
from ansible_collections.mailgw.postfix_tls.plugins.module_utils.table_transaction import (
    DirectoryLock,
    restore_owner_mode,
)


class PostconfSettingsError(Exception):
    """A refused or failed write; CHANGED: whether the file was replaced; COMMANDS: the
    postconf command lines run."""

    def __init__(self, msg, changed=False, commands=None):
        super(PostconfSettingsError, self).__init__(msg)
        self.msg = msg
        self.changed = changed
        self.commands = commands


def setting_text(name, raw, override=False, items=None):
    """(text, None): RAW (a string, number, boolean or list) as postconf writes it for NAME,
    or (None, why Postfix could not read it). OVERRIDE: a master.cf ``-o`` value, which
    cannot hold blanks: a list (or list items to add or remove, ITEMS: 'present' or
    'absent', or a list parameter's value given as text) is written "a,b" (Postfix splits
    on commas too)."""
    reason = check_name(name)
    if reason:
        return None, reason
    if raw is None:
        return None, ("value of %s is null: with state=present every value must be set "
                      "(use '' for an empty value, or state=absent to remove %s)" % (name, name))
    try:
        text = to_postconf_value(raw)
    except TypeError as exc:
        return None, 'value of %s: %s' % (name, exc)
    if override and (items or isinstance(raw, (list, tuple)) or is_list_parameter(name)):
        text = ','.join(split_list(text))
    if items and not split_list(text):
        return None, 'value of %s names no list item to make %s' % (name, items)
    reason = check_setting(name, text, override)
    if reason:
        return None, reason
    return text, None


def unknown_name_errors(desired, current, known, explicit, where='main.cf', override_values=None,
                        remedy=ALLOW_UNKNOWN):
    """One message per name of DESIRED ({name: value or None}) that Postfix neither knows
    (KNOWN: ``postconf`` lists it) nor finds referenced: by a value of CURRENT, EXPLICIT
    (main.cf) or DESIRED, or, read only when needed, by a master.cf ``-o`` override
    (OVERRIDE_VALUES() gives those values). A restriction class (smtpd_restriction_classes)
    is a parameter the user defines. Removing a name that is set is always allowed. REMEDY:
    how to set a user-defined parameter all the same (unknown_name_message)."""
    accepted = set(known)
    for value in list(explicit.values()) + list(current.values()) + list(desired.values()):
        accepted |= referenced_names(value)
    if override_values is not None and any(name not in accepted for name in desired):
        for value in override_values():
            accepted |= referenced_names(value)
    for source in (explicit, desired):
        if source.get('smtpd_restriction_classes'):
            accepted |= set(list_items(source['smtpd_restriction_classes']))
    return [unknown_name_message(name, known, where, remedy) for name in sorted(desired)
            if name not in accepted and not (desired[name] is None and name in current)]


def compare_settings(desired, current, as_list=(), present=True):
    """({name: {'before', 'after'}} printable, {name: value to write, or None to remove})
    of DESIRED ({name: text, or None to remove}) against CURRENT ({name: text}). With
    PRESENT a value Postfix reads the same (values_equal; a list item by item, AS_LIST:
    the names given as lists) keeps the current text."""
    params = {}
    changes = {}
    for name in sorted(desired):
        before = current.get(name)
        after = desired[name]
        if present and before is not None and values_equal(name, before, after, name in as_list):
            after = before
        params[name] = {'before': printable(before), 'after': printable(after)}
        if before != after:
            changes[name] = after
    return params, changes


def settings_diff(config_file, params, changes, prefix=''):
    """The diff of CONFIG_FILE's changed lines (PARAMS and CHANGES: compare_settings); PREFIX
    ``service/type/`` for master.cf overrides."""
    return dict(
        before_header=config_file,
        after_header=config_file,
        before=''.join(format_line(prefix + n, params[n]['before']) + '\n'
                       for n in sorted(changes) if params[n]['before'] is not None),
        after=''.join(format_line(prefix + n, printable(changes[n])) + '\n'
                      for n in sorted(changes) if changes[n] is not None),
    )


def stat_or_none(path):
    """os.stat(PATH), or None when it cannot be read."""
    try:
        return os.stat(path)
    except OSError:
        return None


def replaced(path, before):
    """Whether PATH is no longer the file BEFORE (its stat) was taken of.

    postconf renames a new file into place, so a write shows as a new inode;
    times are not compared (reading the file may update its access time).
    """
    after = stat_or_none(path)
    if before is None or after is None:
        return (before is None) != (after is None)
    return (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino)


def _restore_owner_and_mode(path, before):
    if before is None:
        return
    try:
        restore_owner_mode(path, before)
    except OSError as exc:
        raise PostconfSettingsError('postconf rewrote %s, but its owner %d:%d and mode %04o could not be '
                                    'restored: %s' % (path, before.st_uid, before.st_gid,
                                                      stat.S_IMODE(before.st_mode), exc), changed=True)


def _postconf_write(postconf, changes, present, service, service_type):
    """The one postconf run that writes, and what the file holds afterwards."""
    if service:
        if present:
            warnings = postconf.set_overrides(service, service_type, changes)
        else:
            warnings = postconf.remove_overrides(service, service_type, changes)
        return warnings, postconf.service_overrides().get((service, service_type), {})
    if present:
        warnings = postconf.set_main(changes)
    else:
        warnings = postconf.remove_main(changes)
    return warnings, postconf.read_main_cf()


def _write_through_link(postconf, config_file, changes, present, service, service_type):
    """CONFIG_FILE (main.cf or master.cf of postconf's directory) is a symbolic link:
    ``postconf -e`` would replace the link with a regular file and leave its target as it
    was (postconf_edit.c renames its temporary file over the path). Instead postconf edits
    copies of main.cf and master.cf in a temporary directory beside the target, and the
    edited file is renamed over the target (same directory's file system: atomic), with
    the target's owner and mode; the link stays. Returns (warnings, what the file holds)."""
    target = os.path.realpath(config_file)
    if not os.path.isfile(target):
        raise PostconfSettingsError('%s is a symbolic link to %s, which is not a file: nothing was written'
                                    % (config_file, target), commands=postconf.commands)
    # two runs writing through the link serialize here, so neither edits a copy the other
    # is about to replace (postconf -e itself locks its temporary file, next to the link)
    with DirectoryLock(os.path.dirname(target)):
        before = os.stat(target)
        work = tempfile.mkdtemp(prefix='.mailgw-postconf-', dir=os.path.dirname(target))
        try:
            for path in (postconf.main_cf, postconf.master_cf):
                shutil.copyfile(path, os.path.join(work, os.path.basename(path)))
            copy = Postconf(postconf.module, work, commands=postconf.commands)
            warnings, written = _postconf_write(copy, changes, present, service, service_type)
            edited = os.path.join(work, os.path.basename(config_file))
            restore_owner_mode(edited, before)
            os.rename(edited, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return [warning.replace(work, postconf.config_dir) for warning in warnings], written


def write_settings(postconf, changes, present=True, service=None, service_type=None, as_list=()):
    """Write CHANGES ({name: value}; names to remove without PRESENT) to main.cf, or as
    ``-o`` overrides of master.cf's SERVICE/SERVICE_TYPE, in one postconf run; give the file
    back its owner and mode; read it back and check that it holds what was asked. A file
    that is a symbolic link is written through the link (_write_through_link). Returns
    postconf's warnings. Raises PostconfSettingsError."""
    config_file = postconf.master_cf if service else postconf.main_cf
    if os.path.islink(config_file):
        try:
            warnings, written = _write_through_link(postconf, config_file, changes, present, service,
                                                    service_type)
        except (IOError, OSError) as exc:
            raise PostconfSettingsError('cannot write %s through its symbolic link: %s' % (config_file, exc),
                                        commands=postconf.commands)
        except PostfixCommandError as exc:
            raise PostconfSettingsError(str(exc), commands=postconf.commands)
        _check_written(config_file, changes, written, as_list, postconf)
        return warnings
    before_stat = stat_or_none(config_file)
    try:
        warnings, written = _postconf_write(postconf, changes, present, service, service_type)
    except (IOError, OSError) as exc:
        _restore_owner_and_mode(config_file, before_stat)
        raise PostconfSettingsError('cannot read back %s: %s' % (config_file, exc), changed=True,
                                    commands=postconf.commands)
    except PostfixCommandError as exc:
        # postconf writes a temporary file and renames it into place: a failed
        # run leaves the old file. Report what actually happened on disk.
        changed = replaced(config_file, before_stat)
        _restore_owner_and_mode(config_file, before_stat)
        raise PostconfSettingsError(str(exc), changed=changed, commands=postconf.commands)
    _restore_owner_and_mode(config_file, before_stat)
    _check_written(config_file, changes, written, as_list, postconf)
    return warnings


def _check_written(config_file, changes, written, as_list, postconf):
    wrong = [n for n, value in changes.items()
             if not values_equal(n, written.get(n), value, n in as_list)]
    if wrong:
        raise PostconfSettingsError(
            'postconf reported success, but %s now reads %s' % (
                config_file, ', '.join('%s=%r (expected %r)' % (n, written.get(n), changes[n])
                                       for n in sorted(wrong))),
            changed=True, commands=postconf.commands)


class MainCfSettings:
    """main.cf parameters another module's write is followed by (tls_policy's ``main_cf``: the
    table first, then the parameters that wire it in). Created before anything is written:
    every name and value of REQUESTED ({name: string, number, boolean or list}) is checked as
    the postconf module checks them (setting_text, unknown_name_errors; OPTION names the
    option in messages; REMEDY: how to set a user-defined parameter all the same), so a bad
    value changes nothing at all. apply() compares and writes them afterwards. Raises
    PostconfSettingsError."""

    def __init__(self, postconf, requested, option='main_cf',
                 remedy='Set it with mailgw.postfix_tls.postconf and allow_unknown=true'):
        self.postconf = postconf
        self.option = option
        self.desired = {}
        self.as_list = set()
        errors = []
        for name in sorted(requested):
            raw = requested[name]
            text, reason = setting_text(name, raw)
            if reason:
                errors.append(reason)
                continue
            self.desired[name] = text
            if isinstance(raw, (list, tuple)):
                self.as_list.add(name)
        if not errors:
            try:
                explicit = postconf.read_main_cf()
                errors = unknown_name_errors(self.desired, explicit, postconf.known_names(), explicit,
                                             override_values=self._override_values, remedy=remedy)
            except (IOError, OSError) as exc:
                raise PostconfSettingsError('%s: cannot read %s: %s' % (option, postconf.main_cf, exc))
            except PostfixCommandError as exc:
                raise PostconfSettingsError('%s: %s' % (option, exc), commands=postconf.commands)
        if errors:
            raise PostconfSettingsError('%s: %s' % (option, '; '.join(errors)))

    def _override_values(self):
        return [value for settings in self.postconf.service_overrides().values() for value in settings.values()]

    def apply(self, check_mode=False, diff=False):
        """Compare with main.cf as it is now and, unless CHECK_MODE, write what differs in one
        postconf run. Returns {changed, params ({name: {before, after}}), restart_required,
        config_file, warnings (postconf's), diff (with DIFF)}."""
        config_file = self.postconf.main_cf
        try:
            current = self.postconf.read_main_cf()
        except (IOError, OSError) as exc:
            raise PostconfSettingsError('%s: cannot read %s: %s' % (self.option, config_file, exc))
        params, changes = compare_settings(self.desired, current, self.as_list)
        result = dict(changed=bool(changes), params=params, config_file=config_file,
                      restart_required=bool(changes) and restart_required(changes), warnings=[])
        if diff:
            result['diff'] = settings_diff(config_file, params, changes)
        if changes and not check_mode:
            result['warnings'] = write_settings(self.postconf, changes, as_list=self.as_list)
        return result
