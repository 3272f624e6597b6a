# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The command layer: ``postconf`` and ``postmap`` for one configuration directory.

Every call is an argument list run by ``AnsibleModule.run_command`` (never a
shell), in the C locale, always with ``-c CONFIG_DIR`` so a throwaway or
secondary Postfix instance is handled like /etc/postfix. Every command run is
appended to ``commands``; a failure raises PostfixCommandError. Parsing the
output is Postfix knowledge and lives in postconf_params.
"""

import os
import re

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import (
    decode_config,
    parse_main_cf,
    parse_postconf_output,
    parse_service_overrides,
    parse_service_commands,
    parse_services,
)

# Postfix programs print their diagnostics in the locale's language otherwise.
C_LOCALE = {'LANG': 'C', 'LC_ALL': 'C', 'LC_MESSAGES': 'C'}

# Linux pipes buffer 64 KiB (less when a user exceeds pipe-user-pages-soft).
QUERY_BATCH_BYTES = 16 * 1024


class PostfixCommandError(Exception):
    """A postconf/postmap call failed; the message names the command and its diagnostics."""

    def __init__(self, message, cmd=None, rc=None, stdout='', stderr=''):
        super().__init__(message)
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr


def version_tuple(text):
    """'3.7.11' -> (3, 7, 11); () when TEXT holds no number."""
    return tuple(int(n) for n in re.findall(r'\d+', text or '')[:3])


def warnings_of(stderr):
    """The ``warning:`` lines of a Postfix program's stderr."""
    return [line.strip() for line in (stderr or '').splitlines() if 'warning:' in line]


class PostfixCommand:
    """One Postfix program (``program``) for one configuration directory."""

    program = None

    def __init__(self, module, config_dir='/etc/postfix', commands=None):
        self.module = module
        self.config_dir = config_dir
        self.commands = [] if commands is None else commands
        self._binary = None

    def find_binary(self):
        """The program's path: PATH, then /sbin, /usr/sbin, /usr/local/sbin; fails the module if absent."""
        if self._binary is None:
            self._binary = self.module.get_bin_path(self.program, required=True)
        return self._binary

    @property
    def binary(self):
        return self.find_binary()

    def _run(self, args, data=None, ok_rcs=(0,)):
        """Run PROGRAM -c CONFIG_DIR ARGS; return (rc, stdout, stderr). An exit status not in
        OK_RCS raises PostfixCommandError (OK_RCS None: any exit status is returned)."""
        cmd = [self.binary, '-c', self.config_dir] + list(args)
        self.commands.append(cmd)
        try:
            rc, out, err = self.module.run_command(cmd, data=data, binary_data=data is not None,
                                                   environ_update=C_LOCALE, handle_exceptions=False)
        except (OSError, IOError) as e:
            raise PostfixCommandError('cannot run %s: %s' % (' '.join(cmd), e), cmd=cmd, stderr=str(e))
        if ok_rcs is not None and rc not in ok_rcs:
            raise PostfixCommandError('%s failed (exit status %s): %s' % (' '.join(cmd), rc, (err or out).strip()),
                                      cmd=cmd, rc=rc, stdout=out, stderr=err)
        return rc, out, err


class Postconf(PostfixCommand):
    """``postconf``: read parameters and services, write main.cf and master.cf.

    Reading methods never write; each writing method is exactly one postconf
    invocation (postconf edits main.cf / master.cf itself, through a
    temporary file that it renames into place) and returns its warnings.

    With CACHE (for a module that only reads: postconf_info), each read runs
    once and values already read (``remember``) are not read again.
    """

    program = 'postconf'

    def __init__(self, module, config_dir='/etc/postfix', commands=None, cache=False):
        super(Postconf, self).__init__(module, config_dir, commands)
        self._outputs = {} if cache else None
        self._values = {} if cache else None

    def remember(self, values, expand):
        """VALUES ({name: value}) as read with (EXPAND) or without -x, for value() and
        parameters() to answer without another postconf run (with CACHE only)."""
        if self._values is not None:
            for name, value in values.items():
                self._values[(name, bool(expand))] = value

    @property
    def main_cf(self):
        return os.path.join(self.config_dir, 'main.cf')

    @property
    def master_cf(self):
        return os.path.join(self.config_dir, 'master.cf')

    def output(self, args):
        """stdout of ``postconf -c CONFIG_DIR ARGS`` (a read: run once with CACHE)."""
        if self._outputs is None:
            return self._run(args)[1]
        key = tuple(args)
        if key not in self._outputs:
            self._outputs[key] = self._run(args)[1]
        return self._outputs[key]

    # Reading -----------------------------------------------------------------

    def parameters(self, names=None, expand=False, defaults=False, overrides=None):
        """{name: value} in one postconf call: NAMES (all explicit ones, ``-n``, when None;
        all defaults with DEFAULTS), ``-x`` to EXPAND, ``-d`` for DEFAULTS, OVERRIDES
        ({name: value}) as ``-o name=value``. Unknown names are left out."""
        args = []
        if names is None and not defaults:
            args.append('-n')
        if defaults:
            args.append('-d')
        if expand:
            args.append('-x')
        for name, value in sorted((overrides or {}).items()):
            args.extend(['-o', '%s=%s' % (name, value)])
        if names is not None:
            names = list(names)
            if not names:
                return {}
            if self._values is not None and not defaults and not overrides \
                    and all((name, bool(expand)) in self._values for name in names):
                return dict((name, self._values[(name, bool(expand))]) for name in names)
            args.extend(names)
        return parse_postconf_output(self.output(args))

    def value(self, name, expand=True):
        """``postconf [-x] -h NAME``: the value as Postfix sees it (expanded by default)."""
        if self._values is not None and (name, bool(expand)) in self._values:
            return self._values[(name, bool(expand))].strip()
        return self.output((['-x'] if expand else []) + ['-h', name]).strip()

    def read_main_cf(self):
        """Explicit main.cf settings, read from the file itself.

        ``postconf -n`` is not used for this: it collapses whitespace inside
        values and leaves out user-defined parameters nothing references,
        both of which the postconf module must see to compare exactly. The
        file is read as bytes: Postfix does not require UTF-8 (a Latin-1
        comment is fine), see decode_config().
        """
        with open(self.main_cf, 'rb') as handle:
            return parse_main_cf(decode_config(handle.read()))

    def known_names(self):
        """Names postconf knows here: built-in, from dynamically loaded map
        types, derived from master.cf services, restriction classes and
        user-defined names that something references."""
        try:
            return set(parse_postconf_output(self.output([])))
        except PostfixCommandError:
            # a value postconf cannot expand (smtpd_banner = costs $ 5: "macro processing
            # error") makes the full listing fail; the defaults (built-in and master.cf
            # names) still list, so a task can repair or remove that value
            return set(parse_postconf_output(self.output(['-d'])))

    def services(self):
        """master.cf services as a set of (service, type) (``postconf -M``)."""
        return parse_services(self.output(['-M']))

    def service_commands(self):
        """The command of each master.cf service: {(service, type): command} (``postconf -M``,
        the output services() reads)."""
        return parse_service_commands(self.output(['-M']))

    def service_overrides(self):
        """master.cf -o overrides (``postconf -P``): {(service, type): {name: value}}."""
        return parse_service_overrides(self.output(['-P']))

    def map_types(self):
        """``postconf -m``: the lookup table types this Postfix supports."""
        return set(line.strip() for line in self.output(['-m']).splitlines() if line.strip())

    def mail_version(self):
        """The Postfix version as a tuple, e.g. (3, 7, 11)."""
        return version_tuple(self.value('mail_version'))

    # Writing: one postconf invocation each -------------------------------------

    def _write(self, args):
        return warnings_of(self._run(args)[2])

    def set_main(self, settings):
        """``postconf -e NAME=VALUE ...`` for a mapping of names to values."""
        return self._write(['-e'] + ['%s=%s' % (n, v) for n, v in sorted(settings.items())])

    def remove_main(self, names):
        """``postconf -X NAME ...``"""
        return self._write(['-X'] + sorted(names))

    def set_overrides(self, service, service_type, settings):
        """``postconf -P SERVICE/TYPE/NAME=VALUE ...``"""
        return self._write(['-P'] + ['%s/%s/%s=%s' % (service, service_type, n, v)
                                     for n, v in sorted(settings.items())])

    def remove_overrides(self, service, service_type, names):
        """``postconf -PX SERVICE/TYPE/NAME ...``"""
        return self._write(['-P', '-X'] + ['%s/%s/%s' % (service, service_type, n)
                                           for n in sorted(names)])


class Postmap(PostfixCommand):
    """``postmap``: build and query lookup tables."""

    program = 'postmap'

    def build(self, map_type, path):
        """``postmap TYPE:PATH``; returns stderr (warnings)."""
        return self._run(['%s:%s' % (map_type, path)])[2]

    def query(self, map_type, path, keys):
        """Look up many keys with ``postmap -q - TYPE:PATH`` (keys on stdin).

        Returns ``(found, stderr)`` where found maps each key that exists to
        its value. postmap exits 1 when some key was not found.

        run_command writes all of stdin before it reads stdout: when postmap
        fills the stdout pipe while stdin is still being written, both wait
        for ever. Keys are therefore sent in batches small enough to fit in
        the stdin pipe buffer (QUERY_BATCH_BYTES), so the write always
        completes and the answer is then read as it comes.
        """
        found = {}
        errors = []
        for batch in _batches(keys):
            data = ''.join(key + '\n' for key in batch)
            rc, out, err = self._run(['-q', '-', '%s:%s' % (map_type, path)], data=data, ok_rcs=(0, 1))
            if rc == 1 and 'fatal:' in err:
                raise PostfixCommandError('postmap -q - %s:%s failed: %s' % (map_type, path, err.strip()),
                                          cmd=self.commands[-1], rc=rc, stdout=out, stderr=err)
            if err:
                errors.append(err)
            for line in out.splitlines():
                key, sep, value = line.partition('\t')
                if sep:
                    found[key] = value
        return found, ''.join(errors)

    def answers(self, spec, keys):
        """{key: value} the table SPEC (a lookup_table_types.MapSpec) gives for KEYS, or None
        when postmap cannot query it (an advisory lookup: the caller goes on without it)."""
        try:
            return self.query(spec.map_type, spec.name, keys)[0]
        except PostfixCommandError:
            return None


def _batches(keys):
    batch = []
    size = 0
    for key in keys:
        needed = len(key.encode('utf-8', 'surrogateescape')) + 1
        if batch and size + needed > QUERY_BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(key)
        size += needed
    if batch:
        yield batch
