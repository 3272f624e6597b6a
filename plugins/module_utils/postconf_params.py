# -*- coding: utf-8 -*-
# Copyright (c) mailgw.postfix_tls contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Pure Postfix knowledge for the postconf module: no I/O, no Ansible.

Parameter names and values, lists the way Postfix splits them, main.cf as
Postfix reads it, and the output formats of ``postconf``, ``postconf -M``
and ``postconf -P``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import difflib
import re

# Postfix parameter names: letters, digits and underscore (mail_conf.c
# refuses anything else on the command line of postconf -e).
PARAM_NAME_RE = re.compile(r'\A[A-Za-z0-9_]+\Z')

# $name, ${name}, $(name), ${name?text}, ${name:text}, ${name?{text}} ...
# (mac_expand.c); only the name is of interest here.
_REFERENCE_RE = re.compile(r'\$(?:\{|\()?([A-Za-z0-9_]+)')

# master.cf service types (master_ent.c).
SERVICE_TYPES = ('inet', 'unix', 'unix-dgram', 'fifo', 'pass')

# Separators of Postfix list values (CHARS_COMMA_SP in sys_defs.h) and the
# grouping characters that protect them (CHARS_BRACE).
LIST_SEPARATORS = ', \t\r\n'

# Parameters that take effect only after "postfix stop; postfix start"
# (postconf(5) says so for inet_interfaces and inet_protocols). The master
# process reads the directory and ownership settings once at start-up, so a
# reload cannot apply a change of those either.
RESTART_PARAMETERS = frozenset((
    'inet_interfaces',
    'inet_protocols',
    'queue_directory',
    'data_directory',
    'mail_owner',
    'setgid_group',
))

# Names whose values Postfix treats as lists, besides the suffixes below.
_LIST_NAMES = frozenset((
    'mydestination',
    'mynetworks',
    'debug_peer_list',
    'import_environment',
    'export_environment',
    'notify_classes',
    'smtpd_milters',
    'non_smtpd_milters',
    'authorized_flush_users',
    'authorized_mailq_users',
    'authorized_submit_users',
    'tls_disable_workarounds',
    'smtp_tls_mandatory_exclude_ciphers',
    'smtpd_tls_mandatory_exclude_ciphers',
    'lmtp_tls_mandatory_exclude_ciphers',
    'smtp_tls_exclude_ciphers',
    'smtpd_tls_exclude_ciphers',
    'lmtp_tls_exclude_ciphers',
    'smtp_tls_secure_cert_match',
    'smtp_tls_verify_cert_match',
    'lmtp_tls_secure_cert_match',
    'lmtp_tls_verify_cert_match',
    'smtp_tls_fingerprint_cert_match',
    'lmtp_tls_fingerprint_cert_match',
    'smtpd_sasl_security_options',
    'smtpd_sasl_tls_security_options',
    'smtp_sasl_security_options',
    'smtp_sasl_tls_security_options',
    'smtp_sasl_tls_verified_security_options',
    'smtp_sasl_mechanism_filter',
    'smtp_host_lookup',
    'lmtp_host_lookup',
    'smtpd_forbidden_commands',
    'smtpd_discard_ehlo_keywords',
    'smtp_discard_ehlo_keywords',
    'lmtp_discard_ehlo_keywords',
    'smtpd_command_filter',
    'propagate_unmatched_extensions',
    'masquerade_exceptions',
))

# Name suffixes of list-valued parameters: lookup tables, restriction lists,
# domain, network, interface and protocol lists, check tables, classes.
_LIST_SUFFIXES = (
    '_maps',
    '_restrictions',
    '_domains',
    '_networks',
    '_interfaces',
    '_protocols',
    '_checks',
    '_classes',
    '_trust_anchor_file',
)


def check_name(name):
    """Return None when NAME is a valid parameter name, else the reason."""
    if not isinstance(name, str) or not name:
        return 'parameter name must be a non-empty string, got %r' % (name,)
    if not PARAM_NAME_RE.match(name):
        return ('invalid parameter name %r: Postfix parameter names consist of '
                'letters, digits and "_" only' % (name,))
    return None


def check_value(name, value):
    """Return None when VALUE may be written to main.cf, else the reason."""
    for char, label in (('\n', 'a newline'), ('\r', 'a carriage return'),
                        ('\x00', 'a NUL character')):
        if char in value:
            return ('value of %s contains %s (%r): main.cf values must fit on '
                    'one line' % (name, label, value))
    return None


def check_override_value(name, value):
    """Return None when VALUE may be written as a master.cf -o override."""
    reason = check_value(name, value)
    if reason:
        return reason
    if re.search(r'\s', value):
        return ('value of %s contains whitespace (%r): postconf -P cannot write '
                'whitespace into a master.cf -o override; define a main.cf '
                'parameter with that value and use $name in the override'
                % (name, value))
    return None


def to_postconf_value(value):
    """Turn a value from the task into the text postconf writes.

    A list becomes "a, b, c" (the way Postfix lists are written), a boolean
    becomes yes/no (Postfix booleans), numbers become their text. Leading and
    trailing blanks are removed because postconf and the main.cf reader drop
    them too; line breaks are kept so that check_value() refuses them. Raises TypeError for anything else (mappings, None).
    """
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        # Only blanks: a CR or newline must stay visible to check_value().
        return value.strip(' \t')
    if isinstance(value, (list, tuple)):
        items = []
        for item in value:
            if isinstance(item, (list, tuple, dict)) or item is None:
                raise TypeError('list items must be strings, got %r' % (item,))
            text = to_postconf_value(item)
            if text == '':
                raise TypeError('list items must not be empty, got %r' % (value,))
            items.append(text)
        return ', '.join(items)
    raise TypeError('expected a string, number, boolean or list of strings, '
                    'got %s %r' % (type(value).__name__, value))


def split_list(value):
    """Split a Postfix list value into its items.

    Items are separated by commas and whitespace; text inside {} (nested)
    is one item together with the braces, as in Postfix's mystrtokq(), e.g.
    ``check_policy_service { inet:127.0.0.1:10040, timeout=10s }``.
    Whitespace in a braced item is collapsed (and removed just inside the
    braces) so that layout does not count as a difference.
    """
    items = []
    current = []
    depth = 0
    for char in value:
        if depth == 0 and char in LIST_SEPARATORS:
            if current:
                items.append(''.join(current))
                current = []
            continue
        if char == '{':
            depth += 1
        elif char == '}' and depth > 0:
            depth -= 1
        current.append(char)
    if current:
        items.append(''.join(current))
    return [_normalise_item(item) for item in items]


def _normalise_item(item):
    # Only braced items can hold whitespace: collapse it, and drop it just
    # inside the braces, so "{ a,  b }" and "{a, b}" compare equal.
    if '{' not in item:
        return item
    return re.sub(r'\s+\}', '}', re.sub(r'\{\s+', '{', ' '.join(item.split())))


def is_list_parameter(name):
    """Whether Postfix reads NAME as a list (pragmatic rule, see docs)."""
    base = name.lower()
    if base in _LIST_NAMES:
        return True
    return base.endswith(_LIST_SUFFIXES)


def values_equal(name, current, desired, as_list=False):
    """Compare an explicit value with a desired one.

    List parameters (or values given as a list) are equal when they have the
    same items in the same order, whatever the separators; other values must
    be identical after removing surrounding whitespace.
    """
    if current is None or desired is None:
        return current is None and desired is None
    if as_list or is_list_parameter(name):
        return split_list(current) == split_list(desired)
    return current.strip() == desired.strip()


def referenced_names(value):
    """Names referenced as $name, ${name}, $(name) in VALUE."""
    if not value:
        return set()
    # "$$" is a literal dollar sign, not a reference.
    return set(_REFERENCE_RE.findall(value.replace('$$', '')))


def parse_main_cf(text):
    """Explicit settings of a main.cf, as Postfix's configuration reader sees them.

    Empty lines, whitespace-only lines and lines whose first non-whitespace
    character is "#" are skipped; a line that starts with whitespace
    continues the previous logical line; the last of several entries for a
    name wins. Continuation lines are joined with one space. Returns a dict
    name -> value (surrounding whitespace removed) in file order.
    """
    logical = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith('#'):
            continue
        if line[0] in ' \t':
            if logical:
                logical[-1] = logical[-1] + ' ' + stripped
            continue
        logical.append(line.rstrip())
    result = {}
    for entry in logical:
        name, sep, value = entry.partition('=')
        name = name.strip()
        if not sep or not PARAM_NAME_RE.match(name):
            continue
        result.pop(name, None)
        result[name] = value.strip()
    return result


def parse_postconf_output(text):
    """Parse "name = value" lines printed by postconf, -n or -d."""
    result = {}
    for line in text.splitlines():
        name, sep, value = line.partition(' =')
        if not sep or not PARAM_NAME_RE.match(name):
            continue
        result[name] = value.strip()
    return result


def parse_service_spec(spec):
    """Split "SERVICE/TYPE" (e.g. 127.0.0.1:10026/inet) into (service, type).

    Raises ValueError with the reason when the spec is malformed.
    """
    if not isinstance(spec, str) or '/' not in spec:
        raise ValueError('service %r must be written SERVICE/TYPE, e.g. '
                         'submission/inet or 127.0.0.1:10026/inet' % (spec,))
    service, service_type = spec.rsplit('/', 1)
    if not service or re.search(r'[\s/]', service) or any(c in service for c in '\x00='):
        raise ValueError('service %r: the service name must be non-empty and contain '
                         'no whitespace, "/" or "="' % (spec,))
    if service_type not in SERVICE_TYPES:
        raise ValueError('service %r: unknown service type %r, expected one of %s'
                         % (spec, service_type, ', '.join(SERVICE_TYPES)))
    return service, service_type


def parse_services(text):
    """Services of "postconf -M" output as a set of (service, type)."""
    services = set()
    for line in text.splitlines():
        if not line or line[0] in ' \t#':
            continue
        fields = line.split()
        if len(fields) >= 2:
            services.add((fields[0], fields[1]))
    return services


def parse_service_overrides(text):
    """Parse "postconf -P" output: {(service, type): {name: value}}."""
    result = {}
    for line in text.splitlines():
        key, sep, value = line.partition(' =')
        if not sep:
            continue
        parts = key.rsplit('/', 2)
        if len(parts) != 3 or not PARAM_NAME_RE.match(parts[2]):
            continue
        result.setdefault((parts[0], parts[1]), {})[parts[2]] = value.strip()
    return result


def suggest(name, known, count=3):
    """The known parameter names closest to NAME, best first."""
    return difflib.get_close_matches(name, sorted(known), n=count, cutoff=0.6)


def unknown_name_message(name, known, where='main.cf'):
    """Error text for an unknown parameter NAME, with a "did you mean" hint."""
    close = suggest(name, known)
    if close:
        hint = 'did you mean %s?' % ' or '.join("'%s'" % c for c in close)
    else:
        hint = 'no known parameter name is close to it.'
    return ("unknown Postfix parameter '%s' for %s: %s A misspelt name is ignored by "
            "Postfix, so the intended setting would silently not apply. Set "
            "allow_unknown=true for a user-defined parameter (one that is "
            "not referenced as $%s by another value)."
            % (name, where, hint, name))


def format_line(name, value):
    """A main.cf style line for diffs: "name = value"."""
    return '%s = %s' % (name, value)


def restart_required(names):
    """Whether changing any of NAMES in main.cf needs a stop/start."""
    return any(n in RESTART_PARAMETERS for n in names)
