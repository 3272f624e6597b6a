# -*- coding: utf-8 -*-
# Copyright (c) mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Thin wrapper around the real postconf binary for one config directory.

Every call is an argument list run by module.run_command (no shell), always
with ``-c CONFIG_DIR``. Reading methods never write; each writing method is
exactly one postconf invocation (postconf edits main.cf / master.cf itself,
through a temporary file that it renames into place).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.mailgw.postfix_tls.plugins.module_utils.postconf_params import (
    decode_config,
    parse_main_cf,
    parse_postconf_output,
    parse_service_overrides,
    parse_services,
)


class PostconfError(Exception):
    """postconf failed; the message names the command and its diagnostics."""


class PostconfCommand:
    """Run postconf against CONFIG_DIR on behalf of an AnsibleModule."""

    def __init__(self, module, config_dir):
        self.module = module
        self.config_dir = config_dir
        # Searches PATH, then /sbin, /usr/sbin and /usr/local/sbin.
        self.binary = module.get_bin_path('postconf', required=True)
        self.commands = []

    @property
    def main_cf(self):
        return os.path.join(self.config_dir, 'main.cf')

    @property
    def master_cf(self):
        return os.path.join(self.config_dir, 'master.cf')

    def run(self, args):
        """Run postconf -c CONFIG_DIR ARGS; return (stdout, warnings)."""
        cmd = [self.binary, '-c', self.config_dir] + list(args)
        self.commands.append(cmd)
        rc, out, err = self.module.run_command(
            cmd, environ_update={'LC_ALL': 'C', 'LANG': 'C'})
        if rc != 0:
            raise PostconfError('%s failed (exit %d): %s' % (
                ' '.join(cmd), rc, (err or out).strip()))
        warnings = [line.strip() for line in err.splitlines() if 'warning:' in line]
        return out, warnings

    # Reading ---------------------------------------------------------------

    def read_main_cf(self):
        """Explicit main.cf settings, read from the file itself.

        ``postconf -n`` is not used for this: it collapses whitespace inside
        values and leaves out user-defined parameters nothing references,
        both of which the module must see to compare exactly. The file is
        read as bytes: Postfix does not require UTF-8 (a Latin-1 comment is
        fine), see decode_config().
        """
        with open(self.main_cf, 'rb') as handle:
            return parse_main_cf(decode_config(handle.read()))

    def known_names(self):
        """Names postconf knows here: built-in, from dynamically loaded map
        types, derived from master.cf services, restriction classes and
        user-defined names that something references."""
        out, dummy = self.run([])
        return set(parse_postconf_output(out))

    def services(self):
        """master.cf services as a set of (service, type) (postconf -M)."""
        out, dummy = self.run(['-M'])
        return parse_services(out)

    def service_overrides(self):
        """master.cf -o overrides (postconf -P): {(service, type): {name: value}}."""
        out, dummy = self.run(['-P'])
        return parse_service_overrides(out)

    # Writing: one postconf invocation each ------------------------------------

    def set_main(self, settings):
        """postconf -e NAME=VALUE ... for a mapping of names to values."""
        return self.run(['-e'] + ['%s=%s' % (n, v) for n, v in sorted(settings.items())])[1]

    def remove_main(self, names):
        """postconf -X NAME ..."""
        return self.run(['-X'] + sorted(names))[1]

    def set_overrides(self, service, service_type, settings):
        """postconf -P SERVICE/TYPE/NAME=VALUE ..."""
        return self.run(['-P'] + ['%s/%s/%s=%s' % (service, service_type, n, v)
                                  for n, v in sorted(settings.items())])[1]

    def remove_overrides(self, service, service_type, names):
        """postconf -PX SERVICE/TYPE/NAME ..."""
        return self.run(['-P', '-X'] + ['%s/%s/%s' % (service, service_type, n)
                                        for n in sorted(names)])[1]
