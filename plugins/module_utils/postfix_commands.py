# -*- coding: utf-8 -*-
# Copyright (c) 2025, mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run postconf and postmap for a lookup table module.

A thin wrapper around ``AnsibleModule.run_command`` with argument lists
(never a shell).  Every call names the configuration directory with ``-c``
so a throwaway or secondary Postfix instance is handled like /etc/postfix.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

_C_LOCALE = {'LANG': 'C', 'LC_ALL': 'C', 'LC_MESSAGES': 'C'}


class PostfixCommandError(Exception):
    """A postconf/postmap call failed; the message includes its stderr."""

    def __init__(self, message, rc=None, stdout='', stderr='', cmd=None):
        super(PostfixCommandError, self).__init__(message)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.cmd = cmd


def _version_tuple(text):
    numbers = re.findall(r'\d+', text or '')
    return tuple(int(n) for n in numbers[:3])


class PostfixCommands(object):
    """postconf/postmap for one Postfix configuration directory."""

    def __init__(self, module, config_dir='/etc/postfix'):
        self.module = module
        self.config_dir = config_dir
        self._postconf = None
        self._postmap = None

    @property
    def postconf_bin(self):
        if self._postconf is None:
            self._postconf = self.module.get_bin_path('postconf', required=True)
        return self._postconf

    @property
    def postmap_bin(self):
        if self._postmap is None:
            self._postmap = self.module.get_bin_path('postmap', required=True)
        return self._postmap

    def _run(self, args, data=None, ok_rcs=(0,)):
        try:
            rc, out, err = self.module.run_command(args, data=data, binary_data=data is not None,
                                                   environ_update=_C_LOCALE, handle_exceptions=False)
        except (OSError, IOError) as e:
            raise PostfixCommandError('cannot run %s: %s' % (' '.join(args), e), cmd=args, stderr=str(e))
        if rc not in ok_rcs:
            raise PostfixCommandError(
                '%s failed (exit status %s): %s' % (' '.join(args), rc, (err or out).strip()),
                rc=rc, stdout=out, stderr=err, cmd=args)
        return rc, out, err

    # -- postconf --------------------------------------------------------------

    def postconf_value(self, name, expand=True):
        """``postconf -c DIR [-x] -h NAME``: the value as Postfix sees it."""
        args = [self.postconf_bin, '-c', self.config_dir]
        if expand:
            args.append('-x')
        args.extend(['-h', name])
        dummy, out, dummy2 = self._run(args)
        return out.strip()

    def supported_map_types(self):
        """``postconf -m``: the lookup table types this Postfix supports."""
        dummy, out, dummy2 = self._run([self.postconf_bin, '-c', self.config_dir, '-m'])
        return set(line.strip() for line in out.splitlines() if line.strip())

    def default_database_type(self):
        """``postconf -h default_database_type``."""
        return self.postconf_value('default_database_type', expand=False)

    def mail_version(self):
        """The Postfix version as a tuple, e.g. (3, 7, 11)."""
        return _version_tuple(self.postconf_value('mail_version'))

    # -- postmap ---------------------------------------------------------------

    def postmap_build(self, map_type, path):
        """``postmap -c DIR TYPE:PATH``; returns stderr (warnings)."""
        dummy, dummy2, err = self._run([self.postmap_bin, '-c', self.config_dir,
                                        '%s:%s' % (map_type, path)])
        return err

    def postmap_query(self, map_type, path, keys):
        """Look up many keys with ``postmap -q - TYPE:PATH`` (keys on stdin).

        Returns ``(found, stderr)`` where found maps each key that exists to
        its value.  postmap exits 1 when some key was not found.

        run_command writes all of stdin before it reads stdout: when postmap
        fills the stdout pipe while stdin is still being written, both wait
        for ever.  Keys are therefore sent in batches small enough to fit in
        the stdin pipe buffer (QUERY_BATCH_BYTES), so the write always
        completes and the answer is then read as it comes.
        """
        found = {}
        errors = []
        for batch in _batches(keys):
            data = ''.join(key + '\n' for key in batch)
            args = [self.postmap_bin, '-c', self.config_dir, '-q', '-', '%s:%s' % (map_type, path)]
            rc, out, err = self._run(args, data=data, ok_rcs=(0, 1))
            if rc == 1 and 'fatal:' in err:
                raise PostfixCommandError('postmap -q - %s:%s failed: %s' % (map_type, path, err.strip()),
                                          rc=rc, stdout=out, stderr=err, cmd=args)
            if err:
                errors.append(err)
            for line in out.splitlines():
                key, sep, value = line.partition('\t')
                if sep:
                    found[key] = value
        return found, ''.join(errors)


# Linux pipes buffer 64 KiB (less when a user exceeds pipe-user-pages-soft).
QUERY_BATCH_BYTES = 16 * 1024


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
